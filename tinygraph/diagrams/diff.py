"""Compare two backward graphs side by side, with the nodes that mean the same thing matched.

    tg.explore_diff(lstm_h, gru_h, labels=("LSTM", "GRU"))            # two cells
    tg.explore_diff(loss, loss, variants=("generated", "simplified"))  # one graph, two forms
    tg.explore_diff(first, second)     # gradients made with create_graph=True: 1st vs 2nd order

`a` and `b` are outputs as `tg.explore` takes them (a Tensor or a list of Tensors; a gradient
made with create_graph=True is drawn as the backward graph that computed it). Each side is
drawn from the picture (`picture.build`), generated or simplified as `variants` says, and
the page (one offline HTML file, like the explorer's) lays both out with Graphviz in the
browser.

How nodes are matched, in this order; each step pairs only nodes that no earlier step paired,
and only where the pairing is unambiguous (one candidate on each side):

1. **The same tensor.** A node that draws the very same tensor in both graphs: the forward
   values and leaves when both sides come from one forward graph, the first-order backward
   nodes inside a second-order graph.
2. **The gradient of the same tensor.** A gradient node is known by the tensor it is the
   gradient of (∂L/∂h_prev, ∂L/∂Wx) and by whether it is the whole gradient (whatever its op:
   a matmul, a Σ of uses, a concat) or one use's part of it (`part of ∂L/∂c`, which a Σ then
   sums). Names the program gave count between any two graphs (the LSTM's and the GRU's
   ∂L/∂x); the names the diagram makes up for unnamed tensors (∂L/∂mul₁) only when both
   sides share their forward graph, where they name the same tensor. Forward values and
   leaves match by their given name (`x`, `Wh`), upstream gradients by their label. Where a
   name is not unique, the scope and then the op tell the nodes apart.
3. **Structure, propagated.** Two nodes of the same kind and op whose inputs are all matched,
   pair for pair (`transpose` of the matched Wh, `1 − f` of the matched f); then two whose
   consumers are all matched. Repeated until nothing more matches.

Nodes left over are marked "only in A" or "only in B".
"""
from collections import Counter
from dataclasses import dataclass

from ..core.autodiff import nodes as graph_nodes
from ..core.tensor import Tensor
from .explorer import Explorer, _page, _variant, visible_seed
from .picture import VIEWS, build

VARIANTS = ("generated", "simplified")
GRADIENT_KINDS = ("backward", "sum", "result")
LEAF_KINDS = ("tensor", "parameter")
VALUE_KINDS = ("op", "ghost")
SCRIPTS = ("diff.js",)
STYLES = ("diff.css",)


class DiffExplorer(Explorer):
    """A diff page: `.html`, `.data`, `.save(path)`, and `_repr_html_` for notebooks."""

    command = "explore_diff"


@dataclass
class _Side:
    """One graph of the two: its model as page data, and what matching needs beyond it."""

    data: dict           # the variant's data as the explorer embeds it (nodes, edges, ...)
    sources: list        # per node: (its tensor, the graph node or None); kept alive here
    given_names: set     # names the program gave to tensors of this graph
    forward: tuple       # ids of its forward graph's nodes, in order


