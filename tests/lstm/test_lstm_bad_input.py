"""Bad input to the lstm package (corpora, batches, checkpoints): each case raises a specific
exception type whose message names what was wrong."""
import json

import numpy as np
import pytest

from lstm.checkpoint import CheckpointError, load_checkpoint
from lstm.data import BPTTBatches, Corpus, read_words
from tests.bad_input import Case
from tests.corpora import tiny_trainer, words, write_corpus


def corpus_dir(tmp_path, **texts):
    return write_corpus(tmp_path / "corpus", **texts)


def small_trainer(tmp_path, hidden=4, train_text=None):
    corpus = corpus_dir(tmp_path, train=train_text or words(300, vocab=5) + "\n",
                        valid="w1 w2\n" * 20, test="w3 w4\n" * 20)
    return tiny_trainer(tmp_path, corpus=corpus, embed_size=hidden, hidden_size=hidden,
                        batch_size=2)


def saved_checkpoint(tmp_path):
    return small_trainer(tmp_path).save("last.npz")


def truncated_checkpoint(tmp_path):
    path = saved_checkpoint(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def tampered_checkpoint(tmp_path):
    """One parameter value changed inside an otherwise well-formed file."""
    path = saved_checkpoint(tmp_path)
    with np.load(path, allow_pickle=False) as f:
        payload = {k: f[k] for k in f.files}
    key = next(k for k in payload if k.startswith("array/param/"))
    payload[key] = payload[key] + 1.0
    with open(path, "wb") as f:
        np.savez(f, **payload)
    return path


def pickled_checkpoint(tmp_path):
    """A file whose array is a pickled object: loading must refuse it, never unpickle it."""
    path = tmp_path / "evil.npz"
    meta = np.frombuffer(json.dumps({"format": "tinygraph-checkpoint-1"}).encode(), np.uint8)
    with open(path, "wb") as f:
        np.savez(f, meta=meta, **{"array/x": np.array([print], dtype=object)})
    return path


def resume(tmp_path, path, **trainer_options):
    small_trainer(tmp_path, **trainer_options).resume(path)


CASES = [
    # data
    Case("corpus: missing folder", lambda p: Corpus(p / "nowhere"), FileNotFoundError,
         "data directory not found"),
    Case("corpus: missing test file",
         lambda p: Corpus(corpus_dir(p, raw={"test": None})), FileNotFoundError,
         r"corpus file not found: .*ptb\.test\.txt"),
    Case("corpus: empty file", lambda p: Corpus(corpus_dir(p, valid="\n\n")), ValueError,
         r"ptb\.valid\.txt has no words"),
    Case("corpus: not UTF-8",
         lambda p: Corpus(corpus_dir(p, raw={"train": b"caf\xe9 au lait\n"})), ValueError,
         r"ptb\.train\.txt is not UTF-8"),
    Case("corpus: truncated inside a character",
         lambda p: Corpus(corpus_dir(p, raw={"test": "a b caf\u00e9".encode()[:-1]})),
         ValueError, r"ptb\.test\.txt is not UTF-8"),
    Case("corpus: unknown token", lambda p: Corpus(corpus_dir(p, valid="a zebra b\n")),
         ValueError, "valid: token 'zebra' is not in the training vocabulary"),
    Case("batches: corpus too short", lambda p: BPTTBatches(np.arange(10), 4, 5), ValueError,
         "too short"),
    Case("read_words: a folder", lambda p: read_words(p), FileNotFoundError,
         "corpus file not found"),
    # checkpoints
    Case("checkpoint: missing", lambda p: load_checkpoint(p / "none.npz"), FileNotFoundError,
         "checkpoint not found"),
    Case("checkpoint: truncated", lambda p: load_checkpoint(truncated_checkpoint(p)),
         CheckpointError, "not a readable checkpoint"),
    Case("checkpoint: tampered values", lambda p: load_checkpoint(tampered_checkpoint(p)),
         CheckpointError, "digest"),
    Case("checkpoint: pickled objects", lambda p: load_checkpoint(pickled_checkpoint(p)),
         CheckpointError, "pickled Python objects, which are never loaded"),
    Case("checkpoint: a plain npz",
         lambda p: (np.savez(p / "plain.npz", x=np.ones(2)), load_checkpoint(p / "plain.npz")),
         CheckpointError, "not a tinygraph-checkpoint-2 file .it has no metadata"),
    Case("checkpoint: another model",
         lambda p: resume(p, saved_checkpoint(p), hidden=6), CheckpointError,
         "other settings.*embed_size, hidden_size"),
    Case("checkpoint: another vocabulary",
         lambda p: resume(p / "b", saved_checkpoint(p), train_text="w4 w3 w2 w1 w0 " * 60 + "\n"),
         CheckpointError, "another vocabulary"),
    Case("checkpoint: a directory", lambda p: load_checkpoint(p), FileNotFoundError,
         "checkpoint not found"),
]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")     # numpy's, for the NaN/Inf cases
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input_raises_a_specific_error_naming_it(case, tmp_path):
    with pytest.raises(case.error, match=case.match):
        case.run(tmp_path)
