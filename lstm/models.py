"""Models built from the recurrent layers: a word-level language model, a sequence regressor
and a many-to-one classifier."""
import numpy as np

import tinygraph as tg
from tinygraph.nn import Dropout, Embedding, Linear, Module, mse_loss

from .recurrent import StackedRecurrent


def generator(seed):
    """The generator a model's weights are drawn from: a fresh one seeded with `seed`, or
    with seed None, tinygraph's default generator (the one `tg.manual_seed` seeds)."""
    return np.random.default_rng(seed) if seed is not None else tg.default_generator()


class LanguageModel(Module):
    """Embedding -> dropout -> stacked LSTM (dropout between layers) -> dropout -> affine.

    tie_weights=True uses the embedding matrix transposed as the output weights: the same
    Parameter is used twice, and the engine sums its two gradients (no patching afterwards).
    seed (here and in the other models): the weights and dropout generators are drawn from a
    generator with this seed; None draws them from `tg.default_generator()`.
    """

    def __init__(self, vocab_size, embed_size=100, hidden_size=100, num_layers=1, dropout=0.0,
                 tie_weights=False, cell="lstm", seed=0, dtype=np.float32):
        if tie_weights and embed_size != hidden_size:
            raise ValueError(f"tie_weights needs embed_size == hidden_size, got {embed_size} "
                             f"and {hidden_size}")
        rng = generator(seed)
        self.config = dict(vocab_size=vocab_size, embed_size=embed_size, hidden_size=hidden_size,
                           num_layers=num_layers, dropout=dropout, tie_weights=tie_weights,
                           cell=cell)
        self.embed = Embedding(vocab_size, embed_size, rng=rng, dtype=dtype)
        self.rnn = StackedRecurrent(cell, embed_size, hidden_size, num_layers, dropout,
                                    stateful=True, rng=rng, dtype=dtype)
        self.drop_in = Dropout(dropout, rng=np.random.default_rng(rng.integers(2**63)))
        self.drop_out = Dropout(dropout, rng=np.random.default_rng(rng.integers(2**63)))
        if tie_weights:
            self.out_b = tg.Parameter(np.zeros(vocab_size, dtype), name="out.b")
        else:
            self.out = Linear(hidden_size, vocab_size, rng=rng, dtype=dtype, name="out")

    def reset_state(self):
        """Forget the recurrent state carried between batches (start of a new text)."""
        self.rnn.reset_state()

    def forward(self, ids):
        """ids (N, T) -> logits (N, T, V)."""
        xs = self.drop_in(self.embed(ids))
        hs, _ = self.rnn(xs)
        hs = self.drop_out(hs)
        N, T, H = hs.shape
        flat = tg.reshape(hs, (N * T, H))
        if self.config["tie_weights"]:
            logits = flat @ tg.transpose(self.embed.W) + self.out_b
        else:
            logits = self.out(flat)
        return tg.reshape(logits, (N, T, -1))

    def loss(self, ids, targets):
        """Mean cross-entropy of the next-token `targets` (N, T) given `ids` (N, T)."""
        return tg.cross_entropy(self(ids), targets)

    def generate(self, start, length, temperature=1.0, top_k=None, seed=None):
        """Sample `length` word ids that follow the ids `start`, carrying the state from word
        to word; returns them as a list of ints.

        temperature: the logits are divided by it before sampling (below 1: more likely
        words, above: more varied); 0 picks the most likely word each time (greedy).
        top_k: sample only among the k most likely words. seed: for repeatable samples (None:
        draw from `tg.default_generator()`, which `tg.manual_seed` seeds).
        Runs in eval mode without a graph, from a fresh state; the model's training mode and
        carried state are as they were afterwards.
        """
        vocab = self.config["vocab_size"]
        start = [int(i) for i in np.asarray(start, dtype=np.int64).reshape(-1)]
        if not start:
            raise ValueError("generate: start needs at least one word id")
        bad = [i for i in start if not 0 <= i < vocab]
        if bad:
            raise ValueError(f"generate: start id {bad[0]} is outside the vocabulary of {vocab}")
        if not isinstance(length, (int, np.integer)) or length < 0:
            raise ValueError(f"generate: length must be a non-negative integer, got {length!r}")
        if not temperature >= 0:
            raise ValueError(f"generate: temperature must be at least 0, got {temperature}")
        if top_k is not None and not (isinstance(top_k, (int, np.integer)) and 1 <= top_k <= vocab):
            raise ValueError(f"generate: top_k must be an integer from 1 to {vocab}, got {top_k!r}")
        rng = generator(seed)
        saved, training = self.extra_states(), [m.training for m in self.modules()]
        self.eval()
        self.reset_state()
        out = []
        try:
            with tg.no_grad():
                logits = self(np.array([start])).data[0, -1]
                for _ in range(length):
                    word = _sample(logits.astype(np.float64), temperature, top_k, rng)
                    out.append(word)
                    logits = self(np.array([[word]])).data[0, -1]
        finally:
            for module, mode in zip(self.modules(), training):
                module.training = mode
            self.load_extra_states(saved)
        return out


def _sample(logits, temperature, top_k, rng):
    """One id drawn from softmax(logits / temperature) (argmax at temperature 0), among the
    top_k largest logits when top_k is given."""
    if top_k is not None:                       # exactly k words, even with ties
        kept = np.argpartition(logits, -top_k)[-top_k:]
        limited = np.full_like(logits, -np.inf)
        limited[kept] = logits[kept]
        logits = limited
    if temperature == 0:
        return int(np.argmax(logits))
    with np.errstate(over="ignore"):           # a tiny temperature: -inf, weight 0
        p = np.exp((logits - logits.max()) / temperature)
    return int(rng.choice(len(p), p=p / p.sum()))


class SequenceRegressor(Module):
    """A recurrent layer and an affine read-out at every step, trained with mean squared
    error: e.g. predicting the next value of a sine wave."""

    def __init__(self, input_size=1, hidden_size=32, output_size=1, cell="lstm", seed=0,
                 dtype=np.float32):
        rng = generator(seed)
        self.rnn = StackedRecurrent(cell, input_size, hidden_size, rng=rng, dtype=dtype)
        self.out = Linear(hidden_size, output_size, rng=rng, dtype=dtype, name="out")

    def forward(self, xs):
        """xs (N, T, input_size) -> predictions (N, T, output_size)."""
        hs, _ = self.rnn(xs)
        N, T, H = hs.shape
        return tg.reshape(self.out(tg.reshape(hs, (N * T, H))), (N, T, -1))

    def loss(self, xs, targets):
        """Mean squared error of the predictions for `xs` against `targets`."""
        return mse_loss(self(xs), targets)


class SequenceClassifier(Module):
    """Many-to-one: embed the tokens, run the recurrent layer, classify its last hidden state."""

    def __init__(self, vocab_size, num_classes, embed_size=16, hidden_size=32, cell="lstm",
                 seed=0, dtype=np.float32):
        rng = generator(seed)
        self.embed = Embedding(vocab_size, embed_size, rng=rng, dtype=dtype, scale=0.1)
        self.rnn = StackedRecurrent(cell, embed_size, hidden_size, rng=rng, dtype=dtype)
        self.out = Linear(hidden_size, num_classes, rng=rng, dtype=dtype, name="out")

    def forward(self, ids):
        """ids (N, T) -> class scores (logits) (N, num_classes)."""
        hs, _ = self.rnn(self.embed(ids))
        return self.out(hs[:, -1, :])

    def loss(self, ids, labels):
        """Mean cross-entropy of the integer `labels` (N,)."""
        return tg.cross_entropy(self(ids), labels)
