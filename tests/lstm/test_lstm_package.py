"""The lstm package: cells against finite differences and PyTorch, layers, models, data,
training, checkpoints. Corpora are tiny (fixtures in tests/conftest.py)."""
import numpy as np
import pytest

import tinygraph as tg
from tinygraph.optim import SGD, Adam, DecayOnPlateau, clip_grad_norm
from lstm.cells import GRUCell, LSTMCell, RNNCell
from lstm.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from lstm.data import BPTTBatches, Corpus, Vocabulary
from lstm.models import LanguageModel, SequenceClassifier, SequenceRegressor
from lstm.recurrent import Recurrent, StackedRecurrent
from lstm.train import Preset, Trainer, perplexity
from tests.corpora import words


def cell_inputs(cell, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, cell.input_size))
    h = rng.standard_normal((batch, cell.hidden_size))
    c = rng.standard_normal((batch, cell.hidden_size))
    return x, h, c


def params64(cell, seed=1):
    rng = np.random.default_rng(seed)
    for _, p in cell.named_parameters():
        p.data = rng.standard_normal(p.shape) * 0.5
    return cell


# --- cells ---------------------------------------------------------------------------------

@pytest.mark.parametrize("cell_class", [RNNCell, LSTMCell, GRUCell])
def test_cell_gradients_match_finite_differences(cell_class):
    cell = params64(cell_class(3, 4, dtype=np.float64))
    x, h, c = cell_inputs(cell)
    names = [n for n, _ in cell.named_parameters()]

    def run(x, h, c, *weights):
        for name, w in zip(names, weights):
            setattr(cell, name, w)
        state = (h, c) if cell.has_cell_state else h
        out = cell(x, state)
        return list(out) if isinstance(out, tuple) else out

    weights = [p.data.copy() for _, p in cell.named_parameters()]
    tg.gradcheck(run, [x, h, c] + weights)


@pytest.mark.parametrize("cell_class", [RNNCell, LSTMCell, GRUCell])
def test_cells_keep_float32(cell_class):
    cell = cell_class(3, 4)
    x = tg.tensor(np.ones((2, 3), np.float32), requires_grad=True)
    out = cell(x)
    h = out[0] if isinstance(out, tuple) else out
    h.sum().backward()
    assert h.dtype == np.float32 and x.grad.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in cell.parameters())


def test_zero_state_is_not_a_special_case_in_the_graph():
    cell = LSTMCell(3, 4)
    h, c = cell(tg.tensor(np.ones((2, 3), np.float32)))
    ops = [n.op for n in tg.nodes([h])]
    assert ops.count("matmul") == 2     # h0 @ Wh is there even though h0 is zero


def test_named_parameters_are_stable():
    model = LanguageModel(50, 8, 8, num_layers=2)
    assert [n for n, _ in model.named_parameters()] == [
        "embed.W", "rnn.layers.0.cell.Wx", "rnn.layers.0.cell.Wh", "rnn.layers.0.cell.b",
        "rnn.layers.1.cell.Wx", "rnn.layers.1.cell.Wh", "rnn.layers.1.cell.b", "out.W", "out.b"]


# --- layers ----------------------------------------------------------------------------------

def test_layer_matches_the_cell_stepped_by_hand():
    cell = LSTMCell(3, 4, dtype=np.float64, rng=np.random.default_rng(0))
    xs = np.random.default_rng(1).standard_normal((2, 5, 3))
    hs, (h_last, c_last) = Recurrent(cell)(tg.tensor(xs))
    state = None
    for t in range(5):
        state = cell(tg.tensor(xs[:, t]), state)
        np.testing.assert_allclose(hs.data[:, t], state[0].data, atol=1e-12)
    np.testing.assert_allclose(c_last.data, state[1].data, atol=1e-12)


def test_layer_projects_all_time_steps_with_one_matmul():
    cell = LSTMCell(3, 4)
    hs, _ = Recurrent(cell)(tg.tensor(np.ones((2, 6, 3), np.float32)))
    matmuls = [n for n in tg.nodes([hs]) if n.op == "matmul"]
    # (by identity: `in` would compare tensors elementwise)
    assert sum(1 for n in matmuls if any(t is cell.Wx for t in n.inputs)) == 1
    assert sum(1 for n in matmuls if any(t is cell.Wh for t in n.inputs)) == 6


def test_stateful_layer_carries_state_and_cuts_the_graph():
    layer = Recurrent(LSTMCell(3, 4, dtype=np.float64), stateful=True)
    xs = tg.tensor(np.random.default_rng(0).standard_normal((2, 4, 3)))
    first, (h1, _) = layer(xs)
    carried = layer.state[0]
    assert carried.node is None and np.array_equal(carried.data, h1.data)
    second, _ = layer(xs)
    assert not np.allclose(first.data, second.data)        # started from the carried state
    assert any(t is carried for n in tg.nodes([second]) for t in n.inputs)  # read as a leaf
    assert not any(n.output is h1 for n in tg.nodes([second]))   # graph cut at the boundary
    layer.reset_state()
    again, _ = layer(xs)
    np.testing.assert_allclose(again.data, first.data)


