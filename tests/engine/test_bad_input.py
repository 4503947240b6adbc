"""Bad input to the engine (ops, NaN/Inf under detect_anomaly, grad/backward, gradcheck,
compiled steps, layers): each case raises a specific exception type whose message names what
was wrong."""
import numpy as np
import pytest

import tinygraph as tg
from tinygraph.transforms.gradcheck import GradcheckError
from tinygraph.nn import Embedding
from tests.bad_input import Case, t

CASES = [
    # ops: shapes, dtypes, types, empty arrays
    Case("add: shapes that do not broadcast", lambda p: t((2, 3)) + t(4), ValueError,
         r"add: .*\(2, 3\).*\(4,\)"),
    Case("matmul: inner dimensions differ", lambda p: t((2, 3)) @ t((2, 3)), ValueError,
         "inner dimensions 3 and 2"),
    Case("matmul: a 0-d operand", lambda p: tg.matmul(t(()), t(3)), ValueError,
         "at least one dimension"),
    Case("mul: float32 with float64", lambda p: t(3, np.float32) * t(3), TypeError,
         "different dtypes"),
    Case("tanh: a string", lambda p: tg.tanh("a"), TypeError, "tanh: operand of type str"),
    Case("add: None", lambda p: tg.add(t(2), None), TypeError, "NoneType"),
    Case("tensor: strings", lambda p: tg.tensor(["a", "b"]), TypeError, "not numeric"),
    Case("tensor: ragged lists", lambda p: tg.tensor([[1.0], [1.0, 2.0]]), ValueError,
         "inhomogeneous"),
    Case("requires_grad on integers", lambda p: tg.tensor([1, 2], requires_grad=True),
         TypeError, "floating-point data, got dtype int64"),
    Case("reshape: wrong size", lambda p: tg.reshape(t((2, 3)), (4, 2)), ValueError,
         r"cannot reshape .*\(2, 3\) to \(4, 2\)"),
    Case("transpose: not a permutation", lambda p: tg.transpose(t((2, 3)), (0, 0)),
         ValueError, "not a permutation"),
    Case("sum: axis out of range", lambda p: tg.sum(t((2, 3)), axis=2), ValueError,
         "axis 2 is out of range"),
    Case("sum: float axis", lambda p: tg.sum(t(3), axis=1.5), TypeError, "axis must be an int"),
    Case("mean: an empty tensor", lambda p: tg.mean(t((0, 3))), ValueError, "no elements"),
    Case("getitem: float index", lambda p: t(3)[1.5], TypeError, "unsupported index 1.5"),
    Case("getitem: out of bounds", lambda p: t(3)[5], IndexError, "does not fit"),
    Case("getitem: float index array", lambda p: t(3)[np.array([0.5])], TypeError,
         "must hold integers"),
    Case("concat: no tensors", lambda p: tg.concat([]), ValueError, "at least one tensor"),
    Case("concat: shapes differ off the axis", lambda p: tg.concat([t((2, 3)), t((3, 3))], 1),
         ValueError, "concat"),
    Case("log_softmax: integer input", lambda p: tg.log_softmax(tg.tensor([[1, 2]])), TypeError,
         "log_softmax: .* has dtype int64; cast it to a float dtype"),
    Case("log_softmax: 0-d", lambda p: tg.log_softmax(t(())), ValueError,
         "at least one dimension"),
    Case("log_softmax: empty class axis", lambda p: tg.log_softmax(t((2, 0))), ValueError,
         "no entries along axis 1"),
    Case("pow: tensor exponent", lambda p: t(3) ** t(3), TypeError, "must be a constant"),
    Case("cross_entropy: float targets",
         lambda p: tg.cross_entropy(t((2, 4)), np.array([0.0, 1.0])), TypeError,
         "integer class indices"),
    Case("cross_entropy: target out of range",
         lambda p: tg.cross_entropy(t((2, 4)), np.array([0, 4])), ValueError,
         "target 4 is outside the 4 classes"),
    Case("cross_entropy: targets of the wrong shape",
         lambda p: tg.cross_entropy(t((2, 4)), np.array([0, 1, 2])), ValueError,
         r"targets of shape \(3,\)"),
    Case("embedding: id outside the table",
         lambda p: Embedding(5, 3, rng=np.random.default_rng(0))(np.array([1, 5])), ValueError,
         "id 5 is outside the 5 rows"),
    # NaN / Inf
    Case("detect_anomaly: NaN input",
         lambda p: _anomaly(lambda: tg.tanh(tg.tensor([1.0, np.nan], name="x"))),
         FloatingPointError, r"(?s)op 'tanh' in the forward pass produced NaN.*already non-finite"),
    Case("detect_anomaly: exp overflows",
         lambda p: _anomaly(lambda: tg.exp(tg.tensor([1e4]))), FloatingPointError,
         "op 'exp' in the forward pass produced Inf"),
    Case("detect_anomaly: backward of sqrt at 0",
         lambda p: _anomaly(lambda: (tg.tensor([0.0, 1.0], requires_grad=True) ** 0.5)
                            .sum().backward()),
         FloatingPointError, "in the backward pass of 'pow' produced Inf"),
    Case("gradcheck: NaN finite differences",
         lambda p: tg.gradcheck(tg.log, [tg.tensor([-1.0], requires_grad=True)]),
         GradcheckError, "nan"),
    # grad / backward
    Case("backward: non-scalar without a seed", lambda p: (t(3, grad=True) * 2.0).backward(),
         ValueError, "not a scalar; pass a seed"),
    Case("backward: nothing requires grad", lambda p: t(3).sum().backward(), ValueError,
         "does not require grad"),
    Case("grad: input not in the graph",
         lambda p: tg.grad(t(3, grad=True).sum(), t(3, name="other", grad=True)), ValueError,
         "'other'.* is not part of the graph"),
    Case("grad: with respect to integers",
         lambda p: tg.grad(t(3, grad=True).sum(), tg.tensor([1, 2])), TypeError,
         "has dtype int64"),
    Case("grad: of an integer output", lambda p: tg.grad(tg.tensor([1, 2]), t(3, grad=True)),
         TypeError, "only floating-point outputs"),
    Case("grad: input that does not require grad",
         lambda p: tg.grad(t(3, grad=True).sum(), t(3, name="c")), ValueError,
         "does not require grad"),
    Case("grad: seed of the wrong shape",
         lambda p: tg.grad(t(3, grad=True) * 2.0, [], grad_outputs=[np.ones(2)]), ValueError,
         r"seed of shape \(2,\)"),
    Case("grad: seed of the wrong dtype",
         lambda p: tg.grad(t(3, grad=True) * 2.0, [], grad_outputs=[np.ones(3, np.float32)]),
         TypeError, "seed dtype float32"),
    Case("grad: not a Tensor", lambda p: tg.grad(np.ones(3), []), TypeError,
         "expected a Tensor or a list of Tensors, got ndarray"),
    # compiled steps
    Case("compile: input read as values",
         lambda p: tg.compile(lambda x: tg.sum(tg.tensor(x.data) * 1.0 + _W), [_W])(np.ones(2)),
         ValueError, "must use its inputs as Tensors"),
]

_W = tg.Parameter(np.ones(2))


def _anomaly(fn):
    with tg.detect_anomaly():
        fn()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")     # numpy's, for the NaN/Inf cases
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input_raises_a_specific_error_naming_it(case, tmp_path):
    with pytest.raises(case.error, match=case.match):
        case.run(tmp_path)
