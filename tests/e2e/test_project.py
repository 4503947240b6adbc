"""The README's commands do what it says: the inner loop it gives runs in-process tests of the
engine, transforms and diagrams only, a plain pytest run selects everything, and the demo."""
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
HEAVY = {"slow", "torch", "onnx", "subprocess", "browser", "e2e"}
# Collects in this process and prints each test pytest selects or deselects, with its markers,
# then the heavy optional modules that collecting imported (tab-separated: ids hold spaces).
COLLECT = """
import sys, pytest

class Report:
    def pytest_deselected(self, items):
        for item in items:
            print("deselected", item.nodeid, *{m.name for m in item.iter_markers()}, sep="\\t")

    def pytest_collection_finish(self, session):
        for item in session.items:
            print("selected", item.nodeid, *{m.name for m in item.iter_markers()}, sep="\\t")

code = pytest.main(sys.argv[1:], plugins=[Report()])
print("imported", *({"torch", "onnx", "onnxruntime", "playwright"}
                    & {name.partition(".")[0] for name in sys.modules}), sep="\\t")
sys.exit(code)
"""


def readme_command(containing):
    """The README's one fenced command line that contains `containing`, as a list of
    arguments, with this Python for `.venv/bin/python`."""
    blocks = re.findall(r"```\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    (line,) = [line.strip() for block in blocks for line in block.splitlines()
               if containing in line]
    program, *args = shlex.split(line)
    assert program == ".venv/bin/python"
    return args


def collect(*pytest_args):
    """({selected test id: its markers}, {deselected test id: its markers}, the heavy modules
    imported) of a pytest run with these arguments, collected only."""
    result = subprocess.run([sys.executable, "-c", COLLECT, *pytest_args, "--collect-only",
                             "-p", "no:cacheprovider"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    found, imported = {"selected": {}, "deselected": {}}, None
    for kind, *words in (line.split("\t") for line in result.stdout.splitlines()):
        if kind in found:
            found[kind][words[0]] = set(words[1:])
        elif kind == "imported":
            imported = set(words)
    return found["selected"], found["deselected"], imported


@pytest.mark.subprocess
def test_the_readmes_inner_loop_runs_the_in_process_tests_of_three_folders():
    args = readme_command("-m quick")
    assert args[:2] == ["-m", "pytest"]
    selected, deselected, imported = collect(*args[2:])
    assert imported == set()
    assert {test_id.split("/")[1] for test_id in selected} == {
        "engine", "transforms", "diagrams"}
    assert all(markers.isdisjoint(HEAVY) for markers in selected.values())
    # It leaves out what the other markers name, and nothing else.
    assert deselected and all(markers & HEAVY for markers in deselected.values())
    kinds = {kind for markers in deselected.values() for kind in markers & HEAVY}
    assert kinds == {"slow", "torch", "onnx", "subprocess"}
    assert all("torch" in m for t, m in deselected.items() if "test_torch_oracle.py" in t)
    # ONNX's mapping table needs no onnx: it stays in; an export run in ONNX Runtime goes.
    assert "tests/transforms/test_onnx_export.py::test_the_unrolled_lstm_and_its_gradients" \
        in deselected
    assert "tests/transforms/test_onnx_export.py::" \
        "test_every_primitive_is_mapped_or_refused_by_name" in selected


@pytest.mark.subprocess
def test_the_test_scripts_plain_pytest_run_selects_every_test_and_marks_e2e_by_folder():
    """scripts/test.sh (the README's test command, and CI's) runs `pytest "$@"`: with no
    arguments nothing may be left out, browser, subprocess, torch and e2e tests included."""
    selected, deselected, _ = collect()
    assert deselected == {}
    assert {t.split("/")[1] for t in selected} == {
        "engine", "transforms", "diagrams", "lstm", "e2e"}
    e2e = {t for t, markers in selected.items() if "e2e" in markers}
    assert e2e == {t for t in selected if t.startswith("tests/e2e/")}
    assert all("quick" not in selected[t] for t in e2e)


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
