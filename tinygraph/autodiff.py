"""Reverse-mode differentiation over the recorded graph.

`grad` walks the nodes in reverse topological order and calls each primitive's vjp. With
`create_graph=False` the vjps run unrecorded (the fast path); with `create_graph=True` they are
recorded, so the gradients are ordinary graph nodes, marked as backward nodes, that can be
rendered or differentiated again. A tensor used several times gets the sum of its gradient
contributions through explicit add nodes.
"""
import contextlib

from .backend import xp
from .anomaly import check_result
from .deferred import Deferred
from .mode import recording_backward, state
from .tensor import Tensor, describe
from . import ops


def nodes(outputs):
    """The op nodes reachable from `outputs`, in the order they were created.

    Every node is created after the nodes of its inputs, so creation order is a topological
    order (inputs before users), and it follows the program as written. The search is
    iterative, so graph depth is not limited by Python's recursion limit.
    """
    found, stack = {}, [out._node for out in _as_list(outputs, "nodes") if out._node is not None]
    while stack:
        node = stack.pop()
        if id(node) in found:
            continue
        found[id(node)] = node
        stack.extend(inp._node for inp in node.inputs
                     if inp._node is not None and id(inp._node) not in found)
    return sorted(found.values(), key=lambda node: node.serial)


def grad(outputs, inputs, grad_outputs=None, create_graph=False, allow_unused=False):
    """Gradients of `outputs` with respect to `inputs`, as a list of Tensors.

    outputs: a Tensor or a list of them; their gradients are summed.
    inputs: a Tensor or a list of them (floating point, requiring grad).
    grad_outputs: the seed for each output (default: 1 for scalar outputs; required otherwise).
    create_graph: record the backward pass, so the gradients are graph nodes that can be
        rendered and differentiated again (e.g. for Hessian-vector products).
    allow_unused: return None for an input the outputs do not depend on, instead of raising.
    """
    single = isinstance(inputs, Tensor)
    outputs = _as_list(outputs, "grad")
    inputs = _as_list(inputs, "grad")
    for t in inputs:
        _check_differentiable(t)
    seeds = _seeds(outputs, grad_outputs, create_graph)
    grads = _run_backward(outputs, seeds, inputs, create_graph)
    owned = {id(seed.data) for seed in seeds}
    result = []
    for t in inputs:
        g = grads.get(id(t))
        if g is None:
            reachable = _reaches(outputs, t)
            if not reachable and not allow_unused:
                raise ValueError(f"grad: {describe(t)} is not part of the graph of the "
                                 "outputs; pass allow_unused=True to get None for it")
            # Reachable only through non-differentiable paths (e.g. a step): zero gradient.
            g = Tensor(xp.zeros_like(t.data)) if reachable else None
        elif not create_graph:
            g = Tensor(_owned_array(g.data, owned))
        result.append(g)
    return result[0] if single else result


def backward(output, grad_output=None, create_graph=False):
    """Accumulate d(output)/d(leaf) into `.grad` of every leaf that requires grad.

    Without create_graph each leaf gets an array of its own. With create_graph the gradients
    are graph values: two leaves with the same gradient value (x and y in x + y) may share one
    gradient Tensor.
    """
    if not isinstance(output, Tensor):
        raise TypeError(f"backward: expected a Tensor, got {type(output).__name__}")
    if not output.requires_grad:
        raise ValueError(f"backward: {describe(output)} does not require grad: no input of "
                         "its graph was created with requires_grad=True (or it was computed "
                         "under no_grad)")
    order = nodes([output])             # once per call: the training step's hot path
    targets = leaves([output], order)
    seeds = _seeds([output], None if grad_output is None else [grad_output], create_graph)
    grads = _run_backward([output], seeds, targets, create_graph, order)
    owned = {id(seed.data) for seed in seeds}
    for leaf in targets:
        g = grads.get(id(leaf))
        if g is None:
            # Reached only through non-differentiable paths (e.g. a step), as in grad().
            g = Tensor(xp.zeros_like(leaf.data))
        if leaf.grad is None:
            leaf.grad = g if create_graph else Tensor(_owned_array(g.data, owned))
        elif create_graph:
            with recording_backward(None, "accumulate"):
                leaf.grad = ops.add(leaf.grad, g)
        else:
            leaf.grad = Tensor(leaf.grad.data + g.data)


