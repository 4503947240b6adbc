// The tinygraph diff page: two backward graphs side by side, each laid out by Graphviz (Viz.js,
// WebAssembly, in this page), their matched nodes sharing a colour and a number. Hovering or
// clicking a node lights up its partner in the other graph and describes both in the panel.
// It makes no network request.
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("tinygraph-data").textContent);
  const SIDES = ["A", "B"];
  // Light tints for the pairs (pair k gets TINTS[k mod n]); its badge is the dark tone.
  const TINTS = [["#cfe2f3", "#3d85c6"], ["#fce5cd", "#e69138"], ["#d9ead3", "#6aa84f"],
    ["#ead1dc", "#a64d79"], ["#fff2cc", "#bf9000"], ["#d0e0e3", "#45818e"],
    ["#d9d2e9", "#674ea7"], ["#f4cccc", "#cc0000"], ["#e6f4d7", "#38761d"],
    ["#ddeeff", "#1155cc"]];
  const ONLY = ["#c62828", "#6a1b9a"];     // the outline of a node only in A, only in B
  const KIND_TEXT = { op: "forward op", tensor: "input", parameter: "parameter",
    seed: "upstream gradient", ghost: "forward value", backward: "backward op",
    sum: "Σ or join: a tensor's whole gradient", constant: "constant", result: "gradient" };
  const BADGE_R = 9;                     // the badge's radius, in the SVG's units (pt)
  const MIN_SCALE = 0.7;                 // "fit width" shrinks a graph no further than this

  const panes = [...document.querySelectorAll(".pane")];
  const svgs = [null, null];
  const state = { hovered: null, selected: null, zoom: "width" };
  const api = { DATA, state, svgs, ready: false };
  window.tinygraphDiff = api;

  // partners[k]: node id on side k -> the partner's id on the other side.
  const partners = [new Map(), new Map()];
  const byNumber = new Map();            // pair number -> {a, b, by}
  DATA.pairs.forEach((pair, k) => {
    partners[0].set(pair.a, pair.b);
    partners[1].set(pair.b, pair.a);
    byNumber.set(k + 1, pair);
  });
  const partnerOf = (side, id) => partners[side].has(id) ? partners[side].get(id) : null;

  function escapeHTML(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  }

  function esc(text) {
    return String(text).replace(/\\/g, "\\\\").replace(/"/g, '\\"');
  }

  function attrText(a) {
    return "[" + Object.entries(a).map(([k, v]) => k + '="' + esc(v) + '"').join(" ") + "]";
  }

  // --- the DOT text of one side --------------------------------------------------------------
  function nodeAttrs(n, side) {
    const a = { id: SIDES[side] + n.id, label: n.lines.join("\n") };
    const tint = n.pair ? TINTS[(n.pair - 1) % TINTS.length][0] : "#ffffff";
    switch (n.kind) {
      case "tensor": Object.assign(a, { shape: "ellipse", style: "filled" }); break;
      case "parameter": Object.assign(a, { shape: "box", style: "filled", peripheries: "2" });
        break;
      case "ghost": Object.assign(a, { shape: "box", style: "dashed,rounded,filled",
        fontcolor: "#444444" }); break;
      case "constant": Object.assign(a, { shape: "plaintext", style: "filled" }); break;
      case "seed": Object.assign(a, { shape: "box", style: "filled,bold" }); break;
      case "sum": case "result": Object.assign(a, { shape: "box", style: "rounded,filled,bold",
        penwidth: "2" }); break;
      default: Object.assign(a, { shape: "box", style: "rounded,filled" });
    }
    a.fillcolor = tint;
    if (!n.pair) {              // no partner: a thick dashed outline in the side's colour
      Object.assign(a, { color: ONLY[side], penwidth: "2.5",
        style: a.style.replace("bold", "").replace(/^,|,$/g, "") + ",dashed" });
    }
    return a;
  }

  function dot(side) {
    const v = DATA.sides[side];
    const out = ["digraph diff {",
      "rankdir=TB; ordering=out; nodesep=0.25; ranksep=0.35; pad=0.25;",
      'node [fontname="Helvetica", fontsize=10, margin="0.1,0.04"];',
      'edge [fontname="Helvetica", fontsize=9, arrowsize=0.7];'];
    const byScope = new Map();
    for (const n of v.nodes) {
      const key = n.scope.join("/");
      if (!byScope.has(key)) byScope.set(key, []);
      byScope.get(key).push('"' + SIDES[side] + n.id + '" ' + attrText(nodeAttrs(n, side)) + ";");
    }
    // Nested clusters, one per scope (t=1, t=2, ...), in the order the program entered them.
    const scopes = v.scopes.map((s) => s.join("/"));
    const inside = (key) => scopes.filter((s) => s.split("/").slice(0, -1).join("/") === key);
    const used = (key) => byScope.has(key) || inside(key).some(used);
    let clusters = 0;
    const emit = (key, indent) => {
      for (const line of byScope.get(key) || []) out.push(indent + line);
      for (const child of inside(key)) {
        if (!used(child)) continue;
        out.push(indent + 'subgraph "cluster_' + clusters++ + '" {');
        out.push(indent + '  label="' + esc(child.split("/").pop()) +
          '"; style="rounded,dashed"; color="#999999";');
        emit(child, indent + "  ");
        out.push(indent + "}");
      }
    };
    emit("", "");
    for (const e of v.edges) {
      const a = {};
      if (e.kind === "gradient") Object.assign(a, { color: "#b03a2e", penwidth: "1.4" });
      if (e.kind === "saved") Object.assign(a, { style: "dashed", color: "#aaaaaa",
        arrowhead: "empty" });
      if (e.use) Object.assign(a, { label: e.use, fontcolor: "#b03a2e" });
      out.push('"' + SIDES[side] + e.tail + '" -> "' + SIDES[side] + e.head + '" ' +
        attrText(a) + ";");
    }
    out.push("}");
    return out.join("\n");
  }

  // --- badges: the pair's number, or "only in A/B" -------------------------------------------
  const SVG_NS = "http://www.w3.org/2000/svg";

  function svgElement(name, attrs, text) {
    const el = document.createElementNS(SVG_NS, name);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function addBadge(g, n, side) {
    const shape = g.querySelector("polygon, ellipse, path");
    if (!shape) return;
    const bbox = shape.getBBox();
    // Its centre just outside the top-left corner, so that it covers little of the label.
    const box = { x: bbox.x - 3, y: bbox.y - 3 };
    const badge = svgElement("g", { class: "badge" });
    if (n.pair) {
      const tone = TINTS[(n.pair - 1) % TINTS.length][1];
      badge.appendChild(svgElement("circle", { cx: box.x, cy: box.y, r: BADGE_R, fill: tone,
        stroke: "#ffffff", "stroke-width": 1.5 }));
      badge.appendChild(svgElement("text", { x: box.x, y: box.y + 3.5, "text-anchor": "middle",
        "font-size": n.pair > 99 ? 7 : 9, "font-weight": "bold", fill: "#ffffff",
        "font-family": "Helvetica, Arial, sans-serif" }, String(n.pair)));
    } else {                    // a square tag in the side's colour: no partner
      badge.appendChild(svgElement("rect", { x: box.x - BADGE_R, y: box.y - BADGE_R,
        width: 2 * BADGE_R, height: 2 * BADGE_R, rx: 2, fill: ONLY[side], stroke: "#ffffff",
        "stroke-width": 1.5 }));
      badge.appendChild(svgElement("text", { x: box.x, y: box.y + 3.5, "text-anchor": "middle",
        "font-size": 9, "font-weight": "bold", fill: "#ffffff",
        "font-family": "Helvetica, Arial, sans-serif" }, SIDES[side]));
    }
    g.appendChild(badge);
    g.classList.add(n.pair ? "matched" : "only");
  }

  // Room around the drawing for the badges that stick out of the top-left corners.
  function padViewBox(svg, pad) {
    const [x, y, w, h] = svg.getAttribute("viewBox").split(/\s+/).map(Number);
    svg.setAttribute("viewBox", [x - pad, y - pad, w + 2 * pad, h + 2 * pad].join(" "));
    svg.dataset.width = String((w + 2 * pad) * 4 / 3);      // pt -> px at 100%
    svg.dataset.height = String((h + 2 * pad) * 4 / 3);
  }

  function draw(viz, side) {
    const svg = viz.renderSVGElement(dot(side));
    const graph = panes[side].querySelector(".graph");
    graph.innerHTML = "";
    graph.appendChild(svg);
    svg.removeAttribute("width");
    svg.removeAttribute("height");
    padViewBox(svg, BADGE_R + 4);
    for (const n of DATA.sides[side].nodes) {
      const g = gOf(side, n.id, svg);
      if (g) addBadge(g, n, side);
    }
    svgs[side] = svg;
  }

  function gOf(side, id, svg) {
    svg = svg || svgs[side];
    return svg ? svg.querySelector('g.node[id="' + SIDES[side] + id + '"]') : null;
  }

  function idOf(target) {
    const g = target.closest && target.closest("g.node");
    return g ? Number(g.id.slice(1)) : null;
  }

  // --- zoom: fit each pane's width (never past 100%), 100%, or the whole graph ---------------
  function applyZoom() {
    svgs.forEach((svg, side) => {
      if (!svg) return;
      const graph = panes[side].querySelector(".graph");
      const w = Number(svg.dataset.width), h = Number(svg.dataset.height);
      const room = graph.clientWidth - 16, tall = graph.clientHeight - 16;
      let scale = 1;
      // Fit the width, but not below MIN_SCALE (a phone): labels stay readable, the pane scrolls.
      if (state.zoom === "width") scale = Math.max(MIN_SCALE, Math.min(1, room / w));
      if (state.zoom === "all") scale = Math.min(1, room / w, tall / h);
      svg.style.width = (w * scale) + "px";
      svg.style.height = (h * scale) + "px";
      svg.dataset.scale = String(scale);
    });
  }

  // --- highlighting and the panel ------------------------------------------------------------
  function clearClass(cls) {
    for (const svg of svgs) {
      if (svg) svg.querySelectorAll("." + cls).forEach((g) => g.classList.remove(cls));
    }
  }

  function highlight(side, id) {
    clearClass("hl-self");
    clearClass("hl-partner");
    if (id === null) return;
    const other = 1 - side, partner = partnerOf(side, id);
    const g = gOf(side, id);
    if (g) g.classList.add("hl-self");
    if (partner !== null && gOf(other, partner)) gOf(other, partner).classList.add("hl-partner");
    describe(side, id, partner);
    api.highlighted = { side, id, partner };
  }

  function nodeHTML(side, n) {
    let html = '<h3><span class="tag s' + side + '">' + SIDES[side] + "</span> " +
      (n.pair ? '<span class="num" style="background:' +
        TINTS[(n.pair - 1) % TINTS.length][1] + '">' + n.pair + "</span> " : "") +
      n.lines.slice(0, -1).map(escapeHTML).join(" · ") + "</h3>";
    html += "<p>" + escapeHTML(KIND_TEXT[n.kind] || n.kind) + " · shape (" +
      n.shape.join(", ") + ")" + (n.scope.length ? " · scope " +
      escapeHTML(n.scope.join(" / ")) : "") + "</p>";
    if (n.rule) html += '<div class="rule">' + escapeHTML(n.rule) + "</div>";
    if (n.value && n.value.stats) {
      html += '<p class="norm">‖value‖ = ' + fmt(n.value.stats.norm) + "</p>";
    }
    return html;
  }

  function describe(side, id, partner) {
    const boxes = [...document.querySelectorAll("#panel .side")];
    const n = DATA.sides[side].nodes[id];
    boxes[side].innerHTML = nodeHTML(side, n);
    const other = 1 - side;
    if (partner === null) {
      boxes[other].innerHTML = '<p class="none">only in ' + SIDES[side] + ": no node of " +
        escapeHTML(DATA.sides[other].label) + " matches it.</p>";
    } else {
      const pair = byNumber.get(n.pair);
      boxes[other].innerHTML = nodeHTML(other, DATA.sides[other].nodes[partner]) +
        '<p class="by">matched: ' + escapeHTML(pair.by) + "</p>";
    }
  }

  function fmt(x) {
    if (typeof x === "string") return x;
    if (x === undefined || x === null) return "–";
    return Number(x.toPrecision(4)).toString();
  }

  // Centre a node in its pane (the partner of a clicked node may be far down the other graph).
  function reveal(side, id) {
    const g = gOf(side, id);
    if (!g) return;
    const graph = panes[side].querySelector(".graph");
    const box = g.getBoundingClientRect(), frame = graph.getBoundingClientRect();
    graph.scrollLeft += box.left + box.width / 2 - (frame.left + frame.width / 2);
    graph.scrollTop += box.top + box.height / 2 - (frame.top + frame.height / 2);
  }

  function select(side, id) {
    clearClass("selected");
    state.selected = id === null ? null : { side, id };
    if (id === null) return;
    highlight(side, id);
    const partner = partnerOf(side, id);
    gOf(side, id).classList.add("selected");
    if (partner !== null) {
      gOf(1 - side, partner).classList.add("selected");
      reveal(1 - side, partner);
    }
  }

  // --- the page around the graphs ------------------------------------------------------------
  function header() {
    const c = DATA.counts;
    document.getElementById("counts").innerHTML =
      '<span class="count matched" data-count="matched"><b>' + c.matched + "</b> matched</span>" +
      '<span class="count only s0" data-count="only_a"><b>' + c.only_a + "</b> only in A</span>" +
      '<span class="count only s1" data-count="only_b"><b>' + c.only_b + "</b> only in B</span>";
    panes.forEach((pane, side) => {
      const v = DATA.sides[side];
      pane.querySelector(".pane-title").innerHTML = '<span class="tag s' + side + '">' +
        SIDES[side] + "</span> " + escapeHTML(v.label) + " <small>" + escapeHTML(v.variant) +
        " · " + v.nodes.length + " nodes</small>";
    });
    document.getElementById("legend").innerHTML =
      '<span class="sw num" style="background:' + TINTS[0][1] + '">1</span> a matched pair: ' +
      "the same number and colour in both graphs" +
      '<span class="sw only s0">A</span><span class="sw only s1">B</span> only in A, only in B: ' +
      "no partner (dashed outline) · red edges: gradients · dashed grey: saved forward values";
  }

  function wire() {
    panes.forEach((pane, side) => {
      const graph = pane.querySelector(".graph");
      graph.addEventListener("mouseover", (e) => {
        const id = idOf(e.target);
        if (id !== null) highlight(side, id);
      });
      graph.addEventListener("mouseleave", () => {
        const s = state.selected;
        if (s) highlight(s.side, s.id);
      });
      graph.addEventListener("click", (e) => {
        const id = idOf(e.target);
        if (id !== null) select(side, id);
      });
    });
    document.getElementById("zoom").addEventListener("change", (e) => {
      state.zoom = e.target.value;
      applyZoom();
    });
    window.addEventListener("resize", applyZoom);
  }

  Object.assign(api, { partnerOf, highlight, select, gOf, applyZoom, reveal });
  header();
  wire();
  Viz.instance().then((viz) => {
    draw(viz, 0);
    draw(viz, 1);
    applyZoom();
    api.ready = true;
    document.body.dataset.ready = "1";
  }).catch((error) => {
    for (const pane of panes) {
      pane.querySelector(".graph").textContent = "Graphviz (WebAssembly) could not start: " + error;
    }
    throw error;
  });
})();
