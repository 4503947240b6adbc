"""Forward mode by transposition: jvp and hessian from the vjps alone.

Reverse mode gives, for a cotangent u of the outputs, the vjp `g(u) = Jᵀu`, and g is linear in
u. The derivative of the linear map u -> <Jᵀu, v> with respect to u is Jv, the jvp. So a jvp
is two reverse passes: the vjp recorded with a stand-in cotangent u (its value never matters:
the map is linear), then that graph differentiated with respect to u with the tangent v as its
seed. Every op keeps its one vjp (written in tinygraph ops, so differentiable again); no
primitive has a second derivative rule to keep in step with the first. (JAX derives its
reverse mode from forward mode by the same transposition, the other way round.)

    outputs, tangents = tg.jvp(fn, (x, W), (dx, dW))     # JAX's signature
    H = tg.hessian(loss_fn, x)                            # forward-over-reverse

With `create_graph=True` the tangent is a graph like any other: the transposed graph,
simplified, recorded again as plain ops (so the stand-in u leaves no trace), its inputs the
primal values and the tangents (named dx for an input x): forward mode, drawn by
`tg.render(tangent, view="forward")`, differentiated like any value.
"""
from ..backend import xp
from ..core.autodiff import grad, nodes
from ..core.primitive import apply
from ..core.state import enable_grad, scope
from ..core.tensor import Tensor, describe
from ..ops.shape import Reshape
from .rewrite import simplify
from .step import tensor_outputs


def jvp(fn, primals, tangents, create_graph=False):
    """Returns `(outputs, output_tangents)`: fn at primals, and its directional derivative
    there along tangents (J v), as JAX's jvp.

    primals: a tuple or list of the inputs (arrays, numbers or Tensors); tangents: one per
    primal, of its shape (cast to its floating dtype), or None for an input with no tangent
    (an integer input, say: its tangent is zero). fn returns a Tensor or a tuple or list of
    Tensors; the result has the same structure twice: outputs and output tangents (zeros
    for an output that does not depend on any input with a tangent).

    create_graph: record the tangents (and keep the outputs' graph), so they can be drawn,
    simplified or differentiated again (a loss made of a jvp); by default both are values.
    """
    primals, tangents = _as_sequence(primals, "primals"), _as_sequence(tangents, "tangents")
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals but {len(tangents)} tangents; give one "
                         "tangent per primal (None for an input with no tangent)")
    inputs, seeds = [], []
    for k, (primal, tangent) in enumerate(zip(primals, tangents)):
        x = _input(primal, tangent is not None, k)
        inputs.append(x)
        seed = None if tangent is None else _tangent(tangent, x, k)
        if seed is not None and seed is not tangent and seed.name is None:
            seed.name = "d" + (x.name or f"x{k}")       # the tangent of x: dx
        seeds.append(seed)
    with enable_grad():
        out = fn(*inputs)
        outputs, rebuild = tensor_outputs(out, "jvp: fn")
        moving = [x for x, v in zip(inputs, seeds) if v is not None]
        directions = [v for v in seeds if v is not None]
        tangents_out = _transposed(outputs, moving, directions, create_graph)
        if create_graph:
            tangents_out = _as_forward_ops(tangents_out)
            for k, (o, t) in enumerate(zip(outputs, tangents_out)):
                if t.name is None and t._node is not None:
                    t.name = "d" + (o.name or (f"y{k}" if len(outputs) > 1 else "y"))
    if not create_graph:
        outputs = [Tensor(o.data) for o in outputs]
    return rebuild(outputs), rebuild(tangents_out)


def _as_forward_ops(tangents):
    """The tangent graph, simplified, recorded again as ordinary ops: forward mode as a graph
    of its own (the primal values among its inputs), drawn and differentiated like any
    forward graph, with no trace left of the stand-in cotangents."""
    outputs = simplify(tangents).outputs
    copies = {}
    with scope(TANGENT_SCOPE):           # drawn as one cluster beside the primal ops
        for node in nodes(outputs):
            if node.is_backward:
                made = apply(node.prim, *(copies.get(id(t), t) for t in node.inputs))
                copies[id(node.output)] = made
    return [copies.get(id(t), t) for t in outputs]


