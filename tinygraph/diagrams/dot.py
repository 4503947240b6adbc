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

What is drawn comes from tinygraph.diagrams.picture (plain data, no Graphviz); this module only
turns it into DOT: colours, shapes, clusters, the caption and the legend. Node ids and order
depend only on the graph, so the same graph always gives the same DOT text.
"""
import math
import pathlib
import shutil

import graphviz

from .picture import BACKWARD_KINDS, VIEWS, build   # VIEWS: for the command line

FORMATS = ("svg", "png", "pdf", "dot")

# (forward tint, backward tone) pairs. Colours mean roles: a node takes the hue of the role it
# plays (picture.Box.hue: the gate f and its gradient share one in every time step), forward
# nodes its tint, backward nodes its stronger tone.
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
        non-scalar output with a symbolic input named ∂L/∂<name>. Tensor seeds are drawn as
        upstream gradients whatever their name; for gradients passed as `outputs`, the seeds
        are the leaves only their backward graph reads.
    color_by: None, or "grad_norm" to colour nodes by log10 of their gradient's norm.
    collapse: scope names whose clusters are drawn as one box each, or True for all.
    """
    if color_by not in (None, "grad_norm"):
        raise ValueError(f"render: unknown color_by {color_by!r}; use None or 'grad_norm'")
    model = build(outputs, view, simplify, wrt, grad_outputs, grad_norms=color_by is not None)
    return _Emitter(model).digraph(collapse, title)


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


# DOT id prefixes: f forward op, t leaf, s seed, g ghost, b backward op or sum, k constant term,
# r result; the number is the model's node id.
PREFIX = {"op": "f", "tensor": "t", "parameter": "t", "seed": "s", "ghost": "g", "backward": "b",
          "sum": "b", "constant": "k", "result": "r"}


