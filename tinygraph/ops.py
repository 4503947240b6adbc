"""The primitive ops: one small class per op, with its forward on arrays and its vjp.

Every vjp is written in tinygraph ops, never on raw arrays. Run with recording off it is the
fast path of an ordinary backward pass; run with recording on (`create_graph=True`) the same
code builds the backward graph that can be rendered and differentiated again. There is no
second, array-only derivative to drift out of sync.

A vjp receives the node, the gradient `g` of the node's output and `needs` (one flag per
input: is that input's gradient wanted) and returns one gradient Tensor or None per input.
"""
import builtins
import math

from .backend import xp
from .anomaly import check_result
from .deferred import DeferredMatmul, DeferredScatter, deferring
from .mode import state
from .node import Node
from .tensor import Tensor, as_operand, describe


class Primitive:
    """Base of all primitives. Subclasses set `name` and implement forward and vjp."""

    name = "primitive"

    def forward(self, *arrays):
        """The op on arrays: one ndarray per input, in order; returns the output array.

        Called when a node is created, and by compiled programs on every replay.
        """
        raise NotImplementedError

    def vjp(self, node, g, needs):
        """The gradients of the inputs, given `g`, the gradient of `node`'s output.

        Written in tinygraph ops (never on raw arrays), so the same code is the fast backward
        pass and, recorded, the backward graph. Returns one Tensor or None per input; `needs`
        says which inputs' gradients are wanted.
        """
        raise NotImplementedError

    def attrs(self):
        """Static attributes shown in diagrams and compared by rewrite passes."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.attrs().items())
        return f"{self.name}({args})"


def apply(prim, *inputs):
    """Run a primitive on tensors; when recording, link the output to a new node."""
    if state.detect_anomaly:
        # numpy's warning would only repeat, less precisely, the error check_result raises.
        with xp.errstate(all="ignore"):
            data = xp.asarray(prim.forward(*[t.data for t in inputs]))
        check_result(prim.name, data, [t.data for t in inputs], [t.name for t in inputs])
    else:
        data = prim.forward(*[t.data for t in inputs])
    if type(data) is not xp.ndarray:
        data = xp.asarray(data)   # numpy reductions return scalars for 0-d results
    out = Tensor(data)
    if state.grad_enabled:
        out.requires_grad = builtins.any(t.requires_grad for t in inputs)
        out._node = Node(prim, inputs, out)
    return out


# --- operand checks -------------------------------------------------------------------------

def _tensor_arg(x, op_name):
    if isinstance(x, Tensor):
        return x
    return as_operand(x, op_name)


def _pair(a, b, op_name):
    """Coerce a binary op's operands; constants take the tensor operand's dtype."""
    a_is, b_is = isinstance(a, Tensor), isinstance(b, Tensor)
    if a_is and not b_is:
        b = as_operand(b, op_name, like=a)
    elif b_is and not a_is:
        a = as_operand(a, op_name, like=b)
    elif not a_is and not b_is:
        a = as_operand(a, op_name)
        b = as_operand(b, op_name, like=a)
    if a.dtype != b.dtype:
        raise TypeError(f"{op_name}: operands have different dtypes: {describe(a)} is "
                        f"{a.dtype}, {describe(b)} is {b.dtype}; cast one of them first")
    return a, b


def _check_broadcast(a, b, op_name):
    """Raise a ValueError naming the op and operands unless their shapes broadcast."""
    try:
        xp.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op_name}: cannot broadcast {describe(a)} with {describe(b)}") from None


def _unbroadcast(g, shape):
    """Gradient of an implicit broadcast: sum g back down to the operand's shape."""
    return g if g.shape == shape else sum_to(g, shape)


# --- elementwise binary ---------------------------------------------------------------------

class Add(Primitive):
    name = "add"

    def forward(self, a, b):
        return a + b

    def vjp(self, node, g, needs):
        a, b = node.inputs
        return [_unbroadcast(g, a.shape) if needs[0] else None,
                _unbroadcast(g, b.shape) if needs[1] else None]


