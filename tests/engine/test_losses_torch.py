"""The losses against torch.nn.functional on the same numbers: values and gradients in float64
to 1e-10 (relative), float32 kept float32, bad arguments named, and a compiled step with the
new options equal to eager. Skipped without torch (the `torch` fixture of tests/conftest.py)."""
import numpy as np
import pytest

import tinygraph as tg

RTOL = 1e-10
IGNORE = -100


def logits_and_targets(shape, classes=5, seed=0, ignored=True):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=shape + (classes,)) * 3
    targets = rng.integers(0, classes, size=shape)
    if ignored:
        targets.flat[::3] = IGNORE              # a third of the targets ignored
    return logits, targets


def tinygraph_value_and_grad(loss_fn, *arrays):
    """(value, [gradient of each array]) of sum(loss_fn(*tensors)) in tinygraph."""
    params = [tg.Parameter(a) for a in arrays]
    out = loss_fn(*params)
    grads = tg.grad(tg.sum(out) if out.ndim else out, params)
    return out.data, [g.data for g in grads]


def torch_value_and_grad(torch, loss_fn, *arrays):
    params = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = loss_fn(*params)
    (out.sum() if out.ndim else out).backward()
    return out.detach().numpy(), [p.grad.numpy() for p in params]


def assert_same(ours, theirs):
    (value, grads), (t_value, t_grads) = ours, theirs
    assert value.shape == t_value.shape
    np.testing.assert_allclose(value, t_value, rtol=RTOL, atol=0)
    for g, t_g in zip(grads, t_grads):
        np.testing.assert_allclose(g, t_g, rtol=RTOL, atol=1e-15)


CROSS_ENTROPY_CASES = [
    dict(reduction=r, ignore_index=i, label_smoothing=s)
    for r in ("mean", "sum", "none") for i in (None, IGNORE) for s in (0.0, 0.2)]


