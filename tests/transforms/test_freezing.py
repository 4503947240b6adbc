"""Freezing: a Parameter with requires_grad = False is a constant to tg.eager_step and
tg.compile (its .grad stays None, optimizers skip it), and unfreezing it trains it again. A
compiled step never replays a program made for other flags. Checked against PyTorch's
requires_grad_(False) on the same numbers, in float64."""
import numpy as np
import pytest

import tinygraph as tg
from tinygraph import nn
from tinygraph.optim import SGD, Adam

rng = np.random.default_rng(0)
X = rng.normal(size=(6, 3))
Y = rng.normal(size=(6, 2))
W1, B1 = rng.normal(size=(3, 4)), rng.normal(size=4)
W2, B2 = rng.normal(size=(4, 2)), rng.normal(size=2)


class MLP(nn.Module):
    def __init__(self):
        self.hidden = nn.Linear(3, 4, dtype=np.float64)
        self.out = nn.Linear(4, 2, dtype=np.float64)
        for p, value in zip(self.parameters(), (W1, B1, W2, B2)):
            p.data[...] = value

    def forward(self, x):
        return self.out(tg.tanh(self.hidden(x)))

    def loss(self, x, y):
        return tg.mse_loss(self(x), y)


MAKERS = {"eager": tg.eager_step, "compiled": tg.compile}


@pytest.mark.parametrize("mode", MAKERS)
def test_a_frozen_parameter_gets_no_gradient_and_the_others_are_unchanged(mode):
    model, reference = MLP(), MLP()
    model.hidden.W.requires_grad = False
    step = MAKERS[mode](model.loss, model.parameters())
    loss = step(X, Y)
    tg.eager_step(reference.loss, reference.parameters())(X, Y)
    assert model.hidden.W.grad is None
    assert loss.item() == pytest.approx(reference.loss(X, Y).item(), rel=1e-14)
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        if name != "hidden.W":
            np.testing.assert_allclose(p.grad.data, q.grad.data, rtol=1e-13, err_msg=name)


def test_a_compiled_step_with_a_frozen_parameter_reads_its_current_value():
    """Frozen is constant to the gradient, not to the value: a changed value is used."""
    model = MLP()
    model.out.W.requires_grad = False
    step = tg.compile(model.loss, model.parameters())
    step(X, Y)
    model.out.W.data = model.out.W.data * 2
    model.zero_grad()
    eager_model = MLP()
    eager_model.out.W.requires_grad = False
    eager_model.out.W.data = eager_model.out.W.data * 2
    assert step(X, Y).item() == pytest.approx(eager_model.loss(X, Y).item(), rel=1e-14)
    assert step.traces == 1
    listed = str(step.program())
    assert "grad 2 (linear.W)  unused" in listed      # out.W: no gradient computed


def torch_run(torch, schedule, lr):
    """PyTorch's parameters after one SGD step per entry of `schedule` (the names frozen)."""
    layers = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    layers.double()
    names = {"hidden.W": layers[0].weight, "hidden.b": layers[0].bias,
             "out.W": layers[2].weight, "out.b": layers[2].bias}
    with torch.no_grad():
        for (name, p), value in zip(names.items(), (W1, B1, W2, B2)):
            p.copy_(torch.tensor(value.T if value.ndim == 2 else value))
    opt = torch.optim.SGD(layers.parameters(), lr=lr)
    x, y = torch.tensor(X), torch.tensor(Y)
    losses, grads_none = [], []
    for frozen in schedule:
        for name, p in names.items():
            p.requires_grad_(name not in frozen)
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(layers(x), y)
        loss.backward()
        grads_none.append(sorted(n for n, p in names.items() if p.grad is None))
        opt.step()
        losses.append(loss.item())
    params = {n: (p.detach().numpy().T if p.ndim == 2 else p.detach().numpy())
              for n, p in names.items()}
    return params, losses, grads_none


def tinygraph_run(mode, schedule, lr):
    model = MLP()
    step = MAKERS[mode](model.loss, model.parameters())
    opt = SGD(model.parameters(), lr=lr)
    losses, grads_none = [], []
    for frozen in schedule:
        for name, p in model.named_parameters():
            p.requires_grad = name not in frozen
        opt.zero_grad()
        losses.append(step(X, Y).item())
        grads_none.append(sorted(n for n, p in model.named_parameters() if p.grad is None))
        opt.step()
    return model, step, losses, grads_none


SCHEDULE = [(), ("hidden.W", "hidden.b"), ("hidden.W", "hidden.b"), (), ("out.W",),
            ("hidden.W", "hidden.b"), ()]


@pytest.mark.parametrize("mode", MAKERS)
def test_freeze_step_unfreeze_step_follows_pytorch(mode, torch):
    theirs, their_losses, their_none = torch_run(torch, SCHEDULE, lr=0.1)
    model, step, losses, grads_none = tinygraph_run(mode, SCHEDULE, lr=0.1)
    assert grads_none == their_none
    assert losses == pytest.approx(their_losses, rel=1e-12)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.data, theirs[name], rtol=1e-12, err_msg=name)
    if mode == "compiled":
        assert step.traces == 3         # one program per set of flags, found again after


def test_compiled_equals_eager_through_freezing_and_unfreezing():
    eager, _, eager_losses, eager_none = tinygraph_run("eager", SCHEDULE, lr=0.1)
    compiled, _, losses, grads_none = tinygraph_run("compiled", SCHEDULE, lr=0.1)
    assert grads_none == eager_none
    assert losses == pytest.approx(eager_losses, rel=1e-13)
    for (name, p), q in zip(compiled.named_parameters(), eager.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-13, err_msg=name)


def test_unfreezing_never_replays_the_frozen_program():
    """Traced frozen, then unfrozen: the parameter must get its gradient (a stale program
    would leave .grad None and the parameter untrained)."""
    model = MLP()
    model.hidden.W.requires_grad = False
    step = tg.compile(model.loss, model.parameters())
    step(X, Y)
    model.hidden.W.requires_grad = True
    step(X, Y)
    reference = MLP()
    tg.eager_step(reference.loss, reference.parameters())(X, Y)
    np.testing.assert_allclose(model.hidden.W.grad.data, reference.hidden.W.grad.data,
                               rtol=1e-13)


def test_adam_skips_a_frozen_parameter():
    model = MLP()
    model.requires_grad_(False)
    model.out.requires_grad_(True)
    step = tg.compile(model.loss, model.parameters())
    opt = Adam(model.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        step(X, Y)
        opt.step()
    np.testing.assert_array_equal(model.hidden.W.data, W1)
    np.testing.assert_array_equal(model.hidden.b.data, B1)
    assert not np.allclose(model.out.W.data, W2)


@pytest.mark.parametrize("mode", MAKERS)
def test_all_frozen_is_a_clear_error(mode):
    model = MLP().requires_grad_(False)
    step = MAKERS[mode](model.loss, model.parameters())
    with pytest.raises(ValueError, match="all 4 parameters are frozen"):
        step(X, Y)


def test_a_plain_tensor_that_requires_no_grad_is_still_refused():
    with pytest.raises(TypeError, match="Parameters or Tensors that require grad"):
        tg.eager_step(lambda x: tg.sum(x), [tg.tensor([1.0, 2.0])])
    frozen = nn.Parameter([1.0, 2.0])
    frozen.requires_grad = False
    tg.compile(lambda x: tg.sum(x * frozen), [frozen])     # a frozen Parameter is accepted