class Sub(Primitive):
    name = "sub"

    def forward(self, a, b):
        return a - b

    def vjp(self, node, g, needs):
        a, b = node.inputs
        return [_unbroadcast(g, a.shape) if needs[0] else None,
                _unbroadcast(neg(g), b.shape) if needs[1] else None]


class Mul(Primitive):
    name = "mul"

    def forward(self, a, b):
        return a * b

    def vjp(self, node, g, needs):
        a, b = node.inputs
        return [_unbroadcast(g * b, a.shape) if needs[0] else None,
                _unbroadcast(g * a, b.shape) if needs[1] else None]


class Div(Primitive):
    name = "div"

    def forward(self, a, b):
        return a / b

    def vjp(self, node, g, needs):
        a, b = node.inputs
        # d(a/b)/db = -a/b**2 = -(a/b)/b: reuse the saved output.
        return [_unbroadcast(g / b, a.shape) if needs[0] else None,
                _unbroadcast(neg(g * node.output) / b, b.shape) if needs[1] else None]


def _binary(prim_class, a, b):
    a, b = _pair(a, b, prim_class.name)
    if a.shape != b.shape:
        _check_broadcast(a, b, prim_class.name)
    return apply(prim_class(), a, b)


def add(a, b):
    """a + b with numpy broadcasting."""
    return _binary(Add, a, b)


def sub(a, b):
    """a - b with numpy broadcasting."""
    return _binary(Sub, a, b)


def mul(a, b):
    """Elementwise (Hadamard) product a * b with numpy broadcasting."""
    return _binary(Mul, a, b)


def div(a, b):
    """Elementwise a / b with numpy broadcasting."""
    return _binary(Div, a, b)


# --- elementwise unary ----------------------------------------------------------------------

class Neg(Primitive):
    name = "neg"

    def forward(self, a):
        return -a

    def vjp(self, node, g, needs):
        return [neg(g)]


class Pow(Primitive):
    name = "pow"

    def __init__(self, exponent):
        self.exponent = exponent

    def forward(self, a):
        return a ** self.exponent

    def vjp(self, node, g, needs):
        (x,) = node.inputs
        p = self.exponent
        if p == 0:
            return [None]        # constant: not 0 * x**-1, which is NaN at x = 0
        if p == 1:
            return [g]
        return [g * p * pow(x, p - 1)]


class Exp(Primitive):
    name = "exp"

    def forward(self, a):
        return xp.exp(a)

    def vjp(self, node, g, needs):
        return [g * node.output]


class Log(Primitive):
    name = "log"

    def forward(self, a):
        return xp.log(a)

    def vjp(self, node, g, needs):
        return [g / node.inputs[0]]


class Sigmoid(Primitive):
    name = "sigmoid"

    def forward(self, a):
        # exp of a non-positive number only: no overflow for large |a|.
        e = xp.exp(-xp.abs(a))
        return xp.where(a >= 0, 1 / (1 + e), e / (1 + e))

    def vjp(self, node, g, needs):
        y = node.output
        return [g * y * (1 - y)]


class Tanh(Primitive):
    name = "tanh"

    def forward(self, a):
        return xp.tanh(a)

    def vjp(self, node, g, needs):
        y = node.output
        return [g * (1 - y * y)]


class Relu(Primitive):
    name = "relu"

    def forward(self, a):
        return xp.maximum(a, 0)

    def vjp(self, node, g, needs):
        return [g * step(node.inputs[0])]


class Step(Primitive):
    """Heaviside step (1 where x > 0): relu's derivative. Its own derivative is zero."""

    name = "step"

    def forward(self, a):
        return (a > 0).astype(a.dtype)

    def vjp(self, node, g, needs):
        return [None]


def neg(x):
    """-x."""
    return apply(Neg(), _tensor_arg(x, "neg"))


def pow(x, exponent):
    """x ** exponent for a constant (Python or numpy number) exponent."""
    x = _tensor_arg(x, "pow")
    if isinstance(exponent, (xp.ndarray, xp.generic)) and exponent.ndim == 0:
        # A Python scalar keeps x's dtype under numpy 2's promotion rules; np.float64 would not.
        exponent = exponent.item()
    if isinstance(exponent, bool) or not isinstance(exponent, (int, float)):
        raise TypeError(f"pow: the exponent must be a constant real number, got "
                        f"{type(exponent).__name__}; for a tensor exponent write "
                        "exp(y * log(x))")
    return apply(Pow(exponent), x)


