"""The table of primitives the op tests run over: how to call each, its numpy reference, and
inputs drawn from a domain where it is smooth.

tests/engine/test_ops.py checks that every primitive tinygraph defines
(`tinygraph.ops.all_primitives()`) has at least one case here, and that each case really
records its primitive.

Most cases are "differentiable": values, first- and second-order gradients against finite
differences, float32 end to end, and shape-only evaluation (`spec`). The other kinds skip the
gradient checks, for these reasons:

- "no_gradient" (step): its derivative is zero wherever it exists (it is relu's derivative,
  a Heaviside step) and its vjp passes None back, so no gradient flows through it; finite
  differences across the jump would be meaningless.
  stop_gradient (what detach() records in a compiled step's trace) passes its value and no
  gradient.
  compare, argmax and argmin: booleans and indices, piecewise constant in their inputs;
  their results are no float (`result` says which dtype kind; no float32 result to check).
- "integer" (ids_in_range): integer ids in, the same ids out (after a range check); integers
  have no gradient and cannot require grad.
- "random" (dropout_mask): no inputs at all, so nothing to differentiate; it draws from a
  generator, so the reference repeats the draw from an equally seeded generator. It takes the
  dtype as an argument (`fn(dtype=...)`), having no input to take it from.

test_ops checks that these cases' vjps indeed pass no gradient back.
"""
from dataclasses import dataclass
from typing import Callable

import numpy as np

import tinygraph as tg
from tinygraph.core.primitive import StopGradient, apply
from tinygraph.core.tensor import Tensor
from tinygraph.ops.indexing import INDEX_SLOT, IndexGrad, SliceGrad
from tinygraph.ops.losses import LogSoftmaxGrad, LogSoftmaxGradAt


@dataclass
class OpCase:
    name: str
    fn: Callable            # tinygraph function of the input Tensors
    reference: Callable     # the same on numpy arrays
    shapes: tuple           # input shapes
    domain: str = "any"     # "any", "positive" or "away_from_zero"
    kind: str = "differentiable"    # or "no_gradient", "integer", "random" (module docstring)
    make_inputs: Callable = None    # make_inputs(rng, dtype) -> arrays, instead of normals
    result: str = "float"           # or "bool" (comparisons), "index" (argmax): its dtype kind

    @property
    def differentiable(self):
        return self.kind == "differentiable"

    def apply(self, tensors, dtype=np.float64):
        """The case's tinygraph function on input tensors (a random case takes the dtype)."""
        return self.fn(dtype=dtype) if self.kind == "random" else self.fn(*tensors)

    def expected(self, arrays, dtype=np.float64):
        """The numpy reference on the input arrays."""
        return self.reference(dtype=dtype) if self.kind == "random" else self.reference(*arrays)

    def inputs(self, rng, dtype=np.float64):
        if self.make_inputs is not None:
            return self.make_inputs(rng, dtype)
        arrays = []
        for shape in self.shapes:
            a = rng.standard_normal(shape)
            if self.domain == "positive":
                a = np.abs(a) + 0.5
            elif self.domain == "away_from_zero":
                a = np.sign(a + (a == 0)) * (np.abs(a) + 0.5)
            arrays.append(a.astype(dtype))
        return arrays

    @property
    def primitive(self):
        """Names are "primitive" or "primitive:variant"."""
        return self.name.split(":")[0]

    def __str__(self):
        return self.name


def _log_softmax_ref(a, axis):
    shifted = a - a.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def _cross_entropy_ref(logits, targets):
    logp = _log_softmax_ref(logits, -1).reshape(-1, logits.shape[-1])
    return -logp[np.arange(targets.size), targets.reshape(-1)].mean()


def _placed(key, shape, g):
    out = np.zeros(shape, g.dtype)
    out[key] = g
    return out


def _scattered(ids, shape, g):
    out = np.zeros(shape, g.dtype)
    np.add.at(out, ids, g)
    return out


AT_ROWS, AT_CLASSES = np.array([0, 2, 2, 1]), np.array([4, 1, 1, 0])   # a repeated id


