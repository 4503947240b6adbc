"""One training step, side by side: tinygraph vs PyTorch vs a hand-derived numpy LSTM.

Times a full step (forward, backward, gradient clipping, SGD update, recurrent state carried)
of the small and medium PTB language-model presets (vocabulary 10,000, batch 20, 35 steps) and
of a batch-1 sine-wave LSTM (100 units, 30-step windows), for tinygraph in eager mode and in
compiled mode (tinygraph.compile), alternating the contestants so that drifts of a shared
machine hit them alike. Prints medians and the ratios tinygraph / peer, and writes
docs/benchmarks.md with the machine's description, a profile of the medium step and its peak
memory.

    python benchmarks/lm_step.py [--repeats 7] [--configs small,medium,sine] [--no-write]
"""
import argparse
import cProfile
import json
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
from tinygraph.ops import all_primitives  # noqa: E402
from tinygraph.ops.linalg import MatMul, MatMulTN  # noqa: E402
from tinygraph.ops.parallel import cores_to_workers, matmul_2d_into, split_products  # noqa: E402
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

def tinygraph_lm(cfg, ids, targets, compiled=False):
    model = LanguageModel(VOCAB, cfg["embed"], cfg["hidden"], cfg["layers"], cfg["dropout"],
                          cfg["tied"], seed=0)
    opt = SGD(model.parameters(), lr=20.0)
    # One step contract: eager or compiled, loss = train(...) with the gradients in .grad.
    train = (tg.compile if compiled else tg.eager_step)(model.loss, model.parameters())

    def step():
        opt.zero_grad()
        train(ids, targets)
        clip_grad_norm(opt.params, 0.25)
        opt.step()
    return step


def tinygraph_compiled_lm(cfg, ids, targets):
    return tinygraph_lm(cfg, ids, targets, compiled=True)


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


def tinygraph_sine(compiled=False):
    xs, ys = sine_data()
    model = SequenceRegressor(hidden_size=100, seed=0)
    opt = SGD(model.parameters(), lr=0.01)
    train = (tg.compile if compiled else tg.eager_step)(model.loss, model.parameters())

    def step():
        opt.zero_grad()
        train(xs, ys)
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
            f"{platform.python_version()}, {versions}; OPENBLAS_NUM_THREADS={threads}; "
            f"{blas_kernels()}")


def blas_kernels():
    """Which kernels numpy's BLAS runs: OpenBLAS picks them for the CPU unless the
    environment pins them (OPENBLAS_CORETYPE), and on an AVX-512 CPU its AVX2 ("Haswell")
    kernels run large float32 products at about half the speed of its AVX-512 ones."""
    try:
        from threadpoolctl import threadpool_info
        pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    except ImportError:
        pools = []
    found = ", ".join(f"{p.get('internal_api')} {p.get('version')} {p.get('architecture')} "
                      "kernels" for p in pools) or "BLAS kernels unknown"
    pinned = os.environ.get("OPENBLAS_CORETYPE")
    return found + (f" (pinned by OPENBLAS_CORETYPE={pinned})" if pinned else "")


BLAS = "matrix products (matmul, matmul_tn)"
ELEMENTWISE = "the other ops (elementwise, reductions, log-softmax, scatters, concats)"
OVERHEAD = "everything else (graph, autodiff, replay loop, optimizer, clipping)"


def profile_medium(ids, targets, compiled, steps=3):
    """Where the time of a tinygraph medium step goes, by kind of work: ({kind: seconds},
    total seconds), per step.

    An op's time is the cumulative time of its primitive's forward, forward_into and
    add_into (what numpy does inside, and the waits for the worker that runs the other half
    of a split product: cProfile sees the calling thread only), counted once where one of
    them calls another."""
    step = tinygraph_lm(CONFIGS["medium"], ids, targets, compiled)
    step()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        step()
    profiler.disable()
    stats = pstats.Stats(profiler).stats          # (file, line, name) -> (cc, nc, tt, ct, callers)
    total = sum(v[2] for v in stats.values())
    kind_of_code = {}
    for cls in all_primitives():
        for method in ("forward", "forward_into", "add_into", "_ufunc_into"):
            function = getattr(cls, method, None)
            code = getattr(function, "__code__", None)
            if isinstance(function, property) or code is None:
                continue
            kind_of_code[(code.co_filename, code.co_firstlineno, code.co_name)] = (
                BLAS if cls in (MatMul, MatMulTN) else ELEMENTWISE)
    kinds = dict.fromkeys([BLAS, ELEMENTWISE, OVERHEAD], 0.0)
    for key, kind in kind_of_code.items():
        if key not in stats:
            continue
        _, _, _, cumulative, callers = stats[key]
        nested = sum(v[3] for caller, v in callers.items() if caller in kind_of_code)
        kinds[kind] += cumulative - nested
    kinds[OVERHEAD] = total - kinds[BLAS] - kinds[ELEMENTWISE]
    return {k: v / steps for k, v in kinds.items()}, total / steps


