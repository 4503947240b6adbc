"""Tensor: an ndarray with a name, a gradient slot and the node that produced it.

A tensor may also be *abstract*: it has a shape and a dtype but no value yet (`data` is None).
Shape-only evaluation makes them (a compiled step traces its function on them), and so does
the fast backward pass for the gradient terms the accumulator sums later. The arithmetic
operators and method forms (`x + y`, `x @ W`, `x.sum()`) are installed by `tinygraph.ops`.
"""
import numbers
import os
import threading
import weakref

from ..backend import xp
from .interpreter import interpreter


STATE = "state"              # the roles a model may give a tensor (diagrams read them)
CELL_STATE = "cell state"


class Tensor:
    """A value in a tinygraph computation.

    Attributes:
        data: the ndarray value (None for an abstract tensor: see the module docstring).
        name: an optional label used in error messages and diagrams.
        requires_grad: whether gradients flow to (or through) this tensor.
        grad: the gradient accumulated by `backward()` (a Tensor), or None. Only leaves
            (tensors created by the user, not by an op) receive one.
        constant: True for tensors made from Python numbers or bare arrays passed to an op.
        role: the part the tensor plays in a model, set by the model for diagrams to read:
            STATE (a recurrent hidden state h), CELL_STATE (an LSTM's c) or None.
    """

    __slots__ = ("_data", "_version", "name", "requires_grad", "grad", "_node", "constant",
                 "_spec", "role", "__weakref__")
    # numpy defers to our reflected operators (ndarray + Tensor -> Tensor.__radd__).
    __array_ufunc__ = None

    def __init__(self, data, name=None, requires_grad=False, _node=None, constant=False,
                 spec=None):
        if data is None:
            if spec is None:
                raise TypeError("Tensor: give data, or a (shape, dtype) spec for an abstract one")
            spec = (tuple(spec[0]), xp.dtype(spec[1]))
        if requires_grad:
            dtype = data.dtype if data is not None else spec[1]
            if not xp.issubdtype(dtype, xp.floating):
                raise TypeError(f"tensor {name + ' ' if name else ''}requires_grad=True needs "
                                f"floating-point data, got dtype {dtype}; pass "
                                "dtype=np.float32 or np.float64")
        self._data = data
        # A counter shared with the tensor's detached aliases, made when first needed (None:
        # version 0): most tensors are activations that never change, and a list per tensor
        # was one more object for the cyclic collector to count.
        self._version = None
        self.name = name
        self.requires_grad = requires_grad
        self.grad = None
        self._node = _node
        self.constant = constant
        self._spec = spec
        self.role = None

    # --- the value and its version --------------------------------------------------------
    @property
    def data(self):
        """The ndarray value (None for an abstract tensor). Assigning to it (`w.data = ...`,
        `w.data -= lr * g`) bumps the tensor's version: a backward pass that would read the
        value its graph saved before the change raises instead of mixing old and new values.
        A raw numpy write into the array (`w.data[...] = 0`) cannot be seen that way; see
        `mark_changed` and `tinygraph.detect_anomaly`."""
        return self._data

    @data.setter
    def data(self, value):
        self._data = value
        self.mark_changed()

    @property
    def version(self):
        """How many times the value was changed in place since the tensor was made (see
        `data`), shared with the aliases `detach()` makes; a graph records its inputs' versions
        when it saves them."""
        version = self._version
        return 0 if version is None else version[0]

    def mark_changed(self):
        """Declare that the array was written in place (`w.data[...] = ...`, numpy's `out=`):
        bumps the version, so graphs that saved the old value refuse to use it."""
        if self._version is None:
            self._version = [1]
        else:
            self._version[0] += 1

    # --- plain properties -------------------------------------------------------------------
    @property
    def shape(self):
        """The shape of the value, a tuple of ints."""
        data = self._data
        return data.shape if data is not None else self._spec[0]

    @property
    def dtype(self):
        """The numpy dtype of the value."""
        data = self._data
        return data.dtype if data is not None else self._spec[1]

    @property
    def ndim(self):
        """The number of axes of the value."""
        data = self._data
        return data.ndim if data is not None else len(self._spec[0])

    @property
    def size(self):
        """The number of elements of the value."""
        data = self._data
        if data is not None:
            return data.size
        size = 1
        for n in self._spec[0]:
            size *= n
        return size

    @property
    def is_abstract(self):
        """True for a tensor with a shape and dtype but no value (see the module docstring)."""
        return self._data is None

    @property
    def node(self):
        """The op node that produced this tensor, or None for a leaf."""
        return self._node

    @property
    def is_leaf(self):
        """True for a tensor no recorded op produced (made by the user, or under no_grad)."""
        return self._node is None

    def value(self):
        """The ndarray, or a clear error for an abstract tensor."""
        if self._data is None:
            raise ValueError(f"{describe(self)} has no value: it was made by shape-only "
                             "evaluation (a compiled step's trace), which computes shapes "
                             "and dtypes but not values")
        return self._data

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        # Without this, Python would iterate through __getitem__ and a 0-d tensor would look
        # empty (`loss, grads = step(x)` then fails with "expected 2, got 0").
        if not self.shape:
            raise TypeError("iteration over a 0-d tensor")
        return (self[k] for k in range(self.shape[0]))

    def __bool__(self):
        return bool(self.value())   # numpy's rule: only a one-element tensor has a truth value

    # `==` and `!=` compare elementwise, as in numpy and PyTorch: `x == y` is a recorded
    # boolean tensor (tinygraph.ops.select installs them with the other operators). A tensor
    # still hashes by identity, so tensors as dict keys and in sets are compared by `is`;
    # code that looks a tensor up in a list uses `is` or id(), never `in` or list.index.
    __hash__ = object.__hash__

    def __float__(self):
        return float(self._one_element("float"))

    def __int__(self):
        return int(self._one_element("int"))

    def __index__(self):
        value = self._one_element("index")
        if value.dtype.kind not in "iu":          # (numpy refuses a bool index too)
            raise TypeError(f"only integer tensors can be used as an index, got {value.dtype}")
        return int(value)

    def _one_element(self, what):
        value = self.value()
        if value.size != 1:
            raise TypeError(f"{what}() of {describe(self)}: only a one-element tensor can be "
                            "converted to a Python number")
        return value.reshape(())

    def __array__(self, dtype=None, copy=None):
        data = self.value()
        return data if dtype is None else data.astype(dtype)

    def __repr__(self):
        name = f", name={self.name!r}" if self.name else ""
        grad = ", requires_grad=True" if self.requires_grad else ""
        op = f", op={self._node.op!r}" if self._node is not None else ""
        value = repr(self._data) if self._data is not None else \
            f"<abstract shape={self.shape} dtype={self.dtype}>"
        return f"Tensor({value}{name}{grad}{op})"

    def numpy(self):
        """The value as an ndarray (the same object as `.data`)."""
        return self.value()

    def item(self):
        """The value of a one-element tensor as a Python number."""
        return self.value().item()

    def detach(self):
        """The same value as a new leaf outside the graph (no node, no gradient). It shares
        the array and the version counter: a change through either is seen by both.

        Inside a compiled step's trace (no value yet) it is a `stop_gradient` node instead,
        so the program computes the value and no gradient flows through it."""
        if interpreter().abstract:
            from .primitive import StopGradient, apply
            out = apply(StopGradient(), self)
            out.requires_grad = False
            return out
        alias = Tensor(self._data, name=self.name,
                       spec=None if self._data is not None else self._spec)
        if self._version is None:
            self._version = [0]
        alias._version = self._version
        return alias

    def zero_grad(self):
        """Forget the accumulated gradient (`.grad` becomes None)."""
        self.grad = None

    def backward(self, grad=None, create_graph=False, retain_graph=None):
        """Accumulate d(self)/d(leaf) into `.grad` of every leaf that requires grad.

        `grad` seeds the backward pass and is required unless this tensor is a scalar. With
        `create_graph=True` the accumulated gradients are graph nodes that can be rendered or
        differentiated again. The pass frees the graph's saved values as it goes, so a second
        backward through it raises, unless `retain_graph=True` (the default with create_graph).
        """
        from .autodiff import backward
        backward(self, grad, create_graph=create_graph, retain_graph=retain_graph)


