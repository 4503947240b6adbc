"""Carried recurrent state and dropout generators are module state: state_dict() holds them,
load_state_dict() puts them back, and checkpoints written before that still load."""
import numpy as np
import pytest

from tinygraph.nn import Dropout
from lstm.checkpoint import load_checkpoint, save_checkpoint
from lstm.models import LanguageModel


def model_after_a_step():
    model = LanguageModel(12, 6, 6, num_layers=2, dropout=0.5, seed=0)
    ids = np.random.default_rng(0).integers(0, 12, (2, 3))
    model.loss(ids, ids)
    return model, ids


def test_state_dict_holds_carried_state_and_generators():
    model, _ = model_after_a_step()
    state = model.state_dict()
    assert {"rnn.layers.0.state.0", "rnn.layers.0.state.1", "rnn.layers.1.state.0",
            "rnn.layers.1.state.1", "drop_in.rng", "drop_out.rng",
            "rnn.dropouts.0.rng"} <= set(state)
    np.testing.assert_array_equal(state["rnn.layers.1.state.0"],
                                  model.rnn.layers[1].state[0].data)


def test_a_loaded_model_continues_exactly():
    model, ids = model_after_a_step()
    copy = LanguageModel(12, 6, 6, num_layers=2, dropout=0.5, seed=99)
    copy.load_state_dict(model.state_dict())
    # Same carried state and the same next dropout masks: the next losses agree exactly.
    assert float(copy.loss(ids, ids).data) == float(model.loss(ids, ids).data)


def test_no_carried_state_loads_as_none_and_unknown_keys_are_refused():
    fresh = LanguageModel(12, 6, 6, seed=0)
    state = fresh.state_dict()
    assert not any(".state." in k for k in state)
    fresh.load_state_dict(state)
    assert fresh.rnn.layers[0].state is None
    with pytest.raises(ValueError, match="unexpected"):
        fresh.load_state_dict({**state, "rnn.layers.7.state.0": np.zeros((1, 6), np.float32)})


def test_a_checkpoint_in_the_old_layout_still_loads(tiny_trainer, tmp_path):
    trainer = tiny_trainer("old")
    trainer.run(1, progress=False, checkpoint_every=0)
    model = trainer.model
    # The layout before modules held their state: state/k/j arrays, generators in the meta.
    arrays = {f"param/{k}": p.data for k, p in model.named_parameters()}
    for k, layer in enumerate(model.rnn.layers):
        for j, s in enumerate(layer.state):
            arrays[f"state/{k}/{j}"] = s.data
    dropouts = [m for m in model.modules() if isinstance(m, Dropout)]
    meta = {**trainer._meta(), "rng": [d.rng.bit_generator.state for d in dropouts]}
    path = save_checkpoint(tmp_path / "old.npz", arrays, meta)

    resumed = tiny_trainer("resumed")
    resumed.resume(path)
    for a, b in zip(model.rnn.layers, resumed.model.rnn.layers):
        for s, t in zip(a.state, b.state):
            np.testing.assert_array_equal(s.data, t.data)
    for d, e in zip(dropouts, [m for m in resumed.model.modules()
                               if isinstance(m, Dropout)]):
        assert d.rng.bit_generator.state == e.rng.bit_generator.state
    assert set(load_checkpoint(resumed.save("new.npz"))[0]) >= {"state/rnn.layers.0.state.0",
                                                               "state/drop_in.rng"}
