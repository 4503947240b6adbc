"""Bad input across the public surface, one table: each case must raise a specific exception
type whose message names what was wrong. The command lines must exit non-zero with one
readable line on stderr and no traceback (unless --traceback is given)."""
import io
import json
import pathlib
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

import tinygraph as tg
from tinygraph.transforms.gradcheck import GradcheckError
from tinygraph.nn import Embedding
from lstm.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from lstm.data import BPTTBatches, Corpus, read_words
from lstm.train import Preset, Trainer

ROOT = pathlib.Path(__file__).resolve().parent.parent


@dataclass
class Case:
    name: str
    run: Callable          # run(tmp_path) must raise
    error: type
    match: str             # regex the message must contain


def t(shape, dtype=np.float64, name=None, grad=False):
    return tg.tensor(np.ones(shape, dtype), name=name, requires_grad=grad)


# --- helpers for files ------------------------------------------------------------------------

def corpus_dir(tmp_path, train="a b c\nb c a\n", valid="a b\n", test="c a\n", raw=None):
    d = tmp_path / "corpus"
    d.mkdir(parents=True, exist_ok=True)
    for split, text in (("train", train), ("valid", valid), ("test", test)):
        data = raw.get(split) if raw and split in raw else text.encode()
        if data is not None:
            (d / f"ptb.{split}.txt").write_bytes(data)
    return d


def tiny_trainer(tmp_path, hidden=4, train_text=None):
    text = train_text or " ".join(f"w{k % 5}" for k in range(300)) + "\n"
    corpus = Corpus(corpus_dir(tmp_path, train=text, valid="w1 w2\n" * 20, test="w3 w4\n" * 20))
    preset = Preset(embed_size=hidden, hidden_size=hidden, batch_size=2, steps=5,
                    eval_batch_size=2)
    return Trainer(corpus, preset, tmp_path / "run", log=lambda *a: None)


def saved_checkpoint(tmp_path):
    return tiny_trainer(tmp_path).save("last.npz")


