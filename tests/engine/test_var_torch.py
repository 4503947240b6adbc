"""tg.var and tg.std against torch.var and torch.std on the same numbers: values and float64
gradients to 1e-10 (relative) over axes, tuples of axes, keepdims and corrections; tg.mean
over a tuple of axes; the error when count − correction is not positive; compiled == eager."""
import numpy as np
import pytest

import tinygraph as tg

RTOL = 1e-10

CASES = [
    dict(axis=None, keepdims=False, correction=1),
    dict(axis=None, keepdims=False, correction=0),
    dict(axis=0, keepdims=False, correction=1),
    dict(axis=-1, keepdims=True, correction=1),
    dict(axis=(0, 2), keepdims=False, correction=1),
    dict(axis=(0, 2), keepdims=True, correction=0),
    dict(axis=(1, -1), keepdims=False, correction=2),
]


def case_id(case):
    return f"axis={case['axis']}-keep={case['keepdims']}-c={case['correction']}"


def x_array(seed=0):
    return np.random.default_rng(seed).normal(size=(3, 4, 5)) * 2 + 1


def tinygraph_value_and_grad(fn, array, **options):
    x = tg.Parameter(array)
    out = fn(x, **options)
    weights = np.random.default_rng(1).normal(size=out.shape)
    (g,) = tg.grad(tg.sum(tg.mul(out, weights)), [x])
    return out.data, g.data


def torch_value_and_grad(torch_fn, torch, array, axis, keepdims, correction):
    x = torch.tensor(array, requires_grad=True)
    out = torch_fn(x, dim=axis, keepdim=keepdims, correction=correction)
    weights = np.random.default_rng(1).normal(size=tuple(out.shape))
    (out * torch.tensor(weights)).sum().backward()
    return out.detach().numpy(), x.grad.numpy()


@pytest.mark.parametrize("name", ["var", "std"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_equal_to_torch_in_float64(torch, name, case):
    array = x_array()
    value, grad = tinygraph_value_and_grad(getattr(tg, name), array, **case)
    t_value, t_grad = torch_value_and_grad(getattr(torch, name), torch, array, **case)
    assert value.shape == t_value.shape
    np.testing.assert_allclose(value, t_value, rtol=RTOL, atol=0)
    np.testing.assert_allclose(grad, t_grad, rtol=RTOL, atol=1e-14)


def test_the_default_is_unbiased_and_correction_0_is_numpys_default():
    array = x_array()
    np.testing.assert_allclose(tg.var(array).data, np.var(array, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(tg.var(array, correction=0).data, np.var(array), rtol=1e-12)
    np.testing.assert_allclose(tg.std(array, axis=1, correction=0).data,
                               np.std(array, axis=1), rtol=1e-12)


def test_mean_over_a_tuple_of_axes_equals_torch(torch):
    array = x_array()
    x = tg.Parameter(array)
    out = tg.mean(x, axis=(0, 2), keepdims=True)
    (g,) = tg.grad(tg.sum(tg.mul(out, np.arange(4.0).reshape(1, 4, 1))), [x])
    t_x = torch.tensor(array, requires_grad=True)
    t_out = t_x.mean(dim=(0, 2), keepdim=True)
    (t_out * torch.arange(4.0, dtype=torch.float64).reshape(1, 4, 1)).sum().backward()
    np.testing.assert_allclose(out.data, t_out.detach().numpy(), rtol=RTOL)
    np.testing.assert_allclose(g.data, t_x.grad.numpy(), rtol=RTOL)


def test_float32_stays_float32():
    out = tg.std(x_array().astype(np.float32), axis=0)
    assert out.dtype == np.float32


def test_composed_of_primitives():
    out = tg.var(tg.Parameter(x_array()), axis=1)
    assert {node.op for node in tg.nodes(out)} == {"sum", "mul", "sub", "div"}


@pytest.mark.parametrize("fn", [tg.var, tg.std])
@pytest.mark.parametrize("shape, options", [
    ((1, 4), dict(axis=0)),                      # one element, correction 1
    ((3,), dict(correction=3)),
    ((2, 2), dict(axis=(0, 1), correction=4.5)),
])
def test_no_degrees_of_freedom_left_is_an_error(fn, shape, options):
    with pytest.raises(ValueError, match=r"not more than correction=.*variance is undefined"):
        fn(np.ones(shape), **options)


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="var: .* has dtype int64"):
        tg.var(np.arange(4))
    with pytest.raises(TypeError, match="correction must be a number"):
        tg.var(np.ones(4), correction="1")
    with pytest.raises(ValueError, match="var: axis 3 is out of range"):
        tg.var(np.ones((2, 2)), axis=3)


def test_compiled_equals_eager_with_changing_inputs():
    scale = tg.Parameter(np.array([1.5, -0.5, 2.0]), name="scale")

    def loss(x):
        return tg.sum(tg.mul(tg.std(x, axis=0, keepdims=True), scale))

    step, eager = tg.compile(loss, [scale]), tg.eager_step(loss, [scale])
    previous = None
    for seed in range(3):
        x = np.random.default_rng(seed).normal(size=(6, 3))
        scale.grad = None
        compiled_value = step(x)
        compiled_grad = np.array(scale.grad.data)
        scale.grad = None
        np.testing.assert_allclose(compiled_value, eager(x), rtol=1e-12)
        np.testing.assert_allclose(compiled_grad, scale.grad.data, rtol=1e-12)
        assert previous is None or not np.allclose(compiled_grad, previous)
        previous = compiled_grad


def test_std_of_a_constant_row_has_torchs_zero_gradient_not_nan(torch):
    x = np.array([[1.0, 1.0, 1.0], [1.0, 2.0, 4.0]])
    p = tg.Parameter(x.copy())
    (g,) = tg.grad(tg.std(p, axis=1).sum(), [p])
    t = torch.tensor(x, requires_grad=True)
    torch.std(t, dim=1).sum().backward()
    np.testing.assert_array_equal(g.data[0], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(g.data, t.grad.numpy(), rtol=1e-14)


@pytest.mark.parametrize("name", ["var", "std"])
def test_a_third_positional_argument_is_refused_not_read_as_keepdims(name):
    # torch.var(x, 1, False) means unbiased=False: read as keepdims it would be a silent
    # wrong number (the unbiased variance).
    with pytest.raises(TypeError, match=f"{name}: give keepdims and correction by name"):
        getattr(tg, name)(np.ones((2, 3)), 1, False)


def test_std_of_a_row_with_nan_is_nan_as_torchs(torch):
    x = np.array([[1.0, np.nan, 3.0], [1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(tg.std(x, axis=1).data,
                                  torch.std(torch.as_tensor(x), dim=1).numpy())
