"""Selecting ops: comparisons, where, max/min (elementwise and as reductions), argmax/argmin,
clip and logsumexp.

Primitives: `compare` (>, >=, <, <=, ==, != as one op with the comparison as attribute),
`where`, `max`, `min`, `argmax`, `argmin`. Comparisons and argmax/argmin give boolean or integer
tensors with no gradient; they are recorded all the same, so a compiled step recomputes them
on every call instead of baking in the values the trace saw. maximum, minimum, clip and
logsumexp are compositions of these (their backward graphs are derived and drawable).
"""
from ..backend import xp
from ..core.primitive import Primitive, apply
from ..core.tensor import Tensor, describe
from .elementwise import Elementwise, promoted, unbroadcast, neg, log, exp
from .operands import (broadcast_shape, normalize_axes, numpy_keywords, pair, reduced_shape,
                       tensor_arg)
from . import shape as _shape

# --- comparisons ------------------------------------------------------------------------------

COMPARISONS = {          # name -> (symbol, numpy function)
    "greater": (">", xp.greater), "greater_equal": ("≥", xp.greater_equal),
    "less": ("<", xp.less), "less_equal": ("≤", xp.less_equal),
    "equal": ("==", xp.equal), "not_equal": ("≠", xp.not_equal),
}


class Compare(Primitive):
    """a (comparison) b elementwise, with numpy broadcasting: a boolean array. No gradient (it
    is piecewise constant), so its vjp passes None to both inputs and it has no rule. (Not an
    Elementwise: those derive a rule from the vjp, seeding it with a gradient of the output's
    dtype, here bool.)"""

    name = "compare"

    def __init__(self, comparison):
        self.comparison = comparison

    def forward(self, a, b):
        return COMPARISONS[self.comparison][1](a, b)

    def spec(self, a, b):
        return xp.broadcast_shapes(a.shape, b.shape), xp.dtype(xp.bool_)

    def vjp(self, node, g, needs):
        return [None, None]

    def write(self, names):
        return f"{names[0]} {COMPARISONS[self.comparison][0]} {names[1]}"

    def label(self, inputs, inline):
        return f"{inline(inputs[0])} {COMPARISONS[self.comparison][0]} {inline(inputs[1])}"


def _compare(comparison, a, b):
    a, b = pair(*promoted(a, b, comparison), comparison)
    if a.shape != b.shape:
        broadcast_shape(a, b, comparison)
    return _no_gradient(apply(Compare(comparison), a, b))


def _no_gradient(out):
    """A boolean or integer result: recorded (its node stays, so compiled steps recompute it)
    but not differentiable."""
    out.requires_grad = False
    return out


def greater(a, b):
    """a > b elementwise (numpy broadcasting): a boolean tensor with no gradient."""
    return _compare("greater", a, b)


def greater_equal(a, b):
    """a >= b elementwise (numpy broadcasting): a boolean tensor with no gradient."""
    return _compare("greater_equal", a, b)


def less(a, b):
    """a < b elementwise (numpy broadcasting): a boolean tensor with no gradient."""
    return _compare("less", a, b)


def less_equal(a, b):
    """a <= b elementwise (numpy broadcasting): a boolean tensor with no gradient."""
    return _compare("less_equal", a, b)


def equal(a, b):
    """a == b elementwise (numpy broadcasting): a boolean tensor with no gradient."""
    return _compare("equal", a, b)


def not_equal(a, b):
    """a != b elementwise (numpy broadcasting): a boolean tensor with no gradient."""
    return _compare("not_equal", a, b)


# --- where ------------------------------------------------------------------------------------

def _mask(x, op_name):
    x = tensor_arg(x, op_name)
    if x.dtype != xp.bool_:
        raise TypeError(f"{op_name}: needs boolean masks (comparisons such as x > 0), got "
                        f"{describe(x)} of dtype {x.dtype}; for numbers use mul, maximum, ...")
    return x


def logical_and(a, b):
    """a & b of two boolean masks, elementwise (numpy broadcasting); composed of where."""
    return where(_mask(a, "logical_and"), _mask(b, "logical_and"), False)


