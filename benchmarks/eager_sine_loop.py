"""A user-written eager training loop (batch-1 sine LSTM) on two source trees, side by side.

The loop is the one a user writes from primitives, without tinygraph.nn or lstm: an LSTM cell
of 100 units (z = x@Wx + h@Wh + b, sliced into the gates f, g, i, o, sigmoid/tanh, Hadamard
products), batch 1, 30-step windows of a sine wave; per window the forward pass over the
window, a linear read-out of every step's h, the mean squared error, `tg.grad(loss, params)`
and a plain SGD update of each `p.data`. It uses only APIs that every revision since the
first edition of the engine core has (tg.Parameter, tg.tensor, tg.sigmoid, tg.tanh,
tg.concat, tg.mean, tg.grad, `@`, `+`, `*`, `-`, getitem), so any two revisions compare.

    python benchmarks/eager_sine_loop.py OLD NEW [--rounds 7] [--windows 150] [--warmup 30]
    python benchmarks/eager_sine_loop.py 978153a^ .          # revisions work too
    python benchmarks/eager_sine_loop.py 978153a^ . --profile 25   # + cProfile of each tree
    python benchmarks/eager_sine_loop.py 978153a^ . --blas-threads 1   # on a busy machine

OLD and NEW are source trees (directories with a tinygraph/ package) or git revisions of
the repository this script lives in; a revision is checked out into a temporary
`git worktree` that is removed at the end. Each round runs, in a fresh process per tree
(alternating, so drifts of a shared machine hit both alike), `--warmup` untimed windows and
then `--windows` timed ones, and reports the median time per window. Printed: per tree the
median over rounds of those medians with the spread (min..max of the rounds), and new/old.
Both trees must compute the same losses (checked to a relative 1e-6), so the comparison is
of the same work. On a shared two-core machine OpenBLAS's second thread stalls when the
other core is busy (a window's joined weight-gradient products then cost milliseconds, in
either tree): --blas-threads 1 measures the Python overhead more steadily.
With --profile N, one more process per tree runs the loop under cProfile and prints its N
most expensive functions by own time (cProfile's overhead inflates Python-heavy code most).

The child imports tinygraph from the given tree (sys.path first, checked against
tinygraph.__file__), so an editable install of another tree in the virtualenv does not leak in.
"""
import argparse
import contextlib
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

CHILD = r'''
import json, sys, time
sys.path.insert(0, {tree!r})
import numpy as np
import tinygraph as tg
assert tg.__file__.startswith({tree!r} + "/"), ("imported the wrong tinygraph", tg.__file__)

HIDDEN, STEPS, LR = 100, 30, 0.01
rng = np.random.default_rng(0)
t = np.arange(8 * STEPS + 1)
wave = np.sin(2 * np.pi * t / 25).astype(np.float32)
windows = [(wave[k * STEPS:(k + 1) * STEPS], wave[k * STEPS + 1:(k + 1) * STEPS + 1])
           for k in range(8)]

def init(*shape):
    return (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32)

Wx = tg.Parameter(init(1, 4 * HIDDEN), name="Wx")
Wh = tg.Parameter(init(HIDDEN, 4 * HIDDEN), name="Wh")
b = tg.Parameter(np.zeros(4 * HIDDEN, np.float32), name="b")
Wo = tg.Parameter(init(HIDDEN, 1), name="Wo")
bo = tg.Parameter(np.zeros(1, np.float32), name="bo")
params = [Wx, Wh, b, Wo, bo]
H = HIDDEN

def window(xs, ys):
    h = tg.tensor(np.zeros((1, H), np.float32))
    c = tg.tensor(np.zeros((1, H), np.float32))
    hs = []
    for step in range(STEPS):
        x = tg.tensor(xs[step:step + 1].reshape(1, 1))
        z = x @ Wx + h @ Wh + b
        f = tg.sigmoid(z[:, :H])
        g = tg.tanh(z[:, H:2 * H])
        i = tg.sigmoid(z[:, 2 * H:3 * H])
        o = tg.sigmoid(z[:, 3 * H:])
        c = f * c + g * i
        h = o * tg.tanh(c)
        hs.append(h)
    y = tg.concat(hs, axis=0) @ Wo + bo                      # (STEPS, 1)
    d = y - tg.tensor(ys.reshape(STEPS, 1))
    loss = tg.mean(d * d)
    grads = tg.grad(loss, params)
    for p, gp in zip(params, grads):
        p.data -= LR * gp.data
    return float(loss.data)

def run(n, offset=0):
    losses, times = [], []
    for k in range(n):
        xs, ys = windows[(offset + k) % len(windows)]
        t0 = time.perf_counter()
        losses.append(window(xs, ys))
        times.append(time.perf_counter() - t0)
    return losses, times

warm_losses, _ = run({warmup})
if {profile}:
    import cProfile, pstats, io
    pr = cProfile.Profile()
    pr.enable(); run({windows}, {warmup}); pr.disable()
    out = io.StringIO()
    st = pstats.Stats(pr, stream=out)
    st.sort_stats("tottime").print_stats({profile})
    total = sum(v[2] for v in st.stats.values())
    print(out.getvalue())
    print(json.dumps({{"profiled_s_per_window": total / {windows}}}))
else:
    losses, times = run({windows}, {warmup})
    times.sort()
    print(json.dumps({{"ms": 1000 * times[len(times) // 2],
                      "ms_p10": 1000 * times[len(times) // 10],
                      "losses": [float(v) for v in warm_losses[:3] + losses[-3:]]}}))
'''


