"""Optimisers and their helpers (tinygraph.optim): gradient clipping, the plateau schedule,
Adam's state. Moved from tests/lstm/test_lstm_package.py."""
import numpy as np
import pytest

import tinygraph as tg
from tinygraph.optim import SGD, Adam, DecayOnPlateau, clip_grad_norm


def test_clip_grad_norm_scales_to_the_bound_and_reports_the_norm():
    a = tg.Parameter(np.zeros(2))
    b = tg.Parameter(np.zeros(2))
    a.grad, b.grad = tg.tensor([3.0, 0.0]), tg.tensor([0.0, 4.0])
    assert clip_grad_norm([a, b], 1.0) == pytest.approx(5.0)
    total = np.sqrt((a.grad.data ** 2).sum() + (b.grad.data ** 2).sum())
    assert total == pytest.approx(1.0, rel=1e-5)


def test_decay_on_plateau_divides_by_four():
    opt = SGD([tg.Parameter(np.zeros(1))], lr=20.0)
    schedule = DecayOnPlateau(opt)
    assert schedule.step(100.0) and opt.lr == 20.0
    assert not schedule.step(101.0) and opt.lr == 5.0


def test_adam_state_is_checked_on_load():
    p = tg.Parameter(np.zeros(3))
    opt = Adam([p])
    state = opt.state_dict()
    state["m0"] = np.zeros(1)
    with pytest.raises(ValueError, match="m0 has shape"):
        opt.load_state_dict(state)
