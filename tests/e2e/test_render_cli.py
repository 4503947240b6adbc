"""`python -m tinygraph render` in a real process: listing, rendering a module's function or
a built-in example, and one-line errors. Moved from tests/diagrams/test_render.py."""
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


def test_cli_lists_the_built_in_examples():
    result = run_cli("render", "--list")
    assert result.returncode == 0
    assert [line.split()[0] for line in result.stdout.splitlines()] == [
        "lstm_cell", "rnn_cell", "lstm_unrolled", "attention_step"]


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
