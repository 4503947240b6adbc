"""`python -m tinygraph render` in a real process: listing, rendering a module's function or
a built-in example, and one-line errors. Moved from tests/diagrams/test_render.py."""
import re
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.subprocess     # every test here starts python -m tinygraph
needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz 'dot' is not installed (CI installs it)")


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tinygraph", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def test_cli_lists_the_built_in_examples_with_their_parameters():
    result = run_cli("render", "--list")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines if not line.startswith(" ")] == [
        "lstm_cell", "rnn_cell", "gru_cell", "lstm_unrolled", "attention_step"]
    # Each example's line is followed by an indented line of its options and defaults.
    options = {lines[k].split()[0]: lines[k + 1].split() for k in range(0, len(lines), 2)}
    assert options["lstm_unrolled"] == ["--steps", "3", "--batch", "2", "--input-size", "3",
                                        "--hidden-size", "4", "--seed", "0",
                                        "--forget-bias", "0.0"]
    assert "--steps" not in options["rnn_cell"] and "--forget-bias" not in options["rnn_cell"]
    assert "--steps" not in options["lstm_cell"] and "--forget-bias" in options["lstm_cell"]


def test_cli_renders_a_module_function(tmp_path):
    (tmp_path / "mygraph.py").write_text(
        "import numpy as np\nimport tinygraph as tg\n\n"
        "def build():\n"
        "    x = tg.tensor(np.ones(3), name='x', requires_grad=True)\n"
        "    return (tg.tanh(x) * x).sum()\n")
    result = run_cli("render", "mygraph:build", "--view", "both", "-o", "out.dot", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    dot = (tmp_path / "out.dot").read_text()
    assert "tanh" in dot and "∂L/∂x" in dot


@needs_dot
def test_cli_renders_an_example_to_svg(tmp_path):
    result = run_cli("render", "lstm_unrolled", "--view", "backward", "--collapse", "t=1",
                     "-o", str(tmp_path / "u.svg"))
    assert result.returncode == 0, result.stderr
    assert "<svg" in (tmp_path / "u.svg").read_text()


@pytest.mark.parametrize("args, code, message", [
    (("render", "nosuchmodule:f", "-o", "x.svg"), 2, "cannot import module 'nosuchmodule'"),
    (("render", "nosuch", "-o", "x.svg"), 2, "unknown example 'nosuch'"),
    (("render", "lstm_cell"), 2, "needs -o OUTPUT"),
    (("render", "-o", "x.svg"), 2, "needs a target"),
    (("render", "lstm_cell", "-o", "x.jpg"), 1, "cannot tell the format"),
    (("render", "lstm_unrolled", "--collapse", "t=7", "-o", "x.dot"), 1, "unknown scope"),
])
def test_cli_errors_are_one_line(args, code, message, tmp_path):
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == code
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# --- the built-in examples' parameters (issue 21) -----------------------------------------------

def test_cli_renders_an_example_with_parameters_to_dot(tmp_path):
    result = run_cli("render", "lstm_unrolled", "--steps", "20", "--forget-bias", "1",
                     "--view", "forward", "-o", str(tmp_path / "u.dot"))
    assert result.returncode == 0, result.stderr
    dot = (tmp_path / "u.dot").read_text()
    assert re.findall(r'label="(t=\d+)"', dot) == [f"t={k}" for k in range(1, 21)]


@needs_dot
def test_cli_renders_an_example_with_parameters_to_svg(tmp_path):
    result = run_cli("render", "lstm_unrolled", "--steps", "20", "--forget-bias", "1",
                     "--collapse", "t=20", "-o", str(tmp_path / "u.svg"))
    assert result.returncode == 0, result.stderr
    svg = (tmp_path / "u.svg").read_text()
    assert "<svg" in svg and "t=20" in svg and "t=21" not in svg


def test_cli_explores_an_example_with_parameters(tmp_path):
    result = run_cli("explore", "lstm_unrolled", "--steps", "20", "--forget-bias", "1",
                     "-o", str(tmp_path / "page.html"))
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "page.html").read_text()
    assert "t=20" in page and "t=21" not in page
    assert "<title>tinygraph explorer: lstm_unrolled (" in page and "steps=20" in page


def test_cli_exports_an_example_with_parameters(tmp_path):
    pytest.importorskip("onnx")
    result = run_cli("export-onnx", "attention_step", "--steps", "5", "--view", "forward",
                     "-o", str(tmp_path / "a.onnx"))
    assert result.returncode == 0, result.stderr
    assert "hs5" in result.stdout and "hs6" not in result.stdout


UNROLLED = ("lstm_unrolled's parameters (defaults): --steps 3  --batch 2  --input-size 3  "
            "--hidden-size 4  --seed 0  --forget-bias 0.0")


@pytest.mark.parametrize("args, message", [
    (("render", "lstm_unrolled", "--steps", "0"),
     "lstm_unrolled: --steps must be an integer >= 1, got '0'; " + UNROLLED),
    (("explore", "lstm_unrolled", "--forget-bias", "nan"),
     "lstm_unrolled: --forget-bias must be a finite number, got 'nan'; " + UNROLLED),
    (("render", "lstm_unrolled", "--forget-bias=-inf"),
     "lstm_unrolled: --forget-bias must be a finite number, got '-inf'; " + UNROLLED),
    (("render", "lstm_unrolled", "--steps", "2.5"),
     "lstm_unrolled: --steps must be an integer, got '2.5'; " + UNROLLED),
    (("explore", "lstm_unrolled", "--forget-bias", "big"),
     "lstm_unrolled: --forget-bias must be a number, got 'big'; " + UNROLLED),
    (("render", "lstm_unrolled", "--seed", "-1"),
     "lstm_unrolled: --seed must be an integer >= 0, got '-1'; " + UNROLLED),
    (("render", "rnn_cell", "--steps", "20"),
     "rnn_cell has no parameter --steps; rnn_cell's parameters (defaults): --batch 2  "
     "--input-size 3  --hidden-size 4  --seed 0"),
    (("explore", "lstm_cell", "--steps", "20"), "lstm_cell has no parameter --steps; "
     "lstm_cell's parameters (defaults): --batch 2"),
    (("render", "rnn_cell", "--forget-bias", "1"), "rnn_cell has no parameter --forget-bias"),
    (("render", "mygraph:build", "--steps", "3"), "--steps: example parameters apply to the "
     "built-in examples (lstm_cell, rnn_cell, gru_cell, lstm_unrolled, attention_step), not to "
     "mygraph:build"),
    (("export-onnx", "attention_step", "--hidden-size", "0"),
     "attention_step: --hidden-size must be an integer >= 1, got '0'"),
])
def test_cli_example_parameter_errors_are_one_line(args, message, tmp_path):
    suffix = {"render": "x.dot", "explore": "x.html", "export-onnx": "x.onnx"}[args[0]]
    result = run_cli(*args, "-o", str(tmp_path / suffix), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / suffix).exists()
