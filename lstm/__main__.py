"""Command line: `python -m lstm data | train | generate | seq2seq | export | demo |
vanishing` (see --help of each)."""
import argparse
import dataclasses
import math
import pathlib
import shlex
import sys
import time

from tinygraph.arguments import ArgumentParser, at_least

from .checkpoint import CheckpointError, load_checkpoint
from .train import Interrupted
from .data import Corpus
from .train import PRESETS, Trainer, settings_differences, write_summary


#: The flags of `train` over its preset: flag -> (Preset field, the rule, its check).
TRAIN_FLAGS = {
    "--epochs": ("epochs", "at least 1", lambda v: v >= 1),
    "--lr": ("lr", "> 0", lambda v: math.isfinite(v) and v > 0),
    "--batch-size": ("batch_size", "at least 1", lambda v: v >= 1),
    "--hidden-size": ("hidden_size", "at least 1", lambda v: v >= 1),
    "--layers": ("num_layers", "at least 1", lambda v: v >= 1),
    "--dropout": ("dropout", "at least 0 and below 1", lambda v: 0 <= v < 1),
    "--seed": ("seed", "at least 0", lambda v: v >= 0),
}
TRAIN_HELP = "see python -m lstm train --help"


def train_settings(args):
    """(the preset with the flags given over it, {flag: value} of those flags); a ValueError
    naming the flag and the subcommand's help for a bad value."""
    preset, given = PRESETS[args.preset], {}
    changes = {"dtype": args.dtype}
    for flag, (field, rule, ok) in TRAIN_FLAGS.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is None:
            continue
        if not ok(value):
            raise ValueError(f"lstm train: {flag} must be {rule}, got {value}; {TRAIN_HELP}")
        changes[field], given[flag] = value, value
    if preset.tie_weights and "hidden_size" in changes:
        changes["embed_size"] = changes["hidden_size"]    # tied weights: embedding = hidden
    return dataclasses.replace(preset, **changes), given


def check_resume_settings(path, preset):
    """Refuse, before anything loads, to resume the checkpoint at `path` with settings other
    than those it was made with (only --epochs may change): the message says which flags to
    give to continue it."""
    _, meta = load_checkpoint(path)
    if not meta.get("preset"):
        raise CheckpointError(f"{path} is not a checkpoint of lstm train (it has no language-"
                              "model settings)")
    differ = settings_differences(meta, preset)
    if not differ:
        return
    flags = {field: flag for flag, (field, _, _) in TRAIN_FLAGS.items()} | {"dtype": "--dtype"}
    values = "; ".join(f"{flags.get(k, k)} {saved} there, {now} here"
                       for k, (saved, now) in differ.items())
    same = " ".join(f"{flags[k]} {saved}" for k, (saved, _) in differ.items() if k in flags)
    others = [k for k in differ if k not in flags]
    raise CheckpointError(
        f"lstm train: {path} was made with other settings ({values}); to continue it give "
        + (f"the same flags ({same})" if same else "")
        + (" and " if same and others else "")
        + (f"the preset it was made with ({', '.join(others)} differ)" if others else "")
        + f", or train afresh into another --out; only --epochs may change on resume")


def train_command(args):
    """`train`: train a language model on a corpus folder, then report test perplexity.
    Nothing is written before the flags, the checkpoint to resume and the corpus are checked."""
    preset, given = train_settings(args)
    out = pathlib.Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder for checkpoints")
    if args.resume:
        check_resume_settings(args.resume, preset)    # fails before the corpus loads
    corpus = Corpus(args.data_dir)
    print(f"corpus: {len(corpus.vocab)} word types; train {len(corpus.ids['train']):,}, "
          f"valid {len(corpus.ids['valid']):,}, test {len(corpus.ids['test']):,} tokens")
    trainer = Trainer(corpus, preset, args.out, compiled=not args.eager)
    if args.resume:
        trainer.resume(args.resume)
    out.mkdir(parents=True, exist_ok=True)     # fails now, not after the first 200 batches
    flags = " ".join(f"{flag} {value}" for flag, value in given.items())
    print(f"settings: preset {args.preset}{' with ' + flags if flags else ''}: "
          + ", ".join(f"{k} {v}" for k, v in dataclasses.asdict(preset).items()))
    print(f"training: {len(trainer.batches)} batches of {preset.batch_size} x {preset.steps} "
          f"per epoch, {preset.epochs} epochs; Ctrl-C saves a checkpoint", flush=True)
    start = time.perf_counter()
    history = trainer.run(preset.epochs, progress=not args.no_progress)
    test = trainer.test()
    seconds = time.perf_counter() - start
    print(f"test perplexity of the best model: {test:.2f} ({seconds / 60:.1f} min)")
    path = write_summary(args.out, {"preset": args.preset, "flags": given,
                                    "settings": dataclasses.asdict(preset),
                                    "history": history, "test_ppl": test, "seconds": seconds})
    print(f"summary: {path}")
    return 0


