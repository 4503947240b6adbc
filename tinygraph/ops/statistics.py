"""var and std, composed of mean, sub, mul, sum, sqrt and where (so their gradient graphs are
those ops' own)."""
import math
import numbers

from ..backend import xp
from ..core.tensor import describe
from .operands import normalize_axes, numpy_keywords, tensor_arg
from . import elementwise as _elementwise
from . import select as _select
from . import shape as _shape


def _by_name(op_name, positional):
    """torch.var(x, 1, False)'s third argument is `unbiased`, numpy's is `dtype`: a third
    positional argument would mean something else here, silently. So only the axis is
    positional."""
    if positional:
        raise TypeError(f"{op_name}: give keepdims and correction by name, e.g. "
                        f"{op_name}(x, 1, correction=0): torch.{op_name}(x, 1, False)'s third "
                        "argument is `unbiased` (here correction=0 is the biased estimate)")


@numpy_keywords
def var(x, axis=None, *positional, keepdims=False, correction=1):
    """Variance over `axis`: Σ (x − mean)² / (count − correction).

    `correction=1` (the default, as in PyTorch's torch.var) is the unbiased estimate;
    `correction=0` is the population variance, numpy's default (numpy calls it ddof=0).
    `axis` is an int, a tuple of ints or None (all axes). An error is raised when count −
    correction is not positive.
    """
    _by_name("var", positional)
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


@numpy_keywords
def std(x, axis=None, *positional, keepdims=False, correction=1):
    """Standard deviation over `axis`: sqrt(var(x, axis, keepdims=..., correction=...)); see
    var for `correction` (1, PyTorch's default, is unbiased; 0 is numpy's default ddof=0).

    Where the spread is zero (a constant row) the gradient is 0, as PyTorch's: sqrt's
    infinite slope at 0 times var's zero gradient would be NaN, so the square root is taken
    of where(v > 0, v, 1) and its result replaced by 0 there (no NaN reaches the gradient)."""
    _by_name("std", positional)
    v = var(x, axis, keepdims=keepdims, correction=correction)
    spread = _select.not_equal(v, 0.0)       # (not greater: a NaN variance stays NaN)
    return _select.where(spread, _elementwise.sqrt(_select.where(spread, v, 1.0)), 0.0)