def _log_softmax_grad_at_ref(v, y):
    g = _scattered((AT_ROWS, AT_CLASSES), y.shape, v)
    return g - np.exp(y) * g.sum(axis=1, keepdims=True)


def _dropout_ref(p, shape, dtype, rng):
    dtype = np.dtype(dtype)
    return (rng.random(shape) >= p).astype(dtype) / dtype.type(1 - p)


WHERE_MASK = np.array([True, False, False, True])


def _with_ties(rng, dtype):
    """Two operands that tie in some places (a comparison's == and >= matter there)."""
    a, b = rng.standard_normal((3, 4)), rng.standard_normal(4)
    a[1] = b
    return [a.astype(dtype), b.astype(dtype)]


TARGETS_2D = np.array([0, 4, 4])
SLICE_KEY = (slice(None), slice(1, 3))
COLUMN_KEY = (slice(None), 2)
ROWS = np.array([2, 0, 2, 3])           # a repeated row: its gradients must add up
TARGETS_3D = np.array([[1, 0], [3, 3]])

CASES = [
    OpCase("add", tg.add, np.add, [(3, 4), (4,)]),
    OpCase("sub", tg.sub, np.subtract, [(2, 1, 3), (4, 1)]),
    OpCase("mul", tg.mul, np.multiply, [(3, 1), (1, 4)]),
    OpCase("div", tg.div, np.divide, [(3, 4), (3, 1)], "away_from_zero"),
    OpCase("neg", tg.neg, np.negative, [(3, 4)]),
    OpCase("pow:2", lambda x: x ** 2, lambda a: a ** 2, [(3, 4)]),
    OpCase("pow:3", lambda x: tg.pow(x, 3), lambda a: a ** 3, [(3, 4)]),
    OpCase("pow:half", lambda x: x ** 0.5, np.sqrt, [(3, 4)], "positive"),
    OpCase("pow:neg", lambda x: x ** -1.5, lambda a: a ** -1.5, [(3, 4)], "positive"),
    OpCase("exp", tg.exp, np.exp, [(3, 4)]),
    OpCase("log", tg.log, np.log, [(3, 4)], "positive"),
    OpCase("sigmoid", tg.sigmoid, lambda a: 1 / (1 + np.exp(-a)), [(3, 4)]),
    OpCase("tanh", tg.tanh, np.tanh, [(3, 4)]),
    OpCase("relu", tg.relu, lambda a: np.maximum(a, 0), [(3, 4)], "away_from_zero"),
    OpCase("matmul", tg.matmul, np.matmul, [(3, 4), (4, 5)]),
    OpCase("matmul:batched", tg.matmul, np.matmul, [(2, 1, 3, 4), (3, 4, 2)]),
    OpCase("matmul:vec_left", tg.matmul, np.matmul, [(4,), (4, 3)]),
    OpCase("matmul:vec_right", tg.matmul, np.matmul, [(2, 3, 4), (4,)]),
    OpCase("matmul:dot", tg.matmul, np.matmul, [(4,), (4,)]),
    OpCase("sum:all", tg.sum, np.sum, [(3, 4)]),
    OpCase("sum:axis0", lambda x: tg.sum(x, 0), lambda a: a.sum(0), [(3, 4)]),
    OpCase("sum:axes_keep", lambda x: tg.sum(x, (0, 2), keepdims=True),
           lambda a: a.sum((0, 2), keepdims=True), [(2, 3, 4)]),
    OpCase("mean:all", tg.mean, np.mean, [(3, 4)]),
    OpCase("mean:axis", lambda x: tg.mean(x, -1, keepdims=True),
           lambda a: a.mean(-1, keepdims=True), [(3, 4)]),
    OpCase("reshape", lambda x: tg.reshape(x, (4, -1)), lambda a: a.reshape(4, -1), [(2, 3, 2)]),
    OpCase("transpose", tg.transpose, np.transpose, [(2, 3, 4)]),
    OpCase("transpose:axes", lambda x: tg.transpose(x, (1, 0, 2)),
           lambda a: a.transpose(1, 0, 2), [(2, 3, 4)]),
    OpCase("transpose:cycle", lambda x: tg.transpose(x, (2, 0, 1)),
           lambda a: a.transpose(2, 0, 1), [(2, 3, 4)]),
    OpCase("broadcast_to", lambda x: tg.broadcast_to(x, (2, 3, 4)),
           lambda a: np.broadcast_to(a, (2, 3, 4)), [(3, 1)]),
    OpCase("sum_to", lambda x: tg.sum_to(x, (3, 1)),
           lambda a: a.sum(0).sum(-1, keepdims=True), [(2, 3, 4)]),
    OpCase("slice:columns", lambda x: x[:, 1:3], lambda a: a[:, 1:3], [(3, 4)]),
    OpCase("slice:mixed", lambda x: x[1, ::-2, None], lambda a: a[1, ::-2, None], [(2, 5, 3)]),
    OpCase("slice:ellipsis", lambda x: x[..., -1], lambda a: a[..., -1], [(2, 3, 4)]),
    OpCase("index:rows", lambda x: x[np.array([2, 0, 2, 2])],
           lambda a: a[np.array([2, 0, 2, 2])], [(3, 4)]),
    OpCase("index:pairs", lambda x: x[np.array([0, 1, 1]), np.array([3, 0, 0])],
           lambda a: a[np.array([0, 1, 1]), np.array([3, 0, 0])], [(2, 4)]),
    OpCase("index:2d", lambda x: x[np.array([[0, 1], [1, 1]])],
           lambda a: a[np.array([[0, 1], [1, 1]])], [(2, 3)]),
    OpCase("concat:axis0", lambda a, b: tg.concat([a, b]), lambda a, b: np.concatenate([a, b]),
           [(2, 3), (1, 3)]),
    OpCase("concat:last", lambda a, b, c: tg.concat([a, b, c], axis=-1),
           lambda a, b, c: np.concatenate([a, b, c], axis=-1), [(2, 1), (2, 3), (2, 2)]),
    OpCase("log_softmax", tg.log_softmax, lambda a: _log_softmax_ref(a, -1), [(3, 5)]),
    OpCase("log_softmax:axis0", lambda x: tg.log_softmax(x, 0),
           lambda a: _log_softmax_ref(a, 0), [(3, 5)]),
    # The fused gradient of log_softmax against the composed formula g − exp(y) ⊙ Σ g.
    OpCase("log_softmax_grad", lambda g, y: apply(LogSoftmaxGrad(1), g, y),
           lambda g, y: g - np.exp(y) * g.sum(axis=1, keepdims=True), [(3, 5), (3, 5)]),
    OpCase("log_softmax_grad:axis0", lambda g, y: apply(LogSoftmaxGrad(0), g, y),
           lambda g, y: g - np.exp(y) * g.sum(axis=0, keepdims=True), [(3, 5), (3, 5)]),
    # Its fused form for g scattered at (row, class) ids (what compiled cross-entropy runs).
    OpCase("log_softmax_grad_at", lambda v, y: apply(
        LogSoftmaxGradAt(), v, y, Tensor(AT_ROWS, constant=True),
        Tensor(AT_CLASSES, constant=True)),
        lambda v, y: _log_softmax_grad_at_ref(v, y), [(4,), (3, 5)]),
    OpCase("cross_entropy", lambda x: tg.cross_entropy(x, TARGETS_2D),
           lambda a: _cross_entropy_ref(a, TARGETS_2D), [(3, 5)]),
    OpCase("cross_entropy:3d", lambda x: tg.cross_entropy(x, TARGETS_3D),
           lambda a: _cross_entropy_ref(a, TARGETS_3D), [(2, 2, 4)]),
    # aᵀ·g, the weight gradient of matmul (a primitive of its own; see tinygraph.ops.linalg)
    OpCase("matmul_tn", tg.matmul_tn, lambda a, g: np.swapaxes(a, -1, -2) @ g, [(4, 3), (4, 5)]),
    OpCase("matmul_tn:batched", tg.matmul_tn, lambda a, g: np.swapaxes(a, -1, -2) @ g,
           [(2, 1, 4, 3), (3, 4, 2)]),
    # The gradients of indexing: scatters into zeros, themselves differentiable.
    OpCase("slice_grad", lambda g: apply(SliceGrad(SLICE_KEY, (3, 4)), g),
           lambda g: _placed(SLICE_KEY, (3, 4), g), [(3, 2)]),
    OpCase("slice_grad:dropped_axis", lambda g: apply(SliceGrad(COLUMN_KEY, (3, 4)), g),
           lambda g: _placed(COLUMN_KEY, (3, 4), g), [(3,)]),
    OpCase("index_grad", lambda g: apply(IndexGrad((INDEX_SLOT,), (4, 3)), g, Tensor(
        ROWS, constant=True)), lambda g: _scattered(ROWS, (4, 3), g), [(4, 3)]),
    OpCase("abs", tg.abs, np.abs, [(3, 4)], "away_from_zero"),
    OpCase("sqrt", tg.sqrt, np.sqrt, [(3, 4)], "positive"),
    # To float64 and back: the gradient returns through both casts in the input's dtype (a
    # cast from a mask passes none: tests/engine/test_cast.py).
    OpCase("cast", lambda x: tg.cast(tg.cast(x, np.float64) * 3.0, x.dtype),
           lambda a: (a.astype(np.float64) * 3.0).astype(a.dtype), [(3, 4)]),
    # No gradient checks for these (see the module docstring).
    OpCase("heaviside", tg.heaviside, lambda a: (a > 0).astype(a.dtype), [(3, 4)], "away_from_zero",
           kind="no_gradient"),
    OpCase("ids_in_range", lambda ids: tg.ops.ids_in_range(ids, 5, "id {bad} not below {size}"),
           lambda ids: ids, [(2, 3)], kind="integer",
           make_inputs=lambda rng, dtype: [rng.integers(0, 5, (2, 3))]),
    OpCase("stop_gradient", lambda a: apply(StopGradient(), a), lambda a: a, [(3, 4)],
           "normal", kind="no_gradient"),
    # Selecting ops (tinygraph.ops.select). Comparisons and argmax give booleans or indices.
    *[OpCase(f"compare:{c}", getattr(tg, c), getattr(np, c), [(3, 4), (4,)], kind="no_gradient",
             result="bool", make_inputs=lambda rng, dtype: _with_ties(rng, dtype))
      for c in ("greater", "greater_equal", "less", "less_equal", "equal", "not_equal")],
    OpCase("compare:scalar", lambda x: x > 0.25, lambda a: a > 0.25, [(3, 4)],
           kind="no_gradient", result="bool"),
    OpCase("where", lambda a, b: tg.where(WHERE_MASK, a, b), lambda a, b: np.where(
        WHERE_MASK, a, b), [(3, 4), (4,)]),
    OpCase("where:computed_mask", lambda x, y: tg.where(x > y, x, y),
           lambda a, b: np.where(a > b, a, b), [(3, 1), (1, 4)]),
    OpCase("max", tg.max, np.amax, [(3, 4)]),
    OpCase("max:axes_keep", lambda x: tg.max(x, axis=(0, 2), keepdims=True),
           lambda a: a.max((0, 2), keepdims=True), [(2, 3, 4)]),
    OpCase("min:axis", lambda x: tg.min(x, axis=-1), lambda a: a.min(-1), [(3, 4)]),
    OpCase("argmax", lambda x: tg.argmax(x, 1), lambda a: a.argmax(1), [(3, 4)],
           kind="no_gradient", result="index"),
    OpCase("argmin", tg.argmin, np.argmin, [(3, 4)], kind="no_gradient", result="index"),
    # A checkpointed segment: one node standing for tanh(x @ W), recomputed in its vjp.
    OpCase("checkpoint", lambda x, w: tg.checkpoint(lambda a, b: tg.tanh(a @ b), x, w),
           lambda a, b: np.tanh(a @ b), [(3, 4), (4, 2)]),
    OpCase("dropout_mask",
           lambda dtype: tg.ops.dropout_mask(0.3, (3, 4), dtype, np.random.default_rng(7)),
           lambda dtype: _dropout_ref(0.3, (3, 4), dtype, np.random.default_rng(7)), [],
           kind="random"),
]
