"""abs, sqrt and stack against PyTorch on the same numbers: values, and float64 gradients
(abs at its kink, where both give 0)."""
import numpy as np
import pytest

import tinygraph as tg

pytestmark = pytest.mark.torch


def _both(torch, fn_tg, fn_torch, arrays, weights):
    """Value and gradients of sum(w * f(inputs)) in tinygraph and in PyTorch."""
    xs = [tg.tensor(a, requires_grad=True) for a in arrays]
    out = fn_tg(*xs)
    grads = tg.grad(tg.sum(out * weights), xs)
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    ref = fn_torch(*ts)
    (ref * torch.tensor(weights)).sum().backward()
    return (out.data, [g.data for g in grads]), (ref.detach().numpy(), [t.grad.numpy() for t in ts])


def _check(mine, theirs):
    np.testing.assert_allclose(mine[0], theirs[0], rtol=1e-12, atol=0)
    for g, h in zip(mine[1], theirs[1]):
        np.testing.assert_allclose(g, h, rtol=1e-12, atol=0)


def test_abs_with_zeros_matches_torch(torch):
    x = np.array([[-2.0, 0.0, 1.5], [0.0, -0.25, 3.0]])
    w = np.random.default_rng(0).standard_normal(x.shape)
    _check(*_both(torch, tg.abs, torch.abs, [x], w))


def test_sqrt_matches_torch(torch):
    x = np.abs(np.random.default_rng(1).standard_normal((3, 4))) + 0.1
    w = np.random.default_rng(2).standard_normal(x.shape)
    _check(*_both(torch, tg.sqrt, torch.sqrt, [x], w))


def test_sqrt_gradient_at_zero_is_infinite_as_in_torch(torch):
    x = tg.tensor(np.array([0.0, 4.0]), requires_grad=True)
    with pytest.warns(RuntimeWarning, match="divide by zero"):     # as numpy says of 1/0
        (g,) = tg.grad(tg.sum(tg.sqrt(x)), [x])
    t = torch.tensor([0.0, 4.0], requires_grad=True)
    torch.sqrt(t).sum().backward()
    np.testing.assert_array_equal(g.data, t.grad.numpy())
    assert np.isinf(g.data[0]) and g.data[1] == 0.25


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_stack_matches_torch(torch, axis):
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal((2, 3)) for _ in range(3)]
    shape = np.stack(arrays, axis).shape
    w = rng.standard_normal(shape)
    mine, theirs = _both(torch, lambda *t: tg.stack(list(t), axis),
                         lambda *t: torch.stack(t, axis), arrays, w)
    assert mine[0].shape == theirs[0].shape == shape
    _check(mine, theirs)


def test_stack_is_reshapes_and_a_concat():
    a, b = tg.tensor(np.ones(3), requires_grad=True), tg.tensor(np.zeros(3), requires_grad=True)
    ops = [n.op for n in tg.nodes([tg.stack([a, b], axis=1)])]
    assert sorted(ops) == ["concat", "reshape", "reshape"]


def test_stack_refuses_different_shapes():
    with pytest.raises(ValueError, match="stack: .* differ in shape"):
        tg.stack([tg.tensor(np.ones(3)), tg.tensor(np.ones(4))])
