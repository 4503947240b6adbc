"""The Ops reference page's table (docs/_ext/ops_reference.py), checked without Sphinx: every
public op function has example inputs (so a new op cannot be left out of the page), each row
says what recording the op showed, and a primitive's rule is the explorer's text."""
import importlib.util
import pathlib

import pytest

import tinygraph as tg

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def reference():
    spec = importlib.util.spec_from_file_location(
        "ops_reference", ROOT / "docs" / "_ext" / "ops_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rows(reference):
    return {row.name: row for row in reference.rows()}


def test_every_public_op_function_has_example_inputs(reference):
    assert reference.missing_examples() == []
    names = reference.public_op_functions()
    for name in ("add", "matmul", "einsum", "var", "std", "cross_entropy", "mse_loss"):
        assert name in names
    assert "compile" not in names and "grad" not in names      # not ops: they build no graph


def test_no_example_is_left_for_an_op_that_is_gone(reference):
    assert set(reference.EXAMPLES) <= set(reference.public_op_functions())


def test_a_function_without_examples_fails_the_table(reference, monkeypatch):
    monkeypatch.delitem(reference.EXAMPLES, "einsum")
    with pytest.raises(LookupError, match=r"no example inputs .*'einsum'"):
        reference.rows()


def test_one_row_per_public_op_function_in_the_order_of_all(reference, rows):
    assert list(rows) == reference.public_op_functions()
    assert all(row.summary and row.primitives for row in rows.values())


def test_primitives_show_their_vjp_rule_named_after_the_arguments(rows):
    matmul = rows["matmul"]
    assert matmul.primitive and matmul.primitives == ["matmul"]
    assert matmul.rules == ["∂L/∂a = ∂L/∂y · bᵀ", "∂L/∂b = aᵀ · ∂L/∂y"]
    assert rows["sigmoid"].rules == ["∂L/∂x = ∂L/∂y ⊙ y ⊙ (1 − y)"]
    assert rows["getitem"].primitives == ["slice"]
    assert rows["concat"].rules == ["∂L/∂(tensors[k]) = the piece of ∂L/∂y where the input went"]
    assert rows["heaviside"].primitive and rows["heaviside"].rules == []


def test_compositions_list_the_primitives_they_recorded(rows):
    assert not rows["mean"].primitive and rows["mean"].primitives == ["sum", "mul"]
    assert rows["std"].primitives == ["sum", "mul", "sub", "div", "compare", "where", "sqrt"]
    assert rows["stack"].primitives == ["reshape", "concat"]
    # One recorded matmul, but not einsum's own primitive: still a composition.
    assert not rows["einsum"].primitive and rows["einsum"].primitives == ["matmul"]
    assert all(row.rules == [] for row in rows.values() if not row.primitive)


def test_the_summary_is_the_first_paragraph_of_the_docstring(rows):
    assert rows["var"].summary == tg.var.__doc__.split("\n\n")[0].split("\n")[0]
    assert rows["matmul"].summary == ("Matrix product a @ b; batch dimensions (all but the "
                                      "last two) broadcast.")


def test_code_spans_become_code(reference):
    assert reference.code_spans("Sum over `axis` (an int)") == [
        (False, "Sum over "), (True, "axis"), (False, " (an int)")]