def generate_command(args):
    """`generate`: print text sampled from a trained language model."""
    from .generate import generate_text
    from .train import load_language_model
    if args.words < 0:
        raise ValueError(f"--words must be at least 0, got {args.words}")
    model, vocab = load_language_model(args.checkpoint, args.data_dir)
    print(generate_text(model, vocab, args.start, args.words, args.temperature, args.top_k,
                        args.seed))
    return 0


def seq2seq_command(args):
    """`seq2seq`: train an encoder-decoder on a task made in code, report accuracy."""
    from .seq2seq_train import Seq2seqTrainer, default_settings
    changes = dict(reverse=args.reverse, peeky=args.peeky, attention=args.attention)
    for name in ("epochs", "examples", "held_out", "batch_size", "hidden_size"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    settings = default_settings(args.task, **changes)
    out = pathlib.Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder for checkpoints")
    out.mkdir(parents=True, exist_ok=True)
    if args.resume:
        load_checkpoint(args.resume)           # a bad checkpoint fails before the data is made
    trainer = Seq2seqTrainer(settings, out, compiled=not args.eager)
    if args.resume:
        trainer.resume(args.resume)
    options = [o for o in ("reverse", "peeky", "attention") if getattr(settings, o)]
    print(f"{settings.task}: {len(trainer.train_set):,} training and {len(trainer.test_set):,} "
          f"held-out examples, {settings.epochs} epochs of {trainer.batches} batches of "
          f"{settings.batch_size}; {' + '.join(options) or 'plain'}; Ctrl-C saves a checkpoint",
          flush=True)
    start = time.perf_counter()
    history = trainer.run(progress=not args.no_progress)
    seconds = time.perf_counter() - start
    for question, expected, predicted in trainer.examples(5):
        mark = "ok" if predicted == expected else "WRONG"
        print(f"  {question!r:34} -> {predicted!r:14} expected {expected!r:14} {mark}")
    print(f"held-out accuracy {history[-1]['accuracy']:.2%} ({seconds / 60:.1f} min)")
    if settings.attention:
        from .plots import attention_figure
        figure = attention_figure(trainer.attention_examples(3), out / "attention.png")
        print(f"attention figure: {figure}")
    path = write_summary(out, {"settings": dataclasses.asdict(settings), "history": history,
                               "seconds": seconds})
    print(f"summary: {path}")
    return 0


def export_command(args):
    """`export`: write a checkpoint's model as a PyTorch state_dict file with its config."""
    from .seq2seq_train import load_seq2seq
    from .torch_bridge import describe, to_torch
    from .train import load_language_model
    _, meta = load_checkpoint(args.checkpoint)
    extra = {}
    if meta.get("kind") == "seq2seq":
        model, extra["chars"] = load_seq2seq(args.checkpoint)
    elif "preset" in meta:
        model, vocab = load_language_model(args.checkpoint, args.data_dir)
        extra["words"] = vocab.id_to_word
    else:
        raise CheckpointError(f"{args.checkpoint} is a checkpoint of an unknown model kind "
                              f"({meta.get('kind', 'no kind recorded')}); export knows language "
                              "models (lstm train) and seq2seq models (lstm seq2seq)")
    kind, config = describe(model)
    module = to_torch(model)
    import torch
    out = pathlib.Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": "tinygraph-torch-1", "kind": kind, "config": config,
                "state_dict": module.state_dict(), **extra}, out)
    print(f"wrote {out}: a {kind} ({sum(p.numel() for p in module.parameters()):,} weights); "
          f"rebuild it with lstm.torch_bridge.torch_module(saved['kind'], saved['config'])")
    return 0


