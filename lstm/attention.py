"""Dot-product attention over time (the book's chapter 8), composed from tinygraph primitives:
the seq2seq decoder's attention reads it."""
import numpy as np

import tinygraph as tg

MASKED = -1e9      # a masked score: exp(MASKED - max) is exactly 0 (no weight, no gradient)


def attention(queries, states, mask=None):
    """Dot-product attention over time: each query (N, Tq, H) scores every state (N, Ts, H),
    a softmax over the states turns the scores into weights, and the context is the
    weighted sum of the states. Returns (context (N, Tq, H), weights (N, Tq, Ts)).

    mask: (N, Ts), added to every query's scores: 0 where a state is real and MASKED where it
    is padding, which then gets exactly zero weight and zero gradient.
    """
    with tg.scope("attention"):
        scores = tg.matmul(queries, tg.transpose(states, (0, 2, 1)))
        scores.name = "scores"
        if mask is not None:
            if not isinstance(mask, tg.Tensor):
                mask = tg.Tensor(np.asarray(mask, dtype=scores.dtype), constant=True)
            expected = (states.shape[0], states.shape[1])
            if mask.shape != expected:
                raise ValueError(f"attention: the mask has shape {mask.shape}; it needs one "
                                 f"score per state, {expected} (batch, states)")
            scores = scores + tg.reshape(mask, (mask.shape[0], 1, mask.shape[1]))
        weights = tg.softmax(scores, axis=2)
        weights.name = "weights"
        context = tg.matmul(weights, states)
        context.name = "context"
        return context, weights
