"""Graphs of the lstm package's models to draw and explore, e.g.

    python -m tinygraph explore lstm.examples:ptb_step -o ptb.html

They need no downloaded data: the words are random ids from the vocabulary.
"""
import numpy as np

from .train import PRESETS, build_model


def ptb_step(vocab_size=10000, preset="small", seed=0):
    """The loss of one training step of the PTB language model with `preset`'s sizes (small:
    embedding and one LSTM layer of 100, a batch of 20 sequences of 35 words), on random
    word ids from a vocabulary of `vocab_size` words (PTB has 10,000). Each time step is a
    scope t=1..35 (one per layer, layer1/t=k, when the preset has several layers)."""
    chosen = PRESETS[preset]
    model = build_model(chosen, vocab_size)
    rng = np.random.default_rng(seed)
    words = rng.integers(0, vocab_size, (chosen.batch_size, chosen.steps + 1))
    loss = model.loss(words[:, :-1], words[:, 1:])     # predict each next word
    loss.name = "L"
    return loss
