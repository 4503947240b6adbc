"""Checkpointing an LSTM: one eager step's peak memory, time and gradients, plain and checkpointed.

One eager training step (forward and backward) with and without
`Recurrent(checkpoint_every=k)`.

The model is the sequence regressor of the README, larger: an LSTM of 256 units over T = 1000
steps (batch 20, 16 inputs, float64), a linear read-out of every step's hidden state and the
mean squared error against targets. Each mode runs in a fresh process: the peak of
tracemalloc (numpy's arrays and Python's objects) during one step, above what was traced
before it; then, in another process without tracemalloc, the median time of --repeats steps.
The gradients of both modes are compared (largest absolute difference over all parameters,
relative to the largest gradient).

    python benchmarks/checkpoint_memory.py [--T 1000] [--every 32] [--repeats 3]
"""
import argparse
import json
import subprocess
import sys
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]

CHILD = r'''
import json, statistics, sys, time, tracemalloc
sys.path.insert(0, {root!r})
import numpy as np
import tinygraph as tg
from lstm.cells import LSTMCell
from lstm.recurrent import Recurrent

T, every, measure, repeats = {T}, {every}, {measure!r}, {repeats}
data = np.random.default_rng(0)
xs, ys = data.standard_normal((20, T, 16)), data.standard_normal((20, T, 1))
cell = LSTMCell(16, 256, rng=np.random.default_rng(1), dtype=np.float64)
layer = Recurrent(cell, checkpoint_every=every or None)
readout = tg.nn.Linear(256, 1, rng=np.random.default_rng(2), dtype=np.float64)
params = cell.parameters() + readout.parameters()
step = tg.eager_step(lambda: tg.mse_loss(readout(layer(xs)[0]), ys), params, replay=False)

def one():
    for p in params:
        p.grad = None
    step()

if measure == "memory":
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    one()
    peak = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    grads = [p.grad.data for p in params]
    np.savez({out!r}, *grads)
    print(json.dumps({{"peak_mb": peak / 2**20}}))
else:
    one()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        one()
        times.append(time.perf_counter() - start)
    print(json.dumps({{"seconds": statistics.median(times)}}))
'''


def run(T, every, measure, repeats, out):
    code = CHILD.format(root=str(ROOT), T=T, every=every, measure=measure, repeats=repeats,
                        out=out)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, default=1000, help="time steps (default 1000)")
    parser.add_argument("--every", type=int, default=32,
                        help="steps per checkpointed segment (default 32)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed steps per mode, their median reported (default 3)")
    args = parser.parse_args()
    import numpy as np
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        rows = {}
        for name, every in (("plain", 0), (f"checkpoint_every={args.every}", args.every)):
            memory = run(args.T, every, "memory", 0, f"{tmp}/{every}.npz")
            timing = run(args.T, every, "time", args.repeats, "")
            rows[name] = (memory["peak_mb"], timing["seconds"], f"{tmp}/{every}.npz")
        (plain_mb, plain_s, plain_npz), (ck_mb, ck_s, ck_npz) = rows.values()
        a, b = np.load(plain_npz), np.load(ck_npz)
        scale = max(np.abs(a[k]).max() for k in a.files)
        diff = max(np.abs(a[k] - b[k]).max() for k in a.files) / scale
    print(f"LSTM 256 units, T = {args.T}, batch 20, float64: one eager step (forward + backward)")
    print(f"{'mode':<22} {'peak MB':>9} {'seconds':>8}")
    for name, (mb, seconds, _) in rows.items():
        print(f"{name:<22} {mb:9.1f} {seconds:8.2f}")
    print(f"checkpointed / plain: memory {ck_mb / plain_mb:.3f}, time {ck_s / plain_s:.2f}; "
          f"gradients differ by {diff:.1e} of the largest")


if __name__ == "__main__":
    main()
