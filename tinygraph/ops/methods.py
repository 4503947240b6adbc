"""The operators and method forms of Tensor (x + y, x @ W, x.sum(), x.T), installed on the
class from here so that the core (which defines Tensor) does not depend on the ops above it:
the layering stays core <- ops."""
from ..backend import xp
from ..core.tensor import Tensor, describe
from .operands import numpy_keywords
from . import elementwise as E
from . import indexing as I
from . import linalg as L
from . import shape as S
from . import select as X
from . import statistics as V


def _rpow(self, base):
    raise TypeError("pow: only a constant exponent is supported (x ** 2.0); for a tensor "
                    "exponent write exp(y * log(base))")


@numpy_keywords
def _sum(self, axis=None, keepdims=False):
    """`tinygraph.sum` of this tensor: the sum over `axis` (None: all axes)."""
    return S.sum(self, axis, keepdims)


@numpy_keywords
def _mean(self, axis=None, keepdims=False):
    """`tinygraph.mean` of this tensor: the mean over `axis` (None: all axes)."""
    return S.mean(self, axis, keepdims)


def _reshape(self, *shape):
    """`tinygraph.reshape`; the shape as one tuple or as separate ints."""
    return S.reshape(self, shape[0] if len(shape) == 1 else shape)


def _transpose(self, *axes):
    """`tinygraph.transpose`; axes as one tuple or as separate ints (no axes: reversed)."""
    if len(axes) == 1 and not isinstance(axes[0], (int, xp.integer)):
        axes = axes[0]   # x.transpose((1, 0)) as well as x.transpose(1, 0)
    return S.transpose(self, axes or None)


@numpy_keywords
def _max(self, *positional, axis=None, keepdims=False):
    """`tinygraph.max`: the values over `axis` (numpy's amax), not torch's (values, indices);
    the axis is given by name (see tinygraph.max)."""
    return X.max(self, *positional, axis=axis, keepdims=keepdims)


@numpy_keywords
def _min(self, *positional, axis=None, keepdims=False):
    """`tinygraph.min`: the values over `axis` (numpy's amin), not torch's (values, indices);
    the axis is given by name (see tinygraph.min)."""
    return X.min(self, *positional, axis=axis, keepdims=keepdims)


@numpy_keywords
def _argmax(self, axis=None, keepdims=False):
    """`tinygraph.argmax` of this tensor (None: the index in the flattened tensor)."""
    return X.argmax(self, axis, keepdims)


@numpy_keywords
def _argmin(self, axis=None, keepdims=False):
    """`tinygraph.argmin` of this tensor (None: the index in the flattened tensor)."""
    return X.argmin(self, axis, keepdims)


def _clip(self, min=None, max=None):
    """`tinygraph.clip` of this tensor (PyTorch's clamp)."""
    return X.clip(self, min, max)


@numpy_keywords
def _logsumexp(self, axis=None, keepdims=False):
    """`tinygraph.logsumexp` of this tensor over `axis`."""
    return X.logsumexp(self, axis, keepdims)


def _astype(self, dtype):
    """`tinygraph.cast` of this tensor to `dtype` (numpy's name for it)."""
    return E.cast(self, dtype)


def _float(self):
    """This tensor as float32 (`tinygraph.cast`), as PyTorch's `x.float()`."""
    return E.cast(self, xp.float32)


def _double(self):
    """This tensor as float64 (`tinygraph.cast`), as PyTorch's `x.double()`."""
    return E.cast(self, xp.float64)


@numpy_keywords
def _var(self, axis=None, *positional, keepdims=False, correction=1):
    """`tinygraph.var` of this tensor (correction=1 by default, as PyTorch's)."""
    return V.var(self, axis, *positional, keepdims=keepdims, correction=correction)


@numpy_keywords
def _std(self, axis=None, *positional, keepdims=False, correction=1):
    """`tinygraph.std` of this tensor (correction=1 by default, as PyTorch's)."""
    return V.std(self, axis, *positional, keepdims=keepdims, correction=correction)


def _tolist(self):
    """The value as nested Python lists (numpy's and PyTorch's tolist)."""
    return self.value().tolist()


def _requires_grad_(self, requires_grad=True):
    """Set `requires_grad` of this leaf tensor (freeze a Parameter with False), as PyTorch's
    `requires_grad_`; returns the tensor."""
    if self.node is not None:
        raise ValueError(f"requires_grad_: {describe(self)} was computed by {self.node.op}; "
                         "only a leaf (a Parameter, a tensor you made) can be switched")
    self.requires_grad = bool(requires_grad)
    return self


