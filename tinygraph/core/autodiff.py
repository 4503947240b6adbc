"""Reverse-mode differentiation over the recorded graph.

`grad` walks the nodes in reverse topological order and calls each primitive's vjp. With
`create_graph=False` the vjps run unrecorded (the fast path); with `create_graph=True` they are
recorded, so the gradients are ordinary graph nodes, marked as backward nodes, that can be
rendered or differentiated again. A tensor used several times gets the sum of its gradient
contributions, summed by the gradient accumulator (tinygraph.core.accumulate): explicit add
nodes when recording, an in-place buffer on the fast path.
"""
import contextlib
import gc
import operator

from ..backend import xp
from .accumulate import Accumulator, LazyTerms
from .interpreter import interpreter
from .state import changed, current, recording_backward
from .tensor import Tensor, add_to_grad, describe, update_grad


def nodes(outputs, given=()):
    """The op nodes reachable from `outputs`, in the order they were created.

    Every node is created after the nodes of its inputs, so creation order is a topological
    order (inputs before users), and it follows the program as written. The search is
    iterative, so graph depth is not limited by Python's recursion limit.
    given: ids of tensors whose values are known: the search does not enter their nodes.
    """
    found = {}
    stack = [out._node for out in _as_list(outputs, "nodes")
             if out._node is not None and id(out) not in given]
    push = stack.append
    while stack:                  # (plain loops: a trace walks graphs of 100,000 nodes)
        node = stack.pop()
        if id(node) in found:
            continue
        if node.released:
            raise RuntimeError(released_message(node))
        found[id(node)] = node
        for inp in node.inputs:
            source = inp._node
            if source is not None and id(source) not in found and id(inp) not in given:
                push(source)
    return sorted(found.values(), key=_serial)


_serial = operator.attrgetter("serial")


