"""tinygraph: reverse-mode autodiff on numpy whose backward pass is itself a graph."""
from .tensor import Tensor, Parameter, tensor
from .node import Node
from .mode import no_grad, enable_grad, is_grad_enabled, scope
from .ops import (
    add, sub, mul, div, neg, pow, exp, log, sigmoid, tanh, relu, step, matmul,
    sum, mean, reshape, transpose, broadcast_to, sum_to, getitem, concat,
    log_softmax, cross_entropy, dropout_mask, Primitive, apply,
)
from .autodiff import grad, backward, nodes, leaves
from .diagram import render, to_dot, save, GraphvizNotFoundError
from .gradcheck import gradcheck, GradcheckError
from .rewrite import simplify, Simplified
from .compiled import compile, carry, CompiledStep
from .anomaly import detect_anomaly

__all__ = [
    "Tensor", "Parameter", "tensor", "Node", "no_grad", "enable_grad", "is_grad_enabled", "scope",
    "add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sigmoid", "tanh", "relu", "step",
    "matmul", "sum", "mean", "reshape", "transpose", "broadcast_to", "sum_to", "getitem",
    "concat", "log_softmax", "cross_entropy", "dropout_mask", "Primitive", "apply",
    "grad", "backward", "nodes", "leaves", "render", "to_dot", "save", "GraphvizNotFoundError",
    "gradcheck", "GradcheckError", "simplify", "Simplified", "compile", "carry", "CompiledStep",
    "detect_anomaly",
]
__version__ = "0.1.0"
