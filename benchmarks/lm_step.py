"""One training step, side by side: tinygraph vs PyTorch vs a hand-derived numpy LSTM.

Times a full step (forward, backward, gradient clipping, SGD update, recurrent state carried)
of the small and medium PTB language-model presets (vocabulary 10,000, batch 20, 35 steps) and
of a batch-1 sine-wave LSTM (100 units, 30-step windows), alternating the frameworks so that
drifts of a shared machine hit them alike. Prints medians and the ratio tinygraph / peer, and
writes docs/benchmarks.md with the machine's description and a profile of the medium step.

    python benchmarks/lm_step.py [--repeats 7] [--configs small,medium,sine] [--no-write]
"""
import argparse
import cProfile
import os
import pathlib
import platform
import pstats
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from numpy_lstm_lm import NumpyLSTMLM  # noqa: E402
import peak_memory  # noqa: E402

import tinygraph as tg  # noqa: E402
from tinygraph.optim import SGD, clip_grad_norm  # noqa: E402
from lstm.models import LanguageModel, SequenceRegressor  # noqa: E402

try:
    import torch
except ImportError:
    torch = None

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFIGS = {
    "small": dict(embed=100, hidden=100, layers=1, dropout=0.0, tied=False),
    "medium": dict(embed=650, hidden=650, layers=2, dropout=0.5, tied=True),
}
VOCAB, BATCH, STEPS = 10_000, 20, 35


# --- the contestants: each returns a function that runs one step ----------------------------

def tinygraph_lm(cfg, ids, targets):
    model = LanguageModel(VOCAB, cfg["embed"], cfg["hidden"], cfg["layers"], cfg["dropout"],
                          cfg["tied"], seed=0)
    opt = SGD(model.parameters(), lr=20.0)

    def step():
        loss = model.loss(ids, targets)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm(opt.params, 0.25)
        opt.step()
    return step


def numpy_lm(cfg, ids, targets):
    model = NumpyLSTMLM(VOCAB, cfg["embed"], cfg["hidden"], cfg["layers"], cfg["dropout"],
                        cfg["tied"], seed=0)
    return lambda: model.step(ids, targets)


def torch_lm(cfg, ids, targets):
    class LM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(VOCAB, cfg["embed"])
            self.lstm = torch.nn.LSTM(cfg["embed"], cfg["hidden"], cfg["layers"],
                                      batch_first=True, dropout=cfg["dropout"])
            self.drop = torch.nn.Dropout(cfg["dropout"])
            self.out = torch.nn.Linear(cfg["hidden"], VOCAB)
            if cfg["tied"]:
                self.out.weight = self.embed.weight

        def forward(self, x, state):
            hs, state = self.lstm(self.drop(self.embed(x)), state)
            return self.out(self.drop(hs)), state

    model = LM()
    opt = torch.optim.SGD(model.parameters(), lr=20.0)
    x, t = torch.as_tensor(ids), torch.as_tensor(targets)
    holder = {"state": None}

    def step():
        logits, state = model(x, holder["state"])
        holder["state"] = tuple(s.detach() for s in state)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), t.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        opt.step()
    return step


def sine_data(steps=30):
    t = np.arange(steps + 1)
    wave = np.sin(2 * np.pi * t / 25).astype(np.float32)
    return wave[:-1].reshape(1, steps, 1), wave[1:].reshape(1, steps, 1)


def tinygraph_sine():
    xs, ys = sine_data()
    model = SequenceRegressor(hidden_size=100, seed=0)
    opt = SGD(model.parameters(), lr=0.01)
    x = tg.tensor(xs)

    def step():
        loss = model.loss(x, ys)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def torch_sine(fused):
    xs, ys = (torch.as_tensor(a) for a in sine_data())
    if fused:
        rnn = torch.nn.LSTM(1, 100, batch_first=True)
    else:
        rnn = torch.nn.LSTMCell(1, 100)
    out = torch.nn.Linear(100, 1)
    opt = torch.optim.SGD(list(rnn.parameters()) + list(out.parameters()), lr=0.01)

    def step():
        if fused:
            hs, _ = rnn(xs)
        else:
            h = c = torch.zeros(1, 100)
            outs = []
            for t in range(xs.shape[1]):
                h, c = rnn(xs[:, t], (h, c))
                outs.append(h)
            hs = torch.stack(outs, 1)
        loss = torch.nn.functional.mse_loss(out(hs), ys)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


# --- timing ---------------------------------------------------------------------------------

def median_times(contestants, repeats, warmup=2, per_round=3):
    """{name: median seconds per call}. Rounds alternate between the contestants; in each
    round a contestant first runs once untimed (so the switch from the previous library, whose
    thread pool may still be spinning, is not charged to it), then `per_round` timed calls."""
    for fn in contestants.values():
        for _ in range(warmup):
            fn()
    samples = {name: [] for name in contestants}
    for _ in range(repeats):
        for name, fn in contestants.items():
            fn()
            for _ in range(per_round):
                start = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(s) for name, s in samples.items()}


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = f"numpy {np.__version__}" + (f", torch {torch.__version__}" if torch else "")
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    return (f"{platform.machine()}, {os.cpu_count()} cores, {cpu}; Python "
            f"{platform.python_version()}, {versions}; OPENBLAS_NUM_THREADS={threads}")


