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

from .autodiff import grad, leaves, nodes
from .backend import xp
from .rewrite import simplify as simplify_graph
from .tensor import Parameter, Tensor

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

        forward_roots, backward_roots = self._graphs(wrt, grad_outputs, simplify)
        forward_nodes = [n for n in nodes(forward_roots) if not n.is_backward]
        backward_nodes = [n for n in nodes(backward_roots) if n.is_backward]
        self._name_forward(forward_nodes)
        # Clusters are drawn in the order the program entered their scopes.
        self.scope_rank = {}
        for node in forward_nodes + backward_nodes:
            for depth in range(1, len(node.scope) + 1):
                self.scope_rank.setdefault(node.scope[:depth], len(self.scope_rank))
        self.norms = self._grad_norms(forward_nodes, grad_outputs) if color_by else None

        if view in ("forward", "both"):
            for node in forward_nodes:
                self._forward_node(node)
        if view in ("backward", "both"):
            for node in backward_nodes:
                self._backward_node(node)
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
            backward_roots = result.outputs
        self.keep_alive.extend(backward_roots)
        return self.outputs, backward_roots

    def _differentiate(self, wrt, grad_outputs):
        if wrt is None:
            wrt = leaves(self.outputs)
        wrt = [wrt] if isinstance(wrt, Tensor) else list(wrt)
        if not wrt:
            raise ValueError("render: nothing requires grad, so there is no backward graph; "
                             "create inputs with requires_grad=True or use view='forward'")
        if grad_outputs is None:
            grad_outputs = [self._seed(out) for out in self.outputs]
        self.keep_alive.extend(grad_outputs)
        grads = grad(self.outputs, wrt, grad_outputs=grad_outputs, create_graph=True,
                     allow_unused=True)
        return [g for g in grads if g is not None]

    @staticmethod
    def _seed(out):
        if out.size == 1:
            return Tensor(xp.ones_like(out.data), constant=True)
        name = out.name or (out._node.op if out._node is not None else "y")
        return Tensor(xp.ones_like(out.data), name=f"∂L/∂{name}")

    def _name_forward(self, forward_nodes):
        counters = {}
        for node in forward_nodes:
            self.hue_of[id(node)] = len(self.hue_of) % len(HUES)
            out = node.output
            if out is not None and not out.name:
                counters[node.op] = counters.get(node.op, 0) + 1
                self.display[id(out)] = f"{node.op}{_subscript(counters[node.op])}"

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
        if node.role == "accumulate":
            op = "Σ" if node.op == "add" else _op_label(node, self._inline)
            fill, font, shape = SUM_FILL, "white", "box"
        else:
            hue = self.hue_of.get(id(forward), 0) if forward is not None else 0
            op, fill, font, shape = _op_label(node, self._inline), HUES[hue][1], "black", "box"
        lines = [f"∂L/∂{self._name(node.grad_of)}"] if node.grad_of is not None else []
        lines += [op, _shape_text(out)]
        dot_id = self._add(node, "b", node.scope, label=_lines(*lines), shape=shape,
                           style="rounded,filled,bold", fillcolor=fill, fontcolor=font,
                           color="#5b0f00")
        for k, t in enumerate(node.inputs):
            if t.constant:
                continue
            attrs = {}
            if t._node is not None and t._node.is_backward or _is_seed(t):
                attrs = {"color": GRAD_EDGE, "penwidth": "1.6"}
                if node.role == "accumulate" and node.grad_sources is not None:
                    attrs["label"] = self._use_label(node.grad_sources[k], t, node.scope)
                    attrs["fontcolor"] = GRAD_EDGE
            else:   # a forward value saved for the backward pass
                attrs = {"style": "dashed", "color": SAVED_EDGE, "arrowhead": "empty"}
                if self.view == "both":   # rank backward nodes by the gradient flow alone
                    attrs["constraint"] = "false"
            self.edges.append((self._tensor_source(t), dot_id, attrs))

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
            return self._add(t, "s", (), label=_lines(t.name, _shape_text(t)), shape="box",
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
            self.keep_alive.append(t)
            self._add(t, "g", t._node.scope, label=_lines(self._name(t), _shape_text(t)), shape="box",
                      style="dashed,rounded", color=SAVED_EDGE, fontcolor="#555555")
        return self.ids[key]

    def _add(self, obj, prefix, scope, **attrs):
        dot_id = f"{prefix}{len(self.ids)}"
        self.ids[id(obj)] = dot_id
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
        seeds = grad_outputs or [Tensor(xp.ones_like(o.data)) for o in self.outputs]
        grads = grad(self.outputs, targets, grad_outputs=seeds, allow_unused=True)
        norms = {}
        for t, g in zip(targets, grads):
            if g is not None:
                norms[id(t)] = float(xp.sqrt(xp.sum(xp.square(g.data, dtype=xp.float64))))
        self.keep_alive.extend(targets)
        positive = [v for v in norms.values() if v > 0]
        self.norm_range = ((math.floor(math.log10(min(positive))),
                            math.ceil(math.log10(max(positive))))
                           if positive else (0, 0))
        if self.norm_range[0] == self.norm_range[1]:
            self.norm_range = (self.norm_range[0], self.norm_range[0] + 1)
        return norms

    def _fill(self, t, default):
        if self.norms is None or id(t) not in self.norms:
            return default
        return self._norm_color(self.norms[id(t)])

    def _norm_color(self, norm):
        if norm <= 0:
            return "#bbbbbb"
        low, high = self.norm_range
        position = (math.log10(norm) - low) / (high - low)
        index = min(len(NORM_COLORS) - 1, max(0, int(position * len(NORM_COLORS))))
        return NORM_COLORS[index]

    # --- emitting --------------------------------------------------------------------------
    def _emit(self, title):
        g = graphviz.Digraph("tinygraph", graph_attr={
            "rankdir": "TB", "fontname": "Helvetica", "fontsize": "11", "newrank": "true",
            "nodesep": "0.25", "ranksep": "0.35"},
            node_attr={"fontname": "Helvetica", "fontsize": "10", "margin": "0.08,0.03"},
            edge_attr={"fontname": "Helvetica", "fontsize": "9", "arrowsize": "0.7"})
        caption = self._caption(title)
        if caption:
            g.attr(label=caption, labelloc="t")
        collapsed = self._collapsed_scopes()
        redirect = {}
        for scope, dot_id, _ in self.items:
            hidden = next((s for s in collapsed if scope[:len(s)] == s), None)
            if hidden is not None:
                redirect[dot_id] = "cluster_box_" + _scope_id(hidden)
        self._emit_scopes(g, collapsed)
        seen = set()
        for tail, head, attrs in self.edges:
            tail, head = redirect.get(tail, tail), redirect.get(head, head)
            if tail == head:
                continue
            if tail in redirect.values() or head in redirect.values():
                attrs = {k: v for k, v in attrs.items() if k != "label"}
                if (tail, head) in seen:
                    continue
            seen.add((tail, head))
            g.edge(tail, head, **attrs)
        if self.norms is not None:
            self._legend(g)
        return g

    def _caption(self, title):
        parts = [title] if title else []
        if self.report is not None:
            parts.append(f"backward graph simplified: {self.report.nodes_before} → "
                         f"{self.report.nodes_after} nodes")
        elif self.view != "forward":
            count = sum(1 for _, dot_id, _ in self.items if dot_id.startswith("b"))
            parts.append(f"backward graph as generated: {count} nodes")
        if self.view != "forward":
            parts.append("dashed: forward values the backward pass reads · "
                         "Σ: a gradient summed over the uses named on its edges")
        return "\\n".join(parts)

    def _collapsed_scopes(self):
        scopes = sorted({s[:1] for s, _, _ in self.items if s})
        if self.collapse is True:
            return scopes
        wanted = [self.collapse] if isinstance(self.collapse, str) else list(self.collapse)
        known = {s[0] for s in scopes}
        unknown = [w for w in wanted if w not in known]
        if unknown:
            raise ValueError(f"render: cannot collapse unknown scope(s) {unknown}; the graph "
                             f"has {sorted(known)}")
        return [(w,) for w in wanted]

    def _emit_scopes(self, g, collapsed):
        """Emit items, nesting each scope path in clusters (one level per scope name)."""
        by_scope = {}
        for scope, dot_id, attrs in self.items:
            by_scope.setdefault(scope, []).append((dot_id, attrs))
        for dot_id, attrs in by_scope.pop((), []):
            g.node(dot_id, **attrs)
        top_level = sorted({scope[:1] for scope in by_scope}, key=self._scope_order)
        for top in top_level:
            if top in collapsed:
                members = [s for s in by_scope if s[:1] == top]
                n_forward = sum(1 for s in members for d, _ in by_scope[s] if d.startswith("f"))
                n_backward = sum(1 for s in members for d, _ in by_scope[s] if d.startswith("b"))
                counts = ", ".join(f"{n} {kind} ops" for n, kind in (
                    (n_forward, "forward"), (n_backward, "backward")) if n)
                g.node("cluster_box_" + _scope_id(top), label=_lines(top[0], counts),
                       shape="box3d", style="filled", fillcolor="#eeeeee")
                continue
            self._emit_cluster(g, top, by_scope)

    def _emit_cluster(self, parent, scope, by_scope):
        with parent.subgraph(name="cluster_" + _scope_id(scope)) as sub:
            sub.attr(label=scope[-1], style="rounded,dashed", color="#999999")
            for dot_id, attrs in by_scope.get(scope, []):
                sub.node(dot_id, **attrs)
            children = {s[:len(scope) + 1] for s in by_scope
                        if len(s) > len(scope) and s[:len(scope)] == scope}
            for child in sorted(children, key=self._scope_order):
                self._emit_cluster(sub, child, by_scope)

    def _scope_order(self, scope):
        return (self.scope_rank.get(scope, len(self.scope_rank)), scope)

    def _legend(self, g):
        low, high = self.norm_range
        with g.subgraph(name="cluster_legend") as legend:
            legend.attr(label="‖∂L/∂·‖ (log scale)", style="rounded", color="#999999")
            previous = None
            for exponent in range(low, high + 1):
                dot_id = f"legend{exponent - low}"
                color = self._norm_color(10.0 ** exponent)
                legend.node(dot_id, label=f"1e{exponent}", shape="box", style="filled",
                            fillcolor=color, fontcolor=_font_on(color))
                if previous is not None:
                    legend.edge(previous, dot_id, style="invis")
                previous = dot_id


# --- labels ---------------------------------------------------------------------------------

def _op_label(node, inline):
    """The op name, constants written in, and the attribute that matters for reading it."""
    op = node.op
    if any(t.constant for t in node.inputs):
        op = f"{op}({', '.join(inline(t) for t in node.inputs)})"
    attrs = node.attrs
    if node.op in ("slice", "slice_grad", "index", "index_grad"):
        return f"{op} {_key_text(attrs['key'])}"
    if node.op == "pow":
        return f"pow ** {_number(attrs['exponent'])}"
    if node.op in ("sum", "concat", "log_softmax"):
        axis = attrs["axis"]
        keep = ", keepdims" if attrs.get("keepdims") else ""
        return f"{op} axis={axis}{keep}"
    if node.op == "transpose" and attrs["axes"] != tuple(reversed(range(len(attrs["axes"])))):
        return f"{op} {attrs['axes']}"
    return op


def _key_text(key):
    parts = []
    for k in key:
        if isinstance(k, slice):
            text = ("" if k.start is None else str(k.start)) + ":" + (
                "" if k.stop is None else str(k.stop))
            parts.append(text + (f":{k.step}" if k.step is not None else ""))
        elif k is None:
            parts.append("None")
        elif k is Ellipsis:
            parts.append("...")
        elif isinstance(k, xp.ndarray):
            parts.append(f"ints{k.shape}")
        else:
            parts.append(str(k))
    return "[" + ", ".join(parts) + "]"


def _font_on(fill):
    """Black text, or white on the dark half of the gradient-norm palette."""
    dark = NORM_COLORS[:len(NORM_COLORS) // 2] + [SUM_FILL]
    return "white" if fill in dark else "black"


def _lines(*lines):
    """A multi-line label, with DOT's line-break escape rather than raw newlines."""
    return "\\n".join(lines)


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
    """A DOT-safe id for a scope path; other characters are spelled out, so ids stay unique."""
    return "_".join("".join(c if c.isalnum() else f"x{ord(c):x}" for c in name)
                    for name in scope)


def _is_seed(t):
    return t._node is None and not t.constant and not t.requires_grad and bool(t.name) \
        and t.name.startswith("∂L/∂")