def run(tree, windows, warmup, profile=0, blas_threads=None):
    code = CHILD.format(tree=str(tree), windows=windows, warmup=warmup, profile=profile)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    if blas_threads:
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(blas_threads)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"{tree} failed:\n{out.stderr[-3000:]}")
    return out.stdout


@contextlib.contextmanager
def source_tree(spec, stack):
    """A directory for `spec`: itself when it is a tree, else a temporary worktree of it."""
    path = pathlib.Path(spec)
    if (path / "tinygraph" / "__init__.py").exists():
        yield path.resolve()
        return
    repo = pathlib.Path(__file__).resolve().parent.parent
    rev = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", spec + "^{commit}"],
                         capture_output=True, text=True)
    if rev.returncode:
        raise SystemExit(f"{spec!r} is neither a tinygraph source tree nor a git revision")
    where = pathlib.Path(stack.enter_context(tempfile.TemporaryDirectory())) / "tree"
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", "-q", str(where),
                    rev.stdout.strip()], check=True)
    try:
        yield where
    finally:
        subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(where)],
                       check=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="source tree or git revision")
    parser.add_argument("new", help="source tree or git revision")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--windows", type=int, default=150, help="timed windows per process")
    parser.add_argument("--warmup", type=int, default=30, help="untimed windows first")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also print each tree's N top functions by own time")
    parser.add_argument("--blas-threads", type=int, default=None, metavar="N",
                        help="OPENBLAS/OMP/MKL_NUM_THREADS for the children (default: as set)")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        trees = {"old": stack.enter_context(source_tree(args.old, stack)),
                 "new": stack.enter_context(source_tree(args.new, stack))}
        results = {"old": [], "new": []}
        losses = {}
        for r in range(args.rounds):
            order = ("old", "new") if r % 2 == 0 else ("new", "old")
            for label in order:
                result = json.loads(run(trees[label], args.windows, args.warmup,
                                        blas_threads=args.blas_threads)
                                    .strip().splitlines()[-1])
                results[label].append(result["ms"])
                losses[label] = result["losses"]
            print(f"round {r + 1}/{args.rounds}: old {results['old'][-1]:.2f} ms, "
                  f"new {results['new'][-1]:.2f} ms", file=sys.stderr)
        same = all(abs(a - b) <= 1e-6 * max(1.0, abs(a))
                   for a, b in zip(losses["old"], losses["new"]))
        blas = f", BLAS threads {args.blas_threads}" if args.blas_threads else ""
        print(f"eager sine loop (LSTM 100 units, batch 1, 30 steps), ms per window, "
              f"median of {args.rounds} rounds x {args.windows} windows{blas}")
        for label in ("old", "new"):
            ms = results[label]
            print(f"  {label}: {statistics.median(ms):6.2f} ms  (rounds {min(ms):.2f}..{max(ms):.2f})"
                  f"  {args.old if label == 'old' else args.new}")
        ratio = statistics.median(results["new"]) / statistics.median(results["old"])
        print(f"  new/old: {ratio:.3f}   same losses: {'yes' if same else 'NO ' + str(losses)}")
        if args.profile:
            for label in ("old", "new"):
                print(f"\n=== cProfile, {label} ({trees[label]}), {args.windows} windows ===")
                print(run(trees[label], args.windows, args.warmup, args.profile, args.blas_threads))


if __name__ == "__main__":
    main()
