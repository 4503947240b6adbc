"""Text generation: LanguageModel.generate, lstm.generate and `python -m lstm generate`."""
import io
import json
import zipfile

import numpy as np
import pytest

from lstm.__main__ import main
from lstm.checkpoint import CheckpointError
from lstm.generate import generate_text, start_ids
from lstm.models import LanguageModel
from lstm.train import load_language_model
from tests.corpora import tiny_trainer, write_corpus

# One layer, no dropout: learns "w_k is followed by w_k+1" in a few epochs.
CYCLE = dict(embed_size=16, hidden_size=16, num_layers=1, dropout=0.0, lr=2.0, epochs=12)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint of a model trained on sentences "w0 w1 ... w5" (one per line)."""
    tmp = tmp_path_factory.mktemp("generate")
    corpus = write_corpus(tmp / "corpus", train="w0 w1 w2 w3 w4 w5\n" * 80,
                          valid="w0 w1 w2\n" * 10, test="w3 w4 w5\n" * 10)
    trainer = tiny_trainer(tmp, corpus=corpus, **CYCLE)
    trainer.run(CYCLE["epochs"], progress=False, checkpoint_every=0)
    return tmp / "run" / "best.npz", corpus


@pytest.mark.slow  # trains the module's model once
def test_greedy_generation_continues_what_was_learned(trained):
    model, vocab = load_language_model(trained[0])
    text = generate_text(model, vocab, "w2", 9, temperature=0)
    assert text == "w2 w3 w4 w5\nw0 w1 w2 w3 w4"      # <eos> printed as a line break


@pytest.mark.slow  # trains the module's model once
def test_a_seed_repeats_a_sample_and_top_1_is_greedy(trained):
    model, vocab = load_language_model(trained[0])
    ids = start_ids(vocab, "w0 w1")
    first = model.generate(ids, 30, temperature=1.5, seed=3)
    assert model.generate(ids, 30, temperature=1.5, seed=3) == first
    assert model.generate(ids, 30, temperature=1.5, seed=4) != first     # it does sample
    assert model.generate(ids, 30, temperature=5.0, top_k=1, seed=4) == \
        model.generate(ids, 30, temperature=0)


def test_generation_leaves_the_training_state_as_it_was():
    model = LanguageModel(20, 8, 8, dropout=0.5, seed=0)
    model.loss(np.arange(6).reshape(2, 3), np.ones((2, 3), int))     # carries a state
    before = {k: v.copy() for k, v in model.extra_states().items()}
    model.generate([1, 2], 5, seed=0)
    assert model.training and all(m.training for m in model.modules())
    after = model.extra_states()
    assert before.keys() == after.keys()
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])


@pytest.mark.parametrize("kwargs, message", [
    (dict(start=[]), "at least one word id"),
    (dict(start=[25]), "start id 25 is outside the vocabulary of 20"),
    (dict(length=-1), "length must be a non-negative integer"),
    (dict(temperature=-0.5), "temperature must be at least 0"),
    (dict(top_k=0), "top_k must be an integer from 1 to 20"),
])
def test_bad_generation_settings_are_named(kwargs, message):
    model = LanguageModel(20, 8, 8, seed=0)
    settings = {"start": [1], "length": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        model.generate(settings.pop("start"), settings.pop("length"), **settings)


@pytest.mark.slow  # trains the module's model once
def test_the_command_prints_text_and_names_a_missing_word(trained, capsys):
    checkpoint, _ = trained
    assert main(["generate", "--checkpoint", str(checkpoint), "--start", "w1 w2",
                 "--words", "5", "--temperature", "0"]) == 0
    assert capsys.readouterr().out == "w1 w2 w3 w4 w5\nw0\n"
    assert main(["generate", "--checkpoint", str(checkpoint), "--start", "w1 banana"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "start word 'banana' is not in the vocabulary" in err


def _without_words(source, target):
    """A copy of checkpoint `source` as older versions wrote it: no word list in its meta."""
    with zipfile.ZipFile(source) as z:
        files = {name: z.read(name) for name in z.namelist()}
    meta = json.loads(np.lib.format.read_array(io.BytesIO(files["meta.npy"])).tobytes())
    del meta["words"]
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.frombuffer(json.dumps(meta).encode(), np.uint8))
    files["meta.npy"] = buffer.getvalue()
    with zipfile.ZipFile(target, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return target


@pytest.mark.slow  # trains the module's model once
def test_an_older_checkpoint_needs_its_corpus_folder(trained, tmp_path, capsys):
    checkpoint, corpus = trained
    old = _without_words(checkpoint, tmp_path / "old.npz")
    with pytest.raises(CheckpointError, match="carries no vocabulary.*--data-dir"):
        load_language_model(old)
    model, vocab = load_language_model(old, data_dir=corpus)
    assert generate_text(model, vocab, "w3", 2, temperature=0) == "w3 w4 w5"
    other = write_corpus(tmp_path / "other", train="x y z\n", valid="x\n", test="y\n")
    with pytest.raises(CheckpointError, match="another vocabulary"):
        load_language_model(old, data_dir=other)


def test_sampling_edge_cases_tiny_temperature_and_tied_top_k():
    from lstm.models import _sample
    rng = np.random.default_rng(0)
    logits = np.array([1.0, 3.0, 3.0, 3.0, 0.5])
    assert _sample(logits, 1e-320, None, rng) in (1, 2, 3)           # no NaN probabilities
    drawn = {_sample(logits, 1.0, 2, np.random.default_rng(k)) for k in range(200)}
    assert len(drawn) == 2 and drawn <= {1, 2, 3}                    # exactly two words
