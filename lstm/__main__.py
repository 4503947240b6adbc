"""Command line: `python -m lstm train ...` (and, as they grow, demo and vanishing)."""
import argparse
import dataclasses
import sys
import time

from .checkpoint import CheckpointError
from .data import Corpus
from .train import PRESETS, Trainer, write_summary


def train_command(args):
    preset = PRESETS[args.preset]
    if args.epochs is not None:
        if args.epochs < 1:
            raise ValueError(f"--epochs must be at least 1, got {args.epochs}")
        preset = dataclasses.replace(preset, epochs=args.epochs)
    corpus = Corpus(args.data_dir)
    print(f"corpus: {len(corpus.vocab)} word types; train {len(corpus.ids['train']):,}, "
          f"valid {len(corpus.ids['valid']):,}, test {len(corpus.ids['test']):,} tokens")
    trainer = Trainer(corpus, preset, args.out)
    if args.resume:
        trainer.resume(args.resume)
    start = time.perf_counter()
    history = trainer.run(preset.epochs, progress=not args.no_progress)
    test = trainer.test()
    seconds = time.perf_counter() - start
    print(f"test perplexity of the best model: {test:.2f} ({seconds / 60:.1f} min)")
    path = write_summary(args.out, {"preset": args.preset, "settings": dataclasses.asdict(preset),
                                    "history": history, "test_ppl": test, "seconds": seconds})
    print(f"summary: {path}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lstm",
                                     description="LSTM models built from tinygraph primitives")
    parser.add_argument("--traceback", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train a word-level language model (e.g. on PTB)")
    p.add_argument("--data-dir", required=True, help="folder with ptb.{train,valid,test}.txt")
    p.add_argument("--preset", choices=sorted(PRESETS), default="small")
    p.add_argument("--epochs", type=int)
    p.add_argument("--out", default="runs/lm", help="checkpoints and summary (default %(default)s)")
    p.add_argument("--resume", help="continue from this checkpoint (e.g. runs/lm/last.npz)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=train_command)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (FileNotFoundError, ValueError, CheckpointError, FloatingPointError) as e:
        if args.traceback:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; resume with --resume <out>/last.npz", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
