"""Checking and coercing the arguments of the public ops: operands, axes, shapes.

Errors are raised here, at graph-build time, naming the op and the operands' names and shapes.
"""
import functools

from ..backend import xp
from ..core.interpreter import interpreter
from ..core.tensor import Tensor, as_operand, describe


def tensor_arg(x, op_name):
    """x as a Tensor (numbers and arrays become constants)."""
    if isinstance(x, Tensor):
        return x
    return as_operand(x, op_name)


def pair(a, b, op_name):
    """Coerce a binary op's operands; constants take the tensor operand's dtype."""
    a_is, b_is = isinstance(a, Tensor), isinstance(b, Tensor)
    if a_is and not b_is:
        if a._data is None:
            _numpy_would_agree(a, b, op_name)
        b = as_operand(b, op_name, like=a)
    elif b_is and not a_is:
        if b._data is None:
            _numpy_would_agree(b, a, op_name)
        a = as_operand(a, op_name, like=b)
    elif not a_is and not b_is:
        a = as_operand(a, op_name)
        b = as_operand(b, op_name, like=a)
    x, y = a._data, b._data           # (the arrays' dtypes: no property calls on the hot path)
    if x is not None and y is not None and x.dtype == y.dtype:
        return a, b
    if a.dtype != b.dtype:
        a, b = _traced_array_inputs(a, b)
    if a.dtype != b.dtype:
        raise TypeError(f"{op_name}: operands have different dtypes: {describe(a)} is "
                        f"{a.dtype}, {describe(b)} is {b.dtype}; cast one of them first"
                        + _TRACED_INPUTS_HINT * interpreter().abstract)
    return a, b


# Eager mode gives the function numpy arrays as they were passed (numpy computes on them until
# they meet a tensor, which casts them); a trace gives it tensors of the inputs' dtype.
_TRACED_INPUTS_HINT = (" (in a compiled step the inputs are tensors of the dtype they were "
                       "given in, also where the function computes on them before they meet "
                       "the model: give the step arrays of the model's dtype, e.g. "
                       "x.astype(np.float32))")


def _traced_array_inputs(a, b):
    """In a compiled step's trace, an input given as a bare array is cast as `pair` casts a
    bare array in eager mode (see transforms.trace): to the dtype of a floating tensor it
    meets. Two such inputs of different dtypes are refused: eager mode would compute `a - b`
    with numpy (their common dtype) but `tg.sub(a, b)` in a's, and a trace cannot tell which
    was written."""
    trace = interpreter()
    if not trace.abstract:
        return a, b
    a_is, b_is = trace.is_array_input(a), trace.is_array_input(b)
    if a_is and b_is:
        raise TypeError(f"compiled step: two inputs given as numpy arrays of different dtypes "
                        f"({a.dtype} and {b.dtype}) meet in an op; give the step arrays of "
                        "one dtype")
    if b_is and xp.issubdtype(a.dtype, xp.floating):
        b = trace.cast_input(b, a.dtype)
    elif a_is and xp.issubdtype(b.dtype, xp.floating):
        a = trace.cast_input(a, b.dtype)
    return a, b


def _numpy_would_agree(t, value, op_name):
    """In a trace, refuse a constant meeting a value computed only from inputs given as
    arrays where numpy (which computes that in eager mode) would give another dtype than
    tinygraph's rule: int ids * np.float32(0.5) (numpy: float64), a float32 batch minus a
    float64 array (numpy: float64). Python numbers are weak in both, so `x * 0.5` passes."""
    if not interpreter().is_array_value(t):
        return
    numpy_dtype = xp.result_type(t.dtype, value)
    constant = xp.asarray(value).dtype
    ours = t.dtype if xp.issubdtype(t.dtype, xp.floating) or \
        not xp.issubdtype(constant, xp.floating) else constant
    if numpy_dtype != ours:
        raise TypeError(
            f"compiled step: {op_name} of {describe(t)} ({t.dtype}), computed from inputs "
            f"given as numpy arrays, with a {constant} constant: eager mode computes this with "
            f"numpy ({numpy_dtype}), tinygraph's rule gives {ours}; give the step arrays of "
            "the dtype you mean, or a constant of the same dtype")


def broadcast_shape(a, b, op_name):
    """The broadcast shape of two operands, or a ValueError naming the op and operands."""
    try:
        return xp.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op_name}: cannot broadcast {describe(a)} with {describe(b)}") from None


def normalize_axes(axis, ndim, op_name):
    """axis (None, an int or a tuple of ints) as a sorted tuple of non-negative axes."""
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


def reduced_shape(shape, axes, keepdims):
    """The shape of a reduction of `shape` over `axes` (a tuple of non-negative ints): those
    axes kept as 1 (keepdims) or dropped."""
    if keepdims:
        return tuple(1 if i in axes else n for i, n in enumerate(shape))
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def shape_arg(shape, op_name):
    """A shape argument (an int or a sequence of ints) as a tuple of ints."""
    if isinstance(shape, (int, xp.integer)):
        shape = (shape,)
    try:
        return tuple(int(n) for n in shape)
    except TypeError:
        raise TypeError(f"{op_name}: shape must be an int or a tuple of ints, got {shape!r}") from None


def placeholder(shape, dtype=bool):
    """A read-only array of `shape` that costs no memory (all strides 0): numpy's own shape
    rules (slicing, indexing) can run on it to compute an output shape. (Basic slicing gives
    a view; integer-array indexing allocates its result, a small bool array.)"""
    return xp.broadcast_to(xp.zeros((), dtype), shape)


# PyTorch's keyword names for what numpy (and tinygraph) call axis and keepdims.
TORCH_KEYWORDS = {"dim": "axis", "keepdim": "keepdims"}


def numpy_keywords(fn):
    """fn, refusing PyTorch's `dim=` and `keepdim=` with the name to use instead (Python's
    own "unexpected keyword argument" would not say it)."""
    @functools.wraps(fn)
    def checked(*args, **kwargs):
        if kwargs:
            op_name = fn.__name__.lstrip("_")
            for torch_name, name in TORCH_KEYWORDS.items():
                if torch_name in kwargs:
                    raise TypeError(f"{op_name}: {torch_name}= is PyTorch's name; tinygraph "
                                    f"uses numpy's, {name}=")
            if "out" in kwargs:         # np.max(t) calls t.max(axis=..., out=None)
                raise TypeError(f"np.{op_name} of a tinygraph Tensor: use tg.{op_name} (a "
                                "numpy function records nothing, so no gradient would flow)")
        return fn(*args, **kwargs)
    return checked