def data_command(args):
    """`data ptb`: download the Penn Treebank files into a folder, verified."""
    from .download import BASE_URL, ensure_ptb
    folder = ensure_ptb(args.dir, args.url or BASE_URL)
    print(f"train with: python -m lstm train --data-dir {folder}")
    return 0


def demo_command(args):
    """`demo`: the embedded default (a sine-wave LSTM and its diagrams)."""
    from .demo import run
    run(args.out, steps=args.steps, progress=not args.no_progress)
    return 0


def vanishing_command(args):
    """`vanishing`: print ‖∂L/∂x_t‖ by distance for an RNN and an LSTM and plot it."""
    from . import plots, vanishing
    norms = vanishing.compare(("rnn", "lstm"), hidden_size=args.hidden_size, steps=args.steps,
                              forget_bias=args.forget_bias)
    print(f"‖∂L/∂x_t‖ by distance from the loss ({args.steps} steps, {args.hidden_size} units; "
          f"LSTM forget-gate bias {args.forget_bias:g}):")
    print(f"{'distance':>9} {'RNN':>10} {'LSTM':>10} {'LSTM/RNN':>10}")
    for d in sorted({0, 1, 5, 10, 25, 50, 75, args.steps - 1}):
        if d < args.steps:
            r, l = norms["rnn"][d], norms["lstm"][d]
            print(f"{d:>9} {r:>10.2e} {l:>10.2e} {l / r if r else float('inf'):>10.2e}")
    path = plots.vanishing_figure(norms, args.out)
    print(f"figure: {path}")
    return 0


