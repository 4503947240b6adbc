"""The cell-state highway of an LSTM's backward pass, for the explorer: the chain
∂L/∂c_t → (⊙ f_t) → ∂L/∂c_{t−1} → ..., and how much of each ∂L/∂c_t came along it.

A node is on the highway when it is the Σ of a cell state's gradient, or the gradient of a
cell state through a product with it (∂L/∂c_prev = ∂L/∂c ⊙ f: the vjp of the mul in
f ⊙ c_prev, for c_prev). The gradient that reaches c_t through tanh(c_t), that is through h_t,
is not: it is the summand the highway is compared with. A cell state is a tensor the model
marks with the role CELL_STATE (examples.lstm_cell, the lstm package's cells) that plays the
part: made as f ⊙ c_prev + g ⊙ i (a sum of two products), or read by a product that such a
sum reads. A tensor merely named c is not one.
"""
from ..core.tensor import CELL_STATE
from ..ops.elementwise import Add, Mul


def mark_highway(nodes, sources):
    """Set node["highway"] = True on the highway's nodes (nodes and sources: the explorer's
    node dicts and their (tensor, graph node) pairs), and on each Σ of a cell state's
    gradient node["shares"]: the norms of what came along the highway and through h."""
    forward = [g for _, g in sources if g is not None and not g.is_backward]
    states = _cell_states(forward)
    on = set()
    for node, (_, graph_node) in zip(nodes, sources):
        if graph_node is None or graph_node.grad_of is None:
            continue
        if id(graph_node.grad_of) not in states:
            continue
        forward = graph_node.forward_node
        along_f = (node["kind"] == "backward" and forward is not None
                   and isinstance(forward.prim, Mul)
                   and any(t is graph_node.grad_of for t in forward.inputs))
        if node["kind"] == "sum" or along_f:
            node["highway"] = True
            on.add(node["id"])
    for node, (_, graph_node) in zip(nodes, sources):
        # The whole gradient of a cell state is what the book calls ds: the Σ of its two
        # parts, or at the last step the one part through h.
        if (node["kind"] in ("backward", "sum") and graph_node is not None
                and graph_node.grad_of is not None and id(graph_node.grad_of) in states
                and not node["lines"][0].startswith("part of ") and node.get("role")
                and not (node["kind"] == "backward" and node.get("highway"))):   # dc_prev
            node["role"] += " (the book's ds)"
    for node in nodes:
        if node.get("highway") and node["kind"] == "sum" and node.get("partials"):
            highway = [p for p in node["partials"] if p["from"] in on]
            through_h = [p for p in node["partials"] if p["from"] not in on]
            if highway:            # no share to give where nothing came along the highway
                node["shares"] = {"highway": _norm_of(nodes, highway),
                                  "through_h": _norm_of(nodes, through_h)}
    return on


def _cell_states(forward_nodes):
    """ids of the tensors that play a cell state's part (see the module's docstring)."""
    def is_update(node):          # c = f ⊙ c_prev + g ⊙ i
        return (node is not None and isinstance(node.prim, Add) and len(node.inputs) == 2
                and all(t._node is not None and isinstance(t._node.prim, Mul)
                        for t in node.inputs))

    states = set()
    for node in forward_nodes:
        if is_update(node) and node.output is not None:
            states.add(id(node.output))
            for product in (t._node for t in node.inputs):
                states.update(id(t) for t in product.inputs)
    marked = {id(t) for node in forward_nodes for t in (*node.inputs, node.output)
              if t is not None and t.role == CELL_STATE}
    return states & marked


def _norm_of(nodes, partials):
    """The norm of the sum of these summands (one summand each way in an LSTM)."""
    norms = [nodes[p["from"]]["value"]["stats"]["norm"] for p in partials
             if nodes[p["from"]].get("value")]
    if not norms:
        return 0.0
    return norms[0] if len(norms) == 1 else None     # several: not one number to show
