// The tinygraph explorer: draws the diagram model embedded in this page with Graphviz (Viz.js,
// WebAssembly, in the page) and makes it explorable. Everything it needs is in this file and
// the page; it makes no network request.
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("tinygraph-data").textContent);
  const FORWARD = new Set(["op", "tensor", "parameter"]);
  const BACKWARD = new Set(["backward", "sum", "seed", "constant", "result"]);
  // (forward tint, backward tone) per hue; a forward op k and its backward nodes share hue k.
  const HUES = [["#dbe9f6", "#6fa8dc"], ["#fde2cf", "#f0a05a"], ["#dcefdc", "#6dbf6d"],
    ["#f3dcec", "#c27ba0"], ["#fff2c2", "#e0b83a"], ["#d9f0ee", "#4fb3a9"],
    ["#e6e0f5", "#8e7cc3"], ["#f6dada", "#e06666"]];
  const NORM_COLORS = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89",
    "#35b779", "#6ece58", "#b5de2b", "#fde725"];
  const NO_NORM = "#eeeeee";              // under norm colouring: a node without a norm
  const FADED = "#aaaaaa";                // edges of forward values drawn faded (ghosts)

  const state = {
    variant: DATA.variant, view: DATA.view, collapsed: new Set(DATA.collapsed),
    norms: false, highway: false, step: -1, selected: null, playing: null, zoom: null,
  };
  let viz = null, svg = null, drawn = null;   // drawn: what the current picture shows
  // The other modules of the page (camera.js, ...) reach the explorer through this object:
  // its functions, and hooks they register with on(event, fn): "rendered" after each drawing,
  // "stepped" (id) after each backward step, "shown" (id) after the panel shows a node,
  // "jumped" (id) after a search or a link shows a node, "reset" when a view or variant
  // starts afresh. The zoom and the pane's scrolling are camera.js's.
  const hooks = {};
  const api = { state, renders: 0, firstPaintMs: null, DATA,
    on(event, fn) { (hooks[event] = hooks[event] || []).push(fn); },
    emit(event, ...args) { for (const fn of hooks[event] || []) fn(...args); } };
  window.tinygraphExplorer = api;

  const $ = (id) => document.getElementById(id);
  const variant = () => DATA.variants[state.variant];
  const scopeKey = (scope) => scope.join("/");

  // --- what to draw ------------------------------------------------------------------------
  function picture() {
    const v = variant();
    const byId = v.nodes;
    const kept = new Map();      // model id -> "node" or "ghost"
    for (const n of byId) {
      if (state.view !== "backward" && FORWARD.has(n.kind)) kept.set(n.id, "node");
      if (state.view !== "forward" && BACKWARD.has(n.kind)) kept.set(n.id, "node");
    }
    if (state.view === "backward") {      // forward values the backward pass reads: ghosts
      for (const e of v.edges) {
        if (kept.get(e.head) === "node" && !kept.has(e.tail)) kept.set(e.tail, "ghost");
      }
    }
    // Nodes another module leaves out (fold.js: the time steps folded into one drawn cell).
    if (api.hiddenNodes) for (const id of api.hiddenNodes(v)) kept.delete(id);
    // The outermost collapsed scope each node is in, if any.
    const boxOf = new Map();
    for (const id of kept.keys()) {
      const scope = byId[id].scope;
      for (let d = 1; d <= scope.length; d++) {
        const key = scopeKey(scope.slice(0, d));
        if (state.collapsed.has(key)) {
          boxOf.set(id, key);
          break;
        }
      }
    }
    const edges = v.edges.filter((e) => kept.has(e.tail) && kept.has(e.head) &&
      (state.view !== "forward" || e.kind === "data"));
    return { v, kept, boxOf, edges };
  }

  function esc(text) {
    return String(text).replace(/\\/g, "\\\\").replace(/"/g, '\\"');
  }

  // The colour scale's decades [lo, hi) per variant, found once: a large graph has a norm
  // per node, and scanning them all for every node drawn was quadratic.
  const normScales = new WeakMap();
  function normScale() {
    const v = variant();
    if (!normScales.has(v)) {
      const logs = (v.grad_norms || []).filter((x) => typeof x === "number" && x > 0)
        .map(Math.log10);
      normScales.set(v, logs.length ? [Math.floor(logs.reduce((a, b) => Math.min(a, b))),
        Math.floor(logs.reduce((a, b) => Math.max(a, b))) + 1] : null);
    }
    return normScales.get(v);
  }

  function normColor(norm) {
    if (norm === null || norm === undefined) return null;
    if (typeof norm !== "number" || !isFinite(norm)) return "#ff00ff";
    const scale = normScale();
    if (norm <= 0 || !scale) return "#bbbbbb";
    const [lo, hi] = scale;
    const k = Math.min(NORM_COLORS.length - 1,
      Math.floor((Math.log10(norm) - lo) / (hi - lo) * NORM_COLORS.length));
    return NORM_COLORS[Math.max(0, k)];
  }

  function nodeAttrs(n, role) {
    // Colours mean roles: n.hue is shared by the nodes that play one part in every time
    // step (the gate f, its gradient); the forward order is the fallback.
    const hue = HUES[(n.hue ?? n.step ?? 0) % HUES.length];
    const a = { label: n.lines.join("\n"), id: "n" + n.id };
    if (role === "ghost") {       // a forward value the backward pass reads, by its name
      const lines = [n.display || n.name || n.lines[0], ...(n.also || []),
        "(" + n.shape.join(", ") + ")"];
      Object.assign(a, { shape: "box", style: "dashed,rounded", color: "#999999",
        fontcolor: "#555555", label: lines.join("\n") });
      return a;
    }
    switch (n.kind) {
      case "op": Object.assign(a, { shape: "box", style: "rounded,filled", fillcolor: hue[0] }); break;
      case "tensor": Object.assign(a, { shape: "ellipse", style: "filled", fillcolor: "#f3f3f3" }); break;
      case "parameter": Object.assign(a, { shape: "box", style: "filled", peripheries: "2",
        fillcolor: "#ffe599" }); break;
      case "seed": Object.assign(a, { shape: "box", style: "filled,bold", fillcolor: "#f4cccc",
        color: "#b03a2e" }); break;
      case "sum": case "result": Object.assign(a, { shape: "box", style: "rounded,filled,bold",
        fillcolor: "#cc0000", fontcolor: "white", color: "#5b0f00" }); break;
      case "constant": Object.assign(a, { shape: "plaintext", fontcolor: "#b03a2e" }); break;
      default: Object.assign(a, { shape: "box", style: n.recomputed ? "rounded,filled,dashed" :
        "rounded,filled,bold", fillcolor: hue[1], color: "#5b0f00" });
    }
    if (state.norms) {       // one colour scale only: a node without a norm goes grey
      const c = normColor(n.grad_norm);
      if (c) {
        a.fillcolor = c;
        a.fontcolor = NORM_COLORS.indexOf(c) >= 0 && NORM_COLORS.indexOf(c) < 5 ? "white" : "black";
      } else if (n.kind === "constant") {
        a.fontcolor = "#777777";
      } else {
        Object.assign(a, { fillcolor: NO_NORM, fontcolor: "#555555", color: "#999999" });
      }
    }
    return a;
  }

  function attrText(a) {
    return "[" + Object.entries(a).map(([k, v]) => k + '="' + esc(v) + '"').join(" ") + "]";
  }

  function dot(p) {
    const out = ['digraph tinygraph {', 'rankdir=TB; ordering=out; nodesep=0.25; ranksep=0.35;',
      'node [fontname="Helvetica", fontsize=10, margin="0.08,0.03"];',
      'edge [fontname="Helvetica", fontsize=9, arrowsize=0.7];'];
    // Items by scope path; collapsed scopes become one box each.
    const items = new Map();     // scope key -> lines
    const put = (scope, line) => {
      const key = scopeKey(scope);
      if (!items.has(key)) items.set(key, []);
      items.get(key).push(line);
    };
    const boxes = new Map();     // collapsed scope key -> {id, counts}
    for (const [id, role] of p.kept) {
      const n = p.v.nodes[id];
      const box = p.boxOf.get(id);
      if (box !== undefined) {
        if (!boxes.has(box)) boxes.set(box, { id: "c" + boxes.size, f: 0, b: 0 });
        boxes.get(box)[FORWARD.has(n.kind) ? "f" : "b"] += 1;
        continue;
      }
      put(n.scope, '"n' + id + '" ' + attrText(nodeAttrs(n, role)) + ";");
    }
    // A node linked to several collapsed boxes (a weight every step reads, the Σ of its
    // gradient over the steps) gets no edge to them: those long edges would cross the whole
    // picture (and take Graphviz seconds to place). The boxes name them instead.
    const boxEnd = (id) => p.boxOf.get(id);
    const linked = new Map();    // non-box node id -> set of boxes
    for (const e of p.edges) {
      for (const [mine, other] of [[e.tail, e.head], [e.head, e.tail]]) {
        if (boxEnd(mine) === undefined && boxEnd(other) !== undefined) {
          if (!linked.has(mine)) linked.set(mine, new Set());
          linked.get(mine).add(boxEnd(other));
        }
      }
    }
    const shared = new Set([...linked].filter(([, set]) => set.size > 1).map(([id]) => id));
    for (const e of p.edges) {
      const box = boxEnd(e.head) ?? boxEnd(e.tail);
      const other = boxEnd(e.head) !== undefined ? e.tail : e.head;
      if (box === undefined || !shared.has(other) || !boxes.has(box)) continue;
      const list = boxEnd(e.head) !== undefined ? "reads" : "feeds";
      const name = p.v.nodes[other].name || p.v.nodes[other].lines[0];
      const b = boxes.get(box);
      b[list] = b[list] || new Set();
      b[list].add(name);
    }
    for (const [key, b] of boxes) {
      const scope = key.split("/");
      const counts = [b.f ? b.f + " forward ops" : "", b.b ? b.b + " backward ops" : ""]
        .filter(Boolean).join(", ");
      const lines = [scope[scope.length - 1], counts];
      if (b.reads) lines.push("reads " + [...b.reads].join(", "));
      if (b.feeds) lines.push("feeds " + [...b.feeds].join(", "));
      put(scope.slice(0, -1), '"' + b.id + '" ' + attrText({ id: b.id, shape: "box3d",
        style: "filled", fillcolor: "#eeeeee", label: lines.join("\n"), tooltip: key }) + ";");
    }
    // Nested clusters, in the order the program entered the scopes.
    const scopes = p.v.scopes.map(scopeKey);
    const children = (key) => scopes.filter((s) => {
      const parent = s.split("/").slice(0, -1).join("/");
      return parent === key && s !== "";
    });
    let clusterCount = 0;
    const emit = (key, indent) => {
      for (const line of items.get(key) || []) out.push(indent + line);
      for (const child of children(key)) {
        if (boxes.has(child) || !hasContent(child)) continue;
        const name = child.split("/").pop();
        out.push(indent + 'subgraph "cluster_' + (clusterCount++) + '" {');
        out.push(indent + '  label="' + esc(name) + '"; id="s:' + esc(child) +
          '"; style="rounded,dashed"; color="#999999";');
        emit(child, indent + "  ");
        out.push(indent + "}");
      }
    };
    const hasContent = (key) => (items.get(key) || []).length > 0 ||
      children(key).some((c) => boxes.has(c) || hasContent(c));
    emit("", "");
    const seen = new Set();
    p.edges.forEach((e) => {
      const end = (id) => p.boxOf.has(id) ? boxes.get(p.boxOf.get(id)).id : "n" + id;
      const tail = end(e.tail), head = end(e.head);
      if (tail === head) return;
      if ((p.boxOf.has(e.head) && shared.has(e.tail)) ||
          (p.boxOf.has(e.tail) && shared.has(e.head))) return;
      const a = { id: "e" + e.index };
      // Forward values drawn faded (the ghosts of the backward view) have faded edges too:
      // light grey, dashed where a backward node reads a saved value.
      const ghost = p.kept.get(e.tail) === "ghost" || p.kept.get(e.head) === "ghost";
      if (e.kind === "gradient") Object.assign(a, { color: "#b03a2e", penwidth: "1.6" });
      if (e.kind === "data" && ghost) Object.assign(a, { color: FADED });
      if (e.kind === "saved") Object.assign(a, { style: "dashed", color: FADED,
        arrowhead: "empty" });
      if (e.kind === "saved" && state.view === "both") a.constraint = "false";
      if (e.use && !p.boxOf.has(e.head)) Object.assign(a, { label: e.use, fontcolor: "#b03a2e" });
      if (p.boxOf.has(e.tail) || p.boxOf.has(e.head)) {
        const key = tail + ">" + head;
        if (seen.has(key)) return;
        seen.add(key);
      }
      out.push('"' + tail + '" -> "' + head + '" ' + attrText(a) + ";");
    });
    out.push("}");
    return { text: out.join("\n"), boxes };
  }

  // --- drawing -----------------------------------------------------------------------------
  function render() {
    const t0 = performance.now();
    const p = picture();
    p.v.edges.forEach((e, k) => { e.index = k; });
    const d = dot(p);
    const t1 = performance.now();
    const element = viz.renderSVGElement(d.text);
    api.timings = { dotMs: t1 - t0, layoutMs: performance.now() - t1 };
    api.dotText = d.text;
    const graph = $("graph");
    graph.innerHTML = "";
    graph.appendChild(element);
    svg = element;
    drawn = { p, boxes: d.boxes, dot: d.text };
    api.renders += 1;
    api.drawnNodeIds = [...p.kept.keys()].filter((id) => !p.boxOf.has(id));
    api.boxes = [...d.boxes.keys()];
    if (api.firstPaintMs === null) api.firstPaintMs = performance.now();
    updateControls();
    applyHighlights();
    api.svg = svg;
    api.drawn = drawn;
    api.emit("rendered");
    document.body.dataset.renders = String(api.renders);
  }

  function gOf(id) {
    if (!svg) return null;
    const box = drawn.p.boxOf.get(id);
    const key = box !== undefined ? drawn.boxes.get(box).id : "n" + id;
    return svg.querySelector('g[id="' + key + '"]');
  }

  function clearClass(cls) {
    if (svg) svg.querySelectorAll("." + cls).forEach((g) => g.classList.remove(cls));
  }

  function mark(ids, cls) {
    for (const id of ids) {
      const g = gOf(id);
      if (g) g.classList.add(cls);
    }
  }

  // --- hover: inputs, consumers, pairing -------------------------------------------------------
  function related(id) {
    // inputs and consumers by edges; for a backward node, the forward op whose vjp made it
    // (same step) and the saved values that vjp reads; for a forward op, the other way round.
    const v = variant(), n = v.nodes[id];
    const inputs = [], outputs = [], saved = [], pair = [];
    for (const e of v.edges) {
      if (e.head === id && e.kind !== "saved") inputs.push(e.tail);
      if (e.tail === id) outputs.push(e.head);
    }
    const sameVjp = (m) => BACKWARD.has(m.kind) && m.step !== null && m.step === n.step;
    if (BACKWARD.has(n.kind) && n.step !== null) {
      for (const m of v.nodes) if (m.kind === "op" && m.step === n.step) pair.push(m.id);
      // The saved values this very node reads (not every value its vjp saved).
      for (const e of v.edges) if (e.kind === "saved" && e.head === id) saved.push(e.tail);
    } else if (n.kind === "op") {
      for (const m of v.nodes) if (sameVjp(m)) pair.push(m.id);
      for (const e of v.edges) if (e.kind === "saved" && e.tail === id) saved.push(e.head);
    }
    return { inputs, outputs, saved: [...new Set(saved)], pair };
  }

  function hover(id) {
    ["hl-self", "hl-in", "hl-out", "hl-pair", "hl-saved"].forEach(clearClass);
    if (id === null) return;
    const r = related(id);
    mark(r.inputs, "hl-in");
    mark(r.outputs, "hl-out");
    mark(r.saved, "hl-saved");
    mark(r.pair, "hl-pair");
    mark([id], "hl-self");
    api.hovered = { id, ...r };
  }

  // --- the side panel ------------------------------------------------------------------------
  function decode(value) {
    if (!value || !value.f32) return null;
    const bytes = Uint8Array.from(atob(value.f32), (c) => c.charCodeAt(0));
    return new Float32Array(bytes.buffer);
  }

  function fmt(x) {
    if (typeof x === "string") return x;
    if (x === undefined || x === null) return "–";
    if (!isFinite(x)) return String(x);
    return Number(x.toPrecision(4)).toString();
  }

  // pieces: for a concat of equal pieces along the last axis (∂L/∂A = [A_f | A_g | A_i | A_o]),
  // their names and widths: the heatmap labels each block and draws a line between them.
  function valueHTML(value, pieces) {
    if (!value) return "<p>(no value)</p>";
    const s = value.stats;
    let html = '<table class="stats"><tr><td>shape</td><td>(' + value.shape.join(", ") +
      ")</td></tr><tr><td>min / max</td><td>" + fmt(s.min) + " / " + fmt(s.max) +
      "</td></tr><tr><td>mean / std</td><td>" + fmt(s.mean) + " / " + fmt(s.std) +
      "</td></tr><tr><td>norm</td><td>" + fmt(s.norm) + "</td></tr>";
    if (s.nan || s.inf) html += '<tr><td>non-finite</td><td class="bad">' + s.nan + " NaN, " +
      s.inf + " Inf</td></tr>";
    html += "</table>";
    const data = decode(value);
    if (data) {
      const cols = value.shape.length ? value.shape[value.shape.length - 1] : 1;
      const maxAbs = Math.max(1e-30, ...Array.from(data).filter(isFinite).map(Math.abs));
      const starts = new Set();
      let head = "";
      if (pieces && pieces.reduce((total, q) => total + q.size, 0) === cols) {
        let start = 0;
        for (const q of pieces) {
          if (start > 0) starts.add(start);
          head += '<div class="piece' + (start > 0 ? " sep" : "") + '" style="grid-column: span ' +
            q.size + '">' + escapeHTML(q.label) + "</div>";
          start += q.size;
        }
      }
      html += '<div class="scroll"><div class="grid values' + (head ? " pieces" : "") +
        '" style="grid-template-columns: repeat(' + cols + ', auto)">' + head;
      data.forEach((x, k) => {
        let cls = "cell" + (starts.has(k % cols) ? " sep" : ""), style = "";
        if (Number.isNaN(x)) cls += " nan";
        else if (!isFinite(x)) cls += " inf";
        else {
          const t = x / maxAbs;     // blue negative, red positive
          style = "background:" + (t >= 0 ? "rgba(214,39,40," + t.toFixed(3) + ")"
            : "rgba(31,119,180," + (-t).toFixed(3) + ")");
        }
        html += '<div class="' + cls + '" style="' + style + '" title="[' + k + "] " + x +
          '">' + fmt(x) + "</div>";
      });
      html += "</div></div>";
    }
    return html;
  }

  function show(id) {
    const v = variant(), n = v.nodes[id];
    state.selected = id;
    clearClass("hl-selected");
    mark([id], "hl-selected");
    let html = "<h3>" + n.lines.map(escapeHTML).join("<br>") + "</h3>";
    const kind = n.kind === "sum" && n.op !== "add" && n.op ? "join" : n.kind;
    html += "<p>" + escapeHTML(KIND_TEXT[kind] || n.kind) +
      (n.op ? " · op <b>" + escapeHTML(n.op) + "</b>" : "") +
      " · " + escapeHTML(n.dtype) +
      (n.scope.length ? " · scope " + escapeHTML(n.scope.join(" / ")) : "") + "</p>";
    if (n.role) html += '<p class="role">' + escapeHTML(n.role) + "</p>";
    if (n.rule) html += '<div class="rule">' + escapeHTML(n.rule) + "</div>";
    if (n.vjp) {
      html += '<p class="vjp">made by the <b>' + escapeHTML(n.vjp.split(" in ")[0]) + "</b> in <b>" +
        escapeHTML(n.vjp.split(" in ").slice(1).join(" in ")) + "</b>" +
        (n.vjp_rule && n.vjp_rule !== n.rule ? "; that vjp's formula: " +
          escapeHTML(n.vjp_rule) : "") + "</p>";
    }
    html += '<div class="value" data-node="' + id + '">' + valueHTML(n.value, n.pieces) + "</div>";
    if (n.kind === "sum" && n.partials) {
      html += "<h3>summands, in order</h3>";
      n.partials.forEach((p, k) => {
        html += "<p>+ " + escapeHTML(v.nodes[p.from].lines[0]) + (p.use ? " <i>(" +
          escapeHTML(p.use) + ")</i>" : "") + "<br>running sum after " + (k + 1) + ":</p>" +
          valueHTML(p.value);
      });
    }
    // What this node itself reads: its inputs, and the forward values saved for it.
    const reads = v.edges.filter((e) => e.head === id);
    if (reads.length) {
      html += "<h3>reads</h3><ul>" + reads.map((e) =>
        '<li><a href="#" data-go="' + e.tail + '">' + escapeHTML(shownName(v.nodes[e.tail])) +
        "</a> " + (e.kind === "saved" ? '<span class="saved">saved forward value</span> ' : "") +
        (v.nodes[e.tail].value ? "norm " + fmt(v.nodes[e.tail].value.stats.norm) : "") +
        "</li>").join("") + "</ul>";
    }
    $("panel").innerHTML = html;
    api.panelNode = id;
    api.emit("shown", id);
  }

  // A node as the graph names it: a forward op by its tensor's name (c2, f), else its label.
  function shownName(n) {
    return n.kind === "op" && (n.display || n.name) ? n.display || n.name : n.lines[0];
  }

  const KIND_TEXT = { op: "forward op", tensor: "input", parameter: "parameter",
    seed: "upstream gradient", backward: "backward op", sum: "Σ: the sum of a tensor's gradients",
    join: "join: a tensor's gradient put together from its pieces' gradients",
    constant: "constant", result: "gradient" };

  function escapeHTML(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  }

  // --- stepping through the backward pass ------------------------------------------------------
  function order() {
    const p = drawn ? drawn.p : picture();
    return p.v.nodes.filter((n) => n.order !== undefined && p.kept.get(n.id) === "node")
      .sort((a, b) => a.order - b.order).map((n) => n.id);
  }

  function goStep(k) {
    const ids = order();
    if (!ids.length) return;
    state.step = Math.max(0, Math.min(ids.length - 1, k));
    const id = ids[state.step];
    expandTo(id);                 // a step inside a collapsed scope opens it
    clearClass("hl-step");
    mark([id], "hl-step");
    show(id);
    // In a folded cell the drawn node stands for its counterpart at the scrubbed step.
    const n = variant().nodes[api.fold && api.fold.on ? api.fold.counterpart(id) : id];
    $("steptext").textContent = "step " + (state.step + 1) + " / " + ids.length + ": " +
      n.lines.join(" ");
    $("scrub").value = String(state.step);
    api.stepNode = id;
    api.emit("stepped", id);      // the camera follows
  }

  const PLAY_TEXT = "run to the end ⇥";
  // What order the steps follow: the engine ran the generated graph; the simplified one has
  // nodes it never ran as such (the concat), so there each node comes after what it reads.
  const STEP_HINT = {
    generated: "backward pass: press → to step through it in the order the engine ran it",
    simplified: "backward pass: press → to step through it, each node after the ones it reads",
  };
  function play() {
    if (state.playing) {
      clearInterval(state.playing);
      state.playing = null;
      $("play").textContent = PLAY_TEXT;
      return;
    }
    $("play").textContent = "pause ❚❚";
    state.playing = setInterval(() => {
      if (state.step >= order().length - 1) return play();
      goStep(state.step + 1);
    }, 700);
  }

  // --- time steps, highway, search -------------------------------------------------------------
  // The time strip: per time step, ‖∂L/∂h_t‖ (blue) and ‖∂L/∂c_t‖ (gold) as bars on a log
  // scale with its powers of ten marked, the numbers under them, and how much of ∂L/∂c_t came
  // along the highway (⊙ f from step t+1) rather than through h_t. Click a step: its gradient.
  function strip() {
    const steps = variant().time_steps;
    const el = $("strip");
    el.innerHTML = "";
    $("highway-toggle").style.display = steps.some((s) => s.c !== undefined) ? "" : "none";
    if (!steps.length) return;
    const all = steps.flatMap((s) => [s.h, s.c]).filter((x) => typeof x === "number" && x > 0);
    if (!all.length) return;
    const lo = Math.floor(Math.log10(Math.min(...all))), hi = Math.ceil(Math.log10(Math.max(...all)));
    const top = hi > lo ? hi : lo + 1, HEIGHT = 60, COL = 50, AXIS = 34;
    const PAD = 6;                 // room above the top tick's label
    const y = (x) => PAD + HEIGHT - (Math.log10(x) - lo) / (top - lo) * HEIGHT;
    const power = (k) => "10" + String(k).replace(/./g, (ch) => "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"["-0123456789".indexOf(ch)]);
    const width = AXIS + COL * steps.length;
    let g = "";
    for (let k = lo; k <= top; k++) {       // the log axis: a grid line per power of ten
      g += '<line class="grid" x1="' + AXIS + '" x2="' + width + '" y1="' + y(10 ** k) +
        '" y2="' + y(10 ** k) + '"></line><text class="tick" x="' + (AXIS - 3) + '" y="' +
        (y(10 ** k) + 3) + '">' + power(k) + "</text>";
    }
    steps.forEach((s, k) => {
      const x0 = AXIS + COL * k + 10;
      const bar = (value, dx, cls) => typeof value === "number" && value > 0 ?
        '<rect class="' + cls + '" x="' + (x0 + dx) + '" width="12" y="' + y(value) +
        '" height="' + Math.max(1, PAD + HEIGHT - y(value)) + '"></rect>' : "";
      const share = s.c_highway > 0 || s.c_through_h > 0 ?
        s.c_highway / (s.c_highway + s.c_through_h) : null;
      g += '<g class="t" data-step="' + s.step + '"><title>t=' + s.step + ": ‖∂L/∂h" + s.step +
        "‖ = " + fmt(s.h) + ", ‖∂L/∂c" + s.step + "‖ = " + fmt(s.c) +
        (share === null ? "" : s.c_highway > 0 ? "; of ∂L/∂c" + s.step +
          "'s two parts, ‖along the highway (⊙ f from t=" + (s.step + 1) + ")‖ = " +
          fmt(s.c_highway) + ", ‖through h" + s.step + " (via tanh)‖ = " + fmt(s.c_through_h) :
          "; ∂L/∂c" + s.step + " came through h" + s.step + " only (no later step)") +
        ". Click: this step's state gradient.</title>" +
        '<rect class="hit" x="' + (x0 - 8) + '" y="0" width="' + COL + '" height="' + (HEIGHT + 40) +
        '"></rect>' + bar(s.h, 0, "h") + bar(s.c, 14, "c") +
        '<text class="label" x="' + (x0 + 13) + '" y="' + (PAD + HEIGHT + 11) + '">t=' + s.step + "</text>" +
        '<text class="num h" x="' + (x0 + 13) + '" y="' + (PAD + HEIGHT + 21) + '">' + fmt(s.h) + "</text>" +
        '<text class="num c" x="' + (x0 + 13) + '" y="' + (PAD + HEIGHT + 30) + '">' + fmt(s.c) + "</text>" +
        (share !== null ? '<text class="num share" x="' + (x0 + 13) + '" y="' + (PAD + HEIGHT + 39) +
          '">⊙f ' + Math.round(100 * share) + "%</text>" : "") + "</g>";
    });
    el.innerHTML = '<div class="key"><b style="color:#3d85c6">‖∂L/∂h_t‖</b> <b style="color:#b8860b">' +
      "‖∂L/∂c_t‖</b> (log scale) · ⊙f: the share of ∂L/∂c_t's two parts' norms that came along " +
      "the highway</div>" + '<svg class="chart" width="' + width + '" height="' + (PAD + HEIGHT + 44) +
      '" viewBox="0 0 ' + width + " " + (PAD + HEIGHT + 44) +
      '" role="img" aria-label="gradient norms per time step">' + g + "</svg>";
    el.querySelectorAll("g.t").forEach((t) => t.addEventListener("click", () => {
      const s = steps.find((x) => String(x.step) === t.dataset.step);
      if (state.collapsed.delete(scopeKey(s.scope))) render();
      jumpTo(s.h_node ?? s.c_node ?? s.h_forward, t);
    }));
  }

  function expandTo(id) {
    const scope = variant().nodes[id].scope;
    let changed = false;
    for (let d = 1; d <= scope.length; d++) {
      if (state.collapsed.delete(scopeKey(scope.slice(0, d)))) changed = true;
    }
    if (changed) render();
  }

  function jumpTo(id, stripItem) {
    if (id === undefined || id === null) return;
    const n = variant().nodes[id];
    if (state.view === "forward" && BACKWARD.has(n.kind)) setView("both");
    expandTo(id);
    document.querySelectorAll("#strip .t.on").forEach((t) => t.classList.remove("on"));
    if (stripItem) stripItem.classList.add("on");
    clearClass("hl-match");
    mark([id], "hl-match");
    show(id);
    api.emit("jumped", id);       // the camera follows
  }

  function highwayIds() {
    const v = variant();
    // The ⊙ f chain only (marked by the page's data: highway.py), not the via-tanh summands.
    const ids = v.nodes.filter((n) => n.highway).map((n) => n.id);
    const set = new Set(ids);
    const edges = v.edges.filter((e) => set.has(e.tail) && set.has(e.head)).map((e) => e.index);
    return { ids, edges };
  }

  function applyHighlights() {
    clearClass("hl-highway");
    if (state.highway) {
      const h = highwayIds();
      mark(h.ids, "hl-highway");
      for (const k of h.edges) {
        const g = svg && svg.querySelector('g[id="e' + k + '"]');
        if (g) g.classList.add("hl-highway");
      }
      api.highway = h.ids;
    }
    if (state.step >= 0) mark([order()[state.step]], "hl-step");
  }

  function search(query) {
    if (!drawn) return [];                      // not laid out yet
    clearClass("hl-match");
    // "dL/dc2", "∂c2" and "dc2" also mean ∂L/∂c2; "c2" alone finds the tensor and its gradient.
    const q = query.trim().toLowerCase();
    if (!q) { $("found").textContent = ""; api.matches = []; return []; }
    const wanted = new Set([q, q.replace(/^(dl\/d|∂)/, "∂l/∂")]);
    if (/^d[^l]/.test(q)) wanted.add("∂l/∂" + q.slice(1));
    const v = variant();
    // A node is found by its label as drawn ("part of ∂L/∂c2" too), its name (f₃ as f3 too)
    // and the gradient it is part of.
    const plain = (t) => t.replace(/[₀-₉]/g, (d) => String("₀₁₂₃₄₅₆₇₈₉".indexOf(d)));
    const names = (n) => [n.lines[0], n.display || n.name || "", n.grad_of ? "∂l/∂" + n.grad_of : ""]
      .flatMap((t) => [t, plain(t)]).map((t) => t.toLowerCase())
      .flatMap((t) => t.startsWith("part of ") ? [t, t.slice(8)] : [t]);
    const exact = (n) => names(n).some((t) => wanted.has(t));
    const inStep = (n) => [...wanted].some((w) => {
      const m = w.match(/^(.*\D)(\d+)$/);         // "∂l/∂c3": ∂L/∂c in scope t=3
      return m && names(n).includes(m[1]) && n.scope.includes("t=" + m[2]);
    });
    const partial = (n) => names(n).some((t) => [...wanted].some((w) => t.includes(w)));
    // Exact names first, then a name in a step, then partial matches; whole gradients
    // before one use's part of them.
    const rank = (n) => (exact(n) ? 0 : inStep(n) ? 2 : 4) +
      (n.lines[0].startsWith("part of") ? 1 : 0);
    const matches = v.nodes.filter((n) => drawn.p.kept.has(n.id) &&
      (exact(n) || inStep(n) || partial(n))).sort((a, b) => rank(a) - rank(b)).map((n) => n.id);
    $("found").textContent = matches.length + (matches.length === 1 ? " match" : " matches");
    if (matches.length) jumpTo(matches[0]);
    mark(matches, "hl-match");
    api.matches = matches;
    return matches;
  }

  // --- controls --------------------------------------------------------------------------------
  function updateControls() {
    document.querySelectorAll("[data-view]").forEach((b) =>
      b.classList.toggle("on", b.dataset.view === state.view));
    document.querySelectorAll("[data-variant]").forEach((b) => {
      b.classList.toggle("on", b.dataset.variant === state.variant);
      b.textContent = b.dataset.variant + " (" + DATA.variants[b.dataset.variant].backward_count +
        ")";
    });
    const shown = drawn.p.kept.size - [...drawn.p.boxOf.keys()].length;
    $("counts").textContent = shown + " nodes drawn" + (drawn.boxes.size ?
      ", " + drawn.boxes.size + (drawn.boxes.size === 1 ? " collapsed scope" :
        " collapsed scopes") : "");
    const n = order().length;
    $("scrub").max = String(Math.max(0, n - 1));
    $("legend").innerHTML = state.norms ? legend() :
      "Fill: one hue per role (the gate f and the nodes of its gradient keep theirs in every " +
      "time step), a stronger tone for backward nodes; red Σ: a " +
      "gradient summed over the uses named on its edges; dashed: forward values the backward " +
      "pass reads. Hover: <b style='color:#1565c0'>reads</b>, <b style='color:#2e7d32'>read " +
      "by</b>, <b style='color:#ff6f00'>forward op of its vjp</b>, <b style='color:#8e24aa'>" +
      "saved values it reads</b>. Click a cluster's title to collapse it, a box to expand it.";
  }

  function legend() {
    const all = (variant().grad_norms || []).filter((x) => typeof x === "number" && x > 0);
    if (!all.length) return "no gradient norms";
    const lo = Math.floor(Math.log10(Math.min(...all)));
    const hi = Math.floor(Math.log10(Math.max(...all))) + 1;
    // The scale's ends as powers of ten, one each side of the colour bar: 10⁻² ▮▮▮▮ 10¹.
    const power = (k) => "10" + String(k).replace(/./g, (ch) => "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"["-0123456789".indexOf(ch)]);
    return "‖∂L/∂·‖ (log scale): " + '<span class="tick">' + power(lo) + '</span> <span class="bar">' +
      NORM_COLORS.map((c) => '<span class="sw" style="background:' + c + '"></span>').join("") +
      '</span> <span class="tick">' + power(hi) + "</span>" +
      ' <span class="sw" style="background:#bbbbbb"></span>0 ' +
      '<span class="sw" style="background:#ff00ff"></span>inf or NaN ' +
      '<span class="sw no-norm" style="background:' + NO_NORM + '"></span>no gradient norm';
  }

  // A new view or variant starts afresh: its node ids are its own (a generated and a simplified
  // graph number their nodes differently), so nothing selected, stepped or found carries over.
  function reset() {
    if (state.playing) play();
    state.step = -1;
    state.selected = null;
    api.stepNode = api.panelNode = api.hovered = null;
    api.matches = [];
    $("steptext").textContent = STEP_HINT[state.variant] || STEP_HINT.generated;
    $("found").textContent = "";
    $("panel").innerHTML = '<p class="hint">Click a node for its values and the rule that made it.</p>';
    api.emit("reset");
  }

  function setView(view) { state.view = view; reset(); render(); }

  function setVariant(name) {
    state.variant = name;
    reset();
    strip();
    if ($("highway-toggle").style.display === "none") {
      state.highway = false;
      $("highway").checked = false;
    }
    render();
  }

  function exportSVG() {
    const text = new XMLSerializer().serializeToString(svg);
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([text], { type: "image/svg+xml" }));
    link.download = "tinygraph-" + state.view + ".svg";
    document.body.appendChild(link);
    link.click();
    link.remove();
    return text;
  }

  function idOf(target) {
    const g = target.closest && target.closest("g.node");
    if (!g) return null;
    if (g.id.startsWith("n")) return { node: Number(g.id.slice(1)) };
    if (g.id.startsWith("c")) {
      for (const [key, b] of drawn.boxes) if (b.id === g.id) return { box: key };
    }
    return null;
  }

  function wire() {
    document.querySelectorAll("[data-view]").forEach((b) =>
      b.addEventListener("click", () => setView(b.dataset.view)));
    document.querySelectorAll("[data-variant]").forEach((b) =>
      b.addEventListener("click", () => setVariant(b.dataset.variant)));
    $("norms").addEventListener("change", (e) => { state.norms = e.target.checked; render(); });
    $("highway").addEventListener("change", (e) => { state.highway = e.target.checked;
      applyHighlights(); });
    $("export").addEventListener("click", exportSVG);
    let typing = null;            // search as you type, once typing pauses
    $("search").addEventListener("input", (e) => {
      clearTimeout(typing);
      typing = setTimeout(() => search(e.target.value), 250);
    });
    $("search").addEventListener("keydown", (e) => { if (e.key === "Enter") search(e.target.value); });
    $("first").addEventListener("click", () => goStep(0));
    $("prev").addEventListener("click", () => goStep(state.step - 1));
    $("next").addEventListener("click", () => goStep(state.step + 1));
    $("play").addEventListener("click", play);
    $("scrub").addEventListener("input", (e) => goStep(Number(e.target.value)));
    document.addEventListener("keydown", (e) => {
      // Typing in the search box, or a browser shortcut (Alt+← is "back"), is not a step.
      if (e.target.matches("input[type=search], input[type=text], textarea, select")) return;
      if (e.altKey || e.ctrlKey || e.metaKey) return;
      if (e.key === "ArrowRight") { goStep(state.step + 1); e.preventDefault(); }
      if (e.key === "ArrowLeft") { goStep(state.step - 1); e.preventDefault(); }
      if (e.key === "Home") { goStep(0); e.preventDefault(); }
      if (e.key === " " && e.target.tagName !== "BUTTON") { play(); e.preventDefault(); }
    });
    const graph = $("graph");
    graph.addEventListener("mouseover", (e) => {
      const hit = idOf(e.target);
      hover(hit && hit.node !== undefined ? hit.node : null);
    });
    graph.addEventListener("click", (e) => {
      const cluster = e.target.closest && e.target.closest("g.cluster");
      const hit = idOf(e.target);
      if (hit && hit.box) { state.collapsed.delete(hit.box); render(); return; }
      if (hit && hit.node !== undefined) {
        clearClass("hl-match");
        show(hit.node);
        return;
      }
      if (cluster && e.target.tagName === "text") {
        const key = cluster.id.slice(2);     // id "s:<scope path>"
        state.collapsed.add(key);
        render();
      }
    });
    $("panel").addEventListener("click", (e) => {
      const go = e.target.dataset && e.target.dataset.go;
      if (go !== undefined) { e.preventDefault(); jumpTo(Number(go)); }
    });
  }

  Object.assign(api, {
    render, goStep, order, search, hover, show, exportSVG, related, jumpTo, gOf, mark,
    clearClass, expandTo, valueHTML, escapeHTML, fmt, decode, variant, nodeAttrs,
    setView, collapse: (key) => { state.collapsed.add(key); render(); },
    expand: (key) => { state.collapsed.delete(key); render(); },
    setVariant,
    // start.js, the page's last script, calls this once every module has registered.
    start() {
      wire();
      strip();
      $("steptext").textContent = STEP_HINT[state.variant] || STEP_HINT.generated;
      Viz.instance().then((instance) => {
        viz = instance;
        render();
        document.body.dataset.ready = "1";
      }).catch((error) => {
        $("graph").textContent = "Graphviz (WebAssembly) could not start: " + error;
        throw error;
      });
    },
  });
})();
