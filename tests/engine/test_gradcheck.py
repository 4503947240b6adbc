"""gradcheck itself: it must pass correct gradients and catch a wrong one, saying where."""
import numpy as np
import pytest

import tinygraph as tg


class BrokenSquare(tg.Primitive):
    """x**2 whose vjp is wrong in one element: 2x everywhere except entry (1, 2)."""

    name = "broken_square"

    def forward(self, a):
        return a * a

    def vjp(self, node, g, needs):
        (x,) = node.inputs
        wrong = np.ones(x.shape)
        wrong[1, 2] = 1.5
        return [g * x * 2.0 * wrong]


def test_gradcheck_passes_a_correct_gradient():
    assert tg.gradcheck(lambda x: (x * x).sum(), [np.arange(6.0).reshape(2, 3)])


def test_gradcheck_reports_the_worst_element_with_both_values():
    x = np.arange(1.0, 7.0).reshape(2, 3)
    with pytest.raises(tg.GradcheckError) as info:
        tg.gradcheck(lambda t: tg.apply(BrokenSquare(), t).sum(), [tg.tensor(x, name="x")])
    message = str(info.value)
    assert "'x'" in message and "index (1, 2)" in message
    assert "18 (analytic)" in message and "12 (finite" in message


def test_gradcheck_works_in_float64_even_for_float32_inputs():
    x = np.linspace(-1, 1, 5, dtype=np.float32)
    assert tg.gradcheck(lambda t: tg.tanh(t) * t, [x])


def test_gradcheck_rejects_integer_inputs():
    with pytest.raises(TypeError, match="input 0 has dtype int"):
        tg.gradcheck(lambda t: t * 2.0, [np.arange(3)])


class NanGradient(tg.Primitive):
    name = "nan_gradient"

    def forward(self, a):
        return a * 2

    def vjp(self, node, g, needs):
        return [g * float("nan")]


@pytest.mark.parametrize("fn, x", [
    (lambda t: tg.apply(NanGradient(), t).sum(), np.array([1.0, 2.0])),
    (lambda t: tg.log(t).sum(), np.array([-1.0, 2.0])),          # NaN on both sides
    (lambda t: (t ** 0.5).sum(), np.array([0.0, 2.0])),          # infinite slope at 0
])
def test_gradcheck_never_passes_a_non_finite_gradient(fn, x):
    with np.errstate(all="ignore"), pytest.raises(tg.GradcheckError, match="index"):
        tg.gradcheck(fn, [x])


def test_gradcheck_perturbs_zero_dimensional_inputs():
    s = tg.tensor(np.ones(3)).sum().detach()     # a 0-d op output as input
    assert tg.gradcheck(lambda a: a * a * 3.0, [s])
