"""Shape primitives: sum, broadcast_to, sum_to, reshape, transpose and concat, with their
checked public functions (and mean, a composition)."""
import builtins
import math

from ..backend import xp
from ..core.primitive import Primitive, apply
from ..core.tensor import Tensor, describe
from .operands import normalize_axes, numpy_keywords, reduced_shape, shape_arg, tensor_arg
from . import elementwise as _elementwise
from . import indexing as _indexing


class ShapeOp(Primitive):
    """A primitive with a `shape` attribute: the output has that shape and the input's dtype;
    when the input has that shape already, the op changes nothing (an identity rewrite)."""

    def flops(self, node):
        return 0                         # a view (broadcast_to, reshape)

    def spec(self, a):
        return self.shape, a.dtype

    def identity(self, inputs, out):
        return inputs[0] if inputs[0].shape == out.shape else None


class Sum(Primitive):
    name = "sum"
    formula = "Σ {0}"
    rules = "broadcast({gy})"

    def __init__(self, axis, keepdims):
        self.axis = axis
        self.keepdims = keepdims

    def forward(self, a):
        return xp.sum(a, axis=self.axis, keepdims=self.keepdims)

    def spec(self, a):
        return reduced_shape(a.shape, self.axis, self.keepdims), xp.sum(xp.ones(1, a.dtype)).dtype

    def flops(self, node):
        return _input_size(node)

    def vjp(self, node, g, needs):
        x = node.inputs[0]
        if not self.keepdims:
            kept = reduced_shape(x.shape, self.axis, keepdims=True)
            g = reshape(g, kept)
        return [broadcast_to(g, x.shape)]

    def label(self, inputs, inline):
        keep = ", keepdims" if self.keepdims else ""
        return f"{super().label(inputs, inline)} axis={self.axis}{keep}"


class BroadcastTo(ShapeOp):
    name = "broadcast_to"
    rules = "sum_to({gy})"

    def __init__(self, shape):
        self.shape = shape

    def forward(self, a):
        return xp.broadcast_to(a, self.shape)

    def vjp(self, node, g, needs):
        return [sum_to(g, node.inputs[0].shape)]


class SumTo(ShapeOp):
    """Sum over the axes that broadcasting from `shape` would have added or stretched."""

    name = "sum_to"
    rules = "broadcast({gy})"

    def flops(self, node):
        return _input_size(node)

    def __init__(self, shape):
        self.shape = shape

    def forward(self, a):
        lead = a.ndim - len(self.shape)
        axes = tuple(range(lead)) + tuple(
            lead + i for i, n in enumerate(self.shape) if n == 1 and a.shape[lead + i] != 1)
        out = xp.sum(a, axis=axes, keepdims=True) if axes else a
        return out.reshape(self.shape)

    def vjp(self, node, g, needs):
        return [broadcast_to(g, node.inputs[0].shape)]


class Reshape(ShapeOp):
    name = "reshape"
    rules = "reshape({gy})"

    def __init__(self, shape):
        self.shape = shape

    def forward(self, a):
        return a.reshape(self.shape)

    def vjp(self, node, g, needs):
        return [reshape(g, node.inputs[0].shape)]


class Transpose(Primitive):
    name = "transpose"
    rules = "transpose({gy})"      # when it reverses the axes, its own inverse (see rule)

    def __init__(self, axes):
        self.axes = axes

    def rule(self, k):
        inverse = tuple(int(i) for i in xp.argsort(self.axes))
        if inverse == tuple(reversed(range(len(inverse)))):
            return self.rules
        return f"transpose({{gy}}, {inverse})"     # the axes put back

    def forward(self, a):
        return a.transpose(self.axes)

    def spec(self, a):
        return tuple(a.shape[i] for i in self.axes), a.dtype

    def vjp(self, node, g, needs):
        inverse = tuple(int(i) for i in xp.argsort(self.axes))
        return [transpose(g, inverse)]

    def flops(self, node):
        return 0                         # a view

    def identity(self, inputs, out):
        """A transpose of a transpose that puts every axis back (Wᵀᵀ = W): the inner one's
        input (the rewrite passes' identity rule)."""
        inner = inputs[0]._node
        if inner is None or not isinstance(inner.prim, Transpose):
            return None
        if tuple(inner.prim.axes[i] for i in self.axes) != tuple(range(len(self.axes))):
            return None
        original = inner.inputs[0]
        return original if original.shape == out.shape and original.dtype == out.dtype \
            else None

    def label(self, inputs, inline):
        text = super().label(inputs, inline)
        if self.axes != tuple(reversed(range(len(self.axes)))):
            return f"{text} {self.axes}"
        return text

    def write(self, names):
        if self.axes != tuple(reversed(range(len(self.axes)))):
            return f"transpose({names[0]}, {self.axes})"
        return f"{names[0]}ᵀ"


class Concat(Primitive):
    name = "concat"
    formula = "[{all}]"
    rules = "the piece of {gy} where the input went"

    def __init__(self, axis):
        self.axis = axis

    def forward(self, *arrays):
        return xp.concatenate(arrays, axis=self.axis)

    def forward_into(self, out, *arrays):
        return xp.concatenate(arrays, axis=self.axis, out=out)

    def spec(self, *inputs):
        shape = list(inputs[0].shape)
        shape[self.axis] = builtins.sum(t.shape[self.axis] for t in inputs)
        return tuple(shape), inputs[0].dtype

    def vjp(self, node, g, needs):
        grads, start = [], 0
        lead = (slice(None),) * self.axis
        for t, need in zip(node.inputs, needs):
            stop = start + t.shape[self.axis]
            grads.append(_indexing.getitem(g, lead + (slice(start, stop),)) if need else None)
            start = stop
        return grads

    def label(self, inputs, inline):
        return f"{super().label(inputs, inline)} axis={self.axis}"


