// The memory strip under the stepping bar: the bytes alive during each backward step
// (tinygraph.saved_values: the saved values still held plus the pending gradients), one
// column per step of the pass in the order the bar steps, the peak marked, the current step
// lit. A checkpointed segment shows as a rise: its recomputation.
"use strict";
(function () {
  const api = window.tinygraphExplorer;
  const $ = (id) => document.getElementById(id);
  const HEIGHT = 40, WIDTH = 600, PAD = 4;
  const mb = (b) => (b >= 0.1 * 2 ** 20 ? (b / 2 ** 20).toFixed(1) + " MB" :
    b >= 1024 ? (b / 1024).toFixed(1) + " kB" : Math.round(b) + " B");

  // Per step of the bar: its bytes (a Σ, made by no vjp, takes the step before it).
  function series() {
    const nodes = api.variant().nodes;
    let last = api.DATA.memory ? api.DATA.memory.start : null;
    return api.order().map((id) => {
      const m = nodes[id].mem;
      if (typeof m === "number") last = m;
      return last;
    });
  }

  function draw() {
    const el = $("memstrip");
    const memory = api.DATA.memory;
    el.innerHTML = "";
    if (!memory || !api.variant().nodes.some((n) => typeof n.mem === "number")) return;
    const values = series();
    if (!values.length) return;
    const top = Math.max(...values), n = values.length;
    const x = (k) => PAD + (WIDTH - 2 * PAD) * (n > 1 ? k / (n - 1) : 0);
    const y = (v) => PAD + HEIGHT - (top > 0 ? v / top : 0) * HEIGHT;
    const points = values.map((v, k) => x(k) + "," + y(v)).join(" ");
    const peak = values.indexOf(top);
    el.innerHTML = '<span class="key">memory during the backward pass</span>' +
      '<svg class="mem" width="' + WIDTH + '" height="' + (HEIGHT + 2 * PAD) + '" viewBox="0 0 ' + WIDTH + ' ' + (HEIGHT + 2 * PAD) + '" preserveAspectRatio="none">' +
      '<polygon class="area" points="' + x(0) + "," + (PAD + HEIGHT) + " " + points + " " +
      x(n - 1) + "," + (PAD + HEIGHT) + '"></polygon>' +
      '<circle class="peak" cx="' + x(peak) + '" cy="' + y(top) + '" r="3"></circle>' +
      '<line id="memcursor" class="cursor" y1="' + PAD + '" y2="' + (PAD + HEIGHT) +
      '" x1="-10" x2="-10"></line></svg>' +
      '<span id="memtext" class="num">peak ' + mb(top) + " at step " + (peak + 1) +
      " of the stepping bar" +
      "; saved by the forward pass: " + mb(memory.saved) + "</span>";
    el.dataset.peak = String(top);
    el.dataset.steps = String(n);
  }

  function moveTo() {
    const cursor = $("memcursor");
    if (!cursor) return;
    const values = series(), k = api.state.step;
    if (k < 0 || k >= values.length) return;
    const n = values.length;
    const xk = PAD + (WIDTH - 2 * PAD) * (n > 1 ? k / (n - 1) : 0);
    cursor.setAttribute("x1", xk);
    cursor.setAttribute("x2", xk);
    $("memtext").textContent = "step " + (k + 1) + ": " + mb(values[k]) + " alive (peak " +
      mb(Math.max(...values)) + " at step " + (values.indexOf(Math.max(...values)) + 1) + ")";
  }

  api.on("rendered", draw);
  api.on("stepped", moveTo);
  api.memory = { series, draw };
})();
