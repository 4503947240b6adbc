"""The README contract and the demo: two set-up commands, CI runs the test one verbatim."""
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def readme_commands():
    blocks = re.findall(r"```\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines()
            if line.strip().startswith("bash ")]


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one():
    commands = readme_commands()
    assert commands == ["bash scripts/demo.sh", "bash scripts/test.sh"]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[1] in [line.strip() for line in ci]


@pytest.mark.subprocess
def test_demo_prints_outputs_gradients_and_backward_nodes_and_draws_them(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tinygraph", "demo", "--out", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for name in ("h =", "c =", "dL/dx", "dL/dh_prev", "dL/dc_prev", "dL/dWx", "dL/dWh", "dL/db"):
        assert name in out
    assert re.search(r"Generated backward graph: \d+ op nodes", out)
    assert "slice_grad" in out and "vjp of slice" in out and "matmul" in out
    assert re.search(r"Simplified: backward nodes: \d+ -> \d+", out)
    suffix = "svg" if shutil.which("dot") else "dot"
    for stem in ("lstm_cell_forward", "lstm_cell_backward", "lstm_cell_backward_generated",
                 "lstm_cell_both"):
        drawing = tmp_path / f"{stem}.{suffix}"
        assert str(drawing) in out and drawing.stat().st_size > 0
    assert "concat axis=1" in (tmp_path / f"lstm_cell_backward.{suffix}").read_text()


@pytest.mark.subprocess
def test_demo_rejects_bad_flags_with_one_line():
    result = subprocess.run([sys.executable, "-m", "tinygraph", "demo", "--hidden-size", "x"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "invalid int value" in result.stderr and "Traceback" not in result.stderr