def logical_or(a, b):
    """a | b of two boolean masks, elementwise (numpy broadcasting); composed of where."""
    return where(_mask(a, "logical_or"), True, _mask(b, "logical_or"))


def logical_not(a):
    """~a of a boolean mask: a comparison with False."""
    return equal(_mask(a, "logical_not"), False)


class Where(Elementwise):
    """a where cond, else b (all three broadcast). Its own primitive rather than the masks
    cond·a + (1 − cond)·b, which are NaN where the unselected branch is inf or NaN. The
    gradient goes to the selected branch only: where(cond, g, 0) to a, where(cond, 0, g) to b
    (as PyTorch's torch.where). An unselected branch whose own gradient is inf or NaN there
    still makes 0·inf = NaN through it: where(x > 0, log(x), 0) has a NaN gradient at x = 0,
    in PyTorch too."""

    name = "where"
    formula = "where({0}, {1}, {2})"
    # In the notation's terms (a mask times g); the vjp selects, so it stays finite where g ⊙
    # mask would not (g infinite).
    rules = (None, "{gy} ⊙ {x0}", "{gy} ⊙ (1 − {x0})")

    def forward(self, cond, a, b):
        return xp.where(cond, a, b)

    def vjp(self, node, g, needs):
        cond, a, b = node.inputs
        zero = Tensor(xp.zeros((), g.dtype), constant=True)
        return [None,
                unbroadcast(apply(Where(), cond, g, zero), a.shape) if needs[1] else None,
                unbroadcast(apply(Where(), cond, zero, g), b.shape) if needs[2] else None]


def where(cond, a, b):
    """a where `cond` is True, else b, elementwise with numpy broadcasting of all three.

    cond: a boolean Tensor (`x > 0`) or boolean array; it gets no gradient. a and b: tensors
    or numbers (a number takes the other operand's dtype). The gradient reaches only the
    selected branch, also where the other one is inf or NaN."""
    cond = tensor_arg(cond, "where")
    if cond.dtype != xp.bool_:
        raise TypeError(f"where: the condition must be boolean (a comparison such as x > 0, "
                        f"or a boolean array), got {describe(cond)} of dtype {cond.dtype}")
    a, b = pair(a, b, "where")
    try:
        xp.broadcast_shapes(cond.shape, a.shape, b.shape)
    except ValueError:
        raise ValueError(f"where: cannot broadcast the condition {cond.shape}, {describe(a)} "
                         f"and {describe(b)}") from None
    return apply(Where(), cond, a, b)


def maximum(a, b):
    """The elementwise maximum of a and b (numpy broadcasting); NaN where either is NaN. At a
    tie each input gets half the gradient, as PyTorch's torch.maximum gives. Composed of
    comparisons and where."""
    return _extreme_of_two(a, b, greater, "maximum")


def minimum(a, b):
    """The elementwise minimum of a and b (numpy broadcasting); NaN where either is NaN. At a
    tie each input gets half the gradient, as PyTorch's torch.minimum gives. Composed of
    comparisons and where."""
    return _extreme_of_two(a, b, less, "minimum")


def _extreme_of_two(a, b, wins, name):
    a, b = pair(a, b, name)
    if a.shape != b.shape:
        broadcast_shape(a, b, name)
    if a.dtype.kind != "f":           # whole numbers: no gradient to share, no NaN
        return where(wins(b, a), b, a)
    # At a tie (and where either is NaN: both comparisons false) the half-and-half mean,
    # which is a itself when a == b (but for the last bit of a subnormal) and NaN when either
    # is NaN.
    tie = a * 0.5 + b * 0.5
    return where(wins(a, b), a, where(wins(b, a), b, tie))


