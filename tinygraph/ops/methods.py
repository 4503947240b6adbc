"""The operators and method forms of Tensor (x + y, x @ W, x.sum(), x.T), installed on the
class from here so that the core (which defines Tensor) does not depend on the ops above it:
the layering stays core <- ops."""
from ..backend import xp
from ..core.tensor import Tensor
from . import elementwise as E
from . import indexing as I
from . import linalg as L
from . import shape as S


def _rpow(self, base):
    raise TypeError("pow: only a constant exponent is supported (x ** 2.0); for a tensor "
                    "exponent write exp(y * log(base))")


def _sum(self, axis=None, keepdims=False):
    """`tinygraph.sum` of this tensor: the sum over `axis` (None: all axes)."""
    return S.sum(self, axis, keepdims)


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
