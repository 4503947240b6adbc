"""The lstm package owns the model code (lstm_gates, attention) and marks its states' roles;
tinygraph.nn keeps none of it."""
import numpy as np

import tinygraph as tg
import tinygraph.nn
from lstm.attention import attention
from lstm.cells import GRUCell, LSTMCell, RNNCell


def test_model_code_lives_in_lstm_not_in_tinygraph_nn():
    assert not hasattr(tinygraph.nn, "lstm_gates") and not hasattr(tinygraph.nn, "attention")
    assert not hasattr(tinygraph.nn, "MASKED")


def test_cells_mark_their_states():
    x = tg.tensor(np.ones((2, 3), np.float32), name="x")
    lstm = LSTMCell(3, 4, rng=np.random.default_rng(0))
    h0, c0 = lstm.zero_state(2)
    h, c = lstm(x)
    assert (h0.role, c0.role, h.role, c.role) == (tg.STATE, tg.CELL_STATE) * 2
    assert (h.name, c.name) == ("h", "c")
    for cell in (RNNCell, GRUCell):
        model = cell(3, 4, rng=np.random.default_rng(0))
        assert model(x).role == tg.STATE and model.zero_state(2).role == tg.STATE


def test_attention_weights_sum_to_one_and_masked_states_get_none():
    rng = np.random.default_rng(0)
    states = tg.tensor(rng.standard_normal((1, 3, 2)), name="hs")
    query = tg.tensor(rng.standard_normal((1, 1, 2)), name="q")
    context, weights = attention(query, states, mask=np.array([[0.0, 0.0, -1e9]]))
    np.testing.assert_allclose(weights.data.sum(axis=-1), 1.0)
    assert weights.data[0, 0, 2] == 0.0
    np.testing.assert_allclose(context.data[0, 0], weights.data[0, 0, :2] @ states.data[0, :2])


def test_a_language_model_gets_the_explorers_time_strip_and_highway():
    from lstm.models import LanguageModel
    model = LanguageModel(11, 5, 6, num_layers=2, seed=0, dtype=np.float64)
    ids = np.arange(20).reshape(2, 10) % 11
    variant = tg.explore(model.loss(ids[:, :-1], ids[:, 1:])).data["variants"]["simplified"]
    steps = variant["time_steps"]
    assert [s["step"] for s in steps] == list(range(1, 10))
    assert all(s["h"] > 0 and s["c"] > 0 for s in steps)
    assert all(s["scope"][-1] == f"t={s['step']}" and s["scope"][0].startswith("layer")
               for s in steps)
    assert sum(1 for n in variant["nodes"] if n.get("highway")) >= 2 * 8
