"""Per-op cost of the eager engine against the bare numpy expression, side by side.

For a few array sizes, times `tanh(x @ W)` forward and forward+backward in tinygraph and the
same arithmetic written directly in numpy (forward, and forward plus the hand-written
backward), alternating the two, and prints medians and the ratio tinygraph / numpy. Small
shapes show the Python overhead per op; large ones show that the engine adds little on top of
the array work.

    python benchmarks/op_overhead.py [--repeats 31]
"""
import argparse
import statistics
import time

import numpy as np

import tinygraph as tg


def time_call(fn, number):
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def cases(rows, cols, dtype=np.float32):
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((rows, cols)).astype(dtype)
    w_np = (rng.standard_normal((cols, cols)) / np.sqrt(cols)).astype(dtype)
    x, w = tg.tensor(x_np), tg.tensor(w_np, requires_grad=True)

    def numpy_forward():
        return np.tanh(x_np @ w_np)

    def numpy_forward_backward():
        y = np.tanh(x_np @ w_np)
        return x_np.T @ (1 - y * y)   # d sum(y) / dW

    def ours_forward():
        return tg.tanh(x @ w)

    def ours_forward_backward():
        return tg.grad(tg.tanh(x @ w).sum(), [w])

    return [("forward", ours_forward, numpy_forward),
            ("forward+backward", ours_forward_backward, numpy_forward_backward)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=31)
    args = parser.parse_args()
    print(f"{'shape':>12} {'pass':>17} {'tinygraph':>12} {'numpy':>12} {'ratio':>7}")
    for rows, cols in [(1, 8), (20, 100), (700, 650)]:
        for label, ours, reference in cases(rows, cols):
            # Enough calls per sample that one sample takes about 10 ms.
            number = max(1, int(0.01 / max(time_call(ours, 3), 1e-7)))
            samples_ours, samples_ref = [], []
            for _ in range(args.repeats):   # alternate, so drifts hit both alike
                samples_ours.append(time_call(ours, number))
                samples_ref.append(time_call(reference, number))
            t_ours, t_ref = statistics.median(samples_ours), statistics.median(samples_ref)
            print(f"{str((rows, cols)):>12} {label:>17} {t_ours * 1e6:10.1f}us "
                  f"{t_ref * 1e6:10.1f}us {t_ours / t_ref:7.2f}")


if __name__ == "__main__":
    main()