def explore_diff(a, b, labels=None, view="backward", variants=("simplified", "simplified"),
                 title=None):
    """A page with the graphs of `a` and `b` side by side and their nodes matched (see the
    module's docstring for the rule). `a`, `b`: outputs as for `tinygraph.explore`, or
    gradients made with create_graph=True. labels: what to call the two sides (default "A",
    "B"). view: "backward" (default), "both" or "forward", or one per side (forward mode's
    tangent graph, tg.jvp's, beside a gradient: ("forward", "backward")). variants:
    "generated" or "simplified" for each side (one string for both)."""
    variants = _check_variants(variants)
    labels = _check_labels(labels)
    views = (view, view) if isinstance(view, str) else tuple(view)
    if len(views) != 2 or any(v not in VIEWS for v in views):
        raise ValueError(f"explore_diff: unknown view {view!r}; choose one of "
                         f"{', '.join(VIEWS)}, or one per side")
    values = {}      # id(tensor) -> embedded value, shared by the sides (kept alive)
    sides = [_side(outputs, side_view, variant, label, values)
             for outputs, side_view, variant, label in zip((a, b), views, variants, labels)]
    pairs = match(*sides)
    counts = {"matched": len(pairs), "only_a": len(sides[0].data["nodes"]) - len(pairs),
              "only_b": len(sides[1].data["nodes"]) - len(pairs)}
    for k, side in enumerate(sides):
        for node in side.data["nodes"]:
            node["pair"] = None
        for number, pair in enumerate(pairs, start=1):
            side.data["nodes"][pair[k]]["pair"] = number
    shown = [f"{label} ({variant})" for label, variant in zip(labels, variants)]
    data = {"title": title or f"tinygraph diff: {shown[0]} vs {shown[1]}",
            "view": views[0] if views[0] == views[1] else list(views),
            "sides": [dict(side.data, label=label, variant=variant)
                      for side, label, variant in zip(sides, labels, variants)],
            "pairs": [{"a": x, "b": y, "by": by} for x, y, by in pairs], "counts": counts}
    return DiffExplorer(_page(data, "diff.html", SCRIPTS, STYLES), data)


def _check_variants(variants):
    if isinstance(variants, str):
        variants = (variants, variants)
    variants = tuple(variants)
    if len(variants) != 2 or any(v not in VARIANTS for v in variants):
        raise ValueError(f"explore_diff: variants must be two of {', '.join(VARIANTS)} (one "
                         f"per side) or one for both, got {variants!r}")
    return variants


def _check_labels(labels):
    if labels is None:
        return ("A", "B")
    labels = tuple(labels) if not isinstance(labels, str) else (labels,)
    if len(labels) != 2 or not all(isinstance(x, str) and x for x in labels):
        raise ValueError(f"explore_diff: labels must be two non-empty strings, got {labels!r}")
    return labels


def _side(outputs, view, variant, label, values):
    outputs = [outputs] if isinstance(outputs, Tensor) else outputs
    if not isinstance(outputs, (list, tuple)) or not outputs or not all(
            isinstance(t, Tensor) for t in outputs):
        raise TypeError(f"explore_diff: {label} must be a Tensor or a non-empty list of "
                        f"Tensors, got {type(outputs).__name__}")
    outputs = list(outputs)
    try:
        # Seeded as tg.explore seeds: a scalar loss from a drawn ∂L/∂L, kept by simplify.
        model, sources = build(outputs, view, variant == "simplified",
                               grad_outputs=[visible_seed(t) for t in outputs],
                               with_sources=True)
    except ValueError as e:     # build speaks as render; say which side it was
        raise ValueError(f"explore_diff: {label}: {str(e).removeprefix('render: ')}") from None
    every = graph_nodes(outputs)
    given = {t.name for node in every for t in (*node.inputs, node.output)
             if t is not None and t.name}
    given |= {t.name for t in outputs if t.name}
    forward = tuple(id(node) for node in every if not node.is_backward)
    return _Side(_variant(model, sources, values), sources, given, forward)


# --- matching ----------------------------------------------------------------------------------
def match(a, b):
    """The matched pairs of two sides, as (node id in a, node id in b, how) in a's order."""
    state = _Matching(a, b)
    state.by_identity()
    state.by_meaning()
    while state.by_structure("inputs") + state.by_structure("consumers"):
        pass
    return sorted(state.pairs)


