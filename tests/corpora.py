"""Small PTB-like corpora and trainers on them, shared by the tests.

Plain functions (the fixtures in tests/conftest.py wrap them) because module-level tables of
cases and the child processes of the SIGKILL tests build corpora and trainers too, outside
any fixture.
"""
import pathlib

SPLITS = ("train", "valid", "test")


def words(count, vocab=7, stride=1):
    """"w0 w1 ... " cycling through `vocab` words: a corpus a tiny model can learn."""
    return " ".join(f"w{(k * stride) % vocab}" for k in range(count))


def write_corpus(folder, train="a b c\nb c d\n", valid="a b\n", test="c d\n", raw=None):
    """Write ptb.{train,valid,test}.txt into `folder` (created) and return it.

    `raw` maps a split to the bytes to write instead of its text, or to None to leave the
    file out (for the error cases).
    """
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for split, text in zip(SPLITS, (train, valid, test)):
        data = raw[split] if raw and split in raw else text.encode()
        if data is not None:
            (folder / f"ptb.{split}.txt").write_bytes(data)
    return folder


def tiny_corpus(folder, count=400, vocab=7):
    """A corpus of `count` training words cycling through w0..w6, and short evaluation
    splits that only use training words."""
    return write_corpus(folder, train=words(count, vocab) + "\n", valid="w1 w2 w3\n" * 30,
                        test="w4 w5 w6\n" * 30)


def long_corpus(folder, count=600):
    """Words cycling through 11 in a stride, the same text (cut) in every split."""
    text = words(count, vocab=11, stride=7) + "\n"
    return write_corpus(folder, train=text, valid=text[:200] + "\n", test=text[:200] + "\n")


# Two layers of 8, dropout on: small enough for a test, big enough to exercise everything.
TINY_PRESET = dict(embed_size=8, hidden_size=8, num_layers=2, dropout=0.3, batch_size=4,
                   steps=5, lr=1.0, epochs=2, eval_batch_size=2)


def tiny_trainer(tmp_path, out="run", corpus=None, compiled=False, **preset):
    """A quiet Trainer writing to tmp_path/out, on `corpus` (a folder; by default
    tiny_corpus(tmp_path / "corpus")), with TINY_PRESET updated by `preset`."""
    from lstm.data import Corpus
    from lstm.train import Preset, Trainer

    tmp_path = pathlib.Path(tmp_path)
    if corpus is None:
        corpus = tiny_corpus(tmp_path / "corpus")
    return Trainer(Corpus(corpus), Preset(**{**TINY_PRESET, **preset}), tmp_path / out,
                   log=lambda *a: None, compiled=compiled)


def fault_trainer(tmp_path, out, **preset):
    """The trainer of the fault-injection tests (tests/e2e/test_reliability.py): built the
    same way in the test and in the child process it kills."""
    return tiny_trainer(tmp_path, out, corpus=long_corpus(pathlib.Path(tmp_path) / "corpus"),
                        **{"embed_size": 6, "hidden_size": 6, **preset})