def main(argv=None):
    """Run the command line with `argv` (default: sys.argv); returns the exit status."""
    parser = ArgumentParser(prog="python -m lstm",
                                     description="LSTM models built from tinygraph primitives")
    parser.add_argument("--traceback", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train a word-level language model (e.g. on PTB)")
    p.add_argument("--data-dir", required=True, help="folder with ptb.{train,valid,test}.txt")
    p.add_argument("--preset", choices=sorted(PRESETS), default="small",
                   help="model and training settings, as in the book (default %(default)s)")
    p.add_argument("--epochs", type=int,
                   help="number of epochs (default: the preset's, 4 small, 40 medium)")
    p.add_argument("--lr", type=float, help="SGD learning rate (default: the preset's, 20)")
    p.add_argument("--batch-size", type=int,
                   help="sequences per batch (default: the preset's, 20)")
    p.add_argument("--hidden-size", type=int,
                   help="LSTM units per layer (default: the preset's, 100 small, 650 medium; "
                        "with tied weights, medium, the embedding gets the same size)")
    p.add_argument("--layers", type=int,
                   help="stacked LSTM layers (default: the preset's, 1 small, 2 medium)")
    p.add_argument("--dropout", type=float,
                   help="dropout probability, 0 to below 1 (default: the preset's, 0 small, "
                        "0.5 medium)")
    p.add_argument("--seed", type=int,
                   help="seed of the weights and dropout: the same seed, the same run "
                        "(default: the preset's, 1)")
    p.add_argument("--out", default="runs/lm", help="checkpoints and summary (default %(default)s)")
    p.add_argument("--resume", help="continue from this checkpoint (e.g. runs/lm/last.npz), "
                   "given the flags it was made with; only --epochs may differ")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                   help="floating-point type of the model (default %(default)s)")
    p.add_argument("--eager", action="store_true",
                   help="run every step eagerly, the reference, instead of the default compiled "
                        "step (traced once and replayed: faster, the same results)")
    p.add_argument("--compile", action="store_true",
                   help="the compiled step (the default; kept for older command lines)")
    p.set_defaults(run=train_command)
    p = sub.add_parser("data", help="download a dataset (ptb: the Penn Treebank files)")
    p.add_argument("dataset", choices=["ptb"], help="ptb: Penn Treebank, the book's version")
    p.add_argument("--dir", required=True, help="the folder to put the files in (created)")
    p.add_argument("--url", help=argparse.SUPPRESS)         # another source (tests, mirrors)
    p.set_defaults(run=data_command)
    p = sub.add_parser("generate", help="print text sampled from a trained language model")
    p.add_argument("--checkpoint", required=True, help="a training checkpoint, e.g. "
                   "runs/small/best.npz (it carries its vocabulary)")
    p.add_argument("--start", required=True, help="the first words, e.g. \"the meaning of\"")
    p.add_argument("--words", type=int, default=50, help="words to add (default %(default)s)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="below 1: likelier words, above: more varied; 0: always the likeliest "
                        "(default %(default)s)")
    p.add_argument("--top-k", type=int, help="sample among the k likeliest words only")
    p.add_argument("--seed", type=int, help="random seed, for repeatable text")
    p.add_argument("--data-dir", help="the corpus folder, only for checkpoints written before "
                   "they carried their vocabulary")
    p.set_defaults(run=generate_command)
    p = sub.add_parser("seq2seq", help="train an encoder-decoder on addition or dates")
    p.add_argument("--task", choices=["addition", "dates"], default="addition",
                   help="addition: \"57+624\" -> \"681\"; dates: \"September 27, 1994\" -> "
                        "\"1994-09-27\" (default %(default)s)")
    p.add_argument("--reverse", action="store_true", help="feed the question reversed")
    p.add_argument("--peeky", action="store_true",
                   help="feed the encoder's summary to every decoder step")
    p.add_argument("--attention", action="store_true", help="an attention decoder")
    p.add_argument("--epochs", type=int, help="default: 25 for addition, 10 for dates")
    p.add_argument("--examples", type=int, help="examples made (default 50,000)")
    p.add_argument("--held-out", type=int, help="of which held out (default 5,000)")
    p.add_argument("--batch-size", type=int, help="default 128")
    p.add_argument("--hidden-size", type=int, help="default 128 (256 for dates)")
    p.add_argument("--out", default="runs/seq2seq", help="checkpoints, summary and figure "
                   "(default %(default)s)")
    p.add_argument("--resume", help="continue from this checkpoint (e.g. runs/seq2seq/last.npz)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--eager", action="store_true", help="run every step eagerly")
    p.set_defaults(run=seq2seq_command)
    p = sub.add_parser("export", help="write a trained model as a PyTorch state_dict file")
    p.add_argument("--checkpoint", required=True, help="a checkpoint of lstm train or seq2seq")
    p.add_argument("--to", choices=["torch"], default="torch", help="the target (torch)")
    p.add_argument("-o", "--output", required=True, help="the file to write, e.g. model.pt")
    p.add_argument("--data-dir", help="the corpus folder, only for language-model checkpoints "
                   "written before they carried their vocabulary")
    p.set_defaults(run=export_command)
    p = sub.add_parser("demo", help="the embedded default: a sine-wave LSTM and its diagrams")
    p.add_argument("--out", default="lstm-demo", help="output folder (default %(default)s)")
    p.add_argument("--steps", type=at_least(1), default=400,
                   help="training steps (default %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=demo_command)

    p = sub.add_parser("vanishing", help="gradient norm against distance: RNN vs LSTM")
    p.add_argument("--steps", type=at_least(2), default=100)
    p.add_argument("--hidden-size", type=at_least(1), default=32)
    p.add_argument("--forget-bias", type=float, default=1.0)
    p.add_argument("--out", default="vanishing_gradients.png")
    p.set_defaults(run=vanishing_command)

    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (OSError, ValueError, TypeError, ImportError, CheckpointError,
            FloatingPointError) as e:
        if args.traceback:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Interrupted as e:
        print(f"interrupted: {e}; to continue: {_resume_command(argv, e.path)}",
              file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        out = getattr(args, "out", None)
        print("interrupted" + (f"; checkpoints written so far are in {out}" if out else ""),
              file=sys.stderr)
        return 130


def _resume_command(argv, checkpoint):
    """This run's command line with `--resume checkpoint` in place of any earlier --resume."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--resume" in args:
        k = args.index("--resume")
        del args[k:k + 2]
    args = [a for a in args if not a.startswith("--resume=")]
    return " ".join(["python -m lstm", *map(shlex.quote, args), "--resume",
                     shlex.quote(str(checkpoint))])


if __name__ == "__main__":
    sys.exit(main())