def exp(x):
    """Elementwise e ** x."""
    return apply(Exp(), _tensor_arg(x, "exp"))


def log(x):
    """Elementwise natural logarithm."""
    return apply(Log(), _tensor_arg(x, "log"))


def sigmoid(x):
    """Elementwise logistic function 1 / (1 + exp(-x)), stable for large |x|."""
    return apply(Sigmoid(), _tensor_arg(x, "sigmoid"))


def tanh(x):
    """Elementwise hyperbolic tangent."""
    return apply(Tanh(), _tensor_arg(x, "tanh"))


def relu(x):
    """Elementwise max(x, 0)."""
    return apply(Relu(), _tensor_arg(x, "relu"))


def step(x):
    """Elementwise 1 where x > 0 else 0 (no gradient flows through it)."""
    return apply(Step(), _tensor_arg(x, "step"))


# --- matmul ---------------------------------------------------------------------------------

def _swap_last(t):
    axes = list(range(t.ndim))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return transpose(t, tuple(axes))


class MatMul(Primitive):
    name = "matmul"

    def forward(self, a, b):
        if b.ndim == 2 and a.ndim > 2:
            # (..., n, k) @ (k, m) is one (N, k) @ (k, m) product: numpy would otherwise run
            # one small BLAS call per leading index, 1.5x slower for a (20, 35, 650) input.
            rows = math.prod(a.shape[:-1])
            return xp.matmul(a.reshape(rows, a.shape[-1]), b).reshape(a.shape[:-1] + b.shape[1:])
        return xp.matmul(a, b)

    def vjp(self, node, g, needs):
        a, b = node.inputs
        return [_unbroadcast(matmul(g, _swap_last(b)), a.shape) if needs[0] else None,
                _right_gradient(a, g, b) if needs[1] else None]


def _right_gradient(a, g, b):
    """d/db of a @ b, i.e. a^T @ g summed over batch dimensions.

    A 2-D weight applied to a batch of rows (..., k) gets its gradient as one 2-D product of
    the flattened rows, not as a batched product followed by a sum over the batch (measured 10x
    slower for the input projection of a whole sequence). On the fast path 2-D products are
    deferred so that a weight used by many matmuls gets one matmul for all of its uses (see
    tinygraph.deferred).
    """
    if b.ndim == 2 and a.ndim > 2:
        rows = math.prod(a.shape[:-1])
        a = reshape(a, (rows, a.shape[-1]))
        g = reshape(g, (rows, g.shape[-1]))
    if deferring() and a.ndim == 2 and g.ndim == 2 and b.ndim == 2:
        return DeferredMatmul([a.data], [g.data])
    return _unbroadcast(matmul(_swap_last(a), g), b.shape)


def matmul(a, b):
    """Matrix product a @ b; batch dimensions (all but the last two) broadcast.

    A 1-D operand is treated as a row (left) or column (right) vector, as in numpy.
    """
    a, b = _pair(a, b, "matmul")
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must have at least one dimension, got "
                         f"{describe(a)} and {describe(b)}; use mul for scalars")
    inner_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if a.shape[-1] != inner_b:
        raise ValueError(f"matmul: cannot multiply {describe(a)} by {describe(b)}: inner "
                         f"dimensions {a.shape[-1]} and {inner_b} differ")
    if a.ndim == 1 or b.ndim == 1:
        # Promote vectors to a row / column, multiply, and drop the added axis again.
        a2 = reshape(a, (1, a.shape[0])) if a.ndim == 1 else a
        b2 = reshape(b, (b.shape[0], 1)) if b.ndim == 1 else b
        out = matmul(a2, b2)
        shape = out.shape[:-2] + (out.shape[-2:-1] if a.ndim > 1 else ()) + (
            out.shape[-1:] if b.ndim > 1 else ())
        return reshape(out, shape)
    try:
        xp.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dimensions of {describe(a)} and {describe(b)} do "
                         "not broadcast") from None
    return apply(MatMul(), a, b)


