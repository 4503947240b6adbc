"""Many-to-one classification: an LSTM reads a token sequence and classifies it from its last
hidden state. The toy task, a stand-in for sentiment: is there more "good" than "bad" in it?

    python examples/classify_sequences.py [--steps 150]
"""
import argparse

import numpy as np

import tinygraph as tg
from tinygraph.optim import Adam
from lstm import SequenceClassifier

WORDS = ["the", "film", "was", "good", "bad", "plot", "acting", "and"]
GOOD, BAD = WORDS.index("good"), WORDS.index("bad")


def make_data(count, length=9, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, len(WORDS), (count, length))
    score = (ids == GOOD).sum(axis=1) - (ids == BAD).sum(axis=1)
    keep = score != 0                                     # drop ties
    return ids[keep], (score[keep] > 0).astype(np.int64)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args()
    train_ids, train_labels = make_data(512, seed=0)
    test_ids, test_labels = make_data(256, seed=1)
    model = SequenceClassifier(len(WORDS), 2, embed_size=16, hidden_size=32, seed=0)
    opt = Adam(model.parameters(), lr=0.02)
    for step in range(args.steps):
        loss = model.loss(train_ids, train_labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with tg.no_grad():
        accuracy = float((model(test_ids).data.argmax(-1) == test_labels).mean())
    print(f"final training loss {float(loss.data):.3f}; held-out accuracy {accuracy:.1%}")
    sentence = ["the", "film", "was", "bad", "and", "the", "acting", "was", "good", "good"]
    ids = np.array([[WORDS.index(w) for w in sentence]])
    with tg.no_grad():
        p = np.exp(tg.log_softmax(model(ids)).data[0])
    print(f"{' '.join(sentence)!r}: positive with probability {p[1]:.2f}")


if __name__ == "__main__":
    main()
