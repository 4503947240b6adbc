"""Graphviz diagrams of forward graphs and of the backward graphs the engine generates.

`render` returns a `graphviz.Digraph` (it shows inline in Jupyter), `to_dot` its DOT text and
`save` writes svg, png, pdf or dot. What is drawn:

- forward: leaves as tensors (name, shape, dtype; parameters as double-bordered gold boxes),
  ops as rounded boxes showing the op and the output tensor; Python constants are written
  into the op's label instead of getting nodes of their own;
- backward: nodes in the palette of their own (stronger tone of the hue their forward node
  has, bold outline), labelled ∂L/∂<name> where the node's output is a gradient; fan-in sums
  drawn as Σ with each incoming edge naming the use it came from; saved forward values that
  the backward reads drawn as dashed edges;
- clusters for `tinygraph.scope` blocks (collapsible to a single box), and optionally nodes
  coloured by log10 of the gradient norm, with a legend.

Node ids and order depend only on the graph, so the same graph always gives the same DOT text.
"""
import math
import pathlib
import shutil

import graphviz

from ..backend import xp
from ..core.autodiff import grad, leaves, nodes
from ..core.tensor import Parameter, Tensor
from ..transforms.rewrite import simplify as simplify_graph

VIEWS = ("forward", "backward", "both")
FORMATS = ("svg", "png", "pdf", "dot")

# (forward tint, backward tone) pairs; forward node k takes hue k mod len, and its backward
# nodes take the same hue's stronger tone.
HUES = [("#dbe9f6", "#6fa8dc"), ("#fde2cf", "#f0a05a"), ("#dcefdc", "#6dbf6d"),
        ("#f3dcec", "#c27ba0"), ("#fff2c2", "#e0b83a"), ("#d9f0ee", "#4fb3a9"),
        ("#e6e0f5", "#8e7cc3"), ("#f6dada", "#e06666")]
PARAMETER_FILL = "#ffe599"
LEAF_FILL = "#f3f3f3"
SUM_FILL = "#cc0000"
GRAD_EDGE = "#b03a2e"
SAVED_EDGE = "#999999"
# Sequential palette (dark = small gradient) for color_by="grad_norm".
NORM_COLORS = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89",
               "#35b779", "#6ece58", "#b5de2b", "#fde725"]
ZERO_FILL = "#bbbbbb"
NONFINITE_FILL = "#ff00ff"


class GraphvizNotFoundError(RuntimeError):
    """Graphviz's `dot` executable is needed to render an image and is not installed."""


def render(outputs, view="both", simplify=True, wrt=None, grad_outputs=None, color_by=None,
           collapse=(), title=None):
    """Draw the graph behind `outputs` as a `graphviz.Digraph`.

    outputs: forward output tensors (a loss, or e.g. (h, c)), or gradient tensors made with
        create_graph=True (their backward graph is drawn as it is).
    view: "forward", "backward" or "both".
    simplify: run the rewrite passes on the backward graph first (see tinygraph.simplify).
    wrt: the tensors to differentiate with respect to (default: every leaf that requires grad).
    grad_outputs: seeds for the outputs; by default a scalar output is seeded with 1 and a
        non-scalar output with a symbolic input named ∂L/∂<name>.
    color_by: None, or "grad_norm" to colour nodes by log10 of their gradient's norm.
    collapse: scope names whose clusters are drawn as one box each, or True for all.
    """
    return _Diagram(outputs, view, simplify, wrt, grad_outputs, color_by, collapse,
                    title).digraph


def to_dot(outputs, **options):
    """The DOT source of `render(outputs, **options)`; needs no Graphviz executable."""
    return render(outputs, **options).source


def save(outputs, path, **options):
    """Write the diagram to `path`; the format comes from its suffix (svg, png, pdf, dot)."""
    path = pathlib.Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise ValueError(f"save: cannot tell the format from {str(path)!r}; use a file name "
                         f"ending in one of {', '.join('.' + f for f in FORMATS)}")
    graph = render(outputs, **options)
    if fmt == "dot":
        path.write_text(graph.source, encoding="utf-8")
        return path
    path.write_bytes(pipe(graph, fmt))
    return path