def clip(x, min=None, max=None):
    """x limited to [min, max] elementwise (numpy's clip, PyTorch's torch.clamp): min(max(x,
    min), max), so where min > max the result is max. min and max: numbers, tensors or None
    (no bound). The gradient reaches x where min <= x <= max (the bounds included, as in
    PyTorch) and a tensor bound where it is the result."""
    if min is None and max is None:
        raise ValueError("clip: give min, max or both (both None limits nothing)")
    x = tensor_arg(x, "clip")
    if min is not None:
        x, low = pair(x, min, "clip")
        x = where(less(x, low), low, x)
    if max is not None:
        x, high = pair(x, max, "clip")
        x = where(greater(x, high), high, x)
    return x


# --- max and min over axes --------------------------------------------------------------------

class Extreme(Primitive):
    """The largest (Max) or smallest (Min) element over `axis` (a tuple), as numpy's amax and
    amin. The gradient is split evenly among the elements that tie for it, as PyTorch's
    torch.amax does."""

    reduce = None

    def __init__(self, axis, keepdims):
        self.axis = axis
        self.keepdims = keepdims

    def forward(self, a):
        return self.reduce(a, axis=self.axis, keepdims=self.keepdims)

    def spec(self, a):
        return reduced_shape(a.shape, self.axis, self.keepdims), a.dtype

    def vjp(self, node, g, needs):
        x, y = node.inputs[0], node.output
        kept = reduced_shape(x.shape, self.axis, keepdims=True)
        chosen = equal(x, _shape.reshape(y, kept))          # the elements that tie for it
        one = Tensor(xp.ones((), g.dtype), constant=True)
        zero = Tensor(xp.zeros((), g.dtype), constant=True)
        count = _shape.sum(apply(Where(), chosen, one, zero), self.axis, keepdims=True)
        return [apply(Where(), chosen, _shape.reshape(g, kept) / count, zero)]

    def label(self, inputs, inline):
        keep = ", keepdims" if self.keepdims else ""
        return f"{self.name} axis={self.axis}{keep}"


class Max(Extreme):
    name = "max"
    formula = "max {0}"
    reduce = staticmethod(xp.amax)
    # g to the elements equal to the max, shared among ties: 1 − step(y − x) is 1 there.
    rules = ("broadcast({gy}) ⊙ (1 − heaviside(broadcast({y}) − {x0})) "
             "/ Σ(1 − heaviside(broadcast({y}) − {x0}))")


class Min(Extreme):
    name = "min"
    formula = "min {0}"
    reduce = staticmethod(xp.amin)
    rules = ("broadcast({gy}) ⊙ (1 − heaviside({x0} − broadcast({y}))) "
             "/ Σ(1 − heaviside({x0} − broadcast({y})))")


def _reduced_axes(x, axis, op_name):
    axes = normalize_axes(axis, x.ndim, op_name)
    for ax in axes:
        if x.shape[ax] == 0:
            raise ValueError(f"{op_name}: axis {ax} of {describe(x)} is empty: there is no "
                             f"{op_name} of no elements")
    return axes


def _axis_by_name(op_name, positional):
    """max(x, 1) would read as torch.max(x, 1), whose (values, indices) pair a script unpacks:
    `values, indices = max(x, 1)` would then silently unpack two rows of values. So the axis
    of max and min is given by name."""
    if positional:
        index = "argmax" if op_name == "max" else "argmin"
        raise TypeError(f"{op_name}: give the axis by name, {op_name}(x, axis=1): it returns "
                        f"the values only (numpy's a{op_name}), not the (values, indices) pair "
                        f"of torch.{op_name}(x, 1); the indices are {index}(x, axis=1)")


@numpy_keywords
def max(x, *positional, axis=None, keepdims=False):
    """The largest element over `axis` (None: all; an int or a tuple; given by name), as
    numpy's amax and PyTorch's torch.amax: values only, not torch.max's (values, indices)
    pair (use argmax for the indices). Ties share the gradient evenly. Over a slice holding
    a NaN the value is NaN (as numpy's) and the gradient 0 (PyTorch's is NaN)."""
    _axis_by_name("max", positional)
    x = tensor_arg(x, "max")
    return apply(Max(_reduced_axes(x, axis, "max"), bool(keepdims)), x)


