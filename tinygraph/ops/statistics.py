"""var and std, composed of mean, sub, mul, sum and sqrt (so their gradient graphs are those
ops' own)."""
import math
import numbers

from ..backend import xp
from ..core.tensor import describe
from .operands import normalize_axes, tensor_arg
from . import elementwise as _elementwise
from . import shape as _shape


def var(x, axis=None, keepdims=False, correction=1):
    """Variance over `axis`: Σ (x − mean)² / (count − correction).

    `correction=1` (the default, as in PyTorch's torch.var) is the unbiased estimate;
    `correction=0` is the population variance, numpy's default (numpy calls it ddof=0).
    `axis` is an int, a tuple of ints or None (all axes). An error is raised when count −
    correction is not positive.
    """
    x = tensor_arg(x, "var")
    if not xp.issubdtype(x.dtype, xp.floating):
        raise TypeError(f"var: {describe(x)} has dtype {x.dtype}; cast it to a float dtype")
    if isinstance(correction, bool) or not isinstance(correction, numbers.Real):
        raise TypeError(f"var: correction must be a number, got {correction!r}")
    axes = normalize_axes(axis, x.ndim, "var")
    count = math.prod(x.shape[i] for i in axes)
    if count - correction <= 0:
        raise ValueError(f"var: {describe(x)} has {count} element(s) along axis {axis!r}, "
                         f"not more than correction={correction}: the variance is undefined")
    centered = _elementwise.sub(x, _shape.mean(x, axes, keepdims=True))
    squares = _shape.sum(_elementwise.mul(centered, centered), axes, keepdims)
    return _elementwise.div(squares, float(count - correction))


def std(x, axis=None, keepdims=False, correction=1):
    """Standard deviation over `axis`: sqrt(var(x, axis, keepdims, correction)); see var for
    `correction` (1, PyTorch's default, is unbiased; 0 is numpy's default ddof=0)."""
    return _elementwise.sqrt(var(x, axis, keepdims, correction))
