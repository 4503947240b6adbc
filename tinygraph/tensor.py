"""Tensor: an ndarray with a name, a gradient slot and the node that produced it."""
import numbers

from .backend import xp


class Tensor:
    """A value in a tinygraph computation.

    Attributes:
        data: the ndarray value.
        name: an optional label used in error messages and diagrams.
        requires_grad: whether gradients flow to (or through) this tensor.
        grad: the gradient accumulated by `backward()` (a Tensor), or None. Only leaves
            (tensors created by the user, not by an op) receive one.
        constant: True for tensors made from Python numbers or bare arrays passed to an op.
    """

    __slots__ = ("data", "name", "requires_grad", "grad", "_node", "constant", "__weakref__")
    # numpy defers to our reflected operators (ndarray + Tensor -> Tensor.__radd__).
    __array_ufunc__ = None

    def __init__(self, data, name=None, requires_grad=False, _node=None, constant=False):
        if requires_grad and not xp.issubdtype(data.dtype, xp.floating):
            raise TypeError(f"tensor {name + ' ' if name else ''}requires_grad=True needs "
                            f"floating-point data, got dtype {data.dtype}; pass "
                            "dtype=np.float32 or np.float64")
        self.data = data
        self.name = name
        self.requires_grad = requires_grad
        self.grad = None
        self._node = _node
        self.constant = constant

    # --- plain properties -------------------------------------------------------------------
    @property
    def shape(self):
        """The shape of the value, a tuple of ints."""
        return self.data.shape

    @property
    def dtype(self):
        """The numpy dtype of the value."""
        return self.data.dtype

    @property
    def ndim(self):
        """The number of axes of the value."""
        return self.data.ndim

    @property
    def size(self):
        """The number of elements of the value."""
        return self.data.size

    @property
    def node(self):
        """The op node that produced this tensor, or None for a leaf."""
        return self._node

    @property
    def is_leaf(self):
        """True for a tensor no recorded op produced (made by the user, or under no_grad)."""
        return self._node is None

    def __len__(self):
        return len(self.data)

    def __bool__(self):
        return bool(self.data)   # numpy's rule: only a one-element tensor has a truth value

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    def __repr__(self):
        name = f", name={self.name!r}" if self.name else ""
        grad = ", requires_grad=True" if self.requires_grad else ""
        op = f", op={self._node.op!r}" if self._node is not None else ""
        return f"Tensor({self.data!r}{name}{grad}{op})"

    def numpy(self):
        """The value as an ndarray (the same object as `.data`)."""
        return self.data

    def item(self):
        """The value of a one-element tensor as a Python number."""
        return self.data.item()

    def detach(self):
        """The same value as a new leaf outside the graph (no node, no gradient)."""
        return Tensor(self.data, name=self.name)

    def zero_grad(self):
        """Forget the accumulated gradient (`.grad` becomes None)."""
        self.grad = None

    def backward(self, grad=None, create_graph=False):
        """Accumulate d(self)/d(leaf) into `.grad` of every leaf that requires grad.

        `grad` seeds the backward pass and is required unless this tensor is a scalar. With
        `create_graph=True` the accumulated gradients are graph nodes that can be rendered or
        differentiated again.
        """
        from .autodiff import backward
        backward(self, grad, create_graph=create_graph)

    # --- operators and method forms of the primitives ---------------------------------------
    def __add__(self, other): return ops.add(self, other)
    def __radd__(self, other): return ops.add(other, self)
    def __sub__(self, other): return ops.sub(self, other)
    def __rsub__(self, other): return ops.sub(other, self)
    def __mul__(self, other): return ops.mul(self, other)
    def __rmul__(self, other): return ops.mul(other, self)
    def __truediv__(self, other): return ops.div(self, other)
    def __rtruediv__(self, other): return ops.div(other, self)
    def __matmul__(self, other): return ops.matmul(self, other)
    def __rmatmul__(self, other): return ops.matmul(other, self)
    def __pow__(self, exponent): return ops.pow(self, exponent)
    def __neg__(self): return ops.neg(self)
    def __getitem__(self, key): return ops.getitem(self, key)

    def __rpow__(self, base):
        raise TypeError("pow: only a constant exponent is supported (x ** 2.0); for a tensor "
                        "exponent write exp(y * log(base))")

    def sum(self, axis=None, keepdims=False):
        """`tinygraph.sum` of this tensor: the sum over `axis` (None: all axes)."""
        return ops.sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        """`tinygraph.mean` of this tensor: the mean over `axis` (None: all axes)."""
        return ops.mean(self, axis, keepdims)

    def reshape(self, *shape):
        """`tinygraph.reshape`; the shape as one tuple or as separate ints."""
        return ops.reshape(self, shape[0] if len(shape) == 1 else shape)

    def transpose(self, *axes):
        """`tinygraph.transpose`; axes as one tuple or as separate ints (none: reverse)."""
        if len(axes) == 1 and not isinstance(axes[0], (int, xp.integer)):
            axes = axes[0]   # x.transpose((1, 0)) as well as x.transpose(1, 0)
        return ops.transpose(self, axes or None)

    def exp(self):
        """`tinygraph.exp` of this tensor."""
        return ops.exp(self)

    def log(self):
        """`tinygraph.log` of this tensor."""
        return ops.log(self)

    def sigmoid(self):
        """`tinygraph.sigmoid` of this tensor."""
        return ops.sigmoid(self)

    def tanh(self):
        """`tinygraph.tanh` of this tensor."""
        return ops.tanh(self)

    def relu(self):
        """`tinygraph.relu` of this tensor."""
        return ops.relu(self)

    @property
    def T(self):
        """The transpose (all axes reversed), a recorded `transpose` op."""
        return ops.transpose(self)


