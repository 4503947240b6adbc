"""How much could running independent ops of a compiled step at once gain?

Replays the compiled training step of the small or medium language model (benchmarks/lm_step
settings), times every op of the program, and compares the sum of the op times with the
longest dependency path through the program (each op weighted by its time): no scheduler,
with any number of workers, can finish the step faster than that path. The ops themselves
already split their big products and passes over both cores (tinygraph.ops.parallel), so on
a two-core machine the bound that counts is a two-core schedule where those ops take both
cores and only the small ones can run beside each other (also printed).

    python benchmarks/critical_path.py [--configs small,medium] [--repeats 5]
"""
import argparse
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import lm_step  # noqa: E402

import tinygraph as tg  # noqa: E402
from lstm.models import LanguageModel  # noqa: E402
from tinygraph.optim import SGD  # noqa: E402


def op_times(cfg, repeats):
    """(program, seconds per op) of a warmed-up compiled step."""
    rng = np.random.default_rng(0)
    ids, targets = (rng.integers(0, lm_step.VOCAB, (lm_step.BATCH, lm_step.STEPS))
                    for _ in range(2))
    model = LanguageModel(lm_step.VOCAB, cfg["embed"], cfg["hidden"], cfg["layers"],
                          cfg["dropout"], cfg["tied"], seed=0)
    opt = SGD(model.parameters(), lr=1.0)
    step = tg.compile(model.loss, model.parameters())

    def run():
        opt.zero_grad()
        step(ids, targets)
        opt.step()
    for _ in range(3):
        run()
    program = next(iter(step.programs.values()))
    cost = [0.0] * len(program.steps)

    def timed(k, fn):
        def call(*arrays):
            start = time.perf_counter()
            result = fn(*arrays)
            cost[k] += time.perf_counter() - start
            return result
        return call
    steps, into = program.steps, program.into
    program.steps = [(timed(k, f), ins, out) for k, (f, ins, out) in enumerate(steps)]
    program.into = [None if x is None else (timed(k, x[0]),) + x[1:] for k, x in enumerate(into)]
    for _ in range(repeats):
        run()
    program.steps, program.into = steps, into
    return program, [c / repeats for c in cost]


def longest_path(program, cost):
    producer, finish = {}, []
    for k, (_, ins, out) in enumerate(program.steps):
        start = max((finish[producer[s]] for s in ins if s in producer), default=0.0)
        finish.append(start + cost[k])
        producer[out] = k
    return max(finish)


def two_core_schedule(program, cost, both_cores):
    """The finish time of a greedy list schedule on two cores, in program order of readiness:
    an op in `both_cores` (one that already splits its work over both) takes both cores, any
    other op one. An optimistic bound: no GIL, no hand-off cost."""
    producer, finish = {}, [0.0] * len(cost)
    cores = [0.0, 0.0]                       # when each core is next free
    for k, (_, ins, out) in enumerate(program.steps):
        ready = max((finish[producer[s]] for s in ins if s in producer), default=0.0)
        if k in both_cores:
            start = max(ready, *cores)
            cores = [start + cost[k]] * 2
        else:
            c = min(range(2), key=lambda j: max(cores[j], ready))
            start = max(cores[c], ready)
            cores[c] = start + cost[k]
        finish[k] = start + cost[k]
        producer[out] = k
    return max(finish)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="small,medium")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for name in args.configs.split(","):
        program, cost = op_times(lm_step.CONFIGS[name], args.repeats)
        total, path = sum(cost), longest_path(program, cost)
        # Ops of 150 us or more are the products and passes that already use both cores.
        both = {k for k, c in enumerate(cost) if c >= 150e-6}
        two = two_core_schedule(program, cost, both)
        print(f"{name}: {len(cost)} ops, {total * 1e3:.1f} ms of op time; longest dependency "
              f"path {path * 1e3:.1f} ms (at most {total / path:.2f}x with unlimited cores); "
              f"on two cores, with the {len(both)} ops of 150 us or more already using both: "
              f"{two * 1e3:.1f} ms, at most {total / two:.2f}x")


if __name__ == "__main__":
    main()