TANGENT_SCOPE = "tangent"


def _transposed(outputs, inputs, directions, create_graph):
    """J·v for each output: the vjp with stand-in cotangents u, differentiated in u."""
    differentiable = [k for k, o in enumerate(outputs)
                      if o.requires_grad and xp.issubdtype(o.dtype, xp.floating)]
    result = [Tensor(xp.zeros(o.shape, o.dtype if xp.issubdtype(o.dtype, xp.floating)
                              else xp.float64)) for o in outputs]
    if not inputs or not differentiable:
        return result
    stand_ins = [Tensor(xp.zeros(outputs[k].shape, outputs[k].dtype), name=f"u{k}",
                        requires_grad=True) for k in differentiable]
    vjps = grad([outputs[k] for k in differentiable], inputs, grad_outputs=stand_ins,
                create_graph=True, allow_unused=True)
    used = [(g, v) for g, v in zip(vjps, directions) if g is not None and g.requires_grad]
    if not used:
        return result
    found = grad([g for g, _ in used], stand_ins, grad_outputs=[v for _, v in used],
                 create_graph=create_graph, allow_unused=True)
    for k, t in zip(differentiable, found):
        if t is not None:
            result[k] = t
    return result


def hessian(fn, x):
    """The Hessian of a scalar fn at x, of shape x.shape + x.shape: forward-over-reverse,
    each column the jvp of the gradient along one basis vector (by transposition: see the
    module). x: an array or Tensor (floating point)."""
    x = _input(x, True, 0)
    with enable_grad():
        y = fn(x)
        if not isinstance(y, Tensor) or y.size != 1:
            raise ValueError("hessian: fn must return a scalar Tensor, got "
                             + (describe(y) if isinstance(y, Tensor) else type(y).__name__))
        if not y.requires_grad:
            return Tensor(xp.zeros(x.shape + x.shape, x.dtype))
        (g,) = grad(y, [x], create_graph=True)
        if not g.requires_grad:           # fn is linear in x: its gradient is a constant
            return Tensor(xp.zeros(x.shape + x.shape, x.dtype))
        u = Tensor(xp.zeros(x.shape, x.dtype), name="u", requires_grad=True)
        (w,) = grad(g, [x], grad_outputs=[u], create_graph=True, allow_unused=True)
        columns = xp.zeros((x.size,) + x.shape, x.dtype)
        if w is not None and w.requires_grad:
            for i in range(x.size):
                e = xp.zeros(x.size, x.dtype)
                e[i] = 1
                (column,) = grad(w, [u], grad_outputs=[Tensor(e.reshape(x.shape))],
                                 retain_graph=True, allow_unused=True)
                if column is not None:
                    columns[i] = column.data
    # columns[i] = H e_i, the i-th column: H[..., i] (H is symmetric for a smooth fn).
    hess = xp.moveaxis(columns.reshape((x.size, x.size)), 0, 1)
    return Tensor(hess.reshape(x.shape + x.shape))


def _as_sequence(values, what):
    if not isinstance(values, (tuple, list)):
        raise TypeError(f"jvp: {what} must be a tuple or list (one entry per input of fn), got "
                        f"{type(values).__name__}")
    return list(values)


def _input(primal, moving, k):
    """The Tensor fn gets for primal k: requiring grad where it has a tangent, and never the
    primal itself (as JAX's jvp, only the argument moves: fn reading the same tensor from its
    closure reads a constant, and the same tensor given twice is two inputs)."""
    if isinstance(primal, Tensor):
        if not moving:
            return primal
        if primal.requires_grad:
            # A recorded alias (an identity reshape), so a gradient of a loss made of the
            # jvp (create_graph) still reaches the primal through it.
            alias = apply(Reshape(primal.shape), primal)
            alias.name = primal.name
            primal = alias
        else:
            primal = primal.detach()     # (in a compiled step's trace: a node, value unknown)
    else:
        primal = Tensor(xp.asarray(primal), name=f"x{k}")
    if moving:
        if not xp.issubdtype(primal.dtype, xp.floating):
            raise TypeError(f"jvp: primal {k} has dtype {primal.dtype}: only floating-point "
                            "inputs have tangents (give None as its tangent)")
        if not primal.requires_grad:
            primal.requires_grad = True
    return primal