# --- reductions and broadcasting ------------------------------------------------------------

def _normalize_axes(axis, ndim, op_name):
    if axis is None:
        return tuple(range(ndim))
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    normalized = []
    for ax in axes:
        if isinstance(ax, bool) or not isinstance(ax, (int, xp.integer)):
            raise TypeError(f"{op_name}: axis must be an int or a tuple of ints, got {ax!r}")
        if not -ndim <= ax < ndim:
            raise ValueError(f"{op_name}: axis {ax!r} is out of range for {ndim} dimensions")
        normalized.append(int(ax) % ndim)
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"{op_name}: repeated axis in {axis!r}")
    return tuple(sorted(normalized))


class Sum(Primitive):
    name = "sum"

    def __init__(self, axis, keepdims):
        self.axis = axis
        self.keepdims = keepdims

    def forward(self, a):
        return xp.sum(a, axis=self.axis, keepdims=self.keepdims)

    def vjp(self, node, g, needs):
        x = node.inputs[0]
        if not self.keepdims:
            kept = tuple(1 if i in self.axis else n for i, n in enumerate(x.shape))
            g = reshape(g, kept)
        return [broadcast_to(g, x.shape)]


class BroadcastTo(Primitive):
    name = "broadcast_to"

    def __init__(self, shape):
        self.shape = shape

    def forward(self, a):
        return xp.broadcast_to(a, self.shape)

    def vjp(self, node, g, needs):
        return [sum_to(g, node.inputs[0].shape)]


class SumTo(Primitive):
    """Sum over the axes that broadcasting from `shape` would have added or stretched."""

    name = "sum_to"

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


def sum(x, axis=None, keepdims=False):
    """Sum over `axis` (an int, a tuple of ints, or None for all axes)."""
    x = _tensor_arg(x, "sum")
    return apply(Sum(_normalize_axes(axis, x.ndim, "sum"), bool(keepdims)), x)


def mean(x, axis=None, keepdims=False):
    """Mean over `axis`: a sum times the constant 1/count."""
    x = _tensor_arg(x, "mean")
    if not xp.issubdtype(x.dtype, xp.floating):
        raise TypeError(f"mean: {describe(x)} has dtype {x.dtype}; cast it to a float dtype")
    axes = _normalize_axes(axis, x.ndim, "mean")
    count = math.prod(x.shape[i] for i in axes)
    if count == 0:
        raise ValueError(f"mean: {describe(x)} has no elements along axis {axis!r}")
    return mul(sum(x, axes, keepdims), 1.0 / count)


def _shape_arg(shape, op_name):
    if isinstance(shape, (int, xp.integer)):
        shape = (shape,)
    try:
        return tuple(int(n) for n in shape)
    except TypeError:
        raise TypeError(f"{op_name}: shape must be an int or a tuple of ints, got {shape!r}") from None


def broadcast_to(x, shape):
    """Repeat x along new or size-1 axes to `shape` (numpy broadcasting rules)."""
    x = _tensor_arg(x, "broadcast_to")
    shape = _shape_arg(shape, "broadcast_to")
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
    x = _tensor_arg(x, "sum_to")
    shape = _shape_arg(shape, "sum_to")
    if x.shape == shape:
        return x
    lead = x.ndim - len(shape)
    if lead < 0 or builtins.any(n != 1 and n != m for n, m in zip(shape, x.shape[lead:])):
        raise ValueError(f"sum_to: cannot sum {describe(x)} down to shape {shape}")
    return apply(SumTo(shape), x)


# --- shape ops ------------------------------------------------------------------------------

class Reshape(Primitive):
    name = "reshape"

    def __init__(self, shape):
        self.shape = shape

    def forward(self, a):
        return a.reshape(self.shape)

    def vjp(self, node, g, needs):
        return [reshape(g, node.inputs[0].shape)]