@pytest.mark.parametrize("shape", [(6,), (3, 4)], ids=["2d-logits", "3d-logits"])
@pytest.mark.parametrize("options", CROSS_ENTROPY_CASES,
                         ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_cross_entropy_matches_torch(torch, shape, options):
    logits, targets = logits_and_targets(shape, ignored=options["ignore_index"] is not None)
    ours = tinygraph_value_and_grad(lambda x: tg.cross_entropy(x, targets, **options), logits)
    torch_options = dict(options, ignore_index=IGNORE if options["ignore_index"] else -100)
    classes_second = (lambda x: x) if len(shape) == 1 else (lambda x: x.permute(0, 2, 1))
    theirs = torch_value_and_grad(torch, lambda x: torch.nn.functional.cross_entropy(
        classes_second(x), torch.tensor(targets), **torch_options), logits)
    assert_same(ours, theirs)


def test_ignored_targets_get_no_gradient_and_zero_loss():
    logits, targets = logits_and_targets((6,))
    losses, _ = tinygraph_value_and_grad(
        lambda x: tg.cross_entropy(x, targets, ignore_index=IGNORE, reduction="none"), logits)
    _, (grad,) = tinygraph_value_and_grad(
        lambda x: tg.cross_entropy(x, targets, ignore_index=IGNORE), logits)
    ignored = targets == IGNORE
    assert (losses[ignored] == 0).all() and (losses[~ignored] > 0).all()
    assert (grad[ignored] == 0).all() and (grad[~ignored] != 0).any()


def test_default_cross_entropy_still_rejects_negative_targets():
    logits, targets = logits_and_targets((6,))
    with pytest.raises(ValueError, match="target -100 is outside the 5 classes"):
        tg.cross_entropy(tg.tensor(logits), targets)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_matches_torch(torch, reduction):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    ours = tinygraph_value_and_grad(lambda a, b: tg.mse_loss(a, b, reduction), x, y)
    theirs = torch_value_and_grad(
        torch, lambda a, b: torch.nn.functional.mse_loss(a, b, reduction=reduction), x, y)
    assert_same(ours, theirs)


@pytest.mark.parametrize("pos_weight", [None, "per-class"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropy_with_logits_matches_torch(torch, reduction, pos_weight):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 3)) * 5
    x[0] = [-800.0, 800.0, 0.0]                 # exp(800) overflows: the stable form must not
    y = rng.uniform(size=(4, 3))
    w = None if pos_weight is None else np.array([0.5, 2.0, 3.0])
    ours = tinygraph_value_and_grad(lambda a, b: tg.binary_cross_entropy_with_logits(
        a, b, reduction, pos_weight=w), x, y)
    theirs = torch_value_and_grad(
        torch, lambda a, b: torch.nn.functional.binary_cross_entropy_with_logits(
            a, b, reduction=reduction, pos_weight=None if w is None else torch.tensor(w)),
        x, y)
    assert np.isfinite(ours[0]).all()
    assert_same(ours, theirs)


@pytest.mark.parametrize("loss", [
    lambda x: tg.cross_entropy(x, logits_and_targets((3, 4))[1], ignore_index=IGNORE,
                               label_smoothing=0.1, reduction="sum"),
    lambda x: tg.mse_loss(x, np.ones(x.shape)),
    lambda x: tg.binary_cross_entropy_with_logits(x, np.full(x.shape, 0.25), "none",
                                                  pos_weight=np.full(x.shape[-1], 2.0)),
], ids=["cross_entropy", "mse_loss", "bce_with_logits"])
def test_float32_stays_float32(loss):
    x = tg.Parameter(logits_and_targets((3, 4))[0].astype(np.float32))
    out = loss(x)
    (g,) = tg.grad(tg.sum(out), [x])
    assert out.dtype == np.float32 and g.dtype == np.float32


@pytest.mark.parametrize("call, message", [
    (lambda x, t: tg.cross_entropy(x, t, reduction="avg"), "reduction must be one of"),
    (lambda x, t: tg.cross_entropy(x, t, label_smoothing=1.0), "label_smoothing"),
    (lambda x, t: tg.cross_entropy(x, t, label_smoothing=-0.1), "label_smoothing"),
    (lambda x, t: tg.mse_loss(x, x, reduction="elementwise"), "mse_loss: reduction"),
    (lambda x, t: tg.binary_cross_entropy_with_logits(x, x, reduction=None),
     "binary_cross_entropy_with_logits: reduction"),
])
def test_bad_arguments_are_named(call, message):
    logits, targets = logits_and_targets((6,), ignored=False)
    with pytest.raises(ValueError, match=message):
        call(tg.tensor(logits), targets)


def test_compiled_step_with_new_options_equals_eager():
    """Targets are inputs of the compiled program: the ignored ones are masked at every call,
    not only at the trace."""
    w = tg.Parameter(np.random.default_rng(3).normal(size=(4, 5)))

    def loss(x, targets, labels):
        logits = tg.matmul(x, w)
        return (tg.cross_entropy(logits, targets, ignore_index=IGNORE, label_smoothing=0.1)
                + tg.binary_cross_entropy_with_logits(logits, labels, "sum")
                + tg.mse_loss(logits, labels))

    step = tg.compile(loss, [w])
    rng = np.random.default_rng(4)
    for call in range(3):                           # the first traces, the others replay
        x, labels = rng.normal(size=(6, 4)), rng.uniform(size=(6, 5))
        targets = rng.integers(0, 5, size=6)
        targets[rng.permutation(6)[:call + 1]] = IGNORE   # different rows ignored each call
        w.zero_grad()
        compiled = step(x, targets, labels)
        compiled_grad = w.grad.data.copy()
        eager = loss(tg.tensor(x), targets, labels)
        (eager_grad,) = tg.grad(eager, [w])
        np.testing.assert_allclose(compiled.data if hasattr(compiled, "data") else compiled,
                                   eager.data, rtol=1e-12)
        np.testing.assert_allclose(compiled_grad, eager_grad.data, rtol=1e-12)
