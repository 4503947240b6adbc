"""tg.cast and its method forms (astype, float, double), and a boolean mask meeting a floating
tensor in arithmetic (promoted, as PyTorch and numpy do), against PyTorch."""
import numpy as np
import pytest

import tinygraph as tg


def test_accuracy_from_argmax_and_equality_is_torchs(torch):
    rng = np.random.default_rng(0)
    logits, labels = rng.standard_normal((50, 4)), rng.integers(0, 4, 50)
    ours = (tg.tensor(logits).argmax(axis=1) == labels).float().mean()
    theirs = (torch.as_tensor(logits).argmax(dim=1) == torch.as_tensor(labels)).float().mean()
    assert ours.dtype == np.float32
    assert ours.item() == pytest.approx(theirs.item(), abs=0)


def test_a_mask_times_a_tensor_is_promoted_and_its_gradient_is_torchs(torch):
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    ours_w = tg.Parameter(w)
    loss = (ours_w * (tg.tensor(x) > 0) * ours_w).sum()
    loss.backward()
    tw = torch.tensor(w, requires_grad=True)
    (tw * (torch.as_tensor(x) > 0) * tw).sum().backward()
    assert loss.item() == pytest.approx(float((w * (x > 0) * w).sum()), rel=1e-15)
    np.testing.assert_allclose(ours_w.grad.data, tw.grad.numpy(), rtol=0, atol=1e-15)


def test_a_cast_from_a_mask_or_to_integers_passes_no_gradient():
    x = tg.Parameter(np.array([-1.0, 2.0, 3.0]))
    mask = tg.cast(x > 0, np.float64)
    assert not mask.requires_grad
    assert not x.astype(np.int64).requires_grad
    (x * mask).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 1.0, 1.0])


def test_a_floating_cast_returns_the_gradient_in_the_inputs_dtype(torch):
    x = tg.Parameter(np.linspace(-1, 1, 6, dtype=np.float32))
    y = (x.double() ** 2).sum()
    assert y.dtype == np.float64
    y.backward()
    assert x.grad.dtype == np.float32
    tx = torch.tensor(x.data, requires_grad=True)
    (tx.double() ** 2).sum().backward()
    np.testing.assert_array_equal(x.grad.data, tx.grad.numpy())


def test_compiled_recomputes_masks_and_casts_for_new_inputs():
    w = tg.Parameter(np.array([0.5, -1.0, 2.0]))

    def loss(x):
        return (w * (x > 0) + tg.cast(tg.cast(x > 1, "float32"), "float64") * w * w).sum()

    eager, compiled = tg.eager_step(loss, [w]), tg.compile(loss, [w])
    for x in ([1.0, -2.0, 3.0], [-1.0, 2.0, 0.5], [3.0, 3.0, -3.0]):
        w.grad = None
        a = eager(np.array(x))
        g_eager = w.grad.data.copy()
        w.grad = None
        b = compiled(np.array(x))
        assert float(a) == float(b)
        np.testing.assert_array_equal(w.grad.data, g_eager)
    assert compiled.traces == 1


@pytest.mark.parametrize("dtype, message", [("complex128", "not complex128"),
                                            ("floatish", "'floatish' is not a dtype"),
                                            (object, "not object")])
def test_bad_dtypes_are_refused(dtype, message):
    with pytest.raises(TypeError, match=message):
        tg.cast(tg.tensor(np.ones(2)), dtype)


def test_integers_meet_floats_and_other_integers_as_in_torch(torch):
    ids, scale = np.array([1, 2, 3]), np.array([0.5, 1.5, 2.5], np.float32)
    ours = tg.tensor(ids) * tg.tensor(scale)
    theirs = torch.as_tensor(ids) * torch.as_tensor(scale)
    assert ours.dtype == np.float32 and theirs.dtype == torch.float32
    np.testing.assert_array_equal(ours.data, theirs.numpy())
    pred, labels = tg.tensor(np.array([0, 2, 1])), np.array([0, 1, 1], np.int32)
    np.testing.assert_array_equal((pred == tg.tensor(labels)).data, [True, False, True])
    mask = tg.tensor(np.array([[True, False], [True, True]]))
    mean = (tg.tensor(np.ones((2, 2))) * mask).sum() / mask.sum()     # a masked mean
    assert mean.item() == 1.0 and mean.dtype == np.float64


def test_float32_meeting_float64_tensors_stays_refused_with_the_way_out():
    with pytest.raises(TypeError, match="different dtypes.*cast one of them first"):
        tg.tensor(np.ones(2, np.float32)) * tg.tensor(np.ones(2))


def test_array_inputs_of_two_kinds_meet_in_numpys_dtype_in_a_compiled_step_as_in_eager():
    """Eager mode computes x >= n on the bare arrays with numpy (float64 for float32 against
    int64); the trace must not cast n to float32 (2**24 + 1 would round to 2**24)."""
    w = tg.Parameter(np.ones(1, np.float32))

    def loss(x, n):
        return (w * (x >= n)).sum()

    x, n = np.array([16777216.0], np.float32), np.array([16777217], np.int64)
    assert float(tg.eager_step(loss, [w])(x, n)) == 0.0
    assert float(tg.compile(loss, [w])(x, n)) == 0.0


@pytest.mark.parametrize("make, expected_dtype", [
    (lambda ids: ids == 3, np.bool_),
    (lambda ids: ids * 2, np.int32),
    (lambda ids: ids * 0.5, np.float64),
    (lambda ids: (ids > 1) * 2.5, np.float64),
    (lambda ids: ids == np.array([1, 2, 0], np.int64), np.bool_),
])
def test_whole_number_tensors_meeting_constants_compute_numpys_values(make, expected_dtype):
    ids = np.array([1, 2, 3], np.int32)
    ours = make(tg.tensor(ids))
    assert ours.dtype == expected_dtype
    np.testing.assert_array_equal(ours.data, make(ids))
