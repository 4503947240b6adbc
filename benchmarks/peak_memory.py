"""Peak memory of one training step, each framework in a fresh process.

For each implementation, a child process builds the model (same settings as lm_step.py) and
reads its resident set size (the model, its state and the libraries), runs one warm-up step
(for a compiled step, the trace and a replay) and reads that step's peak, resets the peak,
runs 3 training steps, and reports their peak RSS (VmHWM) and its rise over the size before
the first step: the memory a step needs beyond the model, including what the allocator keeps
from one step to the next.

    python benchmarks/peak_memory.py [--config medium]
"""
import argparse
import json
import pathlib
import resource
import subprocess
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def child(name, config):
    sys.path.insert(0, str(HERE))
    import lm_step
    rng = np.random.default_rng(0)
    ids = rng.integers(0, lm_step.VOCAB, (lm_step.BATCH, lm_step.STEPS))
    targets = rng.integers(0, lm_step.VOCAB, (lm_step.BATCH, lm_step.STEPS))
    builders = {lm_step.EAGER: lm_step.tinygraph_lm, lm_step.COMPILED: lm_step.tinygraph_compiled_lm,
                "numpy (hand-derived)": lm_step.numpy_lm, "PyTorch": lm_step.torch_lm}
    step = builders[name](lm_step.CONFIGS[config], ids, targets)
    model_mb = rss_mb()
    step()                  # warm-up: lazy allocations, and the trace of a compiled step
    first_peak = peak_rss_mb()
    reset_peak_rss()
    before = rss_mb()
    for _ in range(3):
        step()
    print(json.dumps({"model_mb": model_mb, "first_step_peak_mb": first_peak,
                      "before_mb": before, "peak_mb": peak_rss_mb()}))


def reset_peak_rss():
    """Start VmHWM afresh from the current size (Linux: "5" to /proc/self/clear_refs)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss_mb():
    """VmHWM, this process's own high-water mark. (ru_maxrss would not do: on Linux it keeps
    the peak of the parent image across fork and exec.)"""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure(config):
    """{implementation: {"model_mb", "first_step_peak_mb", "before_mb", "peak_mb"}}, each
    measured in a fresh process."""
    names = ["tinygraph eager", "tinygraph compiled", "numpy (hand-derived)"]
    try:
        import torch  # noqa: F401
        names.append("PyTorch")
    except ImportError:
        pass
    results = {}
    for name in names:
        out = subprocess.run([sys.executable, __file__, "--child", name, "--config", config],
                             capture_output=True, text=True, check=True).stdout
        results[name] = json.loads(out.strip().splitlines()[-1])
    return results


def step_memory(result):
    """MB a training step needs beyond the model, its state and the libraries."""
    return result["peak_mb"] - result["model_mb"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="medium", choices=["small", "medium"])
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.config)
        return
    results = measure(args.config)
    print(f"{args.config} LM step, RSS (MB): model / first step's peak / next 3 steps' peak / "
          "step memory (their peak above the model)")
    for name, r in results.items():
        print(f"  {name:<22} {r['model_mb']:8.0f} {r['first_step_peak_mb']:8.0f} "
              f"{r['peak_mb']:8.0f} {step_memory(r):8.0f}")
    if "PyTorch" in results:
        theirs = step_memory(results["PyTorch"])
        for name in ("tinygraph eager", "tinygraph compiled"):
            ours = step_memory(results[name])
            print(f"  step memory {name} / PyTorch: {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
