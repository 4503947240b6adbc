"""A stateful layer's carried state belongs to one batch size: a call with another batch size
is a clear error naming the layer, both sizes and reset_state(), never a numpy broadcast
(which silently copies a one-row state to every row, or fails with a message that never
mentions the state). Eager and compiled steps behave the same."""
import numpy as np
import pytest

import tinygraph as tg
from lstm.cells import GRUCell, LSTMCell, RNNCell
from lstm.models import LanguageModel
from lstm.recurrent import Recurrent

VOCAB = 11
MODES = ["eager", "compiled"]


def make_model(num_layers=2):
    return LanguageModel(VOCAB, embed_size=5, hidden_size=6, num_layers=num_layers, seed=0)


def make_step(model, mode):
    make = tg.eager_step if mode == "eager" else tg.compile
    return make(model.loss, model.parameters())


def batch(n, steps=4, seed=0):
    ids = np.random.default_rng(seed + n).integers(0, VOCAB, (n, steps + 1))
    return ids[:, :-1], ids[:, 1:]


def batch_sizes_of_state(model):
    return [[s.shape[0] for s in layer.state] for layer in model.rnn.layers]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("first, then", [(1, 3), (4, 3), (2, 5)])
def test_another_batch_size_is_a_clear_error(mode, first, then):
    model = make_model()
    step = make_step(model, mode)
    step(*batch(first))
    with pytest.raises(ValueError) as info:
        step(*batch(then))
    message = str(info.value)
    assert "Recurrent" in message and "layer 1 of 2" in message
    assert f"batch size {first}" in message and f"batch size {then}" in message
    assert "reset_state()" in message
    # Nothing was carried by the refused call: the state is still the first batch's.
    assert batch_sizes_of_state(model) == [[first, first], [first, first]]


@pytest.mark.parametrize("mode", MODES)
def test_a_one_row_state_is_not_copied_to_every_row(mode):
    """The silent case: numpy would broadcast the (1, H) state over three rows."""
    model = make_model(num_layers=1)
    step = make_step(model, mode)
    step(*batch(1))
    with pytest.raises(ValueError, match=r"batch size 1.*batch size 3.*reset_state\(\)"):
        step(*batch(3))
    assert batch_sizes_of_state(model) == [[1, 1]]


def test_the_plain_loss_call_checks_too():
    model = make_model()
    model.loss(*batch(1))
    with pytest.raises(ValueError, match="reset_state"):
        model.loss(*batch(3))
    with tg.no_grad():
        with pytest.raises(ValueError, match="reset_state"):
            model.loss(*batch(3))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reset", ["model", "layer"])
@pytest.mark.parametrize("first", [1, 4])
def test_after_reset_state_the_new_batch_size_works(mode, reset, first):
    model = make_model()
    step = make_step(model, mode)
    step(*batch(first))
    with pytest.raises(ValueError, match=r"reset_state\(\)"):
        step(*batch(3))
    if reset == "model":
        model.reset_state()
    else:
        for layer in model.rnn.layers:
            layer.reset_state()
    loss = float(step(*batch(3)).data)
    fresh = make_model()
    expected = float(make_step(fresh, mode)(*batch(3)).data)
    assert loss == pytest.approx(expected, rel=1e-5)
    assert batch_sizes_of_state(model) == [[3, 3], [3, 3]]
    step(*batch(3, seed=1))           # and it carries on at that size


@pytest.mark.parametrize("mode", MODES)
def test_resetting_only_one_layer_names_the_other(mode):
    model = make_model()
    step = make_step(model, mode)
    step(*batch(4))
    model.rnn.layers[0].reset_state()
    with pytest.raises(ValueError, match="layer 2 of 2"):
        step(*batch(3))


@pytest.mark.parametrize("mode", MODES)
def test_the_same_batch_size_carries_on_and_matches_eager(mode):
    reference = make_model()
    model = make_model()
    step = make_step(model, mode)
    for seed in range(3):
        expected = float(reference.loss(*batch(3, seed=seed)).data)
        assert float(step(*batch(3, seed=seed)).data) == pytest.approx(expected, rel=1e-5)
    # After a refused call, the old batch size still continues where it was.
    with pytest.raises(ValueError, match=r"reset_state\(\)"):
        step(*batch(2))
    expected = float(reference.loss(*batch(3, seed=3)).data)
    assert float(step(*batch(3, seed=3)).data) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("cell", [RNNCell, GRUCell, LSTMCell])
def test_a_lone_layer_names_its_class_and_cell(cell):
    layer = Recurrent(cell(3, 4), stateful=True)
    layer(tg.tensor(np.ones((1, 2, 3), np.float32)))
    with pytest.raises(ValueError) as info:
        layer(tg.tensor(np.ones((3, 2, 3), np.float32)))
    message = str(info.value)
    assert f"Recurrent({cell.__name__})" in message and "layer 1 of" not in message
    assert "batch size 1" in message and "batch size 3" in message
    assert "reset_state()" in message
    layer.reset_state()
    hs, _ = layer(tg.tensor(np.ones((3, 2, 3), np.float32)))
    assert hs.shape == (3, 2, 4)


def test_a_given_state_is_not_the_carried_one():
    """A state passed in explicitly replaces the carried one: no batch check against it."""
    layer = Recurrent(LSTMCell(3, 4), stateful=True)
    layer(tg.tensor(np.ones((1, 2, 3), np.float32)))
    state = LSTMCell(3, 4).zero_state(3)
    hs, _ = layer(tg.tensor(np.ones((3, 2, 3), np.float32)), state)
    assert hs.shape == (3, 2, 4) and layer.state[0].shape == (3, 4)