class Transpose(Primitive):
    name = "transpose"

    def __init__(self, axes):
        self.axes = axes

    def forward(self, a):
        return a.transpose(self.axes)

    def vjp(self, node, g, needs):
        inverse = tuple(int(i) for i in xp.argsort(self.axes))
        return [transpose(g, inverse)]


def reshape(x, shape):
    """The same elements in a new shape (one entry may be -1)."""
    x = _tensor_arg(x, "reshape")
    shape = _shape_arg(shape, "reshape")
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
    x = _tensor_arg(x, "transpose")
    if axes is None:
        axes = tuple(reversed(range(x.ndim)))
    else:
        given = tuple(axes)
        valid = builtins.all(isinstance(a, (int, xp.integer)) and not isinstance(a, bool)
                             and -x.ndim <= a < x.ndim for a in given)
        axes = tuple(int(a) % x.ndim for a in given) if valid else given
    if sorted(axes, key=str) != sorted(range(x.ndim), key=str):
        raise ValueError(f"transpose: axes {axes} are not a permutation of the axes of {describe(x)}")
    return apply(Transpose(axes), x)


# --- indexing -------------------------------------------------------------------------------

class Slice(Primitive):
    """x[key] for a basic key (ints, slices, None, Ellipsis): a view."""

    name = "slice"

    def __init__(self, key):
        self.key = key

    def forward(self, a):
        return a[self.key]

    def vjp(self, node, g, needs):
        return [scatter(SliceGrad(self.key, node.inputs[0].shape), g)]


class Scatter(Primitive):
    """Base of the ops that put g into zeros of `shape` at `key` (the gradients of indexing).

    `add_into(target, g, *indices)` does the same into an existing buffer, in place: the fast
    backward pass uses it to sum the gradients of many slices of one tensor (one per time
    step, say) into one buffer instead of building a zero-filled array for each.
    """

    def __init__(self, key, shape):
        self.key = key
        self.shape = shape

    def forward(self, g, *indices):
        out = xp.zeros(self.shape, dtype=g.dtype)
        self.add_into(out, g, *indices)
        return out


def scatter(prim, g, *indices):
    """Apply a Scatter op; deferred on the fast backward path (see tinygraph.deferred)."""
    if deferring():
        return DeferredScatter(prim, g, indices)
    return apply(prim, g, *indices)


class SliceGrad(Scatter):
    """Place g at `key` in zeros of `shape`: the gradient of a slice, itself differentiable."""

    name = "slice_grad"

    def add_into(self, target, g):
        target[self.key] += g

    def vjp(self, node, g, needs):
        return [apply(Slice(self.key), g)]


class _IndexSlot:
    """Marks the place of an integer index array in an Index key."""

    def __repr__(self):
        return "<ints>"


INDEX_SLOT = _IndexSlot()


def _fill(key, indices):
    """The key with its index slots replaced by the index arrays, in order."""
    it = iter(indices)
    return tuple(next(it) if part is INDEX_SLOT else part for part in key)


class Index(Primitive):
    """x[key] with integer arrays in the key (a gather, e.g. an embedding lookup): a copy.

    The integer arrays are inputs of the node, after x (the key holds INDEX_SLOT where each
    one goes), not attributes: so the ids are part of the graph, drawn as its inputs, and a
    compiled program can feed new ids on every call (see tinygraph.compile).
    """

    name = "index"

    def __init__(self, key):
        self.key = key

    def forward(self, a, *indices):
        return a[_fill(self.key, indices)]

    def vjp(self, node, g, needs):
        indices = node.inputs[1:]
        return [scatter(IndexGrad(self.key, node.inputs[0].shape), g, *indices)] + [
            None] * len(indices)


class IndexGrad(Scatter):
    """Scatter-add g into zeros of `shape` at `key`: repeated indices accumulate."""

    name = "index_grad"

    def add_into(self, target, g, *indices):
        xp.add.at(target, _fill(self.key, indices), g)

    def vjp(self, node, g, needs):
        indices = node.inputs[1:]
        return [apply(Index(self.key), g, *indices)] + [None] * len(indices)