class _Matching:
    """The pairs found so far, and the keys each step pairs by."""

    def __init__(self, a, b):
        self.sides = (a, b)
        self.partner = ({}, {})          # per side: node id -> the other side's node id
        self.pairs = []
        self.same_forward = a.forward == b.forward
        self.wholes = tuple(_whole_gradients(s.data) for s in self.sides)

    def _pair(self, x, y, how):
        self.partner[0][x], self.partner[1][y] = y, x
        self.pairs.append((x, y, how))

    def _unmatched(self, k):
        return [n for n in self.sides[k].data["nodes"] if n["id"] not in self.partner[k]]

    def _by_keys(self, keys, how):
        """Pair the nodes whose key (None: none) occurs once on each side; the number paired."""
        found = []
        for k in (0, 1):
            counts, first = Counter(), {}
            for node in self._unmatched(k):
                key = keys(k, node)
                if key is not None:
                    counts[key] += 1
                    first.setdefault(key, node["id"])
            found.append({key: first[key] for key, n in counts.items() if n == 1})
        paired = 0
        for key, x in found[0].items():
            y = found[1].get(key)
            if y is not None:
                self._pair(x, y, how(key) if callable(how) else how)
                paired += 1
        return paired

    def by_identity(self):
        self._by_keys(lambda k, node: id(self.sides[k].sources[node["id"]][0]), "same tensor")

    def by_meaning(self):
        """Gradients by what they are the gradient of; values by name; seeds by label. Where
        a key is not unique, refined by the scope, then by the op."""
        for refine in (lambda n: (), lambda n: (tuple(n["scope"]),),
                       lambda n: (tuple(n["scope"]), n["op"])):
            self._by_keys(lambda k, node: self._meaning(k, node) and
                          self._meaning(k, node) + refine(node), _how_by_meaning)

    def _meaning(self, k, node):
        kind, side = node["kind"], self.sides[k]
        if kind in GRADIENT_KINDS and node["grad_of"] is not None:
            of = node["grad_of"]
            if of not in side.given_names and not self.same_forward:
                return None          # a made-up name (mul₁) means nothing in another graph
            whole = kind != "backward" or node["id"] in self.wholes[k]
            return ("gradient", of, "whole" if whole else "part")
        if kind in LEAF_KINDS + VALUE_KINDS and node["name"]:
            return ("leaf" if kind in LEAF_KINDS else "value", node["name"])
        if kind == "seed":
            return ("seed", node["lines"][0])
        return None

    def by_structure(self, direction):
        """Pair nodes of one kind and op whose inputs (or consumers) are all matched, pair for
        pair; the number paired."""
        ends = tuple(_neighbours(s.data, direction) for s in self.sides)

        def key(k, node):
            near = ends[k].get(node["id"], [])
            if not near or any(i not in self.partner[k] for _, i in near):
                return None
            # Neighbours as pair numbers: a's own ids, b's through their partners in a.
            as_a = sorted((kind, i if k == 0 else self.partner[1][i]) for kind, i in near)
            return (node["kind"], _label(node), tuple(as_a))

        how = "same op on matched inputs" if direction == "inputs" \
            else "same op feeding matched nodes"
        return self._by_keys(key, how)


def _how_by_meaning(key):
    if key[0] == "gradient":
        return f"{'part of ' if key[2] == 'part' else ''}the gradient of {key[1]}"
    if key[0] == "seed":
        return "the same upstream gradient"
    return f"the tensor named {key[1]}"


def _label(node):
    """What a node computes, for structural matching: its op, or a leaf's or constant's text."""
    return node["op"] or node["lines"][0]


def _neighbours(data, direction):
    """node id -> [(edge kind, the node at the other end)] over its inputs or its consumers."""
    found = {}
    for edge in data["edges"]:
        mine, other = (edge["head"], edge["tail"]) if direction == "inputs" \
            else (edge["tail"], edge["head"])
        found.setdefault(mine, []).append((edge["kind"], other))
    return found


def _whole_gradients(data):
    """ids of the backward nodes that are a whole gradient, not one use's part that a Σ (of the
    same tensor's gradient) sums."""
    nodes = data["nodes"]
    parts = {e["tail"] for e in data["edges"] if e["kind"] == "gradient"
             and nodes[e["head"]]["kind"] == "sum"
             and nodes[e["head"]]["grad_of"] == nodes[e["tail"]]["grad_of"]}
    return {n["id"] for n in nodes if n["kind"] == "backward" and n["id"] not in parts}