@numpy_keywords
def min(x, *positional, axis=None, keepdims=False):
    """The smallest element over `axis` (None: all; an int or a tuple; given by name), as
    numpy's amin and PyTorch's torch.amin: values only, not torch.min's (values, indices)
    pair (use argmin for the indices). Ties share the gradient evenly. Over a slice holding
    a NaN the value is NaN (as numpy's) and the gradient 0 (PyTorch's is NaN)."""
    _axis_by_name("min", positional)
    x = tensor_arg(x, "min")
    return apply(Min(_reduced_axes(x, axis, "min"), bool(keepdims)), x)


# --- argmax and argmin ------------------------------------------------------------------------

class ArgExtreme(Primitive):
    """The index of the first largest (ArgMax) or smallest (ArgMin) element along `axis` (None:
    of the flattened array), as numpy's argmax/argmin: an integer array, no gradient."""

    find = None

    def __init__(self, axis, keepdims):
        self.axis = axis
        self.keepdims = keepdims

    def forward(self, a):
        return self.find(a, axis=self.axis, keepdims=self.keepdims)

    def spec(self, a):
        axes = range(a.ndim) if self.axis is None else (self.axis,)
        return reduced_shape(a.shape, axes, self.keepdims), xp.dtype(xp.intp)

    def vjp(self, node, g, needs):
        return [None]

    def label(self, inputs, inline):
        keep = ", keepdims" if self.keepdims else ""
        return self.name if self.axis is None and not keep else \
            f"{self.name} axis={self.axis}{keep}"


class ArgMax(ArgExtreme):
    name = "argmax"
    find = staticmethod(xp.argmax)


class ArgMin(ArgExtreme):
    name = "argmin"
    find = staticmethod(xp.argmin)


def _arg_axis(x, axis, op_name):
    if axis is not None:
        if isinstance(axis, (tuple, list)):
            raise TypeError(f"{op_name}: axis must be None or one int, got {axis!r}")
        (axis,) = normalize_axes(axis, x.ndim, op_name)
        if x.shape[axis] == 0:
            raise ValueError(f"{op_name}: axis {axis} of {describe(x)} is empty")
    elif x.size == 0:
        raise ValueError(f"{op_name}: {describe(x)} has no elements")
    return axis


@numpy_keywords
def argmax(x, axis=None, keepdims=False):
    """The index of the largest element along `axis` (None: in the flattened tensor; the first
    where several tie), as numpy's argmax: an integer tensor with no gradient, recorded so a
    compiled step recomputes it."""
    x = tensor_arg(x, "argmax")
    return _no_gradient(apply(ArgMax(_arg_axis(x, axis, "argmax"), bool(keepdims)), x))


@numpy_keywords
def argmin(x, axis=None, keepdims=False):
    """The index of the smallest element along `axis` (None: in the flattened tensor; the
    first where several tie), as numpy's argmin: an integer tensor with no gradient."""
    x = tensor_arg(x, "argmin")
    return _no_gradient(apply(ArgMin(_arg_axis(x, axis, "argmin"), bool(keepdims)), x))


# --- logsumexp --------------------------------------------------------------------------------

@numpy_keywords
def logsumexp(x, axis=None, keepdims=False):
    """log(Σ exp(x)) over `axis` (None: all; an int or a tuple), stable for huge inputs as
    PyTorch's torch.logsumexp: the max m is subtracted first and added back, m held constant
    (detached: its own gradient would cancel out). An infinite m is taken as 0, so all −inf
    gives −inf and a +inf gives +inf."""
    x = tensor_arg(x, "logsumexp")
    axes = _reduced_axes(x, axis, "logsumexp")
    m = max(x, axis=axes, keepdims=True).detach()
    m = where(greater(m, -float("inf")), where(less(m, float("inf")), m, 0.0), 0.0)
    total = log(_shape.sum(exp(x - m), axes, keepdims=True)) + m
    if keepdims:
        return total
    return _shape.reshape(total, reduced_shape(x.shape, axes, keepdims=False))