@contextlib.contextmanager
def _fast_path():
    """No recording, and gradients may be deferred (see tinygraph.deferred)."""
    saved = state.grad_enabled, state.defer_gradients
    # Under detect_anomaly nothing is deferred, so every gradient is checked where it is made.
    state.grad_enabled, state.defer_gradients = False, not state.detect_anomaly
    try:
        yield
    finally:
        state.grad_enabled, state.defer_gradients = saved


def _owned_array(array, owned):
    """The array, or a copy where it may be shared: a (possibly read-only) view, a seed, or an
    array already handed out for another input.

    Pass-through vjps (add, reshape) hand the same array to several inputs; a user scaling one
    gradient in place must change neither another's nor the seed.
    """
    if array.base is not None or id(array) in owned:
        array = array.copy()
    owned.add(id(array))
    return array


def _run_backward(outputs, seeds, inputs, create_graph, order=None):
    """Propagate seeds back to `inputs`; returns {id(input): gradient Tensor}. `order` is
    nodes(outputs) when the caller has it already."""
    order = nodes(outputs) if order is None else order
    wanted = {id(t) for t in inputs}
    # Only nodes on a path to a wanted input run their vjp, and only for such inputs.
    on_path = set()

    def leads_to_wanted(t):
        return t.requires_grad and (id(t) in wanted or (
            t._node is not None and id(t._node) in on_path))

    for node in order:
        if any(leads_to_wanted(inp) for inp in node.inputs):
            on_path.add(id(node))

    # id(tensor) -> (its gradient so far, the use it came from, whether the engine owns it)
    pending = {}
    for out, seed in zip(outputs, seeds):
        _accumulate(pending, out, seed, None, create_graph)
    # The fast path runs every vjp unrecorded, deferring what it can (entered once, not per
    # node: the per-node context switches were a visible share of small steps).
    with contextlib.nullcontext() if create_graph else _fast_path():
        return _propagate(order, on_path, leads_to_wanted, wanted, pending, create_graph)


def _propagate(order, on_path, leads_to_wanted, wanted, pending, create_graph):
    found = {}
    for node in reversed(order):
        if id(node) not in on_path:
            continue
        out = node.output
        entry = pending.pop(id(out), None)
        if entry is None:
            continue
        g = entry[0]
        if id(out) in wanted:
            found[id(out)] = g
        needs = [leads_to_wanted(inp) for inp in node.inputs]
        state.vjp_of = node                 # named by detect_anomaly's errors
        try:
            if create_graph:
                with recording_backward(node, "vjp"):
                    input_grads = node.prim.vjp(node, g, needs)
            else:
                input_grads = node.prim.vjp(node, g, needs)
        finally:
            state.vjp_of = None
        for inp, gi, need in zip(node.inputs, input_grads, needs):
            if need and gi is not None:
                if gi.shape != inp.shape or gi.dtype != inp.dtype:
                    raise RuntimeError(f"internal error: the vjp of {node.op} returned a "
                                       f"{gi.dtype} gradient of shape {gi.shape} for "
                                       f"{describe(inp)} ({inp.dtype})")
                made_here = gi._node is not None and gi._node.forward_node is node
                if create_graph and made_here and gi._node.grad_of is None:
                    gi._node.grad_of = inp   # this vjp's contribution to d/d(inp)
                _accumulate(pending, inp, gi, node, create_graph)
    for key, (g, _, _) in pending.items():
        if key in wanted:
            found[key] = g
    return found


