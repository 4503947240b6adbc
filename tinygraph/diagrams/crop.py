"""A crop of a diagram: the gradient nodes a figure is about, drawn bold, with their
neighbourhood (the docs' walk-through shows one stop of the backward pass at a time)."""
from dataclasses import replace

from .dot import _Emitter, _lines
from .picture import Picture, build

SUBSCRIPTS = "₀₁₂₃₄₅₆₇₈₉"


def crop_dot(outputs, selectors, depth=1, view="backward", simplify=True, title=None,
                wrt=None, grad_outputs=None):
    """DOT text of a crop of the graph `tinygraph.render` would draw: the gradient nodes that
    `selectors` name, drawn bold, with the nodes up to `depth` edges away (what they read and
    what reads them), in their scope clusters.

    A selector is ``SCOPE/NAME`` (``t=3/c2``: the nodes of scope t=3 that are a gradient of
    the tensor named c2, "part of ∂L/∂c2" included; ``t=3/f`` also finds f₃, the name the
    diagram gives f in step 3) or ``NAME`` for a node outside every scope (``Wh``: the Σ
    ∂L/∂Wh). The crop is cut from tinygraph's own model of the whole picture and
    drawn by its own emitter, so it shows what the full diagram shows, labels and colours
    included; a selector that matches nothing is an error (a page cannot quietly lose its
    figure when the graph changes).
    """
    model = build(outputs, view, simplify, wrt, grad_outputs)
    chosen = set()
    for selector in selectors:
        scope, _, name = selector.rpartition("/")
        scope = tuple(scope.split("/")) if scope else ()
        hits = {n.id for n in model.nodes if n.grad_of is not None and n.scope == scope
                and name in (n.grad_of, n.grad_of.rstrip(SUBSCRIPTS))}
        if not hits:
            known = sorted({"/".join(n.scope + (n.grad_of,)) for n in model.nodes
                            if n.grad_of is not None})
            raise ValueError(f"focus {selector!r} matches no gradient node; there are "
                             f"{', '.join(known)}")
        chosen |= hits
    kept = set(chosen)
    for _ in range(depth):
        kept |= {e.head for e in model.edges if e.tail in kept} \
            | {e.tail for e in model.edges if e.head in kept}
    new_id = {old: k for k, old in enumerate(sorted(kept))}
    crop = Picture(model.view, scopes=model.scopes, backward_count=model.backward_count)
    crop.nodes = [replace(model.nodes[old], id=new_id[old]) for old in sorted(kept)]
    crop.edges = [replace(e, tail=new_id[e.tail], head=new_id[e.head]) for e in model.edges
                  if e.tail in kept and e.head in kept]
    emitter = _Emitter(crop)
    graph = emitter.digraph((), None)
    for old in chosen:                  # the nodes the stop is about: a thick blue outline
        graph.node(emitter.dot_ids[new_id[old]], penwidth="3", color="#1c4587")
    drawn = f"{len(kept)} of the {len(model.nodes)} nodes of the " + \
        ("simplified " if simplify else "generated ") + f"{view} view"
    legend = [line for line, present in (
        ("dashed: forward values the backward pass reads",
         any(e.kind == "saved" for e in crop.edges)),
        ("Σ: a gradient summed over the uses named on its edges",
         any(n.kind == "sum" and n.lines[1:2] == ["Σ"] for n in crop.nodes))) if present]
    # A later graph label replaces the emitter's caption (which counts the whole graph).
    graph.attr(label=_lines(*([title] if title else []), drawn, *legend), labelloc="t")
    return graph.source