@contextlib.contextmanager
def collector_paused():
    """Run the block with Python's cyclic garbage collector off (as it was after).

    For passes that build a graph of ~10^5 long-lived objects in one go (a compiled step's
    backward graph, its rewrite, its program): each allocation burst triggers collections
    that traverse every object made so far, a third of a T=1000 trace's time, and none of
    them finds garbage (nodes hold their outputs weakly: a graph has no reference cycles).
    Reference counting still frees everything as usual. A block already run with the
    collector off leaves it so.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def released_message(node):
    return (f"the graph through {node.op!r} was already used by a backward pass, which freed "
            "its saved values; to run backward (or grad, or draw it) through it again, pass "
            "retain_graph=True to the first one (create_graph=True retains it too)")


def grad(outputs, inputs, grad_outputs=None, create_graph=False, allow_unused=False,
         retain_graph=None):
    """Gradients of `outputs` with respect to `inputs`, as a list of Tensors.

    outputs: a Tensor or a list of them; their gradients are summed.
    inputs: a Tensor or a list of them (floating point, requiring grad).
    grad_outputs: the seed for each output (default: 1 for scalar outputs; required otherwise).
    create_graph: record the backward pass, so the gradients are graph nodes that can be
        rendered and differentiated again (e.g. for Hessian-vector products).
    allow_unused: return None for an input the outputs do not depend on, instead of raising.
    retain_graph: keep the graph's saved values for another backward pass (default:
        create_graph). Otherwise each node's saved values are released once its vjp has run,
        and another pass through it raises.
    """
    single = isinstance(inputs, Tensor)
    # Inside a compiled step's trace nothing is computed: the gradients become nodes of the
    # program, recorded as create_graph=True makes them. Asked for values, they are made
    # constants for differentiation, as eagerly.
    values_unknown = interpreter().abstract and not create_graph
    create_graph = create_graph or values_unknown
    outputs = _as_list(outputs, "grad")
    inputs = _as_list(inputs, "grad")
    for t in inputs:
        _check_differentiable(t)
    seeds = _seeds(outputs, grad_outputs, create_graph)
    retain = create_graph if retain_graph is None else retain_graph
    reached = set()
    grads = _run_backward(outputs, seeds, inputs, create_graph, retain=retain, reached=reached)
    owned = {id(seed.data) for seed in seeds}
    result = []
    for t in inputs:
        g = grads.get(id(t))
        if g is None:
            reachable = id(t) in reached
            if not reachable and not allow_unused:
                raise ValueError(f"grad: {describe(t)} is not part of the graph of the "
                                 "outputs; pass allow_unused=True to get None for it")
            # Reachable only through non-differentiable paths (e.g. a step): zero gradient.
            g = Tensor(xp.zeros(t.shape, t.dtype)) if reachable else None
        elif values_unknown:
            if g._node is not None and g._node.is_backward:
                g.requires_grad = False          # made here: no gradient flows back through it
        elif not create_graph:
            g = Tensor(_owned_array(g.data, owned))
        result.append(g)
    return result[0] if single else result


def partial_gradients(outputs, inputs, cotangents, create_graph=False):
    """The vjp of outputs for `inputs` as independent variables: the graph is read only down
    to them (the nodes that made an input are not entered, so a path from one input through
    another does not count, and nothing before them is released). One gradient Tensor or
    None per input. For a vjp that differentiates a graph of its own (a checkpoint's)."""
    order = nodes(outputs, given={id(t): t for t in inputs})
    seeds = _seeds(outputs, cotangents, create_graph)
    grads = _run_backward(outputs, seeds, inputs, create_graph, order=order, retain=create_graph)
    return [grads.get(id(t)) for t in inputs]


def gradient_graph(loss, params):
    """The gradients of a scalar `loss` for `params` (None where unused, zeros where reached
    without a gradient) as a recorded graph with the accumulator's joins: for a program that
    computes them later (on abstract tensors, whose values are not known yet)."""
    seeds = _seeds([loss], None, True)
    with collector_paused():
        grads = _run_backward([loss], seeds, params, create_graph=True, join=True, retain=True)
    result = []
    for p in params:
        g = grads.get(id(p))
        if g is None and _reaches([loss], p):
            g = Tensor(xp.zeros(p.shape, p.dtype), constant=True)
        result.append(g)
    return result


def backward(output, grad_output=None, create_graph=False, retain_graph=None):
    """Accumulate d(output)/d(leaf) into `.grad` of every leaf that requires grad.

    retain_graph: as in `grad` (default: create_graph): without it the graph's saved values
    are released as the pass goes, and a second backward through it raises.

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
    refusal = interpreter().refuse("backward")
    if refusal is not None:           # e.g. inside a compiled step's trace
        raise refusal
    order = nodes([output])             # once per call: the training step's hot path
    targets = leaves([output], order)
    seeds = _seeds([output], None if grad_output is None else [grad_output], create_graph)
    retain = create_graph if retain_graph is None else retain_graph
    grads = _run_backward([output], seeds, targets, create_graph, order, retain=retain)
    owned = {id(seed.data) for seed in seeds}
    for leaf in targets:
        g = grads.get(id(leaf))
        if g is None:
            # Reached only through non-differentiable paths (e.g. a step), as in grad().
            g = Tensor(xp.zeros(leaf.shape, leaf.dtype))
        if create_graph:
            update_grad(leaf, lambda old, g=g: g if old is None else _recorded_add(old, g))
        else:
            add_to_grad(leaf, g.data, lambda array: _owned_array(array, owned))


def _recorded_add(a, b):
    with recording_backward(None, "accumulate"):
        return a + b


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


def _run_backward(outputs, seeds, inputs, create_graph, order=None, join=None, retain=True,
                  reached=None):
    """Propagate seeds back to `inputs`; returns {id(input): gradient Tensor}. `order` is
    nodes(outputs) when the caller has it already; join: whether the accumulator applies the
    primitives' joins (default: on the fast path only, see tinygraph.core.accumulate);
    retain: keep the nodes' saved values (else each node is released after its vjp);
    reached: a set to fill with the ids of the wanted inputs that the graph reads but that got
    no gradient (through a non-differentiable op such as step): they get zeros, where an
    input the graph does not read at all is an error (told now: the pass may release it)."""
    order = nodes(outputs) if order is None else order
    wanted = {id(t): t for t in inputs}
    reached = set() if reached is None else reached
    # Only nodes on a path to a wanted input run their vjp, and only for such inputs.
    # on_path: id(node) -> which of its inputs lead to a wanted input (the vjp's `needs`),
    # for the nodes with at least one; inputs come before their users, so one pass settles it.
    on_path = {}
    for node in order:
        needs = [t.requires_grad and (id(t) in wanted or (
            t._node is not None and id(t._node) in on_path)) for t in node.inputs]
        if True in needs:
            on_path[id(node)] = needs

    accumulator = Accumulator(record=create_graph,
                              join=not create_graph if join is None else join)
    for out, seed in zip(outputs, seeds):
        accumulator.add(out, seed, None)
    running = BackwardPass()
    if create_graph:
        with changed(running=running):
            return _propagate(order, on_path, wanted, accumulator, running, retain, reached)
    # The fast path runs every vjp unrecorded and leaves joinable terms for the accumulator;
    # entered once per pass, not per node (per-node switches were a visible share of small
    # steps).
    with changed(grad_enabled=False, interpreter=LazyTerms(current().interpreter),
                 running=running):
        return _propagate(order, on_path, wanted, accumulator, running, retain, reached)


class BackwardPass:
    """The backward pass in progress (context-local, one per pass): the forward node whose
    vjp runs now, which detect_anomaly names when a backward op goes non-finite."""

    __slots__ = ("vjp_of",)

    def __init__(self):
        self.vjp_of = None


def _propagate(order, on_path, wanted, accumulator, running, retain, reached):
    found = {}
    record = accumulator.record
    # Releasing, every output is held here until its own node's vjp has run (a node holds its
    # output only weakly, its users release it, and the vjp may read it).
    outputs = None if retain else [node.output for node in order]
    for i in range(len(order) - 1, -1, -1):
        node = order[i]
        needs = on_path.get(id(node))
        if needs is None:
            continue
        out = node.output if outputs is None else outputs[i]
        g = accumulator.pop(out)
        if g is None:                     # nothing came back to it (e.g. through step)
            reached.update(id(t) for t in node.inputs if id(t) in wanted)
            continue
        if id(out) in wanted:
            found[id(out)] = g
        if node.versions is not None or out._version is not None and out._version[0]:
            _check_saved(node, out)
        else:                             # (inline: the hot path, all saved at version 0)
            for t in node.inputs:
                if t._version is not None and t._version[0]:
                    _check_saved(node, out)
        if node.digests is not None:      # kept by an interpreter that verifies saved values
            node.digests.verify(node, out)
        running.vjp_of = node
        try:
            if record:
                with recording_backward(node, "vjp"):
                    input_grads = node.prim.vjp(node, g, needs)
            else:
                input_grads = node.prim.vjp(node, g, needs)
        except (TypeError, AttributeError) as e:
            if g._data is None and interpreter().abstract:
                raise TypeError(f"the vjp of primitive {node.op!r} failed in a compiled step's "
                                f"trace ({e}): there values are not known yet (.data is None), "
                                "so a vjp must compute with tinygraph ops on Tensors, never "
                                "on arrays") from e
            raise
        finally:
            running.vjp_of = None
        if not isinstance(input_grads, (tuple, list)) or len(input_grads) != len(node.inputs):
            raise TypeError(f"the vjp of primitive {node.op!r} must return a tuple with one "
                            f"Tensor or None per input ({len(node.inputs)}), got "
                            f"{_shown(input_grads)}")
        for k, (inp, gi, need) in enumerate(zip(node.inputs, input_grads, needs)):
            if need and gi is None:
                reached.add(id(inp))      # read, but no gradient comes back through here
            elif need:
                if not isinstance(gi, Tensor):
                    raise TypeError(f"the vjp of primitive {node.op!r} returned "
                                    f"{_shown(gi)} for input {k}; a vjp returns Tensors, "
                                    "computed with tinygraph ops (tg.tensor(array) wraps an "
                                    "array as a constant, with no gradient of its own)")
                a, b = gi._data, inp._data      # (the arrays' attributes: no property calls)
                if a is None or b is None:       # a lazy term or an abstract tensor
                    a, b = gi, inp
                if a.shape != b.shape or a.dtype != b.dtype:
                    raise ValueError(f"the vjp of primitive {node.op!r} returned a gradient of "
                                     f"shape {gi.shape} ({gi.dtype}) for input {k}, "
                                     f"{describe(inp)} ({inp.dtype}); it must have the "
                                     "input's shape and dtype")
                if record and gi._node is not None and gi._node.forward_node is node \
                        and gi._node.grad_of is None:       # made here
                    gi._node.grad_of = inp   # this vjp's contribution to d/d(inp)
                    gi._node.grad_input = k
                accumulator.add(inp, gi, node)
        if outputs is not None:
            node.inputs, node.released = (), True
            outputs[i] = out = None
    for key in accumulator.pending():
        if key in wanted:
            found[key] = accumulator.pop(wanted[key])
    return found


def _shown(value):
    if isinstance(value, xp.ndarray):
        return f"a numpy array of shape {value.shape}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return f"a {type(value).__name__}"


def _check_saved(node, out):
    """Refuse to run a vjp on saved values that changed since the node saved them."""
    changed_value = saved_changed(node, out)
    if changed_value is not None:
        raise RuntimeError(_changed_message(node, *changed_value))


def saved_changed(node, out):
    """(a saved value of node that was changed in place since, its version then), or None.
    out: the node's output."""
    versions = node.versions
    if versions is None:                  # all saved at version 0 (the common case)
        for t in node.inputs + (out,):
            if t._version is not None and t._version[0]:
                return t, 0
        return None
    for t, version in zip(node.inputs + (out,), versions):
        if (0 if t._version is None else t._version[0]) != version:
            return t, version
    return None


def _changed_message(node, t, version):
    return (f"backward: {describe(t)}, saved by {node.op!r} (a graph keeps every op's inputs "
            f"and output), was modified in place after it was saved (version {version} then, {t.version} now: an "
            "optimizer step or an assignment to .data); the gradient would mix old and new "
            "values. Compute the loss again after changing it, or take the gradients before "
            "the change")


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
            seed = Tensor(xp.ones(out.shape, out.dtype), constant=True)
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
