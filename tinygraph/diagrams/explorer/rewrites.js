// The explorer's replay of the rewrite log: how the simplified graph was reached. The data's
// "replay" (made by replay.py) holds the graph after each rewrite ("frames": frame 0 is the
// generated graph, the last the simplified one) and the steps between them. The replay is a
// variant of its own, "replay", whose nodes and edges are those of the frame shown; each
// rewrite is shown in two moves: the nodes it is about to replace, then what stands for them.
"use strict";
(function () {
  const api = window.tinygraphExplorer;
  const R = api.DATA.replay;
  const $ = (id) => document.getElementById(id);
  // Over this many nodes, the time steps a rewrite does not touch are drawn collapsed.
  const FOCUS_OVER = 250;
  // focused: scopes were collapsed for a large graph (saved: the collapsed scopes before).
  const replay = { on: false, pos: 0, frame: -1, focused: false, saved: null };
  const cache = [];               // per frame: its variant object

  // --- the frames, from the compact data ---------------------------------------------------
  // Frame 0 whole; each later frame as [start, end, ids] changes to the one before.
  const lists = (() => {
    if (!R) return null;
    const nodes = [R.frames[0].nodes], edges = [R.frames[0].edges];
    for (const f of R.frames.slice(1)) {
      nodes.push(patch(nodes[nodes.length - 1], f.nodes));
      edges.push(patch(edges[edges.length - 1], f.edges));
    }
    return { nodes, edges };
  })();

  function patch(before, changes) {
    const after = before.slice();
    for (const [start, end, ids] of [...changes].reverse()) {
      after.splice(start, end - start, ...ids);
    }
    return after;
  }

  function record(k) {
    const r = R.records[k];
    if (r.generated !== undefined) return api.DATA.variants.generated.nodes[r.generated];
    if (r.simplified !== undefined) return api.DATA.variants.simplified.nodes[r.simplified];
    return r;
  }

  function frameVariant(k) {
    if (cache[k]) return cache[k];
    const { generated, simplified } = api.DATA.variants;
    const at = new Map();          // record id -> position in this frame
    let order = 0;
    const nodes = lists.nodes[k].map((rec, id) => {
      at.set(rec, id);
      // The node as its variant has it, renumbered; the engine's order and the running sums
      // belong to that variant's graph, not to this one.
      const n = Object.assign({}, record(rec), { id });
      delete n.partials;
      delete n.order;
      if (n.kind === "backward" || n.kind === "sum") n.order = order++;
      return n;
    });
    const edges = lists.edges[k].map((e) => {
      const [tail, head, kind, use] = R.edges[e];
      return { tail: at.get(tail), head: at.get(head), kind, use };
    });
    const scopes = [...generated.scopes];
    for (const s of simplified.scopes) {
      if (!scopes.some((t) => t.join("/") === s.join("/"))) scopes.push(s);
    }
    cache[k] = { nodes, edges, scopes, backward_count: R.frames[k].backward,
      grad_norms: simplified.grad_norms, time_steps: [], fold: [], replayFrame: k };
    return cache[k];
  }

  // --- positions: 0 the generated graph; 2j - 1 step j about to be done; 2j step j done --------
  const last = () => (R ? 2 * R.steps.length : 0);
  const frameAt = (pos) => Math.ceil(pos / 2) - (pos % 2);    // 2j-1 -> j-1, 2j -> j

  function go(pos) {
    if (!R) return;
    pos = Math.max(0, Math.min(last(), pos));
    replay.pos = pos;
    const k = frameAt(pos);
    if (!replay.on) enter();
    if (k !== replay.frame) {
      replay.frame = k;
      api.DATA.variants.replay = frameVariant(k);
      if (api.state.variant !== "replay") api.setVariant("replay");
      else api.render();                  // highlights: the "rendered" hook
    } else {
      highlight();
    }
    describe();
  }

  function enter() {
    replay.on = true;
    replay.frame = -1;
    replay.saved = new Set(api.state.collapsed);
    $("replay-bar").hidden = false;
    $("stepbar").classList.add("replaying");
    $("replay-button").classList.add("on");
  }

  function leave() {
    replay.on = false;
    replay.frame = -1;
    $("replay-bar").hidden = true;
    $("stepbar").classList.remove("replaying");
    $("replay-button").classList.remove("on");
    if (replay.focused) {           // the scopes collapsed as they were before the replay
      api.state.collapsed.clear();
      replay.saved.forEach((s) => api.state.collapsed.add(s));
    }
    replay.focused = false;
  }

  // The ids of frame `replay.frame` to highlight. Before a step: the nodes it replaces (old)
  // and the others that go with them (gone: nothing reads them after it, or they are drawn
  // otherwise). After it: what stands for them (made) and the others drawn anew (changed).
  function marked() {
    const j = Math.ceil(replay.pos / 2);     // the step shown (1-based); 0 at the start
    const none = { old: [], gone: [], made: [], changed: [] };
    if (j === 0) return none;
    const s = R.steps[j - 1];
    const besides = (ids, main) => ids.filter((id) => !main.includes(id));
    return replay.pos % 2 ? { ...none, old: s.before, gone: besides(s.removed, s.before) }
      : { ...none, made: s.after, changed: besides(s.appeared, s.after) };
  }

  const CLASSES = { old: "rw-old", gone: "rw-gone", made: "rw-new", changed: "rw-changed" };

  function highlight() {
    if (!replay.on || api.state.variant !== "replay") return;
    Object.values(CLASSES).forEach(api.clearClass);
    const m = marked();
    if (focus([...m.old, ...m.made, ...m.gone, ...m.changed])) return;   // drawn again
    for (const [which, cls] of Object.entries(CLASSES)) api.mark(m[which], cls);
    api.replayMarked = m;
    const first = m.old[0] ?? m.made[0];
    if (first !== undefined) {
      if (api.camera && api.camera.follow) api.camera.follow(first);
      else if (api.gOf(first)) api.gOf(first).scrollIntoView({ block: "center", inline: "center" });
    }
    document.querySelectorAll("#replay-log li").forEach((li) =>
      li.classList.toggle("on", Number(li.dataset.step) === Math.ceil(replay.pos / 2)));
  }

  // A large graph: every top-level scope drawn collapsed but those the step touches. Returns
  // whether that changed the drawing (which then draws again).
  function focus(ids) {
    const v = api.variant();
    if (v.nodes.length <= FOCUS_OVER) return false;
    const keep = new Set(ids.map((id) => (v.nodes[id].scope[0] ?? "")));
    const want = new Set(v.scopes.filter((s) => s.length === 1 && !keep.has(s[0]))
      .map((s) => s[0]));
    const have = api.state.collapsed;
    replay.focused = true;
    if (want.size === have.size && [...want].every((s) => have.has(s))) return false;
    have.clear();
    want.forEach((s) => have.add(s));
    api.render();
    return true;
  }

  // --- what the bar says ---------------------------------------------------------------------
  const total = () => R.steps.reduce((n, s) => n + s.entries.length, 0);

  function describe() {
    const steps = R.steps.length, j = Math.ceil(replay.pos / 2);
    const frame = R.frames[replay.frame], generated = R.frames[0].backward;
    const counts = "backward nodes: " + generated + " generated → <b>" + frame.backward +
      "</b> now → " + R.frames[R.frames.length - 1].backward + " simplified";
    let what;
    if (replay.pos === 0) {
      what = "<b>the generated graph</b>, as the vjps made it. Press <i>next</i> to see the " +
        "first rewrite.";
    } else {
      const step = R.steps[j - 1];
      const entries = step.entries.map((e) => api.escapeHTML(e.text)).join("; ");
      const rules = [...new Set(step.entries.map((e) => e.rule))];
      const first = step.entries[0].index + 1, end = first + step.entries.length - 1;
      const which = end > first ? " (rewrites " + first + "–" + end + " of " + total() + ")" : "";
      what = '<span class="rw-count">' + j + " / " + steps + which + "</span> <b>" + entries +
        "</b>" +
        phase() +
        rules.map((r) => '<div class="rw-why"><b>' + api.escapeHTML(r) + "</b>: " +
          api.escapeHTML(R.rules[r]) + "</div>").join("");
      if (replay.pos === last()) {
        what += '<div class="rw-end">' + (R.ends_simplified ?
          "The end of the log: this is the simplified graph, the same as the <i>simplified</i> " +
          "button shows." : "The end of the log.") + "</div>";
      }
    }
    $("replay-text").innerHTML = what;
    $("replay-counts").innerHTML = counts + (replay.focused ? '; <span class="rw-focus">a ' +
      "large graph: the scopes this step does not touch are drawn collapsed</span>" : "");
    $("replay-prev").disabled = replay.pos === 0;
    $("replay-next").disabled = replay.pos === last();
    api.replayPosition = replay.pos;
  }

  // What the outlines mean, at this half of the step.
  function phase() {
    const m = marked();
    return replay.pos % 2 ?
      ' <span class="rw-phase old">about to replace the nodes outlined in red</span>' +
        (m.gone.length ? ' <span class="rw-phase gone">(dashed: these go too)</span>' : "") :
      ' <span class="rw-phase new">done: what stands for them is outlined in green</span>' +
        (m.changed.length ? ' <span class="rw-phase changed">(light green: drawn anew)</span>'
          : "");
  }

  function bar() {
    const el = document.createElement("div");
    el.id = "replay-bar";
    el.hidden = true;
    el.setAttribute("role", "group");
    el.setAttribute("aria-label", "replay of the simplification");
    const grouped = R.per_frame > 1 ? " (a long log: " + R.per_frame + " rewrites per step)" : "";
    const count = total();
    el.innerHTML =
      '<div class="rw-controls">' +
      '<button id="replay-first" title="the generated graph">⇤ generated</button>' +
      '<button id="replay-prev" title="back (←)">← back</button>' +
      '<button id="replay-next" title="next (→)">next →</button>' +
      '<button id="replay-last" title="the simplified graph">simplified ⇥</button>' +
      '<span id="replay-counts"></span></div><div id="replay-text"></div>' +
      '<details id="replay-list"><summary>the rewrite log: ' + count +
      (count === 1 ? " rewrite" : " rewrites") + ", in the " +
      "order done" + api.escapeHTML(grouped) + "</summary><ol id=\"replay-log\">" +
      R.steps.map((s, k) => s.entries.map((e) => '<li data-step="' + (k + 1) + '">' +
        api.escapeHTML(e.text) + "</li>").join("")).join("") + "</ol></details>";
    const stepbar = $("stepbar");
    stepbar.parentNode.insertBefore(el, stepbar.nextSibling);
    $("replay-first").addEventListener("click", () => go(0));
    $("replay-prev").addEventListener("click", () => go(replay.pos - 1));
    $("replay-next").addEventListener("click", () => go(replay.pos + 1));
    $("replay-last").addEventListener("click", () => go(last()));
    $("replay-log").addEventListener("click", (e) => {
      const li = e.target.closest("li");
      if (li) go(2 * Number(li.dataset.step) - 1);
    });
  }

  function wire() {
    const button = $("replay-button");
    if (!button) return;
    if (!R) {                       // nothing was rewritten: nothing to replay
      button.disabled = true;
      button.title = "nothing to replay: no rewrite applied to this graph";
      return;
    }
    bar();
    button.addEventListener("click", () => (replay.on ? null : go(0)));
    // In the replay, ← and → step the replay, not the backward pass (app.js's keys).
    window.addEventListener("keydown", (e) => {
      if (!replay.on || e.altKey || e.ctrlKey || e.metaKey) return;
      if (e.target.matches && e.target.matches("input, textarea, select")) return;
      const to = { ArrowRight: replay.pos + 1, ArrowLeft: replay.pos - 1, Home: 0, End: last() };
      if (!(e.key in to)) return;
      go(to[e.key]);
      e.preventDefault();
      e.stopPropagation();
    }, true);
  }

  api.on("reset", () => { if (replay.on && api.state.variant !== "replay") leave(); });
  api.on("rendered", highlight);
  api.replay = { go, next: () => go(replay.pos + 1), back: () => go(replay.pos - 1),
    get position() { return replay.pos; }, get last() { return last(); },
    get frame() { return replay.frame; }, data: R };
  wire();
})();
