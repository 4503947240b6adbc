"""Encoder-decoder models (the book's chapters 7 and 8), composed from tinygraph primitives.

An LSTM encoder reads the question; its final state (h, c) starts an LSTM decoder, trained
with teacher forcing (it reads the right answer shifted by one) and decoding greedily at
test time. Options, as in the book:

- peeky: the encoder's final h is also fed to every decoder step, beside the embedded input
  character, and beside the decoder's output before the affine read-out;
- attention: each decoder state scores every encoder state (a dot product), a softmax over
  time turns the scores into weights, and their weighted sum of encoder states (the context)
  goes beside the decoder's output into the read-out. Padded question positions get a score
  of -1e9 (the mask), so exactly zero weight and zero gradient.

Reversing the question (the book's other improvement) is a property of the data fed in, not
of the model (see lstm.seq2seq_train). No backward pass is written here.
"""
import numpy as np

import tinygraph as tg
from tinygraph.nn import Embedding, Linear, Module
from tinygraph.data import length_mask

from .attention import MASKED, attention as attend

from .cells import LSTMCell
from .recurrent import Recurrent

class Seq2seq(Module):
    """Encoder-decoder over token ids (see the module): embeddings of `embed_size`, LSTM
    encoder and decoder of `hidden_size`, an affine read-out over the vocabulary."""

    def __init__(self, vocab_size, embed_size=16, hidden_size=128, peeky=False,
                 attention=False, seed=0, dtype=np.float32):
        rng = np.random.default_rng(seed)
        self.config = dict(vocab_size=vocab_size, embed_size=embed_size,
                           hidden_size=hidden_size, peeky=peeky, attention=attention)
        H = hidden_size
        self.enc_embed = Embedding(vocab_size, embed_size, rng=rng, dtype=dtype, name="enc.embed")
        self.encoder = Recurrent(LSTMCell(embed_size, H, rng=rng, dtype=dtype))
        self.dec_embed = Embedding(vocab_size, embed_size, rng=rng, dtype=dtype, name="dec.embed")
        self.decoder = Recurrent(LSTMCell(embed_size + (H if peeky else 0), H, rng=rng,
                                          dtype=dtype))
        extra = H if (peeky or attention) else 0
        self.out = Linear(H + extra, vocab_size, rng=rng, dtype=dtype, name="out")

    def encode(self, questions):
        """Question ids (N, Tq) -> (all encoder states (N, Tq, H), final state (h, c))."""
        with tg.scope("encoder"):
            return self.encoder(self.enc_embed(questions))

    def decode(self, encoded, inputs, state=None, mask=None):
        """Logits (N, Ta, V) for decoder input ids (N, Ta) given `encoded` (what encode
        returned), from `state` (None: the encoder's final state); returns (logits, the
        decoder's final state, attention weights (N, Ta, Tq) or None).

        mask: (N, Tq) scores added before the softmax over time, 0 for a real position and
        MASKED for padding (attention only; None: no padding)."""
        enc_hs, enc_state = encoded
        state = enc_state if state is None else state
        with tg.scope("decoder"):
            xs = self.dec_embed(inputs)
            N, T, _ = xs.shape
            if self.config["peeky"]:
                summary = _repeat_over_time(enc_state[0], T)
                xs = tg.concat([summary, xs], axis=2)
            hs, state = self.decoder(xs, state)
            weights = None
            if self.config["attention"]:
                context, weights = attend(hs, enc_hs, mask)
                hs = tg.concat([context, hs], axis=2)
            elif self.config["peeky"]:
                hs = tg.concat([_repeat_over_time(enc_state[0], T), hs], axis=2)
            return self.out(hs), state, weights

    def loss(self, questions, answers, mask=None):
        """Mean cross-entropy of the answer characters: teacher forcing, the decoder reads
        answers[:, :-1] (START first) and predicts answers[:, 1:]."""
        logits, _, _ = self.decode(self.encode(questions), answers[:, :-1], mask=mask)
        return tg.cross_entropy(logits, answers[:, 1:])

    def generate(self, questions, start_id, length, mask=None):
        """Greedy decoding: (N, length) ids, each step reading the previous step's most
        likely character (START first), and the attention weights (N, length, Tq) or None."""
        with tg.no_grad():
            encoded = self.encode(questions)
            N = np.shape(questions)[0]
            ids = np.full((N, 1), start_id, np.int64)
            state, out, weights = None, [], []
            for _ in range(length):
                logits, state, w = self.decode(encoded, ids, state, mask)
                ids = np.argmax(logits.data[:, -1], axis=-1)[:, None]
                out.append(ids)
                if w is not None:
                    weights.append(w.data)
        return np.concatenate(out, axis=1), (np.concatenate(weights, axis=1) if weights
                                             else None)


def _repeat_over_time(h, T):
    """h (N, H) as (N, T, H), the same row at every step (a broadcast: its gradient is the
    sum over the steps)."""
    N, H = h.shape
    return tg.broadcast_to(tg.reshape(h, (N, 1, H)), (N, T, H))


def padding_mask(lengths, width, reverse=False, dtype=np.float32):
    """(N, width) attention mask: 0 at the first lengths[n] positions of row n, MASKED after
    (before them, for questions fed reversed, whose padding comes first)."""
    padded = ~length_mask(lengths, width, side="left" if reverse else "right")
    # A dtype too narrow for MASKED (float16) gets its most negative finite half instead.
    masked = max(MASKED, float(np.finfo(dtype).min) / 2)
    return np.where(padded, masked, 0).astype(dtype)
