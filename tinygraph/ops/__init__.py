"""The primitives, grouped by kind, and their checked public functions.

elementwise, shape, linalg, indexing, random and losses each hold primitive classes (forward,
spec, vjp, label and what rewrites need to know) and the public functions that check their
arguments and apply them. `all_primitives()` lists every concrete primitive class.
"""
from ..core.primitive import Primitive, apply
from .elementwise import (add, sub, mul, div, neg, pow, exp, log, sigmoid, tanh, relu, heaviside,
                          abs, sqrt, cast)
from .shape import sum, mean, reshape, transpose, broadcast_to, sum_to, concat, stack
from .linalg import matmul, matmul_tn
from .indexing import getitem, ids_in_range
from .random import dropout_mask
from .losses import log_softmax, softmax, cross_entropy
from .losses import mse_loss, binary_cross_entropy_with_logits
from .select import (greater, greater_equal, less, less_equal, equal, not_equal, where,
                     logical_and, logical_or, logical_not,
                     maximum, minimum, clip, max, min, argmax, argmin, logsumexp)
from .einsum import einsum
from .statistics import var, std
from . import methods

methods.install()


def all_primitives():
    """Every concrete primitive class (those with a name), found from Primitive's subclasses."""
    found, stack = [], list(Primitive.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if "name" in vars(cls):
            found.append(cls)
    return sorted(found, key=lambda cls: cls.name)


__all__ = ["Primitive", "apply", "add", "sub", "mul", "div", "neg", "pow", "exp", "log",
           "sigmoid", "tanh", "relu", "heaviside", "sum", "mean", "reshape", "transpose",
           "broadcast_to", "sum_to", "concat", "matmul", "matmul_tn", "getitem",
           "ids_in_range", "dropout_mask", "log_softmax", "softmax", "cross_entropy",
           "mse_loss", "binary_cross_entropy_with_logits", "abs", "sqrt", "stack", "cast",
           "einsum", "var", "std", "all_primitives",
           "greater", "greater_equal", "less", "less_equal", "equal", "not_equal", "where",
           "logical_and", "logical_or", "logical_not",
           "maximum", "minimum", "clip", "max", "min", "argmax", "argmin", "logsumexp"]