def profile_medium(ids, targets, steps=3):
    """Where the time of a tinygraph medium step goes, by kind of work."""
    step = tinygraph_lm(CONFIGS["medium"], ids, targets)
    step()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        step()
    profiler.disable()
    stats = pstats.Stats(profiler).stats          # (file, line, name) -> (cc, nc, tt, ct, callers)
    total = sum(v[2] for v in stats.values())
    elementwise = "elementwise and reductions (other op forwards, numpy reductions)"
    kinds = {"BLAS (matmul forwards)": 0.0, elementwise: 0.0,  # BLAS: all matmuls
             "allocation (zeros, empty, copies)": 0.0,
             "Python overhead (graph, autodiff, optimizer)": 0.0}
    for (filename, _, func), (_, _, tt, _, _) in stats.items():
        if func == "compute" and filename.endswith("deferred.py"):
            kind = "BLAS (matmul forwards)"          # the joined weight-gradient matmuls
        elif func == "forward" and filename.endswith("ops.py") or "reduce" in func \
                or "add.at" in func or "ufunc" in func:
            kind = elementwise
        elif any(word in func for word in ("zeros", "empty", "copy", "concatenate")):
            kind = "allocation (zeros, empty, copies)"
        else:
            kind = "Python overhead (graph, autodiff, optimizer)"
        kinds[kind] += tt
    # MatMul.forward is an ops.py forward: move its own time to BLAS.
    for (filename, line, func), (_, _, tt, _, _) in stats.items():
        if func == "forward" and filename.endswith("ops.py") and _is_matmul(filename, line):
            kinds[elementwise] -= tt
            kinds["BLAS (matmul forwards)"] += tt
    return {k: v / steps for k, v in kinds.items()}, total / steps


def _is_matmul(filename, line):
    import linecache
    for back in range(1, 4):
        if "class MatMul" in linecache.getline(filename, line - back):
            return True
    return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="rounds (3 timed calls each)")
    parser.add_argument("--configs", default="small,medium,sine")
    parser.add_argument("--no-write", action="store_true", help="do not write docs/benchmarks.md")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    ids = rng.integers(0, VOCAB, (BATCH, STEPS))
    targets = rng.integers(0, VOCAB, (BATCH, STEPS))
    rows = []
    for config in args.configs.split(","):
        if config in CONFIGS:
            cfg = CONFIGS[config]
            contestants = {"tinygraph": tinygraph_lm(cfg, ids, targets),
                           "numpy (hand-derived)": numpy_lm(cfg, ids, targets)}
            if torch:
                contestants["PyTorch"] = torch_lm(cfg, ids, targets)
            label = f"{config} LM step (ms)"
            scale = 1e3
        elif config == "sine":
            contestants = {"tinygraph": tinygraph_sine()}
            if torch:
                contestants["PyTorch (cell in a loop)"] = torch_sine(fused=False)
                contestants["PyTorch (fused nn.LSTM)"] = torch_sine(fused=True)
            label = "sine LSTM, batch 1, per time step (µs)"
            scale = 1e6 / 30
        else:
            parser.error(f"unknown config {config!r}")
        times = median_times(contestants, args.repeats)
        ours = times["tinygraph"]
        for name, t in times.items():
            ratio = "" if name == "tinygraph" else f"{ours / t:.2f}"
            rows.append((label, name, t * scale, ratio))
            print(f"{label:<40} {name:<26} {t * scale:10.1f}  {ratio}", flush=True)
    if args.no_write:
        return
    profile, total = profile_medium(ids, targets) if "medium" in args.configs else ({}, 0)
    memory = peak_memory.measure("medium") if "medium" in args.configs else {}
    write_report(rows, profile, total, args.repeats, memory)


def write_report(rows, profile, total, repeats, memory):
    lines = ["# Benchmarks", "",
             "Produced by `python benchmarks/lm_step.py`; rerun it to refresh this page. Each",
             f"number is the median of {repeats} rounds x 3 calls, the frameworks alternating",
             "round by round; ratio is tinygraph's time divided by the peer's (below 1:",
             "tinygraph is faster). tinygraph runs eagerly (there is no compiled mode yet).", "",
             f"Machine: {machine()}", "",
             "| step | implementation | time | tinygraph / this |", "|---|---|---|---|"]
    for label, name, value, ratio in rows:
        lines.append(f"| {label} | {name} | {value:,.1f} | {ratio} |")
    if profile:
        lines += ["", "## Where the time of a tinygraph medium step goes", "",
                  f"cProfile, mean over 3 steps (profiling itself adds overhead): "
                  f"{total * 1e3:,.0f} ms per step.", "", "| kind of work | ms | share |",
                  "|---|---|---|"]
        for kind, seconds in profile.items():
            lines.append(f"| {kind} | {seconds * 1e3:,.0f} | {seconds / total:.0%} |")
    if memory:
        lines += ["", "## Peak memory of the medium step", "",
                  "Each implementation in a fresh process (`benchmarks/peak_memory.py`): peak",
                  "resident set size, and its rise over the size before the first step.", "",
                  "| implementation | peak RSS (MB) | rise during the steps (MB) |", "|---|---|---|"]
        for name, r in memory.items():
            lines.append(f"| {name} | {r['peak_mb']:,.0f} | {r['peak_mb'] - r['before_mb']:,.0f} |")
        if "PyTorch" in memory:
            rise = {n: r["peak_mb"] - r["before_mb"] for n, r in memory.items()}
            lines += ["", f"Step memory tinygraph / PyTorch: {rise['tinygraph'] / rise['PyTorch']:.2f}."]
    path = ROOT / "docs" / "benchmarks.md"
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