def test_gradient_through_the_layer_matches_finite_differences():
    layer = StackedRecurrent("lstm", 2, 3, num_layers=2, dtype=np.float64,
                             rng=np.random.default_rng(0))
    xs = np.random.default_rng(1).standard_normal((2, 3, 2))
    tg.gradcheck(lambda x: layer(x)[0], [xs])


# --- models ----------------------------------------------------------------------------------

def test_weight_tying_shares_one_parameter_and_sums_both_gradients():
    tied = LanguageModel(20, 6, 6, tie_weights=True, dtype=np.float64, seed=3)
    assert sum(1 for _, p in tied.named_parameters() if p is tied.embed.W) == 1
    assert "out.W" not in dict(tied.named_parameters())
    ids = np.random.default_rng(0).integers(0, 20, (2, 3))
    targets = np.random.default_rng(1).integers(0, 20, (2, 3))
    before = tied.state_dict()        # taken before the step: no carried state in it yet
    loss = tied.loss(ids, targets)
    uses = [n for n in tg.nodes([loss]) if any(t is tied.embed.W for t in n.inputs)]
    assert sorted(n.op for n in uses) == ["index", "transpose"]
    loss.backward()

    # The same model untied: separate copies of W for the input and the output.
    untied = LanguageModel(20, 6, 6, dtype=np.float64, seed=3)
    untied.load_state_dict({**{k: v for k, v in before.items() if k != "out_b"},
                            "out.W": tied.embed.W.data.T.copy(), "out.b": tied.out_b.data})
    untied.loss(ids, targets).backward()
    np.testing.assert_allclose(tied.embed.W.grad.data,
                               untied.embed.W.grad.data + untied.out.W.grad.data.T, atol=1e-12)


@pytest.mark.slow
def test_tiny_language_model_overfits_a_short_corpus():
    corpus = np.array([0, 1, 2, 3, 4, 5, 6, 7] * 30)
    model = LanguageModel(8, 16, 16, seed=0)
    opt = SGD(model.parameters(), lr=2.0)
    batches = BPTTBatches(corpus, batch_size=4, steps=5)
    for epoch in range(30):
        for inputs, targets in batches:
            loss = model.loss(inputs, targets)
            opt.zero_grad()
            loss.backward()
            clip_grad_norm(opt.params, 1.0)
            opt.step()
        model.reset_state()
    assert perplexity(model, corpus, batch_size=2, steps=5) < 1.5


def test_sequence_regressor_learns_a_sine_wave():
    t = np.linspace(0, 8 * np.pi, 400)
    wave = np.sin(t).astype(np.float32)
    xs = np.stack([wave[k:k + 20] for k in range(0, 360, 10)])[..., None]
    ys = np.stack([wave[k + 1:k + 21] for k in range(0, 360, 10)])[..., None]
    model = SequenceRegressor(hidden_size=16, seed=0)
    opt = Adam(model.parameters(), lr=0.02)
    first = None
    for step in range(60):
        loss = model.loss(tg.tensor(xs), ys)
        first = first if first is not None else float(loss.data)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.data) < 0.1 * first