def _accumulate(pending, tensor, contribution, use, create_graph):
    """Add one use's gradient contribution for `tensor`.

    Recording (create_graph), the sum is an explicit add node. On the fast path the sum is
    the same arithmetic done in place in a buffer the engine owns: entries are
    (gradient, use, owned), and only a buffer this function allocated is ever written to.
    """
    entry = pending.get(id(tensor))
    if entry is None:
        pending[id(tensor)] = (contribution, use, False)
        return
    previous, previous_use, owned = entry
    if not create_graph:
        merged = previous.merge(contribution) if isinstance(previous, Deferred) else None
        if merged is not None:
            pending[id(tensor)] = (merged, None, False)
        else:
            if state.detect_anomaly:
                with xp.errstate(all="ignore"):       # the check below says it better
                    total = _add_in_place(previous, owned, contribution)
                check_result("add", total, [previous.data, contribution.data],
                             where=f"summing the gradients of {describe(tensor)}")
            else:
                total = _add_in_place(previous, owned, contribution)
            pending[id(tensor)] = (Tensor(total), None, True)
        return
    with recording_backward(None, "accumulate"):
        total = ops.add(previous, contribution)
    if total._node is not None:
        total._node.grad_sources = (previous_use, use)
        total._node.grad_of = tensor
        total._node.scope = tensor._node.scope if tensor._node is not None else ()
    # After the first sum the running total is a partial sum, not one use's gradient.
    pending[id(tensor)] = (total, None, False)


def _add_in_place(previous, owned, contribution):
    """previous + contribution as an array the engine owns, reusing previous's when it can.

    A deferred contribution (see tinygraph.deferred) adds itself into the buffer: the
    gradients of T slices of one tensor cost one buffer, not T.
    """
    deferred = isinstance(contribution, Deferred)
    if owned:
        buffer = previous.data
    elif isinstance(previous, Deferred):
        # A fresh array, not cached in the object: the same deferred value may be the
        # pending gradient of another tensor too (add's vjp hands g to both inputs).
        buffer = previous.compute()
    elif deferred:
        buffer = previous.data.copy()
    else:
        return previous.data + contribution.data
    if deferred:
        contribution.add_into(buffer)
    else:
        buffer += contribution.data
    return buffer


def _seeds(outputs, grad_outputs, create_graph):
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, (Tensor, xp.ndarray)):
        grad_outputs = [grad_outputs]
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad: got {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
    seeds = []
    for out, seed in zip(outputs, grad_outputs):
        if not xp.issubdtype(out.dtype, xp.floating):
            raise TypeError(f"grad: cannot differentiate {describe(out)} of dtype {out.dtype}; "
                            "only floating-point outputs have gradients")
        if seed is None:
            if out.size != 1:
                raise ValueError(f"grad: {describe(out)} is not a scalar; pass a seed gradient "
                                 "of the same shape (grad_outputs= / backward(grad))")
            seed = Tensor(xp.ones_like(out.data), constant=True)
        else:
            seed = seed if isinstance(seed, Tensor) else Tensor(xp.array(seed), constant=True)
            if seed.shape != out.shape:
                raise ValueError(f"grad: seed of shape {seed.shape} does not match "
                                 f"{describe(out)}")
            if seed.dtype != out.dtype:
                raise TypeError(f"grad: seed dtype {seed.dtype} does not match {describe(out)} "
                                f"of dtype {out.dtype}")
        seeds.append(seed)
    return seeds


def _check_differentiable(t):
    if not xp.issubdtype(t.dtype, xp.floating):
        raise TypeError(f"grad: {describe(t)} has dtype {t.dtype}; gradients exist only for "
                        "floating-point tensors")
    if not t.requires_grad:
        raise ValueError(f"grad: {describe(t)} does not require grad; create it with "
                         "requires_grad=True")


def leaves(outputs, order=None):
    """The leaves that require grad reachable from `outputs`, in first-use order (`order`:
    nodes(outputs), when the caller has it already)."""
    seen, found = set(), []
    order = nodes(outputs) if order is None else order
    candidates = list(outputs) + [inp for node in order for inp in node.inputs]
    for t in candidates:
        if t._node is None and t.requires_grad and id(t) not in seen:
            seen.add(id(t))
            found.append(t)
    return found


def _reaches(outputs, tensor):
    if any(out is tensor for out in outputs):
        return True
    return any(inp is tensor for node in nodes(outputs) for inp in node.inputs)


def _as_list(tensors, fn_name):
    if not isinstance(tensors, (Tensor, list, tuple)):
        raise TypeError(f"{fn_name}: expected a Tensor or a list of Tensors, got "
                        f"{type(tensors).__name__}")
    items = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    for t in items:
        if not isinstance(t, Tensor):
            raise TypeError(f"{fn_name}: expected Tensors, got {type(t).__name__}")
    return items