def _tangent(tangent, x, k):
    """Tangent k as a Tensor of its primal's dtype (a Tensor stays one: in a compiled step's
    trace its value is not known yet)."""
    t = tangent if isinstance(tangent, Tensor) else Tensor(xp.asarray(tangent))
    if t.shape != x.shape:
        raise ValueError(f"jvp: tangent {k} has shape {t.shape}, its primal {x.shape}; a "
                         "tangent has its primal's shape")
    if t.dtype.kind not in "fiub":
        raise TypeError(f"jvp: tangent {k} has dtype {t.dtype}")
    return t if t.dtype == x.dtype else t.astype(x.dtype)


class ModeCosts:
    """What the whole gradient of a scalar function costs in each mode (see mode_costs):
    `forward` and `reverse` hold (nodes, FLOPs) for the full gradient; `tangent` is the
    graph of one jvp (forward mode, as forward ops) and `gradient` that of the gradient
    (reverse mode, a backward graph), to draw or to compare side by side:
    `tg.explore_diff(costs.tangent, costs.gradient, view=("forward", "backward"))`."""

    def __init__(self, n, forward, reverse, tangent, gradient):
        self.n, self.forward, self.reverse = n, forward, reverse
        self.tangent, self.gradient = tangent, gradient

    def __str__(self):
        (fn_, ff), (rn, rf) = self.forward, self.reverse
        return "\n".join([
            f"the gradient of a function of {self.n} inputs and 1 output:",
            f"  forward mode: {self.n} jvps, {fn_:,} nodes, {ff:,} FLOPs",
            f"  reverse mode: 1 vjp, {rn:,} nodes, {rf:,} FLOPs"])


def mode_costs(fn, x):
    """The node count and a FLOP estimate (Primitive.flops) of the whole gradient of a
    scalar fn at x, in forward mode (one jvp per input element, each along a basis vector)
    and in reverse mode (one vjp), counting the derivative's own ops (not fn's)."""
    x = _input(x if isinstance(x, Tensor) else Tensor(xp.asarray(x), name="x"), True, 0)
    y = fn(x)
    if not isinstance(y, Tensor) or y.size != 1:
        raise ValueError("mode_costs: fn must return a scalar Tensor: it compares the modes for "
                         "the gradient of a function of n inputs and 1 output (for a vector "
                         "output, count the jvps and vjps of its Jacobian, or cost "
                         "tg.sum(fn(x)))")
    (gradient,) = grad(y, [x], create_graph=True)
    primal = {id(node) for node in nodes([y])}
    reverse = _cost([gradient], primal)
    total_nodes = total_flops = 0
    tangent = None
    for i in range(x.size):
        e = xp.zeros(x.size, x.dtype)
        e[i] = 1
        _, t = jvp(fn, (x.detach(),), (e.reshape(x.shape),), create_graph=True)
        counted = _cost([t], None, tangent_only=True)
        total_nodes, total_flops = total_nodes + counted[0], total_flops + counted[1]
        tangent = tangent or t
    return ModeCosts(x.size, (total_nodes, total_flops), reverse, tangent, gradient)


def _cost(outputs, skip, tangent_only=False):
    """(nodes, FLOPs) of the graph of outputs, less the nodes whose ids are in skip (the
    function's own forward ops) or, with tangent_only, all but a jvp's tangent ops."""
    count = flops = 0
    for node in nodes(outputs):
        if skip is not None and id(node) in skip:
            continue
        if tangent_only and TANGENT_SCOPE not in node.scope:
            continue
        count += 1
        flops += node.prim.flops(node)
    return count, flops
