"""The lstm models as modules: print(model) shows the recurrent layers' settings and every
parameter's shape and count, seed=None draws from tg.default_generator() (tg.manual_seed),
and model.to(np.float64) converts the weights, the cells' zero state and the carried state."""
import numpy as np
import pytest

import tinygraph as tg
from lstm.models import LanguageModel, SequenceRegressor
from lstm.recurrent import StackedRecurrent


@pytest.fixture(autouse=True)
def kept_default_generator():
    state = tg.default_generator().bit_generator.state
    yield
    tg.default_generator().bit_generator.state = state


EXPECTED = """\
LanguageModel(  # out_b (12,): 12
  (embed): Embedding(12, 6)  # W (12, 6): 72
  (rnn): StackedRecurrent(
    'lstm', 6, 6, num_layers=2, dropout=0.5, stateful=True
    (layers.0): Recurrent(
      stateful=True
      (cell): LSTMCell(6, 6)  # Wx (6, 24), Wh (6, 24), b (24,): 312
    )
    (layers.1): Recurrent(
      stateful=True
      (cell): LSTMCell(6, 6)  # Wx (6, 24), Wh (6, 24), b (24,): 312
    )
    (dropouts.0): Dropout(p=0.5)
  )
  (drop_in): Dropout(p=0.5)
  (drop_out): Dropout(p=0.5)
)
Total: 708 parameters"""


def test_print_a_language_model():
    model = LanguageModel(12, 6, 6, num_layers=2, dropout=0.5, tie_weights=True)
    assert repr(model) == EXPECTED
    assert sum(p.size for p in model.parameters()) == 708


def test_the_counts_match_pytorchs_for_the_same_layers(torch):
    """LSTM weights: ours fuse 4 gates in Wx, Wh and one bias b; PyTorch has two biases."""
    model = SequenceRegressor(input_size=3, hidden_size=5, output_size=2, cell="gru")
    text = repr(model)
    assert "(cell): GRUCell(3, 5)  # Wx (3, 15), Wh (5, 15), b (15,), bh (15,): 150" in text
    theirs = torch.nn.GRU(3, 5, batch_first=True)
    assert sum(p.numel() for p in theirs.parameters()) == 150
    assert text.endswith(f"Total: {150 + 5 * 2 + 2} parameters")


def test_named_modules():
    model = SequenceRegressor(cell="rnn")
    assert [name for name, _ in model.named_modules()] == \
        ["", "rnn", "rnn.layers.0", "rnn.layers.0.cell", "out"]


def test_seed_none_draws_from_the_seeded_default_generator():
    ids = np.array([[1, 2, 3, 4]])
    losses = []
    for _ in range(2):
        tg.manual_seed(4)
        model = LanguageModel(12, 6, 6, num_layers=2, dropout=0.5, seed=None)
        losses.append([model.loss(ids, ids).item() for _ in range(2)])
    assert losses[0] == losses[1] and losses[0][0] != losses[0][1]
    other = LanguageModel(12, 6, 6, num_layers=2, dropout=0.5, seed=None)   # drew on
    assert not np.array_equal(other.embed.W.data, model.embed.W.data)


def test_a_stack_without_rng_draws_in_turn_and_an_explicit_rng_wins():
    tg.manual_seed(0)
    a, b = StackedRecurrent("lstm", 2, 3), StackedRecurrent("lstm", 2, 3)
    assert not np.array_equal(a.layers[0].cell.Wx.data, b.layers[0].cell.Wx.data)
    tg.manual_seed(0)
    assert np.array_equal(StackedRecurrent("lstm", 2, 3).layers[0].cell.Wx.data,
                          a.layers[0].cell.Wx.data)
    c = StackedRecurrent("lstm", 2, 3, rng=np.random.default_rng(0))
    d = StackedRecurrent("lstm", 2, 3, rng=np.random.default_rng(0))
    assert np.array_equal(c.layers[0].cell.Wx.data, d.layers[0].cell.Wx.data)


def float64_twin(model32):
    """The same weights, built in float64."""
    twin = LanguageModel(**{k: v for k, v in model32.config.items()}, dtype=np.float64)
    twin.load_state_dict({k: v.astype(np.float64) if v.dtype == np.float32 else v
                          for k, v in model32.state_dict().items()})
    return twin


def test_to_float64_converts_weights_and_carried_state_and_equals_a_float64_model():
    ids = np.array([[1, 2, 3], [4, 5, 6]])
    model = LanguageModel(12, 6, 6, num_layers=2)
    model.loss(ids, ids)                               # a float32 carried state now
    twin = float64_twin(model)
    model.to(np.float64)
    assert all(p.dtype == np.float64 for p in model.parameters())
    assert model.rnn.layers[1].state[1].dtype == np.float64
    assert model.loss(ids, ids).item() == twin.loss(ids, ids).item()
    model.reset_state()
    twin.reset_state()
    assert model.rnn.layers[0].cell.zero_state(1)[0].dtype == np.float64
    step = tg.compile(model.loss, model.parameters())
    assert step(ids, ids).item() == pytest.approx(twin.loss(ids, ids).item(), rel=1e-14)
