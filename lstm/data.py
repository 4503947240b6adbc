"""Corpora and batches: the Penn Treebank reader and truncated-BPTT batching (as in the book)."""
import hashlib
import pathlib

import numpy as np

EOS = "<eos>"
SPLITS = ("train", "valid", "test")


class Vocabulary:
    """Word <-> id, ids in order of first appearance in the training text."""

    def __init__(self, words=()):
        self.word_to_id, self.id_to_word = {}, []
        for word in words:
            self.add(word)

    def add(self, word):
        """Give `word` the next id unless it has one."""
        if word not in self.word_to_id:
            self.word_to_id[word] = len(self.id_to_word)
            self.id_to_word.append(word)

    def __len__(self):
        return len(self.id_to_word)

    def fingerprint(self):
        """A short hash of the word list: checkpoints record it to refuse a different vocabulary."""
        return hashlib.sha256("\n".join(self.id_to_word).encode()).hexdigest()[:16]


def read_words(path):
    """The tokens of a text file, with <eos> at the end of every line."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"corpus file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text: {e}") from None
    words = []
    for line in text.splitlines():
        tokens = line.split()
        if tokens:
            words.extend(tokens)
            words.append(EOS)
    if not words:
        raise ValueError(f"{path} has no words")
    return words


class Corpus:
    """PTB-style corpus: the vocabulary comes from train; valid and test must use only it."""

    def __init__(self, data_dir, prefix="ptb"):
        data_dir = pathlib.Path(data_dir)
        if not data_dir.is_dir():
            raise FileNotFoundError(f"data directory not found: {data_dir}")
        train_words = read_words(data_dir / f"{prefix}.train.txt")
        self.vocab = Vocabulary(train_words)
        self.ids = {"train": self._encode(train_words, "train")}
        for split in ("valid", "test"):
            path = data_dir / f"{prefix}.{split}.txt"
            self.ids[split] = self._encode(read_words(path), split)

    def _encode(self, words, split):
        lookup = self.vocab.word_to_id
        try:
            return np.array([lookup[w] for w in words], dtype=np.int64)
        except KeyError as e:
            raise ValueError(f"{split}: token {e.args[0]!r} is not in the training "
                             "vocabulary") from None


class BPTTBatches:
    """Truncated-BPTT batches as in the book: `batch_size` rows start at evenly spaced offsets
    of the corpus and read on sequentially, `steps` tokens per batch; targets are the next
    tokens. `position` (batches served) is saved in checkpoints to resume mid-epoch."""

    def __init__(self, ids, batch_size, steps):
        ids = np.asarray(ids)
        if ids.ndim != 1 or ids.size < 2:
            raise ValueError("BPTTBatches: need a 1-D corpus of at least two tokens")
        if batch_size < 1 or steps < 1:
            raise ValueError(f"BPTTBatches: batch_size and steps must be positive, got "
                             f"{batch_size} and {steps}")
        self.ids, self.batch_size, self.steps = ids, batch_size, steps
        self.inputs, self.targets = ids[:-1], ids[1:]
        self.offsets = np.arange(batch_size) * (len(self.inputs) // batch_size)
        self.per_epoch = len(self.inputs) // (batch_size * steps)
        if self.per_epoch == 0:
            raise ValueError(f"BPTTBatches: a corpus of {ids.size} tokens is too short for "
                             f"batches of {batch_size} x {steps}")

    def batch(self, index):
        """The index-th batch (0-based within an epoch): (inputs, targets), each (N, T)."""
        positions = (self.offsets[:, None] + index * self.steps + np.arange(self.steps)) \
            % len(self.inputs)
        return self.inputs[positions], self.targets[positions]

    def __len__(self):
        return self.per_epoch

    def __iter__(self):
        for index in range(self.per_epoch):
            yield self.batch(index)
