"""The same measurement on two source trees of tinygraph, side by side in one run.

For a change that must not make things slower (or must make them faster), check out the
old revision beside the new one (`git worktree add ../tinygraph-old <rev>`) and run

    python benchmarks/compare_revisions.py ../tinygraph-old . [--config medium] [--rounds 5]

Each round runs, in a fresh process per tree (alternating, so drifts of a shared machine hit
both alike), a model build, one warm-up step, then timed eager steps, a compiled step's trace
time and peak memory (the eager steps' peak RSS) and, in another fresh process, the peak
memory of the first compiled call (the trace) and of the steady steps. Prints medians per tree and the ratios new / old.
"""
import argparse
import json
import pathlib
import statistics
import subprocess
import sys

CHILD = r'''
import json, sys, time
sys.path.insert(0, {tree!r})
sys.path.insert(0, {tree!r} + "/benchmarks")
import numpy as np
import tinygraph as tg
from tinygraph.optim import SGD, clip_grad_norm
from lstm.models import LanguageModel
import lm_step
from peak_memory import peak_rss_mb, reset_peak_rss
cfg = lm_step.CONFIGS[{config!r}]
rng = np.random.default_rng(0)
ids = rng.integers(0, lm_step.VOCAB, (lm_step.BATCH, lm_step.STEPS))
targets = rng.integers(0, lm_step.VOCAB, (lm_step.BATCH, lm_step.STEPS))
model = LanguageModel(lm_step.VOCAB, cfg["embed"], cfg["hidden"], cfg["layers"], cfg["dropout"],
                      cfg["tied"], seed=0)
opt = SGD(model.parameters(), lr=20.0)

result = {{}}
if {what!r} == "eager":
    def step():          # loss.backward(): the old tree may predate tg.eager_step
        opt.zero_grad()
        model.loss(ids, targets).backward()
        clip_grad_norm(opt.params, 0.25)
        opt.step()
    step()
    reset_peak_rss()
    times = []
    for _ in range({steps}):
        t0 = time.perf_counter(); step(); times.append(time.perf_counter() - t0)
    result["eager_ms"] = 1000 * sorted(times)[len(times) // 2]
    result["eager_peak_mb"] = peak_rss_mb()
else:
    compiled = tg.compile(model.loss, model.parameters())
    reset_peak_rss()
    t0 = time.perf_counter()
    opt.zero_grad(); compiled(ids, targets)
    result["first_call_s"] = time.perf_counter() - t0
    result["first_call_peak_mb"] = peak_rss_mb()
    reset_peak_rss()
    times = []
    for _ in range({steps}):
        t0 = time.perf_counter()
        opt.zero_grad(); compiled(ids, targets); clip_grad_norm(opt.params, 0.25); opt.step()
        times.append(time.perf_counter() - t0)
    result["steady_peak_mb"] = peak_rss_mb()
    result["compiled_ms"] = 1000 * sorted(times)[len(times) // 2]
print(json.dumps(result))
'''


def run(tree, config, what, steps):
    code = CHILD.format(tree=str(pathlib.Path(tree).resolve()), config=config, what=what,
                        steps=steps)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{tree} ({what}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--config", default="medium", choices=["small", "medium"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--what", default="eager,compiled")
    args = parser.parse_args()
    results = {"old": {}, "new": {}}
    for r in range(args.rounds):
        for what in args.what.split(","):
            for label, tree in (("old", args.old), ("new", args.new)):
                for key, value in run(tree, args.config, what, args.steps).items():
                    results[label].setdefault(key, []).append(value)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    print(f"{args.config} LM, medians over {args.rounds} rounds (old: {args.old}, new: {args.new})")
    for key in results["old"]:
        old = statistics.median(results["old"][key])
        new = statistics.median(results["new"][key])
        print(f"  {key:<20} old {old:10.1f}   new {new:10.1f}   new/old {new / old:5.2f}")


if __name__ == "__main__":
    main()