# PyTorch's names for what tinygraph calls otherwise: an AttributeError that names ours.
TORCH_NAMES = {
    "clamp": "x.clip(min, max) (numpy's name)", "view": "x.reshape(shape)",
    "unsqueeze": "x.reshape(...) or x[:, None]", "squeeze": "x.reshape(...)",
    "dim": "x.ndim", "numel": "x.size", "long": "x.astype(np.int64)",
    "int": "x.astype(np.int32)", "masked_fill": "tg.where(mask, value, x)",
    "cpu": "nothing: tinygraph computes on numpy arrays in memory (no devices)",
    "cuda": "nothing: tinygraph computes on numpy arrays in memory (no devices)",
    "to": "x.astype(dtype) (there are no devices)", "amax": "x.max(axis=...)",
    "amin": "x.min(axis=...)", "any": "x.data.any() (no gradient to carry)",
    "all": "x.data.all() (no gradient to carry)", "permute": "x.transpose(axes)",
}


def _torch_name(name):
    """A property that raises the AttributeError naming tinygraph's spelling (so hasattr is
    False). Not a __getattr__ on Tensor: that would slow every attribute read of a tensor."""
    def missing(self):
        raise AttributeError(f"'Tensor' object has no attribute {name!r}: PyTorch's "
                             f"x.{name}(...) is {TORCH_NAMES[name]} in tinygraph")
    return property(missing, doc=f"Not in tinygraph: PyTorch's x.{name} is "
                                 f"{TORCH_NAMES[name]} here (reading it raises an "
                                 "AttributeError that says so).")


def _elementwise_equality(fn, name):
    """== or != elementwise, also against a list or tuple of numbers; against anything else
    (None, a string) NotImplemented, so Python answers by identity (x == None is False)."""
    def method(self, other):
        if isinstance(other, (Tensor, xp.ndarray, xp.generic, int, float)):
            return fn(self, other)
        if isinstance(other, (list, tuple)):      # pred == [0, 1]: elementwise, as numpy
            return fn(self, xp.asarray(other))
        return NotImplemented
    method.__name__ = name
    method.__doc__ = f"`tinygraph.{fn.__name__}`: elementwise, a boolean tensor."
    return method


def _unary(fn, name):
    def method(self):
        return fn(self)
    method.__name__ = name
    method.__doc__ = f"`tinygraph.{name}` of this tensor."
    return method


METHODS = {
    "__add__": lambda self, other: E.add(self, other),
    "__radd__": lambda self, other: E.add(other, self),
    "__sub__": lambda self, other: E.sub(self, other),
    "__rsub__": lambda self, other: E.sub(other, self),
    "__mul__": lambda self, other: E.mul(self, other),
    "__rmul__": lambda self, other: E.mul(other, self),
    "__truediv__": lambda self, other: E.div(self, other),
    "__rtruediv__": lambda self, other: E.div(other, self),
    "__matmul__": lambda self, other: L.matmul(self, other),
    "__rmatmul__": lambda self, other: L.matmul(other, self),
    "__pow__": lambda self, exponent: E.pow(self, exponent),
    "__neg__": lambda self: E.neg(self),
    "__getitem__": lambda self, key: I.getitem(self, key),
    "__rpow__": _rpow,
    # Comparisons: the reflected form of a > b is b < a (numpy defers to these for an array).
    "__gt__": lambda self, other: X.greater(self, other),
    "__ge__": lambda self, other: X.greater_equal(self, other),
    "__lt__": lambda self, other: X.less(self, other),
    "__le__": lambda self, other: X.less_equal(self, other),
    "__eq__": _elementwise_equality(X.equal, "__eq__"),
    "__ne__": _elementwise_equality(X.not_equal, "__ne__"),
    "__and__": lambda self, other: X.logical_and(self, other),
    "__rand__": lambda self, other: X.logical_and(other, self),
    "__or__": lambda self, other: X.logical_or(self, other),
    "__ror__": lambda self, other: X.logical_or(other, self),
    "__invert__": lambda self: X.logical_not(self),
    "max": _max,
    "min": _min,
    "argmax": _argmax,
    "argmin": _argmin,
    "clip": _clip,
    "astype": _astype,
    "abs": _unary(E.abs, "abs"),
    "sqrt": _unary(E.sqrt, "sqrt"),
    "var": _var,
    "std": _std,
    "tolist": _tolist,
    "requires_grad_": _requires_grad_,
    "float": _float,
    "double": _double,
    "logsumexp": _logsumexp,
    "sum": _sum,
    "mean": _mean,
    "reshape": _reshape,
    "transpose": _transpose,
    "exp": _unary(E.exp, "exp"),
    "log": _unary(E.log, "log"),
    "sigmoid": _unary(E.sigmoid, "sigmoid"),
    "tanh": _unary(E.tanh, "tanh"),
    "relu": _unary(E.relu, "relu"),
    "T": property(lambda self: S.transpose(self),
                  doc="The transpose (all axes reversed), a recorded `transpose` op."),
}


def install():
    for name, method in METHODS.items():
        setattr(Tensor, name, method)
    for name in TORCH_NAMES:
        setattr(Tensor, name, _torch_name(name))