class _Emitter:
    """Turns one model into a Digraph, nesting nodes in clusters by scope."""

    def __init__(self, model):
        self.model = model
        self.dot_ids = [PREFIX[n.kind] + str(n.id) for n in model.nodes]
        self.scope_rank = {scope: k for k, scope in enumerate(model.scopes)}
        self.bands = _bands(model.grad_norms or [])

    def digraph(self, collapse, title):
        g = graphviz.Digraph("tinygraph", graph_attr={
            "rankdir": "TB", "fontname": "Helvetica", "fontsize": "11", "ordering": "out",
            "nodesep": "0.25", "ranksep": "0.35"},
            node_attr={"fontname": "Helvetica", "fontsize": "10", "margin": "0.08,0.03"},
            edge_attr={"fontname": "Helvetica", "fontsize": "9", "arrowsize": "0.7"})
        caption = self._caption(title)
        if caption:
            g.attr(label=_lines(*caption), labelloc="t")
        collapsed = self._collapsed_scopes(collapse)
        redirect = {}
        for node in self.model.nodes:
            hidden = next((s for s in collapsed if node.scope[:len(s)] == s), None)
            if hidden is not None:
                redirect[self.dot_ids[node.id]] = "collapsed_" + _scope_id(hidden)
        self._emit_scopes(g, collapsed)
        seen = set()
        boxes = set(redirect.values())
        for edge in self.model.edges:
            tail, head = self.dot_ids[edge.tail], self.dot_ids[edge.head]
            tail, head = redirect.get(tail, tail), redirect.get(head, head)
            if tail == head:
                continue
            attrs = self._edge_attrs(edge)
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
        if self.model.grad_norms is not None:
            self._legend(g)
        return g

    # --- nodes and edges ---------------------------------------------------------------------
    def _node_attrs(self, node):
        label = _lines(*node.lines)
        kind = node.kind
        if kind == "op":
            fill = self._fill(node, HUES[_hue(node) % len(HUES)][0])
            return dict(label=label, shape="box", style="rounded,filled", fillcolor=fill,
                        fontcolor=_font_on(fill))
        if kind in BACKWARD_KINDS:
            if kind == "sum":
                fill, font = SUM_FILL, "white"
            else:   # the stronger tone of the hue of the role it plays
                fill, font = HUES[_hue(node) % len(HUES)][1], "black"
            if node.grad_norm is not None:
                fill = self._norm_color(node.grad_norm)
                font = _font_on(fill)
            style = "rounded,filled,dashed" if node.recomputed else "rounded,filled,bold"
            return dict(label=label, shape="box", style=style, fillcolor=fill,
                        fontcolor=font, color="#5b0f00")
        if kind in ("tensor", "parameter"):
            parameter = kind == "parameter"
            fill = self._fill(node, PARAMETER_FILL if parameter else LEAF_FILL)
            return dict(label=label, shape="box" if parameter else "ellipse",
                        peripheries="2" if parameter else "1", style="filled",
                        fillcolor=fill, fontcolor=_font_on(fill))
        if kind == "seed":
            return dict(label=label, shape="box", style="filled,bold", fillcolor="#f4cccc",
                        color=GRAD_EDGE)
        if kind == "ghost":
            return dict(label=label, shape="box", style="dashed,rounded", color=SAVED_EDGE,
                        fontcolor="#555555")
        if kind == "constant":
            return dict(label=label, shape="plaintext", fontcolor=GRAD_EDGE)
        return dict(label=label, shape="box", style="rounded,filled,bold", fillcolor=SUM_FILL,
                    fontcolor="white", color="#5b0f00")          # a result

    def _edge_attrs(self, edge):
        if edge.kind == "data":
            return {}
        if edge.kind == "gradient":
            attrs = {"color": GRAD_EDGE, "penwidth": "1.6"}
            if edge.use is not None:
                attrs["label"] = _text(edge.use)
                attrs["fontcolor"] = GRAD_EDGE
            return attrs
        attrs = {"style": "dashed", "color": SAVED_EDGE, "arrowhead": "empty"}
        if self.model.view == "both" and self.model.nodes[edge.head].kind in BACKWARD_KINDS:
            attrs["constraint"] = "false"   # rank backward nodes by the gradient flow alone
        return attrs

    # --- gradient-norm colours ---------------------------------------------------------------
    def _fill(self, node, default):
        return default if node.grad_norm is None else self._norm_color(node.grad_norm)

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

    def _legend(self, g):
        entries = [(_band_color(k, len(self.bands)),
                    f"1e{low}" if high == low + 1 else f"1e{low} – 1e{high}")
                   for k, (low, high) in enumerate(self.bands)]
        norms = self.model.grad_norms
        if any(v == 0 for v in norms):
            entries.insert(0, (ZERO_FILL, "0"))
        if any(not math.isfinite(v) for v in norms):
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

    # --- caption and clusters ----------------------------------------------------------------
    def _caption(self, title):
        """The caption's lines."""
        parts = [title] if title else []
        view = self.model.view
        simplified = self.model.simplified
        if simplified is not None and simplified[0] != simplified[1]:
            parts.append("backward graph simplified: {} → {} nodes".format(*simplified))
        elif simplified is not None:
            parts.append(f"backward graph: {simplified[1]} nodes (nothing to simplify)")
        elif view != "forward":
            parts.append(f"backward graph as generated: {self.model.backward_count} nodes")
        # The legend's lines say only what this graph has (short lines, not one long one: the
        # caption must not widen a small graph).
        if any(e.kind == "saved" for e in self.model.edges):
            parts.append("dashed: forward values the backward pass reads")
        if any(n.recomputed for n in self.model.nodes):
            parts.append("dashed boxes: ops recomputed from a checkpoint")
        if any(n.kind == "sum" for n in self.model.nodes):
            parts.append("Σ: a gradient summed over the uses named on its edges")
        return parts

    def _collapsed_scopes(self, collapse):
        """The scope paths drawn as one box: the outermost ones named in `collapse` (a name
        matches at any depth), or every top-level scope for collapse=True."""
        paths = {n.scope[:depth] for n in self.model.nodes for depth in range(1, len(n.scope) + 1)}
        if collapse is True:
            return sorted(p for p in paths if len(p) == 1)
        wanted = [collapse] if isinstance(collapse, str) else list(collapse)
        known = {p[-1] for p in paths}
        unknown = [w for w in wanted if w not in known]
        if unknown:
            raise ValueError(f"render: cannot collapse unknown scope(s) {unknown}; the graph "
                             f"has {sorted(known)}")
        chosen = [p for p in paths if p[-1] in wanted]
        return sorted(p for p in chosen if not any(q != p and p[:len(q)] == q for q in chosen))

    def _emit_scopes(self, g, collapsed):
        """Emit nodes, nesting each scope path in clusters (one level per scope name)."""
        by_scope = {}
        for node in self.model.nodes:
            by_scope.setdefault(node.scope, []).append(node)
        for node in by_scope.pop((), []):
            g.node(self.dot_ids[node.id], **self._node_attrs(node))
        for top in sorted({scope[:1] for scope in by_scope}, key=self._scope_order):
            self._emit_cluster(g, top, by_scope, collapsed)

    def _collapsed_box(self, parent, scope, by_scope):
        members = [n for s in by_scope if s[:len(scope)] == scope for n in by_scope[s]]
        n_forward = sum(1 for n in members if n.kind == "op")
        n_backward = sum(1 for n in members if n.kind in BACKWARD_KINDS)
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
            for node in by_scope.get(scope, []):
                sub.node(self.dot_ids[node.id], **self._node_attrs(node))
            children = {s[:len(scope) + 1] for s in by_scope
                        if len(s) > len(scope) and s[:len(scope)] == scope}
            for child in sorted(children, key=self._scope_order):
                self._emit_cluster(sub, child, by_scope, collapsed)

    def _scope_order(self, scope):
        return (self.scope_rank.get(scope, len(self.scope_rank)), scope)


def _bands(norms):
    """One colour per band of whole decades (at most len(NORM_COLORS) bands), so every colour
    a node can get is in the legend."""
    decades = [math.log10(v) for v in norms if v > 0 and math.isfinite(v)]
    if not decades:
        return []
    low, high = math.floor(min(decades)), math.floor(max(decades)) + 1
    width = max(1, math.ceil((high - low) / len(NORM_COLORS)))
    return [(low + k * width, low + (k + 1) * width)
            for k in range(math.ceil((high - low) / width))]


# --- labels ---------------------------------------------------------------------------------

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


def _scope_id(scope):
    """A DOT-safe id for a scope path, one-to-one: letters and digits stay, any other
    character (the escape letter x included) is spelled out as x<hex>x."""
    return "_".join("".join(c if c.isascii() and c.isalnum() and c != "x" else f"x{ord(c):x}x"
                            for c in name) for name in scope)


def _hue(node):
    """The node's role hue number; its forward order where it has none."""
    return node.hue if node.hue is not None else node.step or 0