def test_classifier_learns_a_many_to_one_task():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 6, (64, 7))
    labels = (ids == 5).any(axis=1).astype(np.int64)    # "does token 5 occur?"
    model = SequenceClassifier(6, 2, seed=0)
    opt = Adam(model.parameters(), lr=0.05)
    for _ in range(80):
        loss = model.loss(ids, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with tg.no_grad():
        accuracy = (model(ids).data.argmax(-1) == labels).mean()
    assert accuracy > 0.95


# --- data ------------------------------------------------------------------------------------

def test_corpus_vocabulary_in_first_appearance_order_with_eos(corpus_dir):
    corpus = Corpus(corpus_dir())
    assert corpus.vocab.id_to_word == ["a", "b", "c", "<eos>", "d"]
    assert corpus.ids["train"].tolist() == [0, 1, 2, 3, 1, 2, 4, 3]
    assert corpus.ids["valid"].tolist() == [0, 1, 3]


@pytest.mark.parametrize("files, error, message", [
    (dict(valid="a zebra\n"), ValueError, "token 'zebra' is not in the training vocabulary"),
    (dict(train="\n\n"), ValueError, "has no words"),
])
def test_corpus_errors(corpus_dir, files, error, message):
    with pytest.raises(error, match=message):
        Corpus(corpus_dir(**files))


def test_missing_corpus_file_is_named(corpus_dir):
    folder = corpus_dir()
    (folder / "ptb.test.txt").unlink()
    with pytest.raises(FileNotFoundError, match="ptb.test.txt"):
        Corpus(folder)


def test_bptt_batches_read_on_from_evenly_spaced_offsets():
    batches = BPTTBatches(np.arange(41), batch_size=2, steps=3)
    x0, t0 = batches.batch(0)
    x1, _ = batches.batch(1)
    assert x0.tolist() == [[0, 1, 2], [20, 21, 22]]
    assert t0.tolist() == [[1, 2, 3], [21, 22, 23]]
    assert x1.tolist() == [[3, 4, 5], [23, 24, 25]]
    assert len(batches) == 40 // 6


def test_vanishing_gradients_lstm_stays_orders_of_magnitude_above_rnn():
    from lstm.vanishing import compare
    norms = compare(("rnn", "lstm"), steps=100)
    assert norms["lstm"][99] / norms["rnn"][99] > 1e6
    assert norms["rnn"][99] < 1e-12 * norms["rnn"][0]


# --- training and checkpoints -------------------------------------------------------------

def test_resume_continues_exactly_the_same_run(tmp_path, tiny_trainer):
    straight = tiny_trainer("straight")
    straight.run(2, progress=False, checkpoint_every=0)

    first = tiny_trainer("split")
    first.run(1, progress=False, checkpoint_every=0)
    second = tiny_trainer("split")
    second.resume(tmp_path / "split" / "last.npz")
    second.run(2, progress=False, checkpoint_every=0)
    for (name, a), (_, b) in zip(straight.model.named_parameters(), second.model.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)
    assert [h["valid_ppl"] for h in straight.history] == [h["valid_ppl"] for h in second.history]


def test_checkpoint_for_another_model_or_tampered_is_refused(tmp_path, tiny_trainer):
    trainer = tiny_trainer()
    path = trainer.save("x.npz")
    other = tiny_trainer()
    other.preset.hidden_size = 9
    with pytest.raises(CheckpointError, match="other settings"):
        other.resume(path)
    (tmp_path / "broken.npz").write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "broken.npz")


def test_checkpoints_never_unpickle(tmp_path):
    evil = tmp_path / "evil.npz"
    np.savez(evil, meta=np.array([object()], dtype=object))
    with pytest.raises(CheckpointError):
        load_checkpoint(evil)
    saved = save_checkpoint(tmp_path / "ok.npz", {"w": np.ones(2)}, {"k": 1})
    arrays, meta = load_checkpoint(saved)
    assert meta["k"] == 1 and arrays["w"].tolist() == [1.0, 1.0]


def test_too_short_evaluation_corpus_fails_before_training(tmp_path, corpus_dir):
    corpus = Corpus(corpus_dir(train=words(2000) + "\n", valid="w1 w2\n", test="w3\n"))
    with pytest.raises(ValueError, match=r"valid split: .*\(eval_batch_size=10\)"):
        Trainer(corpus, Preset(embed_size=4, hidden_size=4), tmp_path / "run")


def test_checkpoint_missing_training_state_is_a_checkpoint_error(tmp_path, tiny_trainer):
    trainer = tiny_trainer()
    path = trainer.save("x.npz")
    arrays, meta = load_checkpoint(path)
    del meta["position"]
    meta.pop("format")
    save_checkpoint(tmp_path / "y.npz", arrays, meta)
    with pytest.raises(CheckpointError, match="lacks or garbles"):
        tiny_trainer().resume(tmp_path / "y.npz")


def test_mid_epoch_interrupt_and_resume_match_a_straight_run(tmp_path, tiny_trainer):
    from lstm.train import Interrupted
    straight = tiny_trainer("straight")
    straight.run(2, progress=False, checkpoint_every=0)
    first = tiny_trainer("split")
    with pytest.raises(Interrupted, match="at epoch 1, batch 5") as stopped:
        first.run(2, progress=False, checkpoint_every=0,
                  interrupted=lambda: first.position == 5)     # Ctrl-C at batch 5
    assert stopped.value.path == tmp_path / "split" / "last.npz"
    second = tiny_trainer("split")
    second.resume(tmp_path / "split" / "last.npz")
    assert (second.epoch, second.position) == (0, 5)
    second.run(2, progress=False, checkpoint_every=0)
    for a, b in zip(second.history, straight.history, strict=True):
        assert a["train_ppl"] == pytest.approx(b["train_ppl"], rel=1e-12)
        assert a["valid_ppl"] == b["valid_ppl"]
    for (name, a), (_, b) in zip(straight.model.named_parameters(), second.model.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)