def truncated_checkpoint(tmp_path):
    path = saved_checkpoint(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def tampered_checkpoint(tmp_path):
    """One parameter value changed inside an otherwise well-formed file."""
    path = saved_checkpoint(tmp_path)
    with np.load(path, allow_pickle=False) as f:
        payload = {k: f[k] for k in f.files}
    key = next(k for k in payload if k.startswith("array/param/"))
    payload[key] = payload[key] + 1.0
    with open(path, "wb") as f:
        np.savez(f, **payload)
    return path


def pickled_checkpoint(tmp_path):
    """A file whose array is a pickled object: loading must refuse it, never unpickle it."""
    path = tmp_path / "evil.npz"
    meta = np.frombuffer(json.dumps({"format": "tinygraph-checkpoint-1"}).encode(), np.uint8)
    with open(path, "wb") as f:
        np.savez(f, meta=meta, **{"array/x": np.array([print], dtype=object)})
    return path


def resume(tmp_path, path, **trainer_options):
    tiny_trainer(tmp_path, **trainer_options).resume(path)


# --- the table -------------------------------------------------------------------------------

CASES = [
    # ops: shapes, dtypes, types, empty arrays
    Case("add: shapes that do not broadcast", lambda p: t((2, 3)) + t(4), ValueError,
         r"add: .*\(2, 3\).*\(4,\)"),
    Case("matmul: inner dimensions differ", lambda p: t((2, 3)) @ t((2, 3)), ValueError,
         "inner dimensions 3 and 2"),
    Case("matmul: a 0-d operand", lambda p: tg.matmul(t(()), t(3)), ValueError,
         "at least one dimension"),
    Case("mul: float32 with float64", lambda p: t(3, np.float32) * t(3), TypeError,
         "different dtypes"),
    Case("tanh: a string", lambda p: tg.tanh("a"), TypeError, "tanh: operand of type str"),
    Case("add: None", lambda p: tg.add(t(2), None), TypeError, "NoneType"),
    Case("tensor: strings", lambda p: tg.tensor(["a", "b"]), TypeError, "not numeric"),
    Case("tensor: ragged lists", lambda p: tg.tensor([[1.0], [1.0, 2.0]]), ValueError,
         "inhomogeneous"),
    Case("requires_grad on integers", lambda p: tg.tensor([1, 2], requires_grad=True),
         TypeError, "floating-point data, got dtype int64"),
    Case("reshape: wrong size", lambda p: tg.reshape(t((2, 3)), (4, 2)), ValueError,
         r"cannot reshape .*\(2, 3\) to \(4, 2\)"),
    Case("transpose: not a permutation", lambda p: tg.transpose(t((2, 3)), (0, 0)),
         ValueError, "not a permutation"),
    Case("sum: axis out of range", lambda p: tg.sum(t((2, 3)), axis=2), ValueError,
         "axis 2 is out of range"),
    Case("sum: float axis", lambda p: tg.sum(t(3), axis=1.5), TypeError, "axis must be an int"),
    Case("mean: an empty tensor", lambda p: tg.mean(t((0, 3))), ValueError, "no elements"),
    Case("getitem: float index", lambda p: t(3)[1.5], TypeError, "unsupported index 1.5"),
    Case("getitem: out of bounds", lambda p: t(3)[5], IndexError, "does not fit"),
    Case("getitem: float index array", lambda p: t(3)[np.array([0.5])], TypeError,
         "must hold integers"),
    Case("concat: no tensors", lambda p: tg.concat([]), ValueError, "at least one tensor"),
    Case("concat: shapes differ off the axis", lambda p: tg.concat([t((2, 3)), t((3, 3))], 1),
         ValueError, "concat"),
    Case("log_softmax: 0-d", lambda p: tg.log_softmax(t(())), ValueError,
         "at least one dimension"),
    Case("log_softmax: empty class axis", lambda p: tg.log_softmax(t((2, 0))), ValueError,
         "no entries along axis 1"),
    Case("pow: tensor exponent", lambda p: t(3) ** t(3), TypeError, "must be a constant"),
    Case("cross_entropy: float targets",
         lambda p: tg.cross_entropy(t((2, 4)), np.array([0.0, 1.0])), TypeError,
         "integer class indices"),
    Case("cross_entropy: target out of range",
         lambda p: tg.cross_entropy(t((2, 4)), np.array([0, 4])), ValueError,
         "target 4 is outside the 4 classes"),
    Case("cross_entropy: targets of the wrong shape",
         lambda p: tg.cross_entropy(t((2, 4)), np.array([0, 1, 2])), ValueError,
         r"targets of shape \(3,\)"),
    Case("embedding: id outside the table",
         lambda p: Embedding(5, 3, rng=np.random.default_rng(0))(np.array([1, 5])), ValueError,
         "id 5 is outside the 5 rows"),
    # NaN / Inf
    Case("detect_anomaly: NaN input",
         lambda p: _anomaly(lambda: tg.tanh(tg.tensor([1.0, np.nan], name="x"))),
         FloatingPointError, r"op 'tanh' in the forward pass produced NaN .*already non-finite"),
    Case("detect_anomaly: exp overflows",
         lambda p: _anomaly(lambda: tg.exp(tg.tensor([1e4]))), FloatingPointError,
         "op 'exp' in the forward pass produced Inf"),
    Case("detect_anomaly: backward of sqrt at 0",
         lambda p: _anomaly(lambda: (tg.tensor([0.0, 1.0], requires_grad=True) ** 0.5)
                            .sum().backward()),
         FloatingPointError, "in the backward pass of 'pow' produced Inf"),
    Case("gradcheck: NaN finite differences",
         lambda p: tg.gradcheck(tg.log, [tg.tensor([-1.0], requires_grad=True)]),
         GradcheckError, "nan"),
    # grad / backward
    Case("backward: non-scalar without a seed", lambda p: (t(3, grad=True) * 2.0).backward(),
         ValueError, "not a scalar; pass a seed"),
    Case("backward: nothing requires grad", lambda p: t(3).sum().backward(), ValueError,
         "does not require grad"),
    Case("grad: input not in the graph",
         lambda p: tg.grad(t(3, grad=True).sum(), t(3, name="other", grad=True)), ValueError,
         "'other'.* is not part of the graph"),
    Case("grad: with respect to integers",
         lambda p: tg.grad(t(3, grad=True).sum(), tg.tensor([1, 2])), TypeError,
         "has dtype int64"),
    Case("grad: of an integer output", lambda p: tg.grad(tg.tensor([1, 2]), t(3, grad=True)),
         TypeError, "only floating-point outputs"),
    Case("grad: input that does not require grad",
         lambda p: tg.grad(t(3, grad=True).sum(), t(3, name="c")), ValueError,
         "does not require grad"),
    Case("grad: seed of the wrong shape",
         lambda p: tg.grad(t(3, grad=True) * 2.0, [], grad_outputs=[np.ones(2)]), ValueError,
         r"seed of shape \(2,\)"),
    Case("grad: seed of the wrong dtype",
         lambda p: tg.grad(t(3, grad=True) * 2.0, [], grad_outputs=[np.ones(3, np.float32)]),
         TypeError, "seed dtype float32"),
    Case("grad: not a Tensor", lambda p: tg.grad(np.ones(3), []), TypeError,
         "expected a Tensor or a list of Tensors, got ndarray"),
    # rendering
    Case("render: unknown view", lambda p: tg.render(t(3, grad=True).sum(), view="sideways"),
         ValueError, "unknown view 'sideways'"),
    Case("render: unknown color_by",
         lambda p: tg.render(t(3, grad=True).sum(), color_by="size"), ValueError,
         "unknown color_by 'size'"),
    Case("render: not tensors", lambda p: tg.render("loss"), TypeError, "must be a Tensor"),
    Case("save: unknown file type", lambda p: tg.save(t(3, grad=True).sum(), p / "g.xyz"),
         ValueError, "cannot tell the format"),
    Case("render: collapse an unknown scope",
         lambda p: tg.render(t(3, grad=True).sum(), collapse=["t=9"]), ValueError,
         "unknown scope"),
    Case("save: Graphviz missing", lambda p: _without_dot(
        lambda: tg.save(t(3, grad=True).sum(), p / "g.svg")),
         tg.GraphvizNotFoundError, "Graphviz"),
    # data
    Case("corpus: missing folder", lambda p: Corpus(p / "nowhere"), FileNotFoundError,
         "data directory not found"),
    Case("corpus: missing test file",
         lambda p: Corpus(corpus_dir(p, raw={"test": None})), FileNotFoundError,
         r"corpus file not found: .*ptb\.test\.txt"),
    Case("corpus: empty file", lambda p: Corpus(corpus_dir(p, valid="\n\n")), ValueError,
         r"ptb\.valid\.txt has no words"),
    Case("corpus: not UTF-8",
         lambda p: Corpus(corpus_dir(p, raw={"train": b"caf\xe9 au lait\n"})), ValueError,
         r"ptb\.train\.txt is not UTF-8"),
    Case("corpus: truncated inside a character",
         lambda p: Corpus(corpus_dir(p, raw={"test": "a b caf\u00e9".encode()[:-1]})),
         ValueError, r"ptb\.test\.txt is not UTF-8"),
    Case("corpus: unknown token", lambda p: Corpus(corpus_dir(p, valid="a zebra b\n")),
         ValueError, "valid: token 'zebra' is not in the training vocabulary"),
    Case("batches: corpus too short", lambda p: BPTTBatches(np.arange(10), 4, 5), ValueError,
         "too short"),
    Case("read_words: a folder", lambda p: read_words(p), FileNotFoundError,
         "corpus file not found"),
    # checkpoints
    Case("checkpoint: missing", lambda p: load_checkpoint(p / "none.npz"), FileNotFoundError,
         "checkpoint not found"),
    Case("checkpoint: truncated", lambda p: load_checkpoint(truncated_checkpoint(p)),
         CheckpointError, "not a readable checkpoint"),
    Case("checkpoint: tampered values", lambda p: load_checkpoint(tampered_checkpoint(p)),
         CheckpointError, "digest"),
    Case("checkpoint: pickled objects", lambda p: load_checkpoint(pickled_checkpoint(p)),
         CheckpointError, "pickled Python objects, which are never loaded"),
    Case("checkpoint: a plain npz",
         lambda p: (np.savez(p / "plain.npz", x=np.ones(2)), load_checkpoint(p / "plain.npz")),
         CheckpointError, "not a tinygraph-checkpoint-2 file .it has no metadata"),
    Case("checkpoint: another model",
         lambda p: resume(p, saved_checkpoint(p), hidden=6), CheckpointError,
         "other settings.*embed_size, hidden_size"),
    Case("checkpoint: another vocabulary",
         lambda p: resume(p / "b", saved_checkpoint(p), train_text="w4 w3 w2 w1 w0 " * 60 + "\n"),
         CheckpointError, "another vocabulary"),
    Case("checkpoint: a directory", lambda p: load_checkpoint(p), FileNotFoundError,
         "checkpoint not found"),
    # compiled steps
    Case("compile: input read as values",
         lambda p: tg.compile(lambda x: tg.sum(tg.tensor(x.data) * 1.0 + _W), [_W])(np.ones(2)),
         ValueError, "must use its inputs as Tensors"),
]

_W = tg.Parameter(np.ones(2))


def _anomaly(fn):
    with tg.detect_anomaly():
        fn()


def _without_dot(fn):
    import os
    saved = os.environ.get("PATH", "")
    os.environ["PATH"] = ""
    try:
        fn()
    finally:
        os.environ["PATH"] = saved


@pytest.mark.filterwarnings("ignore::RuntimeWarning")     # numpy's, for the NaN/Inf cases
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input_raises_a_specific_error_naming_it(case, tmp_path):
    with pytest.raises(case.error, match=case.match):
        case.run(tmp_path)


def test_the_table_is_big_enough():
    assert len(CASES) + len(CLI_CASES) >= 40


# --- command lines ---------------------------------------------------------------------------

def run_cli(module, argv, tmp_path):
    """(exit status, stderr) of `python -m module argv` run in-process."""
    main = __import__(f"{module}.__main__", fromlist=["main"]).main
    err, out = io.StringIO(), io.StringIO()
    with redirect_stderr(err), redirect_stdout(out):
        try:
            status = main(argv)
        except SystemExit as e:
            status = e.code
    return status, err.getvalue()


CLI_CASES = [
    ("lstm", ["train"], "the following arguments are required: --data-dir"),
    ("lstm", ["train", "--data-dir", "{tmp}/nowhere"], "data directory not found"),
    ("lstm", ["train", "--data-dir", "{corpus}", "--preset", "huge"], "invalid choice: 'huge'"),
    ("lstm", ["train", "--data-dir", "{corpus}", "--epochs", "0"], "--epochs must be at least 1"),
    ("lstm", ["train", "--data-dir", "{corpus}", "--epochs", "two"], "invalid int value: 'two'"),
    ("lstm", ["train", "--data-dir", "{corpus}", "--resume", "{tmp}/none.npz"],
     "checkpoint not found"),
    ("lstm", ["train", "--data-dir", "{bad_corpus}"], "is not UTF-8"),
    ("lstm", ["fly"], "invalid choice: 'fly'"),
    ("lstm", ["train", "--data-dir", "{corpus}", "--out", "{corpus}/ptb.train.txt"],
     "is a file, not a folder for checkpoints"),
    ("lstm", ["train", "--data-dir", "{corpus}", "--resume", "{corpus}/ptb.valid.txt"],
     "is not a checkpoint (not an .npz archive)"),
    ("lstm", ["vanishing", "--steps", "-3"], "argument --steps: must be at least 2, got -3"),
    ("tinygraph", ["render", "no_such_example", "-o", "{tmp}/g.svg"],
     "unknown example 'no_such_example'"),
    ("tinygraph", ["render", "lstm_cell", "-o", "{tmp}/g.xyz"], "cannot tell the format"),
    ("tinygraph", ["render", "lstm_cell", "--view", "sideways"], "invalid choice: 'sideways'"),
    ("tinygraph", ["render", "lstm_cell"], "render needs -o OUTPUT"),
    ("tinygraph", ["render", "nosuchmodule:f", "-o", "{tmp}/g.svg"],
     "cannot import module 'nosuchmodule'"),
    ("tinygraph", ["render", "lstm_unrolled", "--collapse", "t=9", "-o", "{tmp}/g.svg"],
     "unknown scope"),
    ("tinygraph", ["demo", "--hidden-size", "x"], "invalid int value: 'x'"),
    ("tinygraph", ["demo", "--hidden-size", "0"], "argument --hidden-size: must be at least 1"),
]


@pytest.mark.parametrize("module, argv, message", CLI_CASES,
                         ids=[" ".join(c[:1] + tuple(c[1])) for c in CLI_CASES])
def test_cli_bad_input_exits_nonzero_with_one_line(module, argv, message, tmp_path):
    corpus = corpus_dir(tmp_path)
    bad = corpus_dir(tmp_path / "bad", raw={"train": b"\xff\xfe\n"}) if (
        tmp_path / "bad").mkdir() is None else None
    argv = [a.format(tmp=tmp_path, corpus=corpus, bad_corpus=bad) for a in argv]
    status, err = run_cli(module, argv, tmp_path)
    assert status not in (0, None)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert message in lines[0] and "Traceback" not in err


def test_cli_in_a_real_process_prints_no_traceback_unless_asked(tmp_path):
    def run(*extra):
        return subprocess.run([sys.executable, "-m", "lstm", *extra, "train", "--data-dir",
                               str(tmp_path / "nowhere")], capture_output=True, text=True,
                              cwd=ROOT)
    plain = run()
    assert plain.returncode == 1 and plain.stderr.strip().count("\n") == 0
    assert "Traceback" not in plain.stderr and "data directory not found" in plain.stderr
    verbose = run("--traceback")
    assert verbose.returncode != 0 and "Traceback" in verbose.stderr
