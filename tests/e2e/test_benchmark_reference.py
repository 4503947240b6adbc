"""The benchmark's hand-derived numpy LSTM must do the same work as tinygraph: one step from
the same weights gives the same loss and the same updated weights."""
import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))
from numpy_lstm_lm import NumpyLSTMLM  # noqa: E402

from tinygraph.optim import SGD, clip_grad_norm  # noqa: E402
from lstm.models import LanguageModel  # noqa: E402


@pytest.mark.parametrize("layers, tied", [(1, False), (2, True)])
def test_numpy_reference_step_matches_tinygraph(layers, tied):
    V, D, N, T = 30, 8, 3, 5
    ref = NumpyLSTMLM(V, D, D, layers=layers, tied=tied, seed=0, dtype=np.float64)
    model = LanguageModel(V, D, D, num_layers=layers, tie_weights=tied, dtype=np.float64)
    state = {"embed.W": ref.E, "out.b" if not tied else "out_b": ref.bo}
    for k, layer in enumerate(ref.layers):
        for name in ("Wx", "Wh", "b"):
            state[f"rnn.layers.{k}.cell.{name}"] = layer[name]
    if not tied:
        state["out.W"] = ref.W
    model.load_state_dict(state)
    opt = SGD(model.parameters(), lr=20.0)
    rng = np.random.default_rng(1)
    for _ in range(2):                       # the second step starts from the carried state
        ids, targets = rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T))
        loss = model.loss(ids, targets)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm(opt.params, 0.25)
        opt.step()
        ref_loss = ref.step(ids, targets)
        np.testing.assert_allclose(float(loss.data), ref_loss, rtol=1e-10)
    np.testing.assert_allclose(model.embed.W.data, ref.E, atol=1e-10)
    np.testing.assert_allclose(model.rnn.layers[-1].cell.Wh.data, ref.layers[-1]["Wh"], atol=1e-10)
