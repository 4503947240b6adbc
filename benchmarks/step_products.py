"""The matrix products of one LSTM language-model step, each timed alone: tinygraph's
(numpy/OpenBLAS, as a compiled step calls them) against PyTorch's on the same shapes.

For the small and medium presets (batch 20, 35 steps): the per-time-step recurrent product
h @ Wh and its two gradients (g @ Whᵀ and the weight gradient, joined over the steps into one
hᵀ @ G per layer), the input projection hoisted over all steps (x @ Wx over 700 rows) and the
output layer (700 x hidden @ hidden x 10,000) with its gradients. Prints GFLOP/s of both and
the ratio: where a per-step product is far below the hoisted ones, batching it over time (if
it does not depend on the recurrence) is what would pay.

    python benchmarks/step_products.py [--repeats 50] [--presets small,medium]
"""
import argparse
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
from tinygraph.ops.parallel import (cores_to_workers, matmul_2d_into,  # noqa: E402
                                     split_products)

try:
    import torch
except ImportError:
    torch = None

BATCH, STEPS, VOCAB = 20, 35, 10_000
PRESETS = {"small": 100, "medium": 650}


def products(hidden):
    """(name, (m, k), (k, n)) of one step's products for this hidden size."""
    rows = BATCH * STEPS
    return [
        ("per step: h @ Wh", (BATCH, hidden), (hidden, 4 * hidden)),
        ("per step: dA @ Whᵀ", (BATCH, 4 * hidden), (4 * hidden, hidden)),
        ("hoisted: x @ Wx (all steps)", (rows, hidden), (hidden, 4 * hidden)),
        ("hoisted: Hᵀ @ dA (weight grad)", (hidden, rows), (rows, 4 * hidden)),
        ("output: H @ Wout", (rows, hidden), (hidden, VOCAB)),
        ("output: dY @ Woutᵀ", (rows, VOCAB), (VOCAB, hidden)),
    ]


def seconds(fn, repeats):
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--presets", default="small,medium")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'product':34} {'shape':>22} {'tinygraph GFLOP/s':>18} {'PyTorch':>9} {'ratio':>6}")
    for preset in args.presets.split(","):
        print(f"-- {preset} (hidden {PRESETS[preset]})")
        for name, (m, k), (k2, n) in products(PRESETS[preset]):
            a = rng.standard_normal((m, k)).astype(np.float32)
            b = rng.standard_normal((k2, n)).astype(np.float32)
            out = np.empty((m, n), np.float32)
            flops = 2 * m * k * n
            with cores_to_workers(), split_products():     # as inside a step
                ours = seconds(lambda: matmul_2d_into(out, a, b), args.repeats)
            line = f"{name:34} {f'({m}x{k})@({k}x{n})':>22} {flops / ours / 1e9:18.1f}"
            if torch is not None:
                ta, tb = torch.as_tensor(a), torch.as_tensor(b)
                theirs = seconds(lambda: torch.matmul(ta, tb), args.repeats)
                line += f" {flops / theirs / 1e9:9.1f} {theirs / ours:6.2f}"
            print(line)


if __name__ == "__main__":
    main()
