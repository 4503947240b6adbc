"""tinygraph: reverse-mode autodiff on numpy whose backward pass is itself a graph.

Layers, each importing only those before it: core (state, Tensor, Node, Primitive, autodiff)
<- ops (the primitives and public functions) <- transforms (rewrite, compile, anomaly,
gradcheck) and nn, optim <- diagrams <- the command line.
"""
from .core.tensor import Tensor, Parameter, tensor, STATE, CELL_STATE
from .core.node import Node
from .core.state import (no_grad, enable_grad, is_grad_enabled, scope, time_step, TIME_STEP,
                         LAYER)
from .core.primitive import Primitive, apply
from .core.generator import manual_seed, default_generator
from .core.autodiff import grad, backward, nodes, leaves
from .ops import (
    add, sub, mul, div, neg, pow, exp, log, sigmoid, tanh, relu, heaviside, matmul, matmul_tn,
    sum, mean, reshape, transpose, broadcast_to, sum_to, getitem, concat,
    log_softmax, softmax, cross_entropy, dropout_mask,
    abs, sqrt, stack, cast,
)
from .ops.losses import mse_loss, binary_cross_entropy_with_logits
from .ops.einsum import einsum
from .ops.statistics import var, std
from .ops.select import (greater, greater_equal, less, less_equal, equal, not_equal, where,
                         logical_and, logical_or, logical_not,
                         maximum, minimum, clip, max, min, argmax, argmin, logsumexp)
from .transforms.gradcheck import gradcheck, GradcheckError
from .transforms.rewrite import simplify, Simplified
from .transforms.step import Step, eager_step
from .transforms.forward_mode import jvp, hessian, mode_costs, ModeCosts
from .transforms.checkpoint import checkpoint
from .transforms.saved import saved_values, SavedValues
from .transforms.compile import compile, carry, CompiledStep
from .transforms.anomaly import detect_anomaly
from .transforms.onnx_export import export_onnx
from .diagrams.dot import render, to_dot, save, GraphvizNotFoundError
from .diagrams.explorer import explore, Explorer
from .diagrams.diff import explore_diff
from . import nn, optim, data          # tg.nn.Linear, tg.optim.AdamW, as torch.nn, torch.optim

__all__ = [
    "Tensor", "Parameter", "tensor", "Node", "no_grad", "enable_grad", "is_grad_enabled", "scope",
    "time_step", "TIME_STEP", "LAYER", "STATE", "CELL_STATE",
    "add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sigmoid", "tanh", "relu", "heaviside",
    "matmul", "matmul_tn", "sum", "mean", "reshape", "transpose", "broadcast_to", "sum_to",
    "getitem", "concat", "log_softmax", "softmax", "cross_entropy", "dropout_mask",
    "abs", "sqrt", "stack", "cast",
    "einsum", "var", "std",
    "greater", "greater_equal", "less", "less_equal", "equal", "not_equal", "where",
    "logical_and", "logical_or", "logical_not",
    "maximum", "minimum", "clip", "max", "min", "argmax", "argmin", "logsumexp",
    "mse_loss", "binary_cross_entropy_with_logits",
    "Primitive", "apply", "manual_seed", "default_generator",
    "grad", "backward", "nodes", "leaves", "render", "to_dot", "save", "GraphvizNotFoundError",
    "gradcheck", "GradcheckError", "simplify", "Simplified", "Step", "eager_step",
    "compile", "carry", "CompiledStep", "detect_anomaly", "export_onnx", "explore", "Explorer",
    "explore_diff", "jvp", "hessian", "mode_costs", "ModeCosts", "checkpoint", "saved_values", "SavedValues",
]
__version__ = "0.1.0"

# Names that were renamed: an AttributeError that says to what (never a silent alias).
_RENAMED = {"step": "tg.step was renamed tg.heaviside (the Heaviside op; tg.Step is a training "
                    "step)",
            "value_and_grad": "tg.value_and_grad was renamed tg.eager_step: it returns a step "
                              "whose call returns the loss and adds the gradients into .grad "
                              "(not JAX's (value, grads)); tg.grad gives gradients"}


# PyTorch's names for functions tinygraph calls by numpy's: an AttributeError that names ours.
_TORCH_NAMES = {"cat": "tg.concat", "clamp": "tg.clip", "amax": "tg.max(x, axis=...)",
                "amin": "tg.min(x, axis=...)", "unsqueeze": "tg.reshape or x[:, None]",
                "permute": "tg.transpose(x, axes)", "from_numpy": "tg.tensor",
                "logical_xor": "tg.not_equal on two masks"}


def __getattr__(name):
    if name in _TORCH_NAMES:
        raise AttributeError(f"module 'tinygraph' has no attribute {name!r}: PyTorch's "
                             f"torch.{name} is {_TORCH_NAMES[name]} here")
    if name in _RENAMED:
        raise AttributeError(f"module 'tinygraph' has no attribute {name!r}: {_RENAMED[name]}")
    raise AttributeError(f"module 'tinygraph' has no attribute {name!r}")
