// Worked numbers: click an element of a node's heatmap in the panel and the node's rule is
// evaluated for that element with its operands' values, so that a learner can check one
// number by hand: ∂L/∂c_prev[0,1] = ∂L/∂c[0,1] ⊙ f[0,1] = 1.062 × 0.204 = 0.2166.
"use strict";
(function () {
  const api = window.tinygraphExplorer;
  const MAX_TERMS = 4;            // a matmul's sum is written out up to this many products

  const unravel = (k, shape) => {
    const idx = [];
    for (let d = shape.length - 1; d >= 0; d--) { idx.unshift(k % shape[d]); k = Math.floor(k / shape[d]); }
    return idx;
  };
  const ravel = (idx, shape) => idx.reduce((k, i, d) => k * shape[d] + i, 0);
  const indexText = (idx) => "[" + idx.join(",") + "]";
  const num = (x) => api.fmt(x);
  // A name before an index: a formula in parentheses, (1 − f)[0,1].
  const indexed = (name, idx) => (/ /.test(name) && !/^∂L\/∂\(/.test(name) ? "(" + name + ")" : name) + idx;

  // An operand as (name, shape, values): a node of the page, or a constant.
  function operand(o) {
    if (o.const !== undefined) return { name: o.name, shape: [], values: o.const === null ? null : [o.const] };
    const n = api.variant().nodes[o.id];
    const values = n && n.value ? api.decode(n.value) : null;
    return { name: o.name, shape: n && n.value ? n.value.shape : [], values };
  }

  // The element of operand a that lines up with output index idx under broadcasting.
  function at(a, idx) {
    const shift = idx.length - a.shape.length;
    const own = a.shape.map((size, d) => (size === 1 ? 0 : idx[d + shift]));
    return { text: a.shape.length ? indexed(a.name, indexText(own)) : a.name, value: a.values[ravel(own, a.shape)] };
  }

  const UNARY = { sigmoid: ["σ", (x) => 1 / (1 + Math.exp(-x))], tanh: ["tanh", Math.tanh],
    exp: ["exp", Math.exp], log: ["log", Math.log], neg: ["−", (x) => -x] };
  const BINARY = { mul: ["⊙", "×", (a, b) => a * b], add: ["+", "+", (a, b) => a + b],
    sub: ["−", "−", (a, b) => a - b], div: ["/", "/", (a, b) => a / b] };

  // [symbolic right-hand side, the same with numbers, the result], or a string saying why not.
  function evaluate(n, ops, idx) {
    const op = n.kind === "sum" && n.op === "add" ? "sum" : n.op;
    if (op in BINARY && ops.length === 2) {
      const [sym, times, f] = BINARY[op];
      const [a, b] = ops.map((o) => at(o, idx));
      if (op === "mul" && n.operands[0].id !== undefined && n.operands[0].id === n.operands[1].id)
        return [a.text + "²", num(a.value) + "²", a.value * a.value];
      return [a.text + " " + sym + " " + b.text, num(a.value) + " " + times + " " + num(b.value), f(a.value, b.value)];
    }
    if (op in UNARY && ops.length === 1) {
      const [sym, f] = UNARY[op];
      const a = at(ops[0], idx);
      return [sym + "(" + a.text + ")", sym + "(" + num(a.value) + ")", f(a.value)];
    }
    if (op === "sum") {            // each summand named with the use it came from
      const terms = ops.map((o, k) => at({ ...o, name: o.name + (n.operands[k].use ?
        " " + n.operands[k].use : "") }, idx));
      return [terms.map((t) => t.text).join(" + "), terms.map((t) => num(t.value)).join(" + "),
        terms.reduce((s, t) => s + t.value, 0)];
    }
    if (op === "broadcast_to" && ops.length === 1) {   // the one element it repeats
      const a = at(ops[0], idx);
      return [a.text, num(a.value), a.value];
    }
    if (op === "reshape" && ops.length === 1) {        // the same element, in row-major order
      const a = ops[0], own = unravel(ravel(idx, n.value.shape), a.shape);
      const value = a.values[ravel(own, a.shape)];
      return [a.shape.length ? indexed(a.name, indexText(own)) : a.name, num(value), value];
    }
    if (op === "transpose" && ops[0].shape.length === 2) {
      const a = at(ops[0], [idx[1], idx[0]]);
      return [a.text, num(a.value), a.value];
    }
    if ((op === "matmul" || op === "matmul_tn") && ops[0].shape.length === 2 && ops[1].shape.length === 2) {
      const [a, b] = ops, tn = op === "matmul_tn";
      const inner = tn ? a.shape[0] : a.shape[1];
      const products = [];
      for (let k = 0; k < inner; k++) {
        const x = tn ? at(a, [k, idx[0]]) : at(a, [idx[0], k]);
        const y = at(b, [k, idx[1]]);
        products.push([x, y]);
      }
      const shown = products.slice(0, MAX_TERMS);
      const more = products.length > MAX_TERMS ? " + … (" + products.length + " products)" : "";
      const aName = tn ? a.name + "ᵀ" : a.name;
      return ["Σₖ " + aName + "[" + idx[0] + ",k] · " + b.name + "[k," + idx[1] + "]",
        shown.map(([x, y]) => num(x.value) + "×" + num(y.value)).join(" + ") + more,
        products.reduce((s, [x, y]) => s + x.value * y.value, 0)];
    }
    if (op === "sum_to" && ops.length === 1) {     // summed over the axes it was broadcast on
      const a = ops[0], shift = a.shape.length - idx.length;
      const terms = [];
      for (let k = 0; k < a.values.length; k++) {
        const j = unravel(k, a.shape);
        if (idx.every((i, d) => n.value.shape[d] === 1 || j[d + shift] === i)) terms.push(a.values[k]);
      }
      return ["Σ over the batch of " + a.name + "[…, " + idx.slice(-1)[0] + "]",
        terms.slice(0, MAX_TERMS).map(num).join(" + ") + (terms.length > MAX_TERMS ? " + …" : ""),
        terms.reduce((s, x) => s + x, 0)];
    }
    if (op === "concat") {                          // which piece the element came from
      let last = idx[idx.length - 1];
      for (const o of ops) {
        const width = o.shape[o.shape.length - 1];
        if (last < width) {
          const a = at(o, [...idx.slice(0, -1), last]);
          return [a.text, num(a.value), a.value];
        }
        last -= width;
      }
    }
    return "no worked example for the op " + n.op + " yet";
  }

  function work(id, k) {
    const n = api.variant().nodes[id];
    const box = document.querySelector("#panel .worked");
    if (!n.value || !box) return null;
    const idx = unravel(k, n.value.shape);
    const own = api.decode(n.value)[k];
    let text;
    if (!n.operands || !n.operands.length) {
      text = indexed(n.lines[0], indexText(idx)) + " = " + num(own);
    } else {
      const ops = n.operands.map(operand);
      const missing = ops.find((o) => !o.values);
      const result = missing ? missing.name + "'s values are not in the page (too large)" :
        evaluate(n, ops, idx);
      if (typeof result === "string") text = result;
      else {
        const [rhs, numbers, value] = result;
        // float32 values: agreement to 4 significant digits is what the page can show.
        const agrees = Math.abs(value - own) <= 1e-4 * Math.max(1, Math.abs(own));
        text = indexed(n.lines[0], indexText(idx)) + " = " + rhs + " = " +
          numbers + " = " + num(value) + (agrees ? "  ✓ (the node holds " + num(own) + ")" :
            "  ✗ the node holds " + num(own));
      }
    }
    box.textContent = text;
    api.worked = { id, index: idx, text };
    return text;
  }

  api.on("shown", (id) => {
    const cells = document.querySelectorAll("#panel > .value .cell");
    if (!cells.length) return;
    // A heatmap wider than the panel scrolls sideways: say so (the scrollbar may be hidden).
    const scroller = document.querySelector("#panel > .value .scroll");
    if (scroller && scroller.scrollWidth > scroller.clientWidth + 1) {
      const hint = document.createElement("div");
      hint.className = "scroll-hint";
      const n = api.variant().nodes[id];
      hint.textContent = "scroll sideways for all " + n.value.shape[n.value.shape.length - 1] +
        " columns →";
      scroller.before(hint);
    }
    const box = document.createElement("div");
    box.className = "worked";
    box.textContent = "Click an element to see the rule worked out for it with numbers.";
    document.querySelector("#panel > .value").after(box);
    cells.forEach((cell, k) => cell.addEventListener("click", () => {
      cells.forEach((c) => c.classList.remove("picked"));
      cell.classList.add("picked");
      work(id, k);
    }));
  });
  api.work = work;
})();