# --- the public functions ---------------------------------------------------------------------

@numpy_keywords
def sum(x, axis=None, keepdims=False):
    """Sum over `axis` (an int, a tuple of ints, or None for all axes)."""
    x = tensor_arg(x, "sum")
    return apply(Sum(normalize_axes(axis, x.ndim, "sum"), bool(keepdims)), x)


@numpy_keywords
def mean(x, axis=None, keepdims=False):
    """Mean over `axis`: a sum times the constant 1/count."""
    x = tensor_arg(x, "mean")
    if not xp.issubdtype(x.dtype, xp.floating):
        raise TypeError(f"mean: {describe(x)} has dtype {x.dtype}; cast it to a float dtype")
    axes = normalize_axes(axis, x.ndim, "mean")
    count = math.prod(x.shape[i] for i in axes)
    if count == 0:
        raise ValueError(f"mean: {describe(x)} has no elements along axis {axis!r}")
    return _elementwise.mul(sum(x, axes, keepdims), 1.0 / count)


def broadcast_to(x, shape):
    """Repeat x along new or size-1 axes to `shape` (numpy broadcasting rules)."""
    x = tensor_arg(x, "broadcast_to")
    shape = shape_arg(shape, "broadcast_to")
    if x.shape == shape:
        return x
    try:
        if xp.broadcast_shapes(x.shape, shape) != shape:
            raise ValueError
    except ValueError:
        raise ValueError(f"broadcast_to: cannot broadcast {describe(x)} to shape {shape}") from None
    return apply(BroadcastTo(shape), x)


def sum_to(x, shape):
    """Sum x down to `shape`, the inverse of broadcast_to (and its gradient)."""
    x = tensor_arg(x, "sum_to")
    shape = shape_arg(shape, "sum_to")
    if x.shape == shape:
        return x
    lead = x.ndim - len(shape)
    if lead < 0 or builtins.any(n != 1 and n != m for n, m in zip(shape, x.shape[lead:])):
        raise ValueError(f"sum_to: cannot sum {describe(x)} down to shape {shape}")
    return apply(SumTo(shape), x)


def reshape(x, shape):
    """The same elements in a new shape (one entry may be -1)."""
    x = tensor_arg(x, "reshape")
    shape = shape_arg(shape, "reshape")
    try:
        resolved = xp.empty(x.shape, dtype=bool).reshape(shape).shape if -1 in shape else shape
        if math.prod(resolved) != x.size:
            raise ValueError
    except ValueError:
        raise ValueError(f"reshape: cannot reshape {describe(x)} to {shape}") from None
    if resolved == x.shape:
        return x
    return apply(Reshape(resolved), x)


def transpose(x, axes=None):
    """Permute the axes (reverse them when `axes` is None)."""
    x = tensor_arg(x, "transpose")
    if axes is None:
        axes = tuple(reversed(range(x.ndim)))
    else:
        given = tuple(axes)
        valid = builtins.all(isinstance(a, (int, xp.integer)) and not isinstance(a, bool)
                             and -x.ndim <= a < x.ndim for a in given)
        axes = tuple(int(a) % x.ndim for a in given) if valid else given
    if sorted(axes, key=str) != sorted(range(x.ndim), key=str):
        swap = ("; torch's transpose(0, 1) swaps two axes, here give them all, e.g. "
                f"{tuple([1, 0] + list(range(2, x.ndim)))}" if len(axes) == 2 < x.ndim else "")
        raise ValueError(f"transpose: axes {axes} are not a permutation of the axes of "
                         f"{describe(x)}{swap}")
    return apply(Transpose(axes), x)


@numpy_keywords
def concat(tensors, axis=0):
    """Join tensors along an existing axis."""
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)):
        raise TypeError("concat: pass a list or tuple of tensors")
    if not tensors:
        raise ValueError("concat: needs at least one tensor")
    tensors = [tensor_arg(t, "concat") for t in tensors]
    first = tensors[0]
    if first.ndim == 0:
        raise ValueError(f"concat: cannot concatenate 0-d tensors ({describe(first)})")
    (axis,) = normalize_axes(axis, first.ndim, "concat")
    for t in tensors[1:]:
        if t.dtype != first.dtype:
            raise TypeError(f"concat: {describe(first)} is {first.dtype} but {describe(t)} "
                            f"is {t.dtype}")
        if t.ndim != first.ndim or builtins.any(
                n != m for i, (n, m) in enumerate(zip(t.shape, first.shape)) if i != axis):
            raise ValueError(f"concat: cannot join {describe(first)} and {describe(t)} "
                             f"along axis {axis}")
    return apply(Concat(axis), *tensors)


@numpy_keywords
def stack(tensors, axis=0):
    """Join tensors of one shape along a new axis: each reshaped to have a 1 there, then
    concatenated (so its gradient graph is theirs)."""
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)):
        raise TypeError("stack: pass a list or tuple of tensors")
    if not tensors:
        raise ValueError("stack: needs at least one tensor")
    tensors = [tensor_arg(t, "stack") for t in tensors]
    first = tensors[0]
    for t in tensors[1:]:
        if t.shape != first.shape:
            raise ValueError(f"stack: {describe(first)} and {describe(t)} differ in shape")
    (axis,) = normalize_axes(axis, first.ndim + 1, "stack")
    expanded = first.shape[:axis] + (1,) + first.shape[axis:]
    return concat([reshape(t, expanded) for t in tensors], axis)


def _input_size(node):
    return node.inputs[0].size