class ForkSafeLock:
    """A reentrant lock that a forked child gets anew (a lock some other thread of the parent
    held at the fork would stay held forever in the child, which has no such thread). If
    another thread held it at the fork, what it guarded may be half updated: the child's
    first use raises instead of going on with it."""

    _all = weakref.WeakSet()

    def __init__(self, what):
        self.what, self._lock, self._broken = what, threading.RLock(), False
        self._held_elsewhere = False     # set just before a fork (see _before_fork)
        ForkSafeLock._all.add(self)

    def __enter__(self):
        if self._broken:
            raise RuntimeError(f"this process was forked while another thread was inside "
                               f"{self.what}; what it was updating may be half done here. Fork "
                               "before starting threads that run steps, or use the 'spawn' "
                               "start method")
        return self._lock.__enter__()

    def __exit__(self, *exc):
        return self._lock.__exit__(*exc)

    @classmethod
    def _before_fork(cls):
        # Held by another thread now? (The forking thread's own hold is re-entered.)
        for lock in list(cls._all):
            lock._held_elsewhere = not lock._lock.acquire(blocking=False)
            if not lock._held_elsewhere:
                lock._lock.release()

    @classmethod
    def _after_fork_in_child(cls):
        for lock in list(cls._all):
            lock._lock = threading.RLock()
            lock._broken = lock._held_elsewhere


