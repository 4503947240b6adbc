"""Bad input at the command lines: they must exit non-zero with one readable line on stderr
and no traceback (unless --traceback is given). The tables of bad input to the library
itself live with each layer; this file checks that, all together, they are big enough."""
import io
import pathlib
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout

import pytest

from tests.diagrams.test_render_bad_input import CASES as RENDER_CASES
from tests.engine.test_bad_input import CASES as ENGINE_CASES
from tests.lstm.test_lstm_bad_input import CASES as LSTM_CASES

ROOT = pathlib.Path(__file__).resolve().parents[2]
CASES = ENGINE_CASES + RENDER_CASES + LSTM_CASES


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
def test_cli_bad_input_exits_nonzero_with_one_line(module, argv, message, tmp_path,
                                                   corpus_dir):
    corpus = corpus_dir()
    bad = corpus_dir(tmp_path / "bad" / "corpus", raw={"train": b"\xff\xfe\n"}) if (
        tmp_path / "bad").mkdir() is None else None
    argv = [a.format(tmp=tmp_path, corpus=corpus, bad_corpus=bad) for a in argv]
    status, err = run_cli(module, argv, tmp_path)
    assert status not in (0, None)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert message in lines[0] and "Traceback" not in err


@pytest.mark.subprocess
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
