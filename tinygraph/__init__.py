"""tinygraph: reverse-mode autodiff on numpy whose backward pass is itself a graph."""
from .tensor import Tensor, tensor
from .node import Node
from .mode import no_grad, enable_grad, is_grad_enabled
from .ops import (
    add, sub, mul, div, neg, pow, exp, log, sigmoid, tanh, relu, step, matmul,
    sum, mean, reshape, transpose, broadcast_to, sum_to, getitem, concat,
    log_softmax, cross_entropy, Primitive, apply,
)
from .autodiff import grad, backward, nodes
from .gradcheck import gradcheck, GradcheckError

__all__ = [
    "Tensor", "tensor", "Node", "no_grad", "enable_grad", "is_grad_enabled",
    "add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sigmoid", "tanh", "relu", "step",
    "matmul", "sum", "mean", "reshape", "transpose", "broadcast_to", "sum_to", "getitem",
    "concat", "log_softmax", "cross_entropy", "Primitive", "apply",
    "grad", "backward", "nodes", "gradcheck", "GradcheckError",
]
__version__ = "0.1.0"
