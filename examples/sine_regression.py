"""Sequence regression: an LSTM learns to predict the next value of a sine wave.

    python examples/sine_regression.py [--steps 400]
"""
import argparse

import numpy as np

import tinygraph as tg
from lstm.demo import sine_windows, train_sine


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    args = parser.parse_args()
    model, losses = train_sine(steps=args.steps)
    xs, ys = sine_windows(count=4, seed=99)              # windows the model has not seen
    with tg.no_grad():
        predicted = model(tg.tensor(xs)).data
    error = float(np.mean((predicted - ys) ** 2))
    print(f"training mse {losses[0]:.4f} -> {losses[-1]:.5f}; held-out mse {error:.5f}")
    print("next values, true vs predicted (last 5 steps of one window):")
    for true, guess in zip(ys[0, -5:, 0], predicted[0, -5:, 0]):
        print(f"  {true:+.3f}  {guess:+.3f}")


if __name__ == "__main__":
    main()