def profile_torch_medium(ids, targets, steps=3):
    """PyTorch's medium step by kind of work (torch.profiler self CPU time): {kind: seconds},
    total seconds, per step."""
    from torch.profiler import ProfilerActivity, profile
    step = torch_lm(CONFIGS["medium"], ids, targets)
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    kinds = {"fused LSTM layers, forward and backward (oneDNN mkldnn_rnn_layer*)": 0.0,
             "matmuls outside the LSTM layers (aten::mm, addmm)": 0.0, "everything else": 0.0}
    names = list(kinds)
    total = 0.0
    for event in prof.key_averages():
        seconds = event.self_cpu_time_total / 1e6
        total += seconds
        if "rnn" in event.key:
            kinds[names[0]] += seconds
        elif event.key in ("aten::mm", "aten::addmm", "aten::bmm"):
            kinds[names[1]] += seconds
        else:
            kinds[names[2]] += seconds
    return {k: v / steps for k, v in kinds.items()}, total / steps


EAGER, COMPILED = "tinygraph eager", "tinygraph compiled"


def contestants_for(config, ids, targets):
    """({name: step function}, row label, scale from seconds to the unit of the label)."""
    if config in CONFIGS:
        cfg = CONFIGS[config]
        contestants = {EAGER: tinygraph_lm(cfg, ids, targets),
                       COMPILED: tinygraph_compiled_lm(cfg, ids, targets),
                       "numpy (hand-derived)": numpy_lm(cfg, ids, targets)}
        if torch:
            contestants["PyTorch"] = torch_lm(cfg, ids, targets)
        return contestants, f"{config} LM step (ms)", 1e3
    if config == "sine":
        contestants = {EAGER: tinygraph_sine(), COMPILED: tinygraph_sine(compiled=True)}
        if torch:
            contestants["PyTorch (cell in a loop)"] = torch_sine(fused=False)
            contestants["PyTorch (fused nn.LSTM)"] = torch_sine(fused=True)
        return contestants, "sine LSTM, batch 1, per time step (µs)", 1e6 / 30
    raise ValueError(f"unknown config {config!r}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="rounds (3 timed calls each)")
    parser.add_argument("--configs", default="small,medium,sine")
    parser.add_argument("--no-write", action="store_true", help="do not write docs/benchmarks.md")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    ids = rng.integers(0, VOCAB, (BATCH, STEPS))
    targets = rng.integers(0, VOCAB, (BATCH, STEPS))
    rows = []                   # (step label, {contestant: time in the label's unit})
    for config in args.configs.split(","):
        try:
            contestants, label, scale = contestants_for(config, ids, targets)
        except ValueError as e:
            parser.error(str(e))
        times = median_times(contestants, args.repeats)
        for name, t in times.items():
            ratios = [f"{times[mode] / t:.2f}" if name not in (EAGER, COMPILED) else ""
                      for mode in (EAGER, COMPILED)]
            print(f"{label:<40} {name:<26} {t * scale:10.1f}  {'  '.join(ratios)}", flush=True)
        rows.append((label, {name: t * scale for name, t in times.items()}))
    if args.no_write:
        return
    profiles = {}
    if "medium" in args.configs:
        profiles = {mode: profile_medium(ids, targets, compiled=mode == COMPILED)
                    for mode in (EAGER, COMPILED)}
        if torch:
            profiles["PyTorch"] = profile_torch_medium(ids, targets)
    memory = peak_memory.measure("medium") if "medium" in args.configs else {}
    flops = matmul_rates() if "medium" in args.configs else []
    write_report(rows, profiles, args.repeats, memory, flops,
                 sine_source() if "sine" in args.configs else None)


# The matmuls of a medium step (batch 20, 35 steps, 650 units, vocabulary 10,000): the input
# projection and the output layer over all time steps at once, and the per-time-step products.
MATMUL_SHAPES = [("input projection, all steps", 700, 650, 2600),
                 ("output layer, all steps", 700, 650, 10000),
                 ("h @ Wh, one step", 20, 650, 2600),
                 ("dA @ Whᵀ, one step", 20, 2600, 650)]


def matmul_rates(repeats=20):
    """[(name, (m, k, n), numpy GFLOP/s, PyTorch GFLOP/s or None)]: medians of `repeats`."""
    rng = np.random.default_rng(0)
    found = []
    for name, m, k, n in MATMUL_SHAPES:
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        flop = 2 * m * k * n
        out = np.empty((m, n), np.float32)
        time.sleep(0.5)     # the other library's spinning threads must not share the cores
        with cores_to_workers(), split_products():     # as a step calls it
            ours = flop / _median_seconds(lambda: matmul_2d_into(out, a, b), repeats) / 1e9
        theirs = None
        if torch is not None:
            ta, tb = torch.as_tensor(a), torch.as_tensor(b)
            time.sleep(0.5)
            theirs = flop / _median_seconds(lambda: ta @ tb, repeats) / 1e9
        found.append((name, (m, k, n), ours, theirs))
    return found


def _median_seconds(fn, repeats):
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sine_source(steps=2):
    """The generated code of the compiled sine step (tinygraph.transforms.codegen), over a
    short window: the 30-step program repeats its per-step part 30 times."""
    xs, ys = sine_data(steps)
    model = SequenceRegressor(hidden_size=100, seed=0)
    step = tg.compile(model.loss, model.parameters())
    for _ in range(2):
        step(xs, ys)
    return step.source()


def write_report(rows, profiles, repeats, memory, flops=(), source=None):
    lines = ["# Benchmarks", "",
             "Produced by `python benchmarks/lm_step.py`; rerun it to refresh this page. Each",
             f"number is the median of {repeats} rounds x 3 calls, the contestants alternating",
             "round by round. The ratios are tinygraph's time (eager, or compiled with",
             "`tinygraph.compile`) divided by the peer's: below 1, tinygraph is faster.",
             "Eager is `tg.eager_step`: the forward pass runs op by op on every call and the",
             "backward pass of a graph met before is replayed as a program (see",
             "[the engine](engine.md#steps-eager-and-compiled)).", "",
             f"Machine: {machine()}", "",
             "One row per step and PyTorch contestant: each implementation's time, then",
             "tinygraph's time divided by the peer's, eager / compiled.", "",
             "| step | tinygraph eager | tinygraph compiled | numpy (hand-derived) | PyTorch | "
             "÷ numpy | ÷ PyTorch |", "|---|---|---|---|---|---|---|"]
    chart = []
    for label, times in rows:
        numpy_time = times.get("numpy (hand-derived)")
        for peer in [n for n in times if n.startswith("PyTorch")] or [None]:
            step = label if peer in (None, "PyTorch") else f"{label}, {peer[9:-1]}"
            ratio = lambda t: f"{times[EAGER] / t:.2f} / {times[COMPILED] / t:.2f}" if t else ""
            cells = [f"{times[EAGER]:,.1f}", f"{times[COMPILED]:,.1f}",
                     f"{numpy_time:,.1f}" if numpy_time else "",
                     f"{times[peer]:,.1f}" if peer else "", ratio(numpy_time),
                     ratio(times.get(peer))]
            lines.append(f"| {step} | " + " | ".join(cells) + " |")
            if peer:
                chart.append({"step": step, "ratios": {peer: [times[EAGER] / times[peer],
                                                              times[COMPILED] / times[peer]]}})
    (ROOT / "docs" / "benchmarks.json").write_text(json.dumps(chart, indent=1) + "\n")
    lines += ["", "```{tinygraph-benchmark-chart} benchmarks.json",
              ":caption: tinygraph's time per step divided by PyTorch's, eager and compiled "
              "(below 1: tinygraph is faster), from the table above.", "```"]
    torch_profile = profiles.pop("PyTorch", None)
    if profiles:
        modes = list(profiles)
        lines += ["", "## Where the time of a tinygraph medium step goes", "",
                  "cProfile, mean over 3 steps (profiling itself adds overhead): " + ", ".join(
                      f"{mode} {total * 1e3:,.0f} ms" for mode, (_, total) in profiles.items())
                  + " per step.", "",
                  "| kind of work | " + " | ".join(f"{m} (ms) | share" for m in modes) + " |",
                  "|---|" + "---|---|" * len(modes)]
        for kind in profiles[modes[0]][0]:
            cells = []
            for mode in modes:
                kinds, total = profiles[mode]
                cells.append(f"{kinds[kind] * 1e3:,.0f} | {kinds[kind] / total:.0%}")
            lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    if torch_profile:
        kinds, total = torch_profile
        lines += ["", "## Where the time of a PyTorch medium step goes", "",
                  f"torch.profiler, self CPU time, mean over 3 steps: {total * 1e3:,.0f} ms per "
                  "step. PyTorch runs each LSTM layer (all time steps, forward and backward) in",
                  "one fused oneDNN kernel; tinygraph calls numpy (OpenBLAS) once per op.", "",
                  "| kind of work | ms | share |", "|---|---|---|"]
        for kind, seconds in kinds.items():
            lines.append(f"| {kind} | {seconds * 1e3:,.0f} | {seconds / total:.0%} |")
    if memory:
        lines += ["", "## Peak memory of the medium step", "",
                  "Each implementation in a fresh process (`benchmarks/peak_memory.py`): the",
                  "resident set size of the built model, the peak of the first step (which,",
                  "compiled, is the trace and a replay), then, the peak reset, the peak of the",
                  "next 3 steps; step memory is that peak above the model: what a step needs",
                  "beyond the model, its state and the libraries.", "",
                  "| implementation | model (MB) | first step: peak RSS (MB) | next steps: peak "
                  "RSS (MB) | step memory (MB) |", "|---|---|---|---|---|"]
        for name, r in memory.items():
            lines.append(f"| {name} | {r['model_mb']:,.0f} | {r['first_step_peak_mb']:,.0f} | "
                         f"{r['peak_mb']:,.0f} | {peak_memory.step_memory(r):,.0f} |")
        if "PyTorch" in memory:
            rise = {n: peak_memory.step_memory(r) for n, r in memory.items()}
            lines += ["", "Step memory / PyTorch's: " + ", ".join(
                f"{n} {rise[n] / rise['PyTorch']:.2f}" for n in (EAGER, COMPILED)) + "."]
        lines += ["", "A compiled step's first call traces the step on shapes only (no values) and",
                  "then replays it, so it needs about the memory of a steady step."]
    if flops:
        lines += ["", "## The step's matmuls: GFLOP/s", "",
                  "float32, median of 20 calls each, numpy (OpenBLAS, called as a step calls it:",
                  "one BLAS thread, big products split over tinygraph's workers) and PyTorch",
                  "(MKL) on the same arrays, a pause between the libraries. Where numpy's rate",
                  "is the lower, that product is time a numpy engine loses to PyTorch at the",
                  "BLAS level; where the rates are close, the gap lies elsewhere (the fused LSTM",
                  "kernels, per-op work, memory).", "",
                  "| product | m × k × n | numpy | PyTorch |", "|---|---|---|---|"]
        for name, (m, k, n), ours, theirs in flops:
            lines.append(f"| {name} | {m} × {k} × {n} | {ours:,.0f} | "
                         f"{'' if theirs is None else f'{theirs:,.0f}'} |")
    if source:
        code = source.rstrip("\n").splitlines()
        kernels = source.count("\ndef kernel")
        lines += ["", "## The code a compiled sine step runs", "",
                  "`step.source()` of the batch-1 sine LSTM above (100 units), over a window of",
                  "2 time steps to keep it short (the 30-step program repeats the per-step part):",
                  f"{len(code)} lines, {kernels} fused kernels (numba; without it the same",
                  "function runs op by op). Outside the fused groups each line of `run` is one",
                  "instruction of `step.program()`; see",
                  "[Compiled mode](compiled.md#the-program-as-code).", "",
                  "<details><summary>the generated code</summary>", "", "```python", *code,
                  "```", "", "</details>"]
    path = ROOT / "docs" / "benchmarks.md"
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
