"""The cost of tracing: a compiled step's first call against one eager step, in time and memory.

The model is the sine regressor of the README (lstm.models.SequenceRegressor, 100 units),
batch 1, one window of T time steps. A compiled step's first call traces the loss on shapes,
derives and simplifies its backward graph, flattens it into a program with planned buffers
and replays it once; the issue's target is at most 2x one eager step, in time and in memory,
at T = 5000.

The eager step is `tg.eager_step(..., replay=False)`: the ordinary backward pass on every
call (a replaying step makes its backward program at the 2nd call, a cost like a trace's).
Each (T, mode) runs in a fresh process. Time: eager, the third step (the first two warm up
lazy allocations and memos); compiled, the first call. Memory: the first call's peak
resident set size (VmHWM, reset before it) above the size just before it, in both modes (a
later eager step would reuse what the allocator kept from the earlier ones): what the call
needs beyond the model and the libraries. With --tracemalloc, one more process per (T, mode)
reports tracemalloc's peak during that first call (Python objects and numpy arrays; slower,
so apart from the timing).

    python benchmarks/trace_cost.py [--T 300,1000,5000] [--tracemalloc]
    python benchmarks/trace_cost.py --profile 1000 [--top 30]   # cProfile of a first call
"""
import argparse
import cProfile
import json
import pathlib
import pstats
import subprocess
import sys
import time
import tracemalloc

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from peak_memory import peak_rss_mb, reset_peak_rss, rss_mb  # noqa: E402

EAGER, COMPILED = "eager", "compiled"


def sine_window(T):
    """A batch-1 window of T steps of a sine wave of period 25 and its next values."""
    t = np.arange(T + 1)
    wave = np.sin(2 * np.pi * t / 25).astype(np.float32)
    return wave[:-1].reshape(1, T, 1), wave[1:].reshape(1, T, 1)


def make_step(mode):
    import tinygraph as tg
    from lstm.models import SequenceRegressor
    model = SequenceRegressor(hidden_size=100, seed=0)
    if mode == EAGER:      # the ordinary pass: a replaying step's 2nd call makes a program too
        return tg.eager_step(model.loss, model.parameters(), replay=False)
    return tg.compile(model.loss, model.parameters())


def child(T, mode, use_tracemalloc):
    """Print the first call's peak memory above the size before it (RSS, or tracemalloc's
    peak when asked) and the seconds of the timed call (see the module's docstring)."""
    xs, ys = sine_window(T)
    step = make_step(mode)
    result = {"T": T, "mode": mode}
    if use_tracemalloc:
        tracemalloc.start()
        step(xs, ys)
        result["tracemalloc_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        print(json.dumps(result))
        return
    reset_peak_rss()
    before = rss_mb()
    start = time.perf_counter()
    step(xs, ys)
    result["seconds"] = time.perf_counter() - start
    result["rss_rise_mb"] = peak_rss_mb() - before
    if mode == EAGER:                # timed again once warm
        step(xs, ys)
        start = time.perf_counter()
        step(xs, ys)
        result["seconds"] = time.perf_counter() - start
    print(json.dumps(result))


def measure(T, mode, use_tracemalloc=False):
    args = [sys.executable, __file__, "--child", mode, "--T", str(T)]
    if use_tracemalloc:
        args.append("--tracemalloc")
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def profile(T, top):
    """cProfile of a compiled step's first call, by cumulative time."""
    xs, ys = sine_window(T)
    step = make_step(COMPILED)
    profiler = cProfile.Profile()
    profiler.runcall(step, xs, ys)
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(top)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", default="300,1000,5000",
                        help="window lengths, comma-separated (default 300,1000,5000)")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also tracemalloc's peak of each measured call (extra processes)")
    parser.add_argument("--profile", type=int, metavar="T",
                        help="print a cProfile of the first compiled call at this T instead")
    parser.add_argument("--top", type=int, default=30, help="functions the profile prints")
    parser.add_argument("--child", choices=[EAGER, COMPILED], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.profile:
        profile(args.profile, args.top)
        return
    windows = [int(x) for x in args.T.split(",")]
    if args.child:
        child(windows[0], args.child, args.tracemalloc)
        return
    print("sine LSTM (100 units, batch 1): one eager step vs a compiled step's first call; "
          "memory: peak RSS above the size before the call")
    header = f"{'T':>6} {'eager s':>8} {'first s':>8} {'ratio':>6} " \
             f"{'eager MB':>9} {'first MB':>9} {'ratio':>6}"
    if args.tracemalloc:
        header += f" {'eager tm MB':>12} {'first tm MB':>12} {'ratio':>6}"
    print(header)
    for T in windows:
        eager, first = measure(T, EAGER), measure(T, COMPILED)
        line = (f"{T:>6} {eager['seconds']:8.2f} {first['seconds']:8.2f} "
                f"{first['seconds'] / eager['seconds']:6.2f} {eager['rss_rise_mb']:9.0f} "
                f"{first['rss_rise_mb']:9.0f} "
                f"{first['rss_rise_mb'] / max(eager['rss_rise_mb'], 1e-9):6.2f}")
        if args.tracemalloc:
            eager_tm = measure(T, EAGER, True)["tracemalloc_mb"]
            first_tm = measure(T, COMPILED, True)["tracemalloc_mb"]
            line += f" {eager_tm:12.0f} {first_tm:12.0f} {first_tm / eager_tm:6.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
