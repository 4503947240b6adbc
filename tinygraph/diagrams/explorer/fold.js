// The explorer's folded time steps and the time scrubber. A long unrolled graph (the data's
// "fold" groups, made by folding.py: steps with the same ops in the same order) is drawn with
// one representative cell per group; the scrubber makes that cell stand for step k: node i of
// the drawn cell shows node i of step k (panel values, labels, norm colours), with no new
// layout. "unfold" draws every step.
"use strict";
(function () {
  const api = window.tinygraphExplorer;
  const $ = (id) => document.getElementById(id);
  const fold = { on: true, step: null };      // step: the time step the drawn cells stand for
  const cache = new WeakMap();                 // variant -> its lookup tables
  let reshowing = false;

  const groups = () => api.variant().fold || [];

  // Per variant: the nodes not drawn while folded, and where each folded node sits.
  function tables(v) {
    if (!cache.has(v)) {
      const hidden = new Set(), drawnAt = new Map(), foldedAt = new Map();
      for (const g of v.fold || []) {
        g.nodes.forEach((ids, s) => ids.forEach((id, i) => {
          (s === 0 ? drawnAt : foldedAt).set(id, { g, s, i });
          if (s > 0) hidden.add(id);
        }));
      }
      const edgeAt = new Map(v.edges.map((e) => [e.tail + ">" + e.head + ":" + e.kind, e]));
      cache.set(v, { hidden, drawnAt, foldedAt, edgeAt });
    }
    return cache.get(v);
  }

  api.hiddenNodes = (v) => (fold.on ? tables(v).hidden : []);

  // The node that drawn node `id` of a group stands for at the current step (itself when the
  // group has no such step).
  function counterpart(id) {
    const at = tables(api.variant()).drawnAt.get(id);
    if (!at) return id;
    const s = at.g.steps.indexOf(fold.step);
    return s > 0 ? at.g.nodes[s][at.i] : id;
  }

  // --- the bar: scrubber, label, unfold ----------------------------------------------------
  function bar() {
    const el = document.createElement("div");
    el.id = "foldbar";
    el.setAttribute("role", "group");
    el.setAttribute("aria-label", "folded time steps");
    el.innerHTML = '<span id="fold-what"></span>' +
      '<span id="fold-controls"><button id="fold-prev" title="previous time step ([)">‹ t−1</button>' +
      '<input type="range" id="fold-step" step="1" aria-label="time step the drawn cell shows">' +
      '<button id="fold-next" title="next time step (])">t+1 ›</button>' +
      '<output id="fold-label" for="fold-step"></output></span>' +
      '<button id="fold-toggle"></button>';
    const stepbar = $("stepbar");
    stepbar.parentNode.insertBefore(el, stepbar.nextSibling);
    $("fold-step").addEventListener("input", (e) => setStep(Number(e.target.value)));
    // Arrow keys move the scrubber; they must not also step the backward pass (app.js).
    $("fold-step").addEventListener("keydown", (e) => e.stopPropagation());
    $("fold-prev").addEventListener("click", () => nudge(-1));
    $("fold-next").addEventListener("click", () => nudge(1));
    $("fold-toggle").addEventListener("click", toggle);
    document.addEventListener("keydown", (e) => {
      if (e.target.matches("input[type=search], input[type=text], textarea, select")) return;
      if (e.altKey || e.ctrlKey || e.metaKey) return;
      if (e.key === "[" || e.key === "]") { nudge(e.key === "[" ? -1 : 1); e.preventDefault(); }
    });
  }

  function allSteps() {
    return [...new Set(groups().flatMap((g) => g.steps))].sort((a, b) => a - b);
  }

  function updateBar() {
    const el = $("foldbar"), gs = groups();
    el.style.display = gs.length ? "" : "none";
    if (!gs.length) return;
    const steps = allSteps(), g = gs[0];
    if (!steps.includes(fold.step)) fold.step = steps[0];
    const first = g.steps[0], last = g.steps[g.steps.length - 1];
    const where = g.parent.length ? " of " + g.parent.join("/") : "";
    $("fold-what").textContent = fold.on ?
      "Folded: t=" + first + "…" + last + where + " (" + g.steps.length +
        " identical steps) drawn as one cell" + (gs.length > 1 ? " per group" : "") + "; time step" :
      "All " + g.total + " time steps drawn.";
    $("fold-controls").style.display = fold.on ? "" : "none";
    const range = $("fold-step");
    range.min = String(steps[0]);
    range.max = String(steps[steps.length - 1]);
    range.value = String(fold.step);
    const text = "t = " + fold.step + " / " + g.total;
    $("fold-label").textContent = text;
    range.setAttribute("aria-valuetext", text);
    $("fold-toggle").textContent = fold.on ? "unfold (" + g.total + " steps)" : "fold again";
    $("fold-toggle").title = fold.on ? "draw every time step (a larger layout: seconds)" :
      "draw the identical steps as one cell again";
  }

  function nudge(delta) {
    if (!fold.on || !groups().length) return;
    const steps = allSteps();
    const k = steps.indexOf(fold.step) + delta;
    if (k >= 0 && k < steps.length) setStep(steps[k]);
  }

  // The drawn cells now stand for step k: labels, cluster titles, norm colours, the panel.
  function setStep(k, reshow = true) {
    fold.step = k;
    updateBar();
    paint();
    if (reshow && api.panelNode !== null && api.panelNode !== undefined) {
      const t = tables(api.variant());
      const at = t.drawnAt.get(api.panelNode) || t.foldedAt.get(api.panelNode);
      if (at) api.show(at.g.nodes[0][at.i]);       // the shown hook maps it to step k
    }
  }

  function toggle() {
    fold.on = !fold.on;
    if (!fold.on) {       // what said "the drawn cell shows step k" is no longer true
      document.querySelectorAll("#panel .fold-note").forEach((note) => note.remove());
      document.querySelectorAll("#strip .t.on").forEach((t) => t.classList.remove("on"));
    }
    updateBar();
    api.render();
  }

  // --- what the drawn cell shows at step k ----------------------------------------------
  function paint() {
    if (!api.drawn || !fold.on) return;
    const v = api.variant(), { drawnAt } = tables(v);
    for (const g of groups()) {
      const cluster = api.svg.querySelector('g.cluster[id="s:' + g.scopes[0] + '"]');
      const title = cluster && cluster.querySelector(":scope > text");
      const shown = g.steps.includes(fold.step) ? fold.step : g.steps[0];
      if (cluster) cluster.classList.add("folded-cell");
      if (title) title.textContent = "t=" + shown + "  (one cell for t=" + g.steps[0] + "…" +
        g.steps[g.steps.length - 1] + ")";
    }
    for (const [id, role] of api.drawn.p.kept) {
      if (!drawnAt.has(id) || api.drawn.p.boxOf.has(id)) continue;
      const el = api.gOf(id);
      if (!el) continue;
      const attrs = api.nodeAttrs(v.nodes[counterpart(id)], role);
      const lines = attrs.label.split("\n"), texts = el.querySelectorAll("text");
      if (texts.length === lines.length) texts.forEach((t, j) => { t.textContent = lines[j]; });
      if (api.state.norms && role === "node") {
        const shape = el.querySelector("path, polygon, ellipse");
        if (shape && attrs.fillcolor) shape.setAttribute("fill", attrs.fillcolor);
        texts.forEach((t) => attrs.fontcolor && t.setAttribute("fill", attrs.fontcolor));
      }
    }
    relabelEdges(v);
    stripMarks();
    api.foldStep = fold.step;
  }

  // The use named on an edge into a Σ of the drawn cell ("via mul → f₁₂⊙c₁₂ [t=13]"): that of
  // the same edge at step k.
  function relabelEdges(v) {
    const { drawnAt, edgeAt } = tables(v);
    // The use a summand carries out of a node, whatever reads it: an edge from the cell to a
    // step that is drawn (t=1) stands, at step k, for the same summand's edge into step k−1.
    const useOut = new Map();
    for (const e of v.edges) if (e.use && !useOut.has(e.tail)) useOut.set(e.tail, e.use);
    for (const e of api.drawn.p.edges) {
      if (!e.use || !(drawnAt.has(e.head) || drawnAt.has(e.tail))) continue;
      const same = edgeAt.get(counterpart(e.tail) + ">" + counterpart(e.head) + ":" + e.kind);
      const use = same && same.use ? same.use : useOut.get(counterpart(e.tail));
      const label = api.svg.querySelector('g[id="e' + e.index + '"] > text');
      if (use && label) label.textContent = use;
    }
  }

  // The strip: folded steps marked, step k framed and scrolled into sight.
  function stripMarks() {
    const strip = $("strip");
    strip.querySelectorAll(".t").forEach((t) => {
      const k = Number(t.dataset.step);
      t.classList.toggle("fold-now", k === fold.step);
      t.classList.toggle("folded", groups().some((g) => g.steps.includes(k)));
    });
    const now = strip.querySelector(".t.fold-now");
    if (!now) return;
    const box = now.getBoundingClientRect(), room = strip.getBoundingClientRect();
    if (box.left < room.left || box.right > room.right) {
      strip.scrollLeft += box.left - room.left - (room.width - box.width) / 2;
    }
  }

  // A node of a folded step shown in the panel: a drawn node is shown as its counterpart at
  // step k; a node of a folded step (a link, the strip) moves the scrubber to its step.
  api.on("shown", (id) => {
    if (!fold.on || reshowing) return;
    const t = tables(api.variant());
    const drawnAt = t.drawnAt.get(id), foldedAt = t.foldedAt.get(id);
    if (drawnAt && counterpart(id) !== id) {
      reshowing = true;
      try { api.show(counterpart(id)); } finally { reshowing = false; }
      return annotate(drawnAt.g, drawnAt.i, drawnAt.g.steps.indexOf(fold.step));
    }
    if (foldedAt && foldedAt.g.steps[foldedAt.s] !== fold.step) {
      setStep(foldedAt.g.steps[foldedAt.s], false);
    }
    const at = drawnAt || foldedAt;
    if (at) annotate(at.g, at.i, at.s);
  });

  // The drawn node marked as the one shown, and a line in the panel saying which step it is.
  function annotate(g, i, s) {
    api.mark([g.nodes[0][i]], "hl-selected");
    const note = document.createElement("p");
    note.className = "fold-note";
    note.textContent = "Folded time steps: the drawn cell (t=" + g.steps[0] + ") shows step t=" +
      g.steps[s] + " of " + g.total + "; move the time step to replay the others.";
    $("panel").prepend(note);
  }
  api.on("rendered", paint);
  api.on("reset", updateBar);

  // The strip's bar of a folded step, or a panel link to one of its nodes: scrub to that step
  // instead of expanding a scope that is not drawn.
  function redirect(id, event) {
    const at = fold.on && tables(api.variant()).foldedAt.get(id);
    if (!at) return false;
    event.preventDefault();
    event.stopPropagation();
    api.show(id);
    const drawn = api.gOf(at.g.nodes[0][at.i]);
    if (drawn && drawn.scrollIntoView) drawn.scrollIntoView({ block: "center", inline: "center" });
    return true;
  }

  function wire() {
    bar();
    updateBar();
    $("strip").addEventListener("click", (e) => {
      const item = e.target.closest && e.target.closest(".t");
      if (!item) return;
      const s = api.variant().time_steps.find((x) => String(x.step) === item.dataset.step);
      if (s) redirect(s.h_node ?? s.c_node ?? s.h_forward, e);
    }, true);
    $("panel").addEventListener("click", (e) => {
      const go = e.target.dataset && e.target.dataset.go;
      if (go !== undefined) redirect(Number(go), e);
    }, true);
  }

  api.fold = {
    get on() { return fold.on; },
    get step() { return fold.step; },
    setStep, toggle, counterpart, groups,
  };
  wire();
})();