def pipe(graph, fmt):
    """Run Graphviz on a Digraph; a clear error when `dot` is not installed."""
    if shutil.which("dot") is None:
        raise _missing_dot(fmt)
    try:
        return graph.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise _missing_dot(fmt) from None


def _missing_dot(fmt):
    return GraphvizNotFoundError(
        f"rendering to {fmt} needs Graphviz's 'dot' executable, which is not on PATH. Install "
        "Graphviz ('sudo apt-get install graphviz' on Debian/Ubuntu, 'brew install graphviz' on "
        "macOS, or see https://graphviz.org/download/). DOT text (tinygraph.to_dot, or a .dot "
        "file) works without it.")


class _Diagram:
    """Builds one Digraph: collects the nodes to draw, then emits them cluster by cluster."""

    def __init__(self, outputs, view, simplify, wrt, grad_outputs, color_by, collapse, title):
        if view not in VIEWS:
            raise ValueError(f"render: unknown view {view!r}; choose one of {', '.join(VIEWS)}")
        if color_by not in (None, "grad_norm"):
            raise ValueError(f"render: unknown color_by {color_by!r}; use None or 'grad_norm'")
        self.outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
        if not self.outputs or not all(isinstance(t, Tensor) for t in self.outputs):
            raise TypeError("render: outputs must be a Tensor or a non-empty list of Tensors")
        self.view = view
        self.collapse = collapse
        self.ids = {}            # id(Tensor or Node) -> DOT node id
        self.items = []          # (scope, dot id, attrs) in drawing order
        self.edges = []          # (tail id, head id, attrs)
        self.hue_of = {}         # id(forward node) -> hue index
        self.display = {}        # id(forward tensor) -> display name
        self.keep_alive = []     # tensors whose ids are used as keys
        self.report = None
        self.results = []        # (tensor differentiated, its gradient) for the labels

        forward_roots, backward_roots = self._graphs(wrt, grad_outputs, simplify)
        forward_nodes = [n for n in nodes(forward_roots) if not n.is_backward]
        backward_nodes = [n for n in nodes(backward_roots) if n.is_backward]
        self._name_forward(forward_nodes, forward_roots)
        self.result_of = {id(g._node): t for t, g in self.results
                          if g._node is not None and g._node.is_backward}
        self.merged = _merged_sums(backward_nodes)
        self.summands = _summand_nodes(backward_nodes)
        self.backward_count = len(backward_nodes)
        # Clusters are drawn in the order the program entered their scopes.
        self.scope_rank = {}
        for node in forward_nodes + backward_nodes:
            for depth in range(1, len(node.scope) + 1):
                self.scope_rank.setdefault(node.scope[:depth], len(self.scope_rank))
        self.norms = self._grad_norms(forward_nodes, grad_outputs) if color_by else None

        if view in ("forward", "both"):
            for out in forward_roots:
                if out._node is None:          # an output that is itself a leaf
                    self._tensor_source(out)
            for node in forward_nodes:
                self._forward_node(node)
        if view in ("backward", "both"):
            for node in backward_nodes:
                if id(node) not in self.merged:
                    self._backward_node(node)
            for t, g in self.results:
                if g._node is None or not g._node.is_backward:
                    self._result_without_node(t, g)
        self.digraph = self._emit(title)

    # --- which graphs ------------------------------------------------------------------------
    def _graphs(self, wrt, grad_outputs, simplify):
        given_gradients = any(t._node is not None and t._node.is_backward for t in self.outputs)
        if given_gradients or self.view == "forward":
            backward_roots = self.outputs if given_gradients else []
        else:
            backward_roots = self._differentiate(wrt, grad_outputs)
        if simplify and backward_roots:
            result = simplify_graph(backward_roots)
            self.report = result
            self.results = [(t, new) for (t, _), new in zip(self.results, result.outputs)]
            backward_roots = result.outputs
        self.keep_alive.extend(backward_roots)
        return self.outputs, backward_roots

    def _differentiate(self, wrt, grad_outputs):
        if wrt is None:
            wrt = leaves(self.outputs)
        wrt = [wrt] if isinstance(wrt, Tensor) else list(wrt)
        if not wrt:
            raise ValueError("render: nothing requires grad, so there is no backward graph; "
                             "create inputs with requires_grad=True, draw the forward view "
                             "only, or (to draw gradients) compute them with create_graph=True")
        if grad_outputs is None:
            grad_outputs = [self._seed(out) for out in self.outputs]
        self.keep_alive.extend(grad_outputs)
        grads = grad(self.outputs, wrt, grad_outputs=grad_outputs, create_graph=True,
                     allow_unused=True)
        self.results = [(t, g) for t, g in zip(wrt, grads) if g is not None]
        return [g for _, g in self.results]

    @staticmethod
    def _seed(out):
        if out.size == 1:
            return Tensor(xp.ones_like(out.data), constant=True)
        name = out.name or (out._node.op if out._node is not None else "y")
        return Tensor(xp.ones_like(out.data), name=f"∂L/∂{name}")

    def _name_forward(self, forward_nodes, roots):
        """Display names for unnamed tensors: the op and a counter (matmul₂), or tensor₁."""
        counters = {}

        def name(t, base):
            if t is not None and not t.name and id(t) not in self.display:
                counters[base] = counters.get(base, 0) + 1
                self.display[id(t)] = f"{base}{_subscript(counters[base])}"

        for node in forward_nodes:
            self.hue_of[id(node)] = len(self.hue_of) % len(HUES)
            name(node.output, node.op)
        for t in list(roots) + [t for n in forward_nodes for t in n.inputs]:
            if t._node is None and not t.constant:
                name(t, "tensor")

    def _name(self, t):
        return t.name or self.display.get(id(t)) or "tensor"

    # --- nodes -----------------------------------------------------------------------------
    def _forward_node(self, node):
        out = node.output
        fill = HUES[self.hue_of[id(node)]][0]
        label = _lines(_op_label(node, self._inline), self._tensor_line(out))
        fill = self._fill(out, fill)
        dot_id = self._add(node, "f", node.scope, label=label, shape="box",
                           style="rounded,filled", fillcolor=fill, fontcolor=_font_on(fill))
        for t in node.inputs:
            if not t.constant:
                self.edges.append((self._tensor_source(t), dot_id, {}))

    def _backward_node(self, node):
        out = node.output
        forward = node.forward_node
        is_sum = node.role == "accumulate"
        extra = []
        if is_sum:
            op = "Σ" if node.op == "add" else _op_label(node, self._inline)
            if node.op == "concat" and node.grad_sources:
                order = " | ".join(self._name(u.output) if u is not None and u.output is not None
                                   else "·" for u in node.grad_sources)
                extra = [f"[{order}]"]        # the gradients it joins, in order
            fill, font = SUM_FILL, "white"
        else:
            hue = self.hue_of.get(id(forward), 0) if forward is not None else 0
            op, fill, font = _op_label(node, self._inline), HUES[hue][1], "black"
        of = self.result_of.get(id(node), node.grad_of)
        part = "part of " if id(node) in self.summands and id(node) not in self.result_of else ""
        lines = [f"{part}∂L/∂{self._name(of)}"] if of is not None else []
        lines += [op] + extra + [_shape_text(out)]
        if self.norms is not None and of is not None:    # a gradient value: colour by its norm
            fill = self._norm_color(_norm(out.data))
            font = _font_on(fill)
        dot_id = self._add(node, "b", node.scope, label=_lines(*lines), shape="box",
                           style="rounded,filled,bold", fillcolor=fill, fontcolor=font,
                           color="#5b0f00")
        summands = _summands(node, self.merged) if is_sum and node.op == "add" else [
            (t, node.grad_sources[k] if is_sum and node.grad_sources else None)
            for k, t in enumerate(node.inputs)]
        for t, use in summands:
            if t.constant and not is_sum:
                continue                 # written into the op's label instead
            if t.constant:               # a constant gradient term: a small value node
                source = self._add(object(), "k", node.scope, label=_text(self._inline(t)),
                                   shape="plaintext", fontcolor=GRAD_EDGE)
            else:
                source = self._tensor_source(t)
            if t.constant or t._node is not None and t._node.is_backward or _is_seed(t):
                attrs = {"color": GRAD_EDGE, "penwidth": "1.6"}
                if is_sum:
                    attrs["label"] = _text(self._use_label(use, t, node.scope))
                    attrs["fontcolor"] = GRAD_EDGE
            else:   # a forward value saved for the backward pass
                attrs = {"style": "dashed", "color": SAVED_EDGE, "arrowhead": "empty"}
                if self.view == "both":   # rank backward nodes by the gradient flow alone
                    attrs["constraint"] = "false"
            self.edges.append((source, dot_id, attrs))

    def _result_without_node(self, wrt, g):
        """A gradient that simplified to a constant or to a forward value still gets a node."""
        value = self._inline(g) if g.constant else self._name(g)
        dot_id = self._add(object(), "r", (), label=_lines(f"∂L/∂{self._name(wrt)}", f"= {value}",
                                                           _shape_text(g)),
                           shape="box", style="rounded,filled,bold", fillcolor=SUM_FILL,
                           fontcolor="white", color="#5b0f00")
        if not g.constant:
            self.edges.append((self._tensor_source(g), dot_id,
                               {"style": "dashed", "color": SAVED_EDGE, "arrowhead": "empty"}))

    def _use_label(self, use, summand, sum_scope):
        """Which use of the tensor a summand of its gradient came from (and where, when that
        is another scope than the sum's)."""
        if use is None:
            return "from the output" if _is_seed(summand) or summand.constant else "partial sum"
        out = use.output
        if out is not None and out.name:
            text = f"via {out.name}" if use.op in ("slice", "index") else f"via {use.op} → {out.name}"
        else:
            text = f"via {use.op}"
        return text + (f" [{'/'.join(use.scope)}]" if use.scope and use.scope != sum_scope else "")

    def _tensor_source(self, t):
        """The DOT id that stands for tensor t: its producing node, or a leaf node."""
        if t._node is not None:
            if id(t._node) not in self.ids:   # a forward value drawn in the backward view
                return self._ghost(t)
            return self.ids[id(t._node)]
        if id(t) in self.ids:
            return self.ids[id(t)]
        if _is_seed(t):
            return self._add(t, "s", (), label=_lines(f"upstream {t.name}", _shape_text(t)),
                             shape="box",
                             style="filled,bold", fillcolor="#f4cccc", color=GRAD_EDGE)
        parameter = isinstance(t, Parameter)
        fill = self._fill(t, PARAMETER_FILL if parameter else LEAF_FILL)
        return self._add(t, "t", (), label=_lines(self._name(t), _shape_dtype(t)),
                         shape="box" if parameter else "ellipse",
                         peripheries="2" if parameter else "1", style="filled",
                         fillcolor=fill, fontcolor=_font_on(fill))

    def _ghost(self, t):
        key = id(t)
        if key not in self.ids:
            self._add(t, "g", t._node.scope, label=_lines(self._name(t), _shape_text(t)), shape="box",
                      style="dashed,rounded", color=SAVED_EDGE, fontcolor="#555555")
        return self.ids[key]

    def _add(self, obj, prefix, scope, **attrs):
        dot_id = f"{prefix}{len(self.ids)}"
        self.ids[id(obj)] = dot_id
        self.keep_alive.append(obj)   # its id is a key: it must outlive the drawing
        self.items.append((tuple(scope), dot_id, attrs))
        return dot_id

    def _tensor_line(self, t):
        return f"{t.name} {_shape_dtype(t)}" if t.name else _shape_dtype(t)

    def _inline(self, t):
        """How an input appears inside an op label: constants by value, tensors as ·."""
        if not t.constant:
            return "·"
        flat = t.data.reshape(-1)
        if flat.size and bool(xp.all(flat == flat[0])):
            value = _number(flat[0])
            return value if t.ndim == 0 else f"{value}[{'×'.join(map(str, t.shape))}]"
        return f"const[{'×'.join(map(str, t.shape))}]"

    # --- gradient norms ----------------------------------------------------------------------
    def _grad_norms(self, forward_nodes, grad_outputs):
        targets = [n.output for n in forward_nodes if n.output is not None
                   and n.output.requires_grad]
        targets += leaves(self.outputs)
        if grad_outputs is None:
            seeds = [Tensor(xp.ones_like(o.data)) for o in self.outputs]
        else:
            seeds = [grad_outputs] if isinstance(grad_outputs, (Tensor, xp.ndarray)) \
                else list(grad_outputs)
        with xp.errstate(all="ignore"):
            grads = grad(self.outputs, targets, grad_outputs=seeds, allow_unused=True)
            norms = {}
            for t, g in zip(targets, grads):
                if g is not None:
                    norms[id(t)] = _norm(g.data)
        self.keep_alive.extend(targets)
        # One colour per band of whole decades (at most len(NORM_COLORS) bands), so every
        # colour a node can get is in the legend.
        decades = [math.log10(v) for v in norms.values() if v > 0 and math.isfinite(v)]
        if decades:
            low, high = math.floor(min(decades)), math.floor(max(decades)) + 1
            width = max(1, math.ceil((high - low) / len(NORM_COLORS)))
            self.bands = [(low + k * width, low + (k + 1) * width)
                          for k in range(math.ceil((high - low) / width))]
        else:
            self.bands = []
        self.norm_kinds = {"zero" if v == 0 else "non-finite" if not math.isfinite(v) else "band"
                           for v in norms.values()}
        return norms

    def _fill(self, t, default):
        if self.norms is None or id(t) not in self.norms:
            return default
        return self._norm_color(self.norms[id(t)])

    def _norm_color(self, norm):
        if not math.isfinite(norm):
            return NONFINITE_FILL
        if norm <= 0:
            return ZERO_FILL
        decade = math.log10(norm)
        for k, (low, high) in enumerate(self.bands):
            if decade < high or k == len(self.bands) - 1:
                return _band_color(k, len(self.bands))
        return ZERO_FILL

    # --- emitting --------------------------------------------------------------------------
    def _emit(self, title):
        g = graphviz.Digraph("tinygraph", graph_attr={
            "rankdir": "TB", "fontname": "Helvetica", "fontsize": "11", "ordering": "out",
            "nodesep": "0.25", "ranksep": "0.35"},
            node_attr={"fontname": "Helvetica", "fontsize": "10", "margin": "0.08,0.03"},
            edge_attr={"fontname": "Helvetica", "fontsize": "9", "arrowsize": "0.7"})
        caption = self._caption(title)
        if caption:
            g.attr(label=_lines(*caption), labelloc="t")
        collapsed = self._collapsed_scopes()
        redirect = {}
        for scope, dot_id, _ in self.items:
            hidden = next((s for s in collapsed if scope[:len(s)] == s), None)
            if hidden is not None:
                redirect[dot_id] = "collapsed_" + _scope_id(hidden)
        self._emit_scopes(g, collapsed)
        seen = set()
        boxes = set(redirect.values())
        for tail, head, attrs in self.edges:
            tail, head = redirect.get(tail, tail), redirect.get(head, head)
            if tail == head:
                continue
            if tail in boxes or head in boxes:
                # Edges of a collapsed box are drawn once each, unlabelled; but an edge from
                # a box into a Σ outside it keeps the name of the use it brings.
                if head in boxes:
                    attrs = {k: v for k, v in attrs.items() if k != "label"}
                key = (tail, head, attrs.get("label"))
                if key in seen:
                    continue
                seen.add(key)
            g.edge(tail, head, **attrs)
        if self.norms is not None:
            self._legend(g)
        return g

    def _caption(self, title):
        """The caption's lines."""
        parts = [title] if title else []
        if self.report is not None:
            parts.append(f"backward graph simplified: {self.report.nodes_before} → "
                         f"{self.report.nodes_after} nodes")
        elif self.view != "forward":
            parts.append(f"backward graph as generated: {self.backward_count} nodes")
        if self.view != "forward":
            # Two short lines, not one long one: the caption must not widen a small graph.
            parts.append("dashed: forward values the backward pass reads")
            parts.append("Σ: a gradient summed over the uses named on its edges")
        return parts

    def _collapsed_scopes(self):
        """The scope paths drawn as one box: the outermost ones named in `collapse` (a name
        matches at any depth), or every top-level scope for collapse=True."""
        paths = {s[:depth] for s, _, _ in self.items for depth in range(1, len(s) + 1)}
        if self.collapse is True:
            return sorted(p for p in paths if len(p) == 1)
        wanted = [self.collapse] if isinstance(self.collapse, str) else list(self.collapse)
        known = {p[-1] for p in paths}
        unknown = [w for w in wanted if w not in known]
        if unknown:
            raise ValueError(f"render: cannot collapse unknown scope(s) {unknown}; the graph "
                             f"has {sorted(known)}")
        chosen = [p for p in paths if p[-1] in wanted]
        return sorted(p for p in chosen if not any(q != p and p[:len(q)] == q for q in chosen))

    def _emit_scopes(self, g, collapsed):
        """Emit items, nesting each scope path in clusters (one level per scope name)."""
        by_scope = {}
        for scope, dot_id, attrs in self.items:
            by_scope.setdefault(scope, []).append((dot_id, attrs))
        for dot_id, attrs in by_scope.pop((), []):
            g.node(dot_id, **attrs)
        top_level = sorted({scope[:1] for scope in by_scope}, key=self._scope_order)
        for top in top_level:
            self._emit_cluster(g, top, by_scope, collapsed)

    def _collapsed_box(self, parent, scope, by_scope):
        members = [s for s in by_scope if s[:len(scope)] == scope]
        n_forward = sum(1 for s in members for d, _ in by_scope[s] if d.startswith("f"))
        n_backward = sum(1 for s in members for d, _ in by_scope[s] if d.startswith("b"))
        counts = ", ".join(f"{n} {kind} ops" for n, kind in (
            (n_forward, "forward"), (n_backward, "backward")) if n)
        parent.node("collapsed_" + _scope_id(scope), label=_lines(scope[-1], counts),
                    shape="box3d", style="filled", fillcolor="#eeeeee")

    def _emit_cluster(self, parent, scope, by_scope, collapsed):
        if scope in collapsed:
            self._collapsed_box(parent, scope, by_scope)
            return
        with parent.subgraph(name="cluster_" + _scope_id(scope)) as sub:
            sub.attr(label=_text(scope[-1]), style="rounded,dashed", color="#999999")
            for dot_id, attrs in by_scope.get(scope, []):
                sub.node(dot_id, **attrs)
            children = {s[:len(scope) + 1] for s in by_scope
                        if len(s) > len(scope) and s[:len(scope)] == scope}
            for child in sorted(children, key=self._scope_order):
                self._emit_cluster(sub, child, by_scope, collapsed)

    def _scope_order(self, scope):
        return (self.scope_rank.get(scope, len(self.scope_rank)), scope)

    def _legend(self, g):
        entries = [(_band_color(k, len(self.bands)),
                    f"1e{low}" if high == low + 1 else f"1e{low} – 1e{high}")
                   for k, (low, high) in enumerate(self.bands)]
        if "zero" in self.norm_kinds:
            entries.insert(0, (ZERO_FILL, "0"))
        if "non-finite" in self.norm_kinds:
            entries.append((NONFINITE_FILL, "inf or NaN"))
        with g.subgraph(name="cluster__legend") as legend:
            legend.attr(label="‖∂L/∂·‖ (log scale)", style="rounded", color="#999999")
            previous = None
            for k, (color, text) in enumerate(entries):
                dot_id = f"legend{k}"
                legend.node(dot_id, label=text, shape="box", style="filled",
                            fillcolor=color, fontcolor=_font_on(color))
                if previous is not None:
                    legend.edge(previous, dot_id, style="invis")
                previous = dot_id


