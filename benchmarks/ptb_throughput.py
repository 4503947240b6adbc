"""Training throughput on Penn Treebank, side by side: tinygraph's trainer (compiled, its
default, and eager) against a PyTorch trainer with the same settings.

Each runs `--batches` training batches of the small preset (batch 20 x 35 steps, SGD lr 20,
clipping 0.25, state carried) on ../shared/data/ptb after a short warm-up, in rounds that
alternate the contestants, and reports tokens per second (medians over the rounds) and the
ratios. tinygraph's number is the Trainer's own `train_step` on the trainer's own batches,
so it includes everything the trainer does per step except the progress bar.

    python benchmarks/ptb_throughput.py [--data-dir ../shared/data/ptb] [--batches 100]
"""
import argparse
import pathlib
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))


def tinygraph_runner(corpus, compiled):
    from lstm.train import PRESETS, Trainer
    trainer = Trainer(corpus, PRESETS["small"], tempfile.mkdtemp(), log=lambda *a: None,
                      compiled=compiled)
    position = [0]

    def run(n):
        for _ in range(n):
            trainer.train_step(*trainer.batches.batch(position[0]))
            position[0] += 1
    return run


def _torch_loop(corpus):
    """The PyTorch contestant: tinygraph's small model moved to PyTorch (lstm.to_torch), fed
    the same PTB batches."""
    import torch
    import lstm
    from lstm.data import BPTTBatches
    from lstm.train import PRESETS, build_model
    vocab = len(corpus.vocab)
    batches = BPTTBatches(corpus.ids["train"], 20, 35)
    model = lstm.to_torch(build_model(PRESETS["small"], vocab)).train()
    opt = torch.optim.SGD(model.parameters(), lr=20.0)
    state = [None]
    position = [0]

    def run(n):
        for _ in range(n):
            ids, targets = batches.batch(position[0])
            position[0] += 1
            logits, s = model(torch.as_tensor(ids), state[0])
            state[0] = tuple(x.detach() for x in s)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab),
                                                     torch.as_tensor(targets).reshape(-1))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
            opt.step()
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "ptb"))
    parser.add_argument("--batches", type=int, default=100, help="per round and contestant")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from lstm.data import Corpus
    corpus = Corpus(args.data_dir)
    runners = {"tinygraph compiled": tinygraph_runner(corpus, True),
               "tinygraph eager": tinygraph_runner(corpus, False)}
    try:
        runners["PyTorch"] = _torch_loop(corpus)
    except ImportError:
        print("PyTorch is not installed: tinygraph only")
    for run in runners.values():
        run(5)                  # warm-up: traces, lazy allocations, thread pools
    rates = {name: [] for name in runners}
    tokens = args.batches * 20 * 35
    for _ in range(args.rounds):
        for name, run in runners.items():
            time.sleep(0.5)     # let the previous library's spinning threads settle
            start = time.perf_counter()
            run(args.batches)
            rates[name].append(tokens / (time.perf_counter() - start))
    print(f"PTB small preset, {args.batches} batches x {args.rounds} rounds, tokens/s (median):")
    best = {name: statistics.median(r) for name, r in rates.items()}
    for name, rate in best.items():
        ratio = f"  PyTorch / this {best['PyTorch'] / rate:.2f}" if "PyTorch" in best else ""
        print(f"  {name:<20} {rate:>8,.0f}{ratio}")


if __name__ == "__main__":
    main()