def _normalize_key(key, op_name):
    """The key as a tuple, with its integer arrays moved out: (key with INDEX_SLOT in their
    places, the integer index Tensors in order). Lists and arrays become constant Tensors
    holding a copy (the backward must see the indices the forward used); an integer Tensor
    is used as it is, as an input of the graph."""
    parts = key if isinstance(key, tuple) else (key,)
    normalized, indices = [], []
    for part in parts:
        if isinstance(part, list):
            part = xp.asarray(part, dtype=xp.intp if len(part) == 0 else None)
        if isinstance(part, (Tensor, xp.ndarray)):
            if part.dtype == bool:
                data = part.data if isinstance(part, Tensor) else part
                for axis_ids in xp.nonzero(data):
                    normalized.append(INDEX_SLOT)
                    indices.append(Tensor(axis_ids, constant=True))
                continue
            if part.dtype.kind not in "iu":
                raise TypeError(f"{op_name}: index arrays must hold integers, got {part.dtype}")
            if isinstance(part, xp.ndarray):
                part = Tensor(part.copy(), constant=True)
            normalized.append(INDEX_SLOT)
            indices.append(part)
        elif not (part is None or part is Ellipsis or isinstance(part, (slice, int, xp.integer))):
            raise TypeError(f"{op_name}: unsupported index {part!r} of type {type(part).__name__}")
        else:
            normalized.append(part)
    return tuple(normalized), indices


def getitem(x, key):
    """x[key]: basic slicing gives a "slice" node, integer-array indexing an "index" node
    whose index arrays are inputs of the node."""
    x = _tensor_arg(x, "getitem")
    key, indices = _normalize_key(key, "getitem")
    prim = Index(key) if indices else Slice(key)
    try:
        return apply(prim, x, *indices)
    except IndexError as e:
        shown = _fill(key, [t.data for t in indices])
        raise IndexError(f"{prim.name}: index {shown!r} does not fit {describe(x)}: {e}") from None


# --- randomness -----------------------------------------------------------------------------

class DropoutMask(Primitive):
    """A fresh inverted-dropout mask: 1/(1-p) where an element is kept, 0 where it is dropped.

    An op with no inputs rather than a constant, so that the draw is part of the graph: a
    compiled program replaying the graph draws a new mask on every call, from the same
    generator and in the same order as eager runs would.
    """

    name = "dropout_mask"

    def __init__(self, p, shape, dtype, rng):
        self.p, self.shape, self.dtype = p, tuple(shape), xp.dtype(dtype)
        self._rng = rng

    def forward(self):
        keep = self._rng.random(self.shape) >= self.p
        return keep.astype(self.dtype) / self.dtype.type(1 - self.p)

    def vjp(self, node, g, needs):
        return []


def dropout_mask(p, shape, dtype, rng):
    """A Tensor holding a fresh mask drawn from `rng` (see DropoutMask)."""
    return apply(DropoutMask(p, shape, dtype, rng))


class IdsInRange(Primitive):
    """Integer ids, unchanged, once each is checked to lie in [0, size).

    Embedding rows and class targets must not wrap around the way numpy reads a negative
    index. The check is a node, not Python code before the graph, so that a compiled program
    checks the ids of every call, not only those of its trace.
    """

    name = "ids_in_range"

    def __init__(self, size, message):
        self.size = size
        self._message = message       # with {bad} and {size}

    def forward(self, ids):
        if ids.size and (ids.min() < 0 or ids.max() >= self.size):
            bad = ids[(ids < 0) | (ids >= self.size)].flat[0]
            raise ValueError(self._message.format(bad=bad, size=self.size))
        return ids

    def vjp(self, node, g, needs):
        return [None]


def ids_in_range(ids, size, message):
    """`ids` (an integer Tensor) after checking 0 <= id < size; else ValueError(message)."""
    return apply(IdsInRange(size, message), ids)


# --- concat ---------------------------------------------------------------------------------

class Concat(Primitive):
    name = "concat"

    def __init__(self, axis):
        self.axis = axis

    def forward(self, *arrays):
        return xp.concatenate(arrays, axis=self.axis)

    def vjp(self, node, g, needs):
        grads, start = [], 0
        lead = (slice(None),) * self.axis
        for t, need in zip(node.inputs, needs):
            stop = start + t.shape[self.axis]
            grads.append(getitem(g, lead + (slice(start, stop),)) if need else None)
            start = stop
        return grads


