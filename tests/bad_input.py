"""The table of bad input: each case must raise a specific exception type whose message names
what was wrong. One table per layer (tests/engine/test_bad_input.py, tests/diagrams/
test_render_bad_input.py, tests/lstm/test_lstm_bad_input.py, and the command lines in
tests/e2e/test_cli_bad_input.py, which checks the tables' total size)."""
from dataclasses import dataclass
from typing import Callable

import numpy as np

import tinygraph as tg


@dataclass
class Case:
    name: str
    run: Callable          # run(tmp_path) must raise
    error: type
    match: str             # regex the message must contain


def t(shape, dtype=np.float64, name=None, grad=False):
    return tg.tensor(np.ones(shape, dtype), name=name, requires_grad=grad)
