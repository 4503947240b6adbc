// The explorer's camera: how large the graph is drawn and which part of it the pane shows.
// The pane scrolls (so the browser's own scrolling, touch panning and scrollIntoView keep
// working); the camera sets the SVG's size (a scale of Graphviz's points: the viewBox keeps it
// sharp) and the pane's scroll position. It opens at a zoom where the labels read, centred on
// where the backward pass starts; the wheel (and a pinch) zooms around the pointer, a drag
// pans, stepping and jumping bring their node to the middle, and an overview map shows where
// the pane is in the whole graph.
"use strict";
(function () {
  const api = window.tinygraphExplorer;
  const state = api.state;
  const PX_PER_PT = 4 / 3;          // Graphviz sizes the SVG in points
  const LABEL_PT = 10;              // the node labels' font size in the DOT text
  const READABLE_PX = 11.5;         // a label's font size, in pixels, that reads without effort
  const READABLE = READABLE_PX / (LABEL_PT * PX_PER_PT);
  const MIN_SCALE = 0.02, MAX_SCALE = 4;
  const DRAG_PX = 4;                // a press that moves less than this is a click, not a drag
  const GLIDE_MS = 250;             // how long the camera takes to glide to a node
  const PRESETS = [["fit", "fit"], ["readable", "readable"], ["0.5", "50%"], ["1", "100%"],
    ["1.5", "150%"]];
  const MAP_BOX = { wide: [180, 130], narrow: [96, 72] };    // the overview map's largest size
  const NARROW_PX = 600;

  const $ = (id) => document.getElementById(id);
  const pane = () => $("graph");
  const cam = {
    scale: 1,
    natural: { w: 1, h: 1 },        // the SVG's size in pixels at 100%
    centre: null,                   // the graph point (pixels at 100%) in the pane's middle
    fresh: true,                    // the next drawing opens a view afresh
    glide: null,                    // the running glide's animation frame
  };

  // --- scale ---------------------------------------------------------------------------------
  function room() {
    // The pane's whole box, scroll bars included: at "fit" there are none.
    const p = pane();
    return { w: Math.max(1, p.offsetWidth - 2), h: Math.max(1, p.offsetHeight - 2) };
  }

  function fitScale() {
    const r = room();
    return Math.min(r.w / cam.natural.w, r.h / cam.natural.h);
  }

  function scaleOf(mode) {
    if (mode === "fit") return fitScale();
    if (mode === "readable") return READABLE;
    return Number(mode);
  }

  // A graph that shows whole at 100% opens so; one that reads whole at "fit" opens fitted;
  // a larger one opens at a readable zoom.
  function openingMode() {
    const fit = fitScale();
    if (fit >= 1) return "1";
    return fit >= READABLE ? "fit" : "readable";
  }

  function clampScale(s) {
    return Math.max(Math.min(MIN_SCALE, fitScale()), Math.min(MAX_SCALE, s));
  }

  function resize(scale) {
    cam.scale = scale;
    const svg = api.svg;
    svg.style.width = cam.natural.w * scale + "px";
    svg.style.height = cam.natural.h * scale + "px";
  }

  // The zoom menu names the current zoom: a preset, or what the wheel made of it ("73%").
  function showMode() {
    const select = $("zoom");
    let now = select.querySelector("option[data-now]");
    const preset = PRESETS.some(([value]) => value === state.zoom);
    if (!preset) {
      if (!now) {
        now = document.createElement("option");
        now.dataset.now = "1";
        select.appendChild(now);
      }
      now.value = state.zoom;
      now.textContent = Math.round(cam.scale * 100) + "%";
    } else if (now) {
      now.remove();
    }
    select.value = state.zoom;
  }

  // --- where the pane looks --------------------------------------------------------------------
  function paneMiddle() {
    const r = pane().getBoundingClientRect(), p = pane();
    return { x: r.left + p.clientLeft + p.clientWidth / 2, y: r.top + p.clientTop + p.clientHeight / 2 };
  }

  // A point of the page (client pixels) as a point of the graph (pixels at 100%), and back.
  function toGraph(x, y) {
    const r = api.svg.getBoundingClientRect();
    return { x: (x - r.left) / cam.scale, y: (y - r.top) / cam.scale };
  }

  function toPage(point) {
    const r = api.svg.getBoundingClientRect();
    return { x: r.left + point.x * cam.scale, y: r.top + point.y * cam.scale };
  }

  function remember() {
    const m = paneMiddle();
    cam.centre = toGraph(m.x, m.y);
  }

  // The scroll position that puts graph point `point` at page point `at` (the pane's middle
  // unless given); the browser clamps it at the graph's edges.
  function scrollFor(point, at) {
    const p = pane(), where = toPage(point), target = at || paneMiddle();
    return { left: p.scrollLeft + where.x - target.x, top: p.scrollTop + where.y - target.y };
  }

  function stopGlide() {
    if (cam.glide !== null) cancelAnimationFrame(cam.glide);
    cam.glide = null;
  }

  function lookAt(point, at) {
    stopGlide();
    const s = scrollFor(point, at), p = pane();
    p.scrollLeft = s.left;
    p.scrollTop = s.top;
    remember();
  }

  // The scroll position that centres a graph point, within the scroll range.
  function clampedScrollFor(point) {
    const p = pane(), end = scrollFor(point);
    return { left: Math.max(0, Math.min(p.scrollWidth - p.clientWidth, end.left)),
      top: Math.max(0, Math.min(p.scrollHeight - p.clientHeight, end.top)) };
  }

  // Glide (or, for those who asked for less motion, jump) to centre a graph point. The end
  // is worked out again at each frame: the pane may change size on the way (the step's text
  // above it wraps to another line).
  function glideTo(point) {
    stopGlide();
    const p = pane();
    const start = { left: p.scrollLeft, top: p.scrollTop }, end = clampedScrollFor(point);
    const still = matchMedia("(prefers-reduced-motion: reduce)").matches;
    if (still || (Math.abs(end.left - start.left) < 2 && Math.abs(end.top - start.top) < 2)) {
      return lookAt(point);
    }
    const t0 = performance.now();
    const frame = (now) => {
      const t = Math.min(1, (now - t0) / GLIDE_MS), ease = t * (2 - t);
      const to = clampedScrollFor(point);
      p.scrollLeft = start.left + (to.left - start.left) * ease;
      p.scrollTop = start.top + (to.top - start.top) * ease;
      if (t < 1) {
        cam.glide = requestAnimationFrame(frame);
      } else {
        cam.glide = null;
        remember();
      }
    };
    cam.glide = requestAnimationFrame(frame);
  }

  // Zoom to `scale` keeping the graph point under page point (x, y) where it is.
  function zoomAt(scale, x, y) {
    const point = toGraph(x, y);
    resize(clampScale(scale));
    lookAt(point, { x, y });
    state.zoom = String(Number(cam.scale.toFixed(3)));
    showMode();
    placeMap();
  }

  function setMode(mode) {
    state.zoom = mode;
    const keep = cam.centre;
    resize(scaleOf(mode));
    if (keep) lookAt(keep);
    showMode();
    placeMap();
  }

  function nodeCentre(id) {
    const g = api.gOf(id);
    if (!g) return null;
    const r = g.getBoundingClientRect();
    return toGraph(r.left + r.width / 2, r.top + r.height / 2);
  }

  // Is the node well inside the pane (a quarter of the pane, at most 120 px, from each
  // edge)? Then the camera stays still: a picture that jumps at every step is hard to follow.
  function comfortablyShown(id) {
    const g = api.gOf(id);
    if (!g) return true;
    const r = g.getBoundingClientRect(), p = pane(), box = p.getBoundingClientRect();
    const mx = Math.min(p.clientWidth / 4, 120), my = Math.min(p.clientHeight / 4, 120);
    return r.left >= box.left + mx && r.right <= box.left + p.clientWidth - mx &&
      r.top >= box.top + my && r.bottom <= box.top + p.clientHeight - my;
  }

  function follow(id) {
    if (id === null || id === undefined || comfortablyShown(id)) return;
    const point = nodeCentre(id);
    if (point) glideTo(point);
  }

  // Where a view opens: its seed (the gradient fed in), else the backward pass's first step,
  // else the top of the graph (the forward view).
  function startNode() {
    const p = api.drawn.p;
    const seed = [...p.kept].find(([id, role]) => role === "node" && p.v.nodes[id].kind === "seed");
    if (seed) return seed[0];
    const ids = api.order();
    return ids.length ? ids[0] : null;
  }

  function open() {
    state.zoom = openingMode();
    resize(scaleOf(state.zoom));
    const id = startNode();
    const point = id !== null ? nodeCentre(id) : null;
    // Across the middle, a third of the way down: the backward pass goes on below it.
    const m = paneMiddle(), p = pane();
    lookAt(point || { x: cam.natural.w / 2, y: 0 }, { x: m.x, y: m.y - p.clientHeight / 6 });
    showMode();
  }

  function drawn() {
    const svg = api.svg;
    cam.natural = { w: parseFloat(svg.getAttribute("width")) * PX_PER_PT,
      h: parseFloat(svg.getAttribute("height")) * PX_PER_PT };
    stopGlide();
    if (cam.fresh || state.zoom === null) {
      cam.fresh = false;
      open();
    } else {                        // a scope opened or closed: same zoom, same place
      const keep = cam.centre;
      resize(scaleOf(state.zoom));
      if (keep) lookAt(keep);
      showMode();
    }
    drawMap();
  }

  // --- the pointer: wheel, drag, pinch ---------------------------------------------------------
  function onWheel(e) {
    e.preventDefault();
    const unit = e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? 400 : 1;
    if (!e.ctrlKey && Math.abs(e.deltaX) > Math.abs(e.deltaY)) {   // a trackpad's sideways swipe
      pane().scrollLeft += e.deltaX * unit;
      return;
    }
    // ctrl+wheel is how Chromium reports a trackpad's pinch: small steps, so a faster rate.
    const rate = e.ctrlKey ? 0.01 : 0.0015;
    zoomAt(cam.scale * Math.exp(-e.deltaY * unit * rate), e.clientX, e.clientY);
  }

  function wireDrag(p) {
    let press = null, dragged = false;
    p.addEventListener("pointerdown", (e) => {
      // Touch pans by the browser's own scrolling; a press on a scroll bar is not a drag.
      if (e.pointerType === "touch" || e.button !== 0) return;
      const box = p.getBoundingClientRect();
      if (e.clientX - box.left > p.clientWidth || e.clientY - box.top > p.clientHeight) return;
      press = { id: e.pointerId, x: e.clientX, y: e.clientY, left: p.scrollLeft, top: p.scrollTop };
      dragged = false;
    });
    p.addEventListener("pointermove", (e) => {
      if (!press || e.pointerId !== press.id) return;
      const dx = e.clientX - press.x, dy = e.clientY - press.y;
      if (!dragged && Math.hypot(dx, dy) < DRAG_PX) return;
      if (!dragged) {
        dragged = true;
        stopGlide();
        p.setPointerCapture(e.pointerId);
        p.classList.add("dragging");
      }
      p.scrollLeft = press.left - dx;
      p.scrollTop = press.top - dy;
    });
    const release = () => {
      press = null;
      p.classList.remove("dragging");
      if (dragged) remember();
    };
    p.addEventListener("pointerup", release);
    p.addEventListener("pointercancel", () => { dragged = false; release(); });
    // A drag ends with a click on whatever is under the pointer: it opens nothing.
    p.addEventListener("click", (e) => {
      if (!dragged) return;
      dragged = false;
      e.stopPropagation();
      e.preventDefault();
    }, true);
  }

  function wirePinch(p) {
    let pinch = null;
    const spread = (t) => Math.hypot(t[0].clientX - t[1].clientX, t[0].clientY - t[1].clientY);
    p.addEventListener("touchstart", (e) => {
      pinch = e.touches.length === 2 ? { d: spread(e.touches), scale: cam.scale } : null;
    }, { passive: true });
    p.addEventListener("touchmove", (e) => {
      if (!pinch || e.touches.length !== 2) return;
      e.preventDefault();
      const t = e.touches;
      zoomAt(pinch.scale * spread(t) / pinch.d, (t[0].clientX + t[1].clientX) / 2,
        (t[0].clientY + t[1].clientY) / 2);
    }, { passive: false });
    p.addEventListener("touchend", () => { pinch = null; });
  }

  // --- the overview map ------------------------------------------------------------------------
  const map = { el: null, canvas: null, view: null, ratio: 1 };

  function makeMap() {
    const el = document.createElement("div");
    el.id = "minimap";
    el.innerHTML = '<button type="button" class="fold" title="hide or show the overview map" ' +
      'aria-label="overview map">map</button><canvas></canvas><div class="view"></div>';
    document.querySelector("main").appendChild(el);
    Object.assign(map, { el, canvas: el.querySelector("canvas"), view: el.querySelector(".view") });
    el.querySelector(".fold").addEventListener("click", () => {
      el.classList.toggle("folded");
      placeMap();
    });
    let held = null;
    const move = (e) => {
      const r = map.canvas.getBoundingClientRect();
      lookAt({ x: (e.clientX - r.left) / map.ratio, y: (e.clientY - r.top) / map.ratio });
      drawView();
    };
    map.canvas.addEventListener("pointerdown", (e) => {
      held = e.pointerId;
      map.canvas.setPointerCapture(e.pointerId);
      move(e);
      e.preventDefault();
    });
    map.canvas.addEventListener("pointermove", (e) => { if (e.pointerId === held) move(e); });
    map.canvas.addEventListener("pointerup", () => { held = null; });
    map.view.addEventListener("pointerdown", (e) => {   // the rectangle drags like the map
      held = e.pointerId;
      map.view.setPointerCapture(e.pointerId);
      e.preventDefault();
    });
    map.view.addEventListener("pointermove", (e) => { if (e.pointerId === held) move(e); });
    map.view.addEventListener("pointerup", () => { held = null; });
  }

  // The nodes as coloured boxes and the scopes as outlines, at the map's scale.
  function drawMap() {
    if (!map.el) makeMap();
    const narrow = pane().clientWidth < NARROW_PX;
    const [bw, bh] = narrow ? MAP_BOX.narrow : MAP_BOX.wide;
    map.ratio = Math.min(bw / cam.natural.w, bh / cam.natural.h);
    const w = Math.max(24, Math.round(cam.natural.w * map.ratio));
    const h = Math.max(24, Math.round(cam.natural.h * map.ratio));
    const dpr = window.devicePixelRatio || 1;
    map.canvas.width = w * dpr;
    map.canvas.height = h * dpr;
    map.canvas.style.width = w + "px";
    map.canvas.style.height = h + "px";
    const ctx = map.canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const origin = api.svg.getBoundingClientRect();
    const k = map.ratio / cam.scale;
    const boxOf = (el) => {
      const r = el.getBoundingClientRect();
      return [(r.left - origin.left) * k, (r.top - origin.top) * k, r.width * k, r.height * k];
    };
    ctx.strokeStyle = "#999";
    ctx.lineWidth = 0.5;
    api.svg.querySelectorAll("g.cluster").forEach((g) => ctx.strokeRect(...boxOf(g)));
    api.svg.querySelectorAll("g.node").forEach((g) => {
      const shape = g.querySelector("polygon, ellipse, path");
      const fill = shape && shape.getAttribute("fill");
      ctx.fillStyle = fill && fill !== "none" && fill !== "transparent" ? fill : "#bbbbbb";
      const [x, y, bw2, bh2] = boxOf(g);
      ctx.fillRect(x, y, Math.max(1, bw2), Math.max(1, bh2));
    });
    placeMap();
  }

  // In the graph pane's lower right corner; hidden when the pane shows the whole graph.
  function placeMap() {
    if (!map.el) return;
    const p = pane();
    const whole = p.scrollWidth <= p.clientWidth + 1 && p.scrollHeight <= p.clientHeight + 1;
    map.el.hidden = whole;
    if (whole) return;
    map.el.style.left = p.offsetLeft + p.clientWidth - map.el.offsetWidth - 8 + "px";
    map.el.style.top = p.offsetTop + p.clientHeight - map.el.offsetHeight - 8 + "px";
    drawView();
  }

  function drawView() {
    if (!map.el || map.el.hidden || !api.svg) return;
    const p = pane(), box = p.getBoundingClientRect();
    const corner = toGraph(box.left + p.clientLeft, box.top + p.clientTop);
    const r = map.ratio, mw = parseFloat(map.canvas.style.width), mh = parseFloat(map.canvas.style.height);
    const x0 = Math.max(0, corner.x * r), y0 = Math.max(0, corner.y * r);
    const x1 = Math.min(mw, (corner.x + p.clientWidth / cam.scale) * r);
    const y1 = Math.min(mh, (corner.y + p.clientHeight / cam.scale) * r);
    Object.assign(map.view.style, { left: map.canvas.offsetLeft + x0 + "px",
      top: map.canvas.offsetTop + y0 + "px", width: Math.max(2, x1 - x0) + "px",
      height: Math.max(2, y1 - y0) + "px" });
  }

  // --- wiring ----------------------------------------------------------------------------------
  function wire() {
    const p = pane();
    const select = $("zoom");
    const known = new Set([...select.options].map((o) => o.value));
    for (const [value, text] of PRESETS) {       // the menu: fit, readable, 50%, 100%, 150%
      if (known.has(value)) continue;
      const option = new Option(text, value);
      const after = [...select.options].find((o) => Number(o.value) > Number(value));
      select.insertBefore(option, value === "readable" ? select.options[1] : after || null);
    }
    select.addEventListener("change", (e) => { if (api.svg) setMode(e.target.value); });
    p.addEventListener("wheel", (e) => { if (api.svg) onWheel(e); }, { passive: false });
    p.addEventListener("scroll", () => {
      if (cam.glide === null) remember();
      drawView();
    });
    wireDrag(p);
    wirePinch(p);
    // The pane settles its size after the first drawing and changes with the window: "fit"
    // fits again, any other zoom keeps the same point in the middle.
    new ResizeObserver(() => {
      if (!api.svg) return;
      if (state.zoom === "fit") resize(fitScale());
      if (cam.centre && cam.glide === null) lookAt(cam.centre);   // a glide lands by itself
      drawMap();
    }).observe(p);
  }

  wire();
  api.on("reset", () => { cam.fresh = true; });
  api.on("rendered", drawn);
  api.on("stepped", follow);
  api.on("jumped", follow);
  api.camera = {
    get scale() { return cam.scale; },
    readable: READABLE,
    moving: () => cam.glide !== null,
    zoomAt, setMode, follow,
    centreOn: (id) => { const point = nodeCentre(id); if (point) lookAt(point); },
  };
})();