def concat(tensors, axis=0):
    """Join tensors along an existing axis."""
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)):
        raise TypeError("concat: pass a list or tuple of tensors")
    if not tensors:
        raise ValueError("concat: needs at least one tensor")
    tensors = [_tensor_arg(t, "concat") for t in tensors]
    first = tensors[0]
    if first.ndim == 0:
        raise ValueError(f"concat: cannot concatenate 0-d tensors ({describe(first)})")
    (axis,) = _normalize_axes(axis, first.ndim, "concat")
    for t in tensors[1:]:
        if t.dtype != first.dtype:
            raise TypeError(f"concat: {describe(first)} is {first.dtype} but {describe(t)} "
                            f"is {t.dtype}")
        if t.ndim != first.ndim or builtins.any(
                n != m for i, (n, m) in enumerate(zip(t.shape, first.shape)) if i != axis):
            raise ValueError(f"concat: cannot join {describe(first)} and {describe(t)} "
                             f"along axis {axis}")
    return apply(Concat(axis), *tensors)


# --- softmax and cross-entropy --------------------------------------------------------------

class LogSoftmax(Primitive):
    """log(softmax(x)) along an axis, fused for numerical stability (max subtracted first)."""

    name = "log_softmax"

    def __init__(self, axis):
        self.axis = axis

    def forward(self, a):
        shifted = a - xp.max(a, axis=self.axis, keepdims=True)
        return shifted - xp.log(xp.sum(xp.exp(shifted), axis=self.axis, keepdims=True))

    def vjp(self, node, g, needs):
        softmax = exp(node.output)
        return [g - softmax * sum(g, self.axis, keepdims=True)]


def log_softmax(x, axis=-1):
    """log(exp(x) / sum(exp(x), axis)), computed without overflow."""
    x = _tensor_arg(x, "log_softmax")
    if x.ndim == 0:
        raise ValueError("log_softmax: needs at least one dimension")
    (axis,) = _normalize_axes(axis, x.ndim, "log_softmax")
    if x.shape[axis] == 0:
        raise ValueError(f"log_softmax: {describe(x)} has no entries along axis {axis}")
    return apply(LogSoftmax(axis), x)


def cross_entropy(logits, targets):
    """Mean negative log-likelihood of integer `targets` under softmax(logits).

    logits: (..., C) floating; targets: integers of shape logits.shape[:-1] in [0, C). The
    backward indexes the target entries; it never builds a one-hot matrix.
    """
    logits = _tensor_arg(logits, "cross_entropy")
    if not xp.issubdtype(logits.dtype, xp.floating):
        raise TypeError(f"cross_entropy: logits must be floating point, got {logits.dtype}")
    if logits.ndim == 0:
        raise ValueError("cross_entropy: logits need a class axis, got a 0-d tensor")
    # An integer Tensor is used as it is (a graph input, so a compiled program can feed new
    # targets); anything else is copied: the backward must see the targets the forward used.
    target_input = targets if isinstance(targets, Tensor) else None
    targets = targets.data if isinstance(targets, Tensor) else xp.array(targets)
    if targets.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: targets must be integer class indices, got dtype "
                        f"{targets.dtype}")
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"cross_entropy: targets of shape {targets.shape} do not match "
                         f"{describe(logits)} (expected {logits.shape[:-1]})")
    classes = logits.shape[-1]
    if targets.size == 0:
        raise ValueError("cross_entropy: there are no rows to average over")
    flat = reshape(target_input if target_input is not None else Tensor(targets, constant=True),
                   (targets.size,))
    flat = ids_in_range(flat, classes, "cross_entropy: target {bad} is outside the {size} classes")
    logp = log_softmax(logits, -1)
    if logp.ndim != 2:
        logp = reshape(logp, (-1, classes))
    picked = getitem(logp, (xp.arange(targets.size), flat))
    return neg(mean(picked))
