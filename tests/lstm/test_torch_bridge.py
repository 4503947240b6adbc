"""lstm.to_torch / lstm.from_torch and `python -m lstm export`: the weights map exactly."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lstm  # noqa: E402
from lstm.__main__ import main  # noqa: E402
from lstm.models import LanguageModel, SequenceClassifier, SequenceRegressor  # noqa: E402
from lstm.seq2seq import Seq2seq, padding_mask  # noqa: E402
from lstm.torch_bridge import torch_module  # noqa: E402
from tests.corpora import tiny_trainer  # noqa: E402

pytestmark = pytest.mark.torch

LANGUAGE_MODELS = {
    "lstm": dict(vocab_size=30, embed_size=6, hidden_size=5, num_layers=2),
    "tied": dict(vocab_size=30, embed_size=5, hidden_size=5, tie_weights=True),
    "gru": dict(vocab_size=30, embed_size=6, hidden_size=5, cell="gru"),
    "rnn": dict(vocab_size=30, embed_size=6, hidden_size=5, cell="rnn"),
}
TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}


def _bias_everywhere(model, seed=1):
    """Non-zero biases (they start at zero), so a wrong bias mapping shows."""
    rng = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        if name.endswith(("b", "bh", "out_b")):
            p.data[...] = rng.standard_normal(p.shape).astype(p.dtype)
    return model


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("variant", LANGUAGE_MODELS)
def test_language_model_logits_match_with_carried_state(variant, dtype):
    model = _bias_everywhere(LanguageModel(**LANGUAGE_MODELS[variant], seed=0, dtype=dtype))
    model.eval()
    twin = lstm.to_torch(model)
    rng = np.random.default_rng(2)
    state = None
    for _ in range(3):                                # state carried batch to batch
        ids = rng.integers(0, 30, (4, 7))
        ours = model(ids).data
        with torch.no_grad():
            theirs, state = twin(torch.as_tensor(ids), state)
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=0, atol=TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", [{}, dict(peeky=True), dict(attention=True)])
def test_seq2seq_logits_match(options, dtype):
    model = _bias_everywhere(Seq2seq(12, 4, 6, seed=0, dtype=dtype, **options))
    twin = lstm.to_torch(model)
    rng = np.random.default_rng(3)
    questions, inputs = rng.integers(0, 12, (3, 5)), rng.integers(0, 12, (3, 4))
    mask = padding_mask([5, 3, 2], 5, dtype=dtype) if options.get("attention") else None
    ours, _, _ = model.decode(model.encode(questions), inputs, mask=mask)
    with torch.no_grad():
        theirs = twin(torch.as_tensor(questions), torch.as_tensor(inputs),
                      None if mask is None else torch.as_tensor(mask))
    np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=0, atol=TOLERANCE[dtype])


@pytest.mark.parametrize("model", [
    SequenceRegressor(2, 5, 3, seed=0), SequenceRegressor(2, 5, 3, cell="gru", seed=0),
    SequenceClassifier(9, 4, 3, 5, seed=0)], ids=["regressor", "regressor-gru", "classifier"])
def test_the_other_models_match(model):
    _bias_everywhere(model)
    twin = lstm.to_torch(model)
    rng = np.random.default_rng(4)
    x = rng.integers(0, 9, (3, 6)) if isinstance(model, SequenceClassifier) else \
        rng.standard_normal((3, 6, 2)).astype(np.float32)
    with torch.no_grad():
        theirs = twin(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(model(x).data, theirs, rtol=0, atol=1e-5)


@pytest.mark.parametrize("model", [
    LanguageModel(**LANGUAGE_MODELS["lstm"], dropout=0.3, seed=0),
    LanguageModel(**LANGUAGE_MODELS["tied"], seed=0, dtype=np.float64),
    LanguageModel(**LANGUAGE_MODELS["gru"], seed=0),
    Seq2seq(12, 4, 6, attention=True, seed=0), SequenceClassifier(9, 4, 3, 5, seed=0)],
    ids=["lstm", "tied64", "gru", "attention", "classifier"])
def test_the_round_trip_is_bitwise(model):
    _bias_everywhere(model)
    back = lstm.from_torch(lstm.to_torch(model))
    assert type(back) is type(model)
    ours, theirs = dict(model.named_parameters()), dict(back.named_parameters())
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert ours[name].dtype == theirs[name].dtype
        np.testing.assert_array_equal(ours[name].data, theirs[name].data, err_msg=name)


def test_a_model_trained_in_pytorch_comes_back_with_its_predictions():
    twin = torch_module("language_model", LANGUAGE_MODELS["lstm"])
    opt = torch.optim.SGD(twin.parameters(), lr=0.5)
    rng = np.random.default_rng(5)
    ids = torch.as_tensor(rng.integers(0, 30, (4, 8)))
    for _ in range(20):
        logits, _ = twin(ids[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 30), ids[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    twin.eval()
    model = lstm.from_torch(twin)
    assert not model.training
    with torch.no_grad():
        expected = float(torch.nn.functional.cross_entropy(
            twin(ids[:, :-1])[0].reshape(-1, 30), ids[:, 1:].reshape(-1)))
    assert float(model.loss(ids[:, :-1].numpy(), ids[:, 1:].numpy()).data) == \
        pytest.approx(expected, rel=1e-6)


def test_unsupported_modules_and_layers_are_named():
    with pytest.raises(TypeError, match="Linear is not one of the package's PyTorch twins"):
        lstm.from_torch(torch.nn.Linear(3, 4))
    twin = torch_module("language_model", LANGUAGE_MODELS["lstm"])
    twin.rnn = torch.nn.LSTM(6, 5, 2, batch_first=True, bidirectional=True)
    with pytest.raises(TypeError, match="rnn .LSTM. uses bidirectional"):
        lstm.from_torch(twin)
    twin.rnn = torch.nn.Conv1d(6, 5, 3)
    with pytest.raises(TypeError, match="rnn is a Conv1d"):
        lstm.from_torch(twin)
    with pytest.raises(ValueError, match="unknown model kind 'transformer'"):
        torch_module("transformer", {})


@pytest.mark.slow
def test_export_writes_a_state_dict_torch_loads_with_weights_only(tmp_path, capsys):
    trainer = tiny_trainer(tmp_path, num_layers=1, dropout=0.0, epochs=1)
    trainer.run(1, progress=False, checkpoint_every=0)
    out = tmp_path / "model.pt"
    assert main(["export", "--checkpoint", str(tmp_path / "run" / "best.npz"), "--to", "torch",
                 "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    saved = torch.load(out, weights_only=True)
    twin = torch_module(saved["kind"], saved["config"])
    twin.load_state_dict(saved["state_dict"])
    twin.eval()
    model = trainer.model
    model.eval()
    model.reset_state()
    ids = np.arange(12).reshape(2, 6) % len(saved["words"])
    with torch.no_grad():
        theirs, _ = twin(torch.as_tensor(ids))
    np.testing.assert_allclose(model(ids).data, theirs.numpy(), rtol=0, atol=1e-5)
    assert saved["words"] == trainer.corpus.vocab.id_to_word


def test_export_of_an_unknown_checkpoint_is_one_line(tmp_path, capsys):
    from lstm.checkpoint import save_checkpoint
    save_checkpoint(tmp_path / "odd.npz", {"x": np.zeros(2)}, {"kind": "transformer"})
    assert main(["export", "--checkpoint", str(tmp_path / "odd.npz"), "-o",
                 str(tmp_path / "m.pt")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown model kind (transformer)" in err


def test_weights_whose_shapes_do_not_match_are_named():
    twin = torch_module("language_model", LANGUAGE_MODELS["lstm"])
    twin.out = torch.nn.Linear(5, 7)                  # 7 classes for a vocabulary of 30
    with pytest.raises(ValueError, match=r"out.W is float32\(5, 7\) in the state but "
                                         r"float32\(5, 30\) in the model"):
        lstm.from_torch(twin)
