"""The README's PTB training command against PyTorch with the same settings, whole runs.

Runs, one after the other in fresh processes, on the same machine:
- tinygraph: `python -m lstm train --data-dir D --preset small --out TMP` exactly as the
  README gives it (its default mode), timed from start to the printed test perplexity;
- PyTorch: the same model (embedding 100, one LSTM layer of 100, linear 10,000) from the same
  initial weights (tinygraph's initial model moved over by lstm.to_torch), batches
  (20 x 35, reading on across epochs, state carried), SGD lr 20 with clipping 0.25, the
  learning rate divided by 4 when validation perplexity does not improve, the best model by
  validation tested, evaluation with batches of 10 x 35.

Prints wall time and test perplexity of each, the ratio, and the test perplexity of the
PyTorch model brought into tinygraph with lstm.from_torch. Takes two runs' time (about 7
minutes on the project machine).

    python benchmarks/ptb_full_run.py [--data-dir ../shared/data/ptb] [--epochs 4]
"""
import argparse
import json
import math
import pathlib
import re
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run_readme_command(data_dir, epochs):
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "lstm", "train", "--data-dir", data_dir,
                   "--preset", "small", "--out", out]
        if epochs != 4:
            command += ["--epochs", str(epochs)]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"tinygraph run failed:\n{done.stderr[-2000:]}")
        test = float(re.search(r"test perplexity of the best model: ([\d.]+)",
                               done.stdout).group(1))
    return seconds, test


def torch_training(data_dir, epochs):
    """The PyTorch twin (module docstring): (seconds, test perplexity, test perplexity of
    the trained model imported into tinygraph)."""
    import torch
    sys.path.insert(0, str(ROOT))
    import lstm
    from lstm.data import BPTTBatches, Corpus
    from lstm.train import PRESETS, build_model, perplexity as tinygraph_perplexity
    start = time.perf_counter()
    torch.manual_seed(1)
    corpus = Corpus(data_dir)
    vocab = len(corpus.vocab)

    def loss_of(model, ids, targets, state):
        logits, state = model(torch.as_tensor(ids), state)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab),
                                                 torch.as_tensor(targets).reshape(-1))
        return loss, tuple(s.detach() for s in state)

    def perplexity(model, split):
        model.eval()
        total, count, state = 0.0, 0, None
        with torch.no_grad():
            for ids, targets in BPTTBatches(corpus.ids[split], 10, 35):
                loss, state = loss_of(model, ids, targets, state)
                total, count = total + float(loss), count + 1
        model.train()
        return math.exp(total / count)

    # tinygraph's initial model (the book's initialisation), moved to PyTorch by the bridge.
    model = lstm.to_torch(build_model(PRESETS["small"], vocab)).train()
    opt = torch.optim.SGD(model.parameters(), lr=20.0)
    batches = BPTTBatches(corpus.ids["train"], 20, 35)
    best, best_state, state = math.inf, None, None
    for epoch in range(epochs):
        for position in range(len(batches)):
            loss, state = loss_of(model, *batches.batch(epoch * len(batches) + position), state)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
            opt.step()
        valid = perplexity(model, "valid")
        if valid < best:
            best, best_state = valid, {k: v.clone() for k, v in model.state_dict().items()}
        else:
            for group in opt.param_groups:
                group["lr"] /= 4
    model.load_state_dict(best_state)
    test = perplexity(model, "test")
    seconds = time.perf_counter() - start
    # The trained PyTorch model brought into tinygraph (lstm.from_torch) scores the same.
    imported = tinygraph_perplexity(lstm.from_torch(model.eval()), corpus.ids["test"])
    return seconds, test, imported


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "ptb"))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--torch-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_only:         # the child process of the PyTorch run
        print(json.dumps(torch_training(args.data_dir, args.epochs)))
        return
    results = {"tinygraph (README command)": run_readme_command(args.data_dir, args.epochs)}
    child = subprocess.run([sys.executable, __file__, "--torch-only", "--data-dir",
                            args.data_dir, "--epochs", str(args.epochs)],
                           capture_output=True, text=True)
    imported = None
    if child.returncode == 0:
        *torch_result, imported = json.loads(child.stdout.splitlines()[-1])
        results["PyTorch"] = tuple(torch_result)
    else:
        print(f"PyTorch run failed or is not installed:\n{child.stderr[-1000:]}")
    print(f"PTB small preset, {args.epochs} epochs, whole runs:")
    for name, (seconds, test) in results.items():
        print(f"  {name:<28} {seconds / 60:6.2f} min   test perplexity {test:.2f}")
    if len(results) == 2:
        ours, theirs = results.values()
        print(f"  time ratio tinygraph / PyTorch: {ours[0] / theirs[0]:.2f}")
        print(f"  the PyTorch model imported into tinygraph (lstm.from_torch): test perplexity "
              f"{imported:.2f}")


if __name__ == "__main__":
    main()