def tensor(data, name=None, requires_grad=False, dtype=None):
    """Create a leaf tensor from an array, a nested list or a number.

    A gradient can only be asked for a floating-point tensor: `requires_grad=True` on integer
    or boolean data raises TypeError.
    """
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, (str, bytes, dict, set)) or data is None:
        raise TypeError(f"tensor: cannot make a tensor from {type(data).__name__}; "
                        "pass an array, a (nested) list of numbers or a number")
    array = xp.array(data, dtype=dtype)
    if array.dtype == object:
        raise TypeError("tensor: data is not numeric (numpy made an object array of it)")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"tensor: data of dtype {array.dtype} is not numeric; tensors hold "
                        "booleans, integers or floating-point numbers")
    return Tensor(array, name=name, requires_grad=requires_grad)


class Parameter(Tensor):
    """A trainable leaf: always requires grad, and diagrams draw it apart from activations."""

    __slots__ = ()

    def __init__(self, data, name=None, dtype=None):
        array = xp.array(data.data if isinstance(data, Tensor) else data, dtype=dtype)
        super().__init__(array, name=name, requires_grad=True)


def describe(t):
    """How a tensor is named in error messages: its name (or origin) and shape."""
    if t.name:
        label = repr(t.name)
    elif t._node is not None:
        label = f"the output of {t._node.op}"
    elif t.constant:
        label = "a constant"
    else:
        label = "an unnamed tensor"
    return f"{label} with shape {t.shape}"


def as_operand(value, op_name, like=None):
    """Turn an op's operand into a Tensor.

    Python numbers and bare arrays become constants; when `like` (the other operand) is a
    floating tensor they take its dtype, so a stray float64 scalar never promotes float32
    math. Anything else is a TypeError naming the op.
    """
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (numbers.Number, xp.generic, xp.ndarray)) and not isinstance(value, complex):
        # A copy: the graph must not change when the caller later mutates the array.
        array = xp.array(value)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"{op_name}: unsupported operand dtype {array.dtype}")
        if like is not None and xp.issubdtype(like.dtype, xp.floating):
            array = array.astype(like.dtype, copy=False)
        return Tensor(array, constant=True)
    raise TypeError(f"{op_name}: operand of type {type(value).__name__} is not a Tensor, an "
                    "ndarray or a number; wrap it with tinygraph.tensor(...)")


from . import ops  # noqa: E402  (operators above call into ops; ops imports Tensor)