# --- labels ---------------------------------------------------------------------------------

def _op_label(node, inline):
    """The op name, constants written in, and the attribute that matters for reading it."""
    return node.prim.label(node.inputs, inline)


def _norm(array):
    with xp.errstate(all="ignore"):
        return float(xp.sqrt(xp.sum(xp.square(array, dtype=xp.float64))))


def _band_color(k, bands):
    """Spread the bands over the palette, dark (small) to light (large)."""
    if bands <= 1:
        return NORM_COLORS[len(NORM_COLORS) // 2]
    return NORM_COLORS[round(k * (len(NORM_COLORS) - 1) / (bands - 1))]


def _font_on(fill):
    """Black text, or white on the dark half of the gradient-norm palette."""
    dark = NORM_COLORS[:len(NORM_COLORS) // 2] + [SUM_FILL]
    return "white" if fill in dark else "black"


def _text(text):
    """User text for a label: backslashes kept literal, never read as an HTML-like label."""
    return graphviz.nohtml(str(text).replace("\\", "\\\\"))


def _lines(*lines):
    """A multi-line label, with DOT's line-break escape rather than raw newlines."""
    return graphviz.nohtml("\\n".join(str(line).replace("\\", "\\\\") for line in lines))


def _merged_sums(backward_nodes):
    """ids of fan-in add nodes drawn inside a later one: a chain of binary sums of one
    tensor's gradient is drawn as one Σ whose edges name every use."""
    consumers = {}
    for node in backward_nodes:
        for t in node.inputs:
            if t._node is not None:
                consumers.setdefault(id(t._node), []).append(node)
    merged = set()
    for node in backward_nodes:
        users = consumers.get(id(node), [])
        if (node.role == "accumulate" and node.op == "add" and len(users) == 1
                and users[0].role == "accumulate" and users[0].op == "add"
                and users[0].grad_of is node.grad_of):
            merged.add(id(node))
    return merged


def _summand_nodes(backward_nodes):
    """ids of nodes whose output is one use's share of a gradient that a Σ then sums."""
    shares = set()
    for node in backward_nodes:
        if node.role == "accumulate":
            for t in node.inputs:
                if t._node is not None and t._node.grad_of is node.grad_of \
                        and t._node.role == "vjp":
                    shares.add(id(t._node))
    return shares


def _summands(node, merged):
    """(summand, use) pairs of a Σ, looking through the sums merged into it."""
    found, stack = [], [node]
    while stack:
        current = stack.pop()
        uses = current.grad_sources or (None,) * len(current.inputs)
        for t, use in reversed(list(zip(current.inputs, uses))):
            if t._node is not None and id(t._node) in merged:
                stack.append(t._node)
            else:
                found.append((t, use))
    return found


def _shape_dtype(t):
    return f"{_shape_text(t)} {t.dtype}"


def _shape_text(t):
    return str(tuple(t.shape))


def _number(value):
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.4g}"


def _subscript(k):
    return str(k).translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))


def _scope_id(scope):
    """A DOT-safe id for a scope path, one-to-one: letters and digits stay, any other
    character (the escape letter x included) is spelled out as x<hex>x."""
    return "_".join("".join(c if c.isascii() and c.isalnum() and c != "x" else f"x{ord(c):x}x"
                            for c in name) for name in scope)


def _is_seed(t):
    return t._node is None and not t.constant and not t.requires_grad and bool(t.name) \
        and t.name.startswith("∂L/∂")

