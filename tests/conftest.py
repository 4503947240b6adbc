import os
import pathlib

import pytest
from hypothesis import HealthCheck, settings

from tests import corpora

# Gradient checks evaluate the function twice per input element: no per-example deadline.
# Derandomized: the same examples on every run, so a pass or a failure is reproducible (a
# random draw once found a composition whose finite differences lose digits at eps=1e-6).
# TG_HYPOTHESIS_RANDOM=1 explores new examples.
settings.register_profile(
    "default", deadline=None, max_examples=int(os.environ.get("TG_HYPOTHESIS_EXAMPLES", 100)),
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=not os.environ.get("TG_HYPOTHESIS_RANDOM"))
settings.load_profile("default")


# --- markers set from where a test lives and what it uses -------------------------------------
# The inner loop (README, under "Set-up"):
#     .venv/bin/python -m pytest -m quick tests/engine tests/transforms tests/diagrams
# slow, torch, subprocess and browser are declared in pyproject.toml; a test file sets slow and
# subprocess itself. The rest is set here, so that no test file has to remember it.

E2E = pathlib.Path(__file__).parent / "e2e"
# Optional dependencies and the browser come in through fixtures (below, and browser in
# tests/e2e/explorer_pages.py): a test that uses one, even through another fixture, is marked.
MARKER_OF_FIXTURE = {"torch": "torch", "onnx": "onnx", "onnxruntime": "onnx",
                     "browser": "browser"}
NOT_QUICK = {"slow", "torch", "onnx", "subprocess", "browser", "e2e"}
MARKERS = {
    "e2e": "lives in tests/e2e: the package as a user meets it (command lines, pages, docs); "
           "set by tests/conftest.py",
    "onnx": "runs an export through onnx / ONNX Runtime (skipped when they are not "
            "installed); set by tests/conftest.py on tests that use the onnx fixtures",
    "quick": "in-process, numpy only, well under half a second: set by tests/conftest.py on "
             "every test with none of " + ", ".join(sorted(NOT_QUICK)),
}


def pytest_configure(config):
    for name, meaning in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {meaning}")


@pytest.hookimpl(tryfirst=True)    # before -m deselects by these markers
def pytest_collection_modifyitems(items):
    for item in items:
        if E2E in item.path.parents:
            item.add_marker("e2e")
        for fixture in MARKER_OF_FIXTURE.keys() & set(item.fixturenames):
            item.add_marker(MARKER_OF_FIXTURE[fixture])
        if not NOT_QUICK & {mark.name for mark in item.iter_markers()}:
            item.add_marker("quick")


# Imported on first use, not when the test files are collected: the inner loop never pays for
# torch (about a second) or onnx.
@pytest.fixture(scope="session")
def torch():
    return pytest.importorskip("torch")


@pytest.fixture(scope="session")
def onnx():
    return pytest.importorskip("onnx")


@pytest.fixture(scope="session")
def onnxruntime():
    return pytest.importorskip("onnxruntime")


# --- small corpora and trainers (the builders live in tests/corpora.py) ----------------------

@pytest.fixture
def corpus_dir(tmp_path):
    """corpus_dir(folder=tmp_path/"corpus", train=..., valid=..., test=..., raw=None): write a
    PTB-like corpus (ptb.{split}.txt) and return its folder. See corpora.write_corpus."""
    def make(folder=None, **texts):
        return corpora.write_corpus(tmp_path / "corpus" if folder is None else folder, **texts)
    return make


@pytest.fixture
def tiny_trainer(tmp_path):
    """tiny_trainer(out="run", corpus=None, compiled=False, **preset): a quiet Trainer on a
    7-word corpus, writing to tmp_path/out. See corpora.tiny_trainer."""
    def make(out="run", **options):
        return corpora.tiny_trainer(tmp_path, out, **options)
    return make


@pytest.fixture
def fault_trainer(tmp_path):
    """fault_trainer(out, **preset): the trainer the fault-injection tests kill and resume."""
    def make(out, **preset):
        return corpora.fault_trainer(tmp_path, out, **preset)
    return make
