"""tinygraph.optim against torch.optim: SGD (momentum, nesterov, weight decay), AdamW, RMSprop
and the step schedules give the same parameters as PyTorch over 20 steps in float64, and a
state_dict round trip continues exactly as an uninterrupted run."""
import math

import numpy as np
import pytest

import tinygraph as tg
from tinygraph.optim import (SGD, Adam, AdamW, CosineLR, ExponentialLR, RMSprop, StepLR)

STEPS = 20
RTOL = 1e-12

rng = np.random.default_rng(0)
X = rng.normal(size=(8, 3))
Y = rng.normal(size=(8, 2))
W0 = rng.normal(size=(3, 2))
B0 = rng.normal(size=2)


def gradients(w, b):
    """Gradient of mean squared error of X @ w + b against Y: the same numpy arithmetic feeds
    both libraries, so only the optimizers differ."""
    residual = X @ w + b - Y
    return 2 * X.T @ residual / len(X), 2 * residual.sum(axis=0) / len(X)


OPTIMIZERS = {   # name: (tinygraph maker, torch class name, keyword arguments)
    "sgd": (SGD, "SGD", dict(lr=0.1)),
    "sgd-momentum": (SGD, "SGD", dict(lr=0.1, momentum=0.9)),
    "sgd-nesterov-decay": (SGD, "SGD", dict(lr=0.1, momentum=0.8, nesterov=True,
                                            weight_decay=0.05)),
    "sgd-decay": (SGD, "SGD", dict(lr=0.1, weight_decay=0.1)),
    "adam": (Adam, "Adam", dict(lr=0.05)),
    "adamw": (AdamW, "AdamW", dict(lr=0.05, weight_decay=0.1)),
    "rmsprop": (RMSprop, "RMSprop", dict(lr=0.01)),
    "rmsprop-centered-momentum": (RMSprop, "RMSprop", dict(lr=0.01, momentum=0.9, centered=True,
                                                           weight_decay=0.01)),
}


def cosine_factor(count, total, warmup, base_lr, min_lr):
    """The CosineLR rule written independently, as a factor of base_lr for torch's LambdaLR."""
    if count < warmup:
        return (count + 1) / warmup
    progress = min(1.0, (count - warmup) / (total - warmup))
    return (min_lr + (base_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))) / base_lr


SCHEDULES = {   # name: (tinygraph maker, torch maker)
    "none": (None, None),
    "step": (lambda o: StepLR(o, step_size=6, gamma=0.5),
             lambda t, o: t.optim.lr_scheduler.StepLR(o, step_size=6, gamma=0.5)),
    "exponential": (lambda o: ExponentialLR(o, gamma=0.9),
                    lambda t, o: t.optim.lr_scheduler.ExponentialLR(o, gamma=0.9)),
    "cosine-warmup": (
        lambda o: CosineLR(o, total_steps=15, warmup_steps=4, min_lr=1e-3),
        lambda t, o: t.optim.lr_scheduler.LambdaLR(
            o, lambda k, base=o.param_groups[0]["lr"]: cosine_factor(k, 15, 4, base, 1e-3))),
}


def tinygraph_run(name, schedule_name, steps, state=None):
    make, _, kwargs = OPTIMIZERS[name]
    params = [tg.Parameter(W0.copy()), tg.Parameter(B0.copy())]
    opt = make(params, **kwargs)
    make_schedule = SCHEDULES[schedule_name][0]
    schedule = make_schedule(opt) if make_schedule else None
    if state is not None:
        for p, value in zip(params, state["params"]):
            p.data[...] = value
        opt.load_state_dict(state["opt"])
        if schedule:
            schedule.load_state_dict(state["schedule"])
    for _ in range(steps):
        opt.zero_grad()
        for p, g in zip(params, gradients(params[0].data, params[1].data)):
            p.grad = tg.tensor(g)
        opt.step()
        if schedule:
            schedule.step()
    saved = {"params": [p.data.copy() for p in params], "opt": _copy(opt.state_dict()),
             "schedule": schedule.state_dict() if schedule else None}
    return [p.data for p in params], opt.lr, saved


def _copy(state):
    return {k: np.array(v, copy=True) if isinstance(v, np.ndarray) else v
            for k, v in state.items()}


def torch_run(torch, name, schedule_name):
    _, torch_name, kwargs = OPTIMIZERS[name]
    params = [torch.tensor(W0.copy(), requires_grad=True), torch.tensor(B0.copy(),
                                                                        requires_grad=True)]
    opt = getattr(torch.optim, torch_name)(params, **kwargs)
    make_schedule = SCHEDULES[schedule_name][1]
    schedule = make_schedule(torch, opt) if make_schedule else None
    for _ in range(STEPS):
        opt.zero_grad()
        for p, g in zip(params, gradients(params[0].detach().numpy(), params[1].detach().numpy())):
            p.grad = torch.from_numpy(g.copy())
        opt.step()
        if schedule:
            schedule.step()
    return [p.detach().numpy() for p in params], opt.param_groups[0]["lr"]


CASES = [(o, "none") for o in OPTIMIZERS] + [(o, s) for o in ("sgd-momentum", "adamw", "rmsprop")
                                              for s in SCHEDULES if s != "none"]


@pytest.mark.parametrize("name, schedule_name", CASES)
def test_twenty_steps_equal_torch(torch, name, schedule_name):
    ours, our_lr, _ = tinygraph_run(name, schedule_name, STEPS)
    theirs, their_lr = torch_run(torch, name, schedule_name)
    assert not np.allclose(ours[0], W0, rtol=1e-3)          # the parameters did move
    for mine, reference in zip(ours, theirs):
        np.testing.assert_allclose(mine, reference, rtol=RTOL, atol=0)
    assert our_lr == pytest.approx(their_lr, rel=RTOL, abs=0)


@pytest.mark.parametrize("name, schedule_name", [
    ("sgd-nesterov-decay", "step"), ("adamw", "cosine-warmup"),
    ("rmsprop-centered-momentum", "exponential")])
def test_state_dict_round_trip_continues_identically(name, schedule_name):
    straight, straight_lr, _ = tinygraph_run(name, schedule_name, STEPS)
    _, _, halfway = tinygraph_run(name, schedule_name, 7)
    resumed, resumed_lr, _ = tinygraph_run(name, schedule_name, STEPS - 7, state=halfway)
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a, b)
    assert resumed_lr == straight_lr


def test_schedule_values():
    opt = SGD([tg.Parameter(np.zeros(1))], lr=1.0)
    cosine = CosineLR(opt, total_steps=6, warmup_steps=2, min_lr=0.1)
    lrs = [opt.lr]
    for _ in range(7):
        assert cosine.step() is None                         # as torch's schedules
        lrs.append(opt.lr)
    assert lrs[:3] == [0.5, 1.0, 1.0]                        # warm-up reaches base_lr
    assert lrs[4] == pytest.approx(0.1 + 0.9 * 0.5)          # halfway down the cosine
    assert lrs[6:] == [pytest.approx(0.1)] * 2               # stays at min_lr past the end


def test_optimizer_state_of_other_parameters_is_refused():
    opt = RMSprop([tg.Parameter(np.zeros(3))], momentum=0.9)
    state = opt.state_dict()
    state["buf0"] = np.zeros(2)
    with pytest.raises(ValueError, match="buf0 has shape"):
        opt.load_state_dict(state)
    with pytest.raises(ValueError, match="expected entries"):
        SGD([tg.Parameter(np.zeros(3))], lr=0.1, momentum=0.9).load_state_dict({"lr": 0.1})