os.register_at_fork(before=ForkSafeLock._before_fork,
                    after_in_child=ForkSafeLock._after_fork_in_child)


# Guards every `.grad` accumulation: steps or backward passes finishing at once in two threads
# must not lose one's read-modify-write of the same parameter's gradient.
GRAD_LOCK = ForkSafeLock("a gradient update (.grad)")


def update_grad(t, combine):
    """t.grad = combine(t.grad), atomically (combine gets None when there is no gradient)."""
    with GRAD_LOCK:
        t.grad = combine(t.grad)


def add_to_grad(t, array, own=None):
    """t.grad += array, atomically. Where t has no gradient yet it takes `own(array)` (default:
    the array itself), for a caller that must copy an array it does not own."""
    update_grad(t, lambda old: Tensor(array if own is None else own(array)) if old is None
                else Tensor(old._data + array))


def tensor(data, name=None, requires_grad=False, dtype=None):
    """Create a leaf tensor from an array, a nested list or a number.

    A gradient can only be asked for a floating-point tensor: `requires_grad=True` on integer
    or boolean data raises TypeError.
    """
    if isinstance(data, Tensor):
        data = data.value()
    if data is None and (error := interpreter().no_value("tensor() got None")) is not None:
        raise error
    if isinstance(data, xp.ndarray):
        captured(data, "an array made a tensor with tensor()")
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


def captured(array, shown):
    """Tell the interpreter in force that the program made a constant of this numpy array
    (a compiled step's trace guards or refuses it: its values would be fixed in the program)."""
    interpreter().capture(array, shown)


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


_EXACT_INT = 1 << 53     # ints up to this are exact as doubles: one rounding to float32 either way


def as_operand(value, op_name, like=None):
    """Turn an op's operand into a Tensor.

    Python numbers and bare arrays become constants; when `like` (the other operand) is a
    floating tensor they take its dtype, so a stray float64 scalar never promotes float32
    math. Anything else is a TypeError naming the op.
    """
    if isinstance(value, Tensor):
        return value
    kind = type(value)
    if (kind is float or kind is int and -_EXACT_INT <= value <= _EXACT_INT) and \
            like is not None and like.dtype.kind == "f":
        # The common case (the 1 in a vjp's 1 - y), in one call: 0.4 us, not 3.5.
        return Tensor(xp.array(value, dtype=like.dtype), constant=True)
    if isinstance(value, (numbers.Number, xp.generic, xp.ndarray)) and not isinstance(value, complex):
        if isinstance(value, xp.ndarray):
            captured(value, f"an operand of {op_name}")
        # A copy: the graph must not change when the caller later mutates the array.
        array = xp.array(value)
        if array.dtype == object and (error := interpreter().no_value(
                f"{op_name} got an operand with no numbers")) is not None:
            raise error
        if array.dtype.kind not in "biuf":
            raise TypeError(f"{op_name}: unsupported operand dtype {array.dtype}")
        if like is not None and xp.issubdtype(like.dtype, xp.floating):
            array = array.astype(like.dtype, copy=False)
        return Tensor(array, constant=True)
    package = type(value).__module__.partition(".")[0]
    type_name = type(value).__name__ if package == "builtins" else \
        f"{package}.{type(value).__name__}"
    hint = ("pass its numpy array, t.detach().numpy()" if type_name.startswith("torch.")
            else "wrap it with tinygraph.tensor(...)")
    raise TypeError(f"{op_name}: operand of type {type_name} is not a tinygraph Tensor, an "
                    f"ndarray or a number; {hint}")

