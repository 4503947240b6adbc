"""tg.explore_diff (issue 21, point 8): two backward graphs side by side, their nodes matched
(by the same tensor, by what they are the gradient of, then by structure), checked on the
page's data without a browser: generated vs simplified LSTM cell, LSTM vs GRU cell, first vs
second order; bad input; the command line. The GRU cell example the diff compares with is
checked against numpy here too. The page in a browser: tests/e2e/test_explorer_diff.py."""
import json
import re

import numpy as np
import pytest

import tinygraph as tg
from tinygraph.__main__ import main
from tinygraph.examples import EXAMPLES, gru_cell, gru_cell_step, lstm_cell_step, parameters

LEAVES_LSTM = ("x", "h_prev", "c_prev", "Wx", "Wh", "b")
SHARED = ("x", "h_prev", "Wx", "Wh", "b")     # the leaves the LSTM and GRU cells name alike


def pairs_by_gradient(page):
    """{name: (A's node, B's node)} for the matched pairs of whole gradients (∂L/∂name)."""
    a, b = page.data["sides"]
    found = {}
    for pair in page.data["pairs"]:
        x, y = a["nodes"][pair["a"]], b["nodes"][pair["b"]]
        if x["grad_of"] is not None and not x["lines"][0].startswith("part of"):
            found[x["grad_of"]] = (x, y, pair["by"])
    return found


def only(page, side):
    return [n for n in page.data["sides"][side]["nodes"] if n["pair"] is None]


def assert_consistent(page):
    """The pairs are one-to-one, each node knows its pair's number, the counts add up."""
    a, b = page.data["sides"]
    pairs = page.data["pairs"]
    assert len({p["a"] for p in pairs}) == len({p["b"] for p in pairs}) == len(pairs)
    for number, pair in enumerate(pairs, start=1):
        assert a["nodes"][pair["a"]]["pair"] == b["nodes"][pair["b"]]["pair"] == number
    counts = page.data["counts"]
    assert counts == {"matched": len(pairs), "only_a": len(only(page, 0)),
                      "only_b": len(only(page, 1))}
    assert counts["matched"] + counts["only_a"] == len(a["nodes"])


# --- the GRU cell example ----------------------------------------------------------------------
def gru_numpy(x, h, Wx, Wh, b, bh):
    """PyTorch's GRU equations, gate order r, z, n, written independently in numpy."""
    sigmoid = lambda v: 1 / (1 + np.exp(-v))
    H = h.shape[1]
    gx, gh = x @ Wx + b, h @ Wh + bh
    r = sigmoid(gx[:, :H] + gh[:, :H])
    z = sigmoid(gx[:, H:2 * H] + gh[:, H:2 * H])
    n = np.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
    return (1 - z) * n + z * h


@pytest.mark.parametrize("sizes", [{}, {"batch": 3, "input_size": 5, "hidden_size": 2, "seed": 4}])
def test_the_gru_cell_example_computes_pytorchs_equations(sizes):
    inputs, h = gru_cell_step(**sizes)
    arrays = {k: t.data for k, t in inputs.items()}
    expected = gru_numpy(*(arrays[k] for k in ("x", "h_prev", "Wx", "Wh", "b", "bh")))
    np.testing.assert_allclose(h.data, expected, rtol=1e-12, atol=1e-12)
    assert h.name == "h" and h.shape == (sizes.get("batch", 2), sizes.get("hidden_size", 4))
    assert isinstance(inputs["Wh"], tg.Parameter) and not isinstance(inputs["x"], tg.Parameter)
    # Its gradients too: the vjps of the primitives it is built from, against differences.
    assert tg.gradcheck(gru_cell, [arrays[k] for k in ("x", "h_prev", "Wx", "Wh", "b", "bh")])


def test_the_gru_cell_example_is_registered_with_parameters_like_the_others():
    assert parameters("gru_cell") == {"batch": 2, "input_size": 3, "hidden_size": 4, "seed": 0}
    assert EXAMPLES["gru_cell"](hidden_size=5).shape == (2, 5)
    with pytest.raises(ValueError, match="hidden_size must be an integer >= 1, got 0"):
        EXAMPLES["gru_cell"](hidden_size=0)


# --- matching ----------------------------------------------------------------------------------
def test_generated_vs_simplified_lstm_cell_matches_every_leaf_gradient():
    out = EXAMPLES["lstm_cell"]()
    page = tg.explore_diff(out, out, variants=("generated", "simplified"))
    assert_consistent(page)
    grads = pairs_by_gradient(page)
    for leaf in LEAVES_LSTM:
        a, b, _ = grads[leaf]
        assert a["grad_of"] == b["grad_of"] == leaf
        assert a["lines"][0] == b["lines"][0] == f"∂L/∂{leaf}"
    # The gate gradients re-joined: generated Σ of four slice_grads, simplified one concat.
    a, b, by = grads["A"]
    assert (a["op"], b["op"], by) == ("add", "concat", "the gradient of A")
    assert sorted(n["op"] for n in only(page, 0)) == ["slice_grad"] * 4
    assert only(page, 1) == []
    # Forward values drawn in both are the very same tensors.
    a_nodes, b_nodes = (s["nodes"] for s in page.data["sides"])
    same = {a_nodes[p["a"]]["name"] for p in page.data["pairs"] if p["by"] == "same tensor"}
    assert {"x", "Wx", "Wh", "c_prev", "f", "o", "tanh_c"} <= same


def test_lstm_vs_gru_matches_the_gradients_of_the_leaves_they_share():
    page = tg.explore_diff(EXAMPLES["lstm_cell"](), EXAMPLES["gru_cell"](),
                           labels=("LSTM", "GRU"))
    assert_consistent(page)
    grads = pairs_by_gradient(page)
    for leaf in SHARED:
        a, b, by = grads[leaf]
        assert a["grad_of"] == b["grad_of"] == leaf and by == f"the gradient of {leaf}"
    # ∂L/∂h_prev is one matmul in the LSTM cell and a Σ of two uses in the GRU cell.
    assert (grads["h_prev"][0]["kind"], grads["h_prev"][1]["kind"]) == ("backward", "sum")
    assert set(grads) == set(SHARED)          # no gate of one is taken for a gate of the other
    only_a = {n["grad_of"] for n in only(page, 0)}
    only_b = {n["grad_of"] for n in only(page, 1)}
    assert {"c_prev", "f", "g", "i", "o", "c"} <= only_a
    assert {"bh", "r", "z", "n"} <= only_b
    assert page.data["sides"][0]["label"] == "LSTM" and "LSTM (simplified) vs GRU" in \
        page.data["title"]


def second_order():
    inputs, (h, c) = lstm_cell_step()
    loss = (h * h).sum() + c.sum()
    first, = tg.grad(loss, [inputs["x"]], create_graph=True)
    second, = tg.grad((first * first).sum(), [inputs["x"]], create_graph=True)
    return first, second


def test_first_vs_second_order_finds_the_first_order_graph_inside_the_second():
    first, second = second_order()
    page = tg.explore_diff(first, second, variants="generated")
    assert_consistent(page)
    counts = page.data["counts"]
    # Differentiating the first-order graph again reuses all of it and adds more.
    assert counts["only_a"] == 0 and counts["only_b"] > counts["matched"] > 20
    assert {p["by"] for p in page.data["pairs"]} == {"same tensor"}
    a, b = page.data["sides"]
    root = next(n for n in a["nodes"] if n["lines"][0] == "∂L/∂x")
    assert b["nodes"][page.data["pairs"][root["pair"] - 1]["b"]]["lines"][0] == "∂L/∂x"
    # Simplified, each side is rewritten anew: the first-order graph is still found in the
    # second, by meaning and structure.
    page = tg.explore_diff(first, second)
    assert_consistent(page)
    assert page.data["counts"]["only_a"] == 0
    assert "∂L/∂x" in {a_node["lines"][0] for a_node in page.data["sides"][0]["nodes"]
                        if a_node["pair"] is not None}


def two_graphs(activation):
    x = tg.tensor(np.array([0.5, -1.0]), name="x", requires_grad=True)
    w = tg.tensor(np.array([2.0, 0.3]), name="w", requires_grad=True)
    return activation(x * w).sum()


def test_made_up_names_match_only_within_one_forward_graph():
    # x*w is unnamed: the diagram makes up its name in both graphs, but in two different
    # graphs that name says nothing, so ∂L/∂(x*w) is not matched by it.
    page = tg.explore_diff(two_graphs(tg.tanh), two_graphs(tg.sigmoid), variants="generated")
    hows = {page.data["sides"][0]["nodes"][p["a"]]["grad_of"]: p["by"]
            for p in page.data["pairs"]}
    assert hows["x"] == "the gradient of x" and hows["w"] == "the gradient of w"
    made_up = [of for of in hows if of not in ("x", "w", None)]
    assert made_up and all(not hows[of].startswith("the gradient") for of in made_up)
    out = two_graphs(tg.tanh)
    page = tg.explore_diff(out, out, variants=("generated", "simplified"))
    hows = {page.data["sides"][0]["nodes"][p["a"]]["grad_of"]: p["by"]
            for p in page.data["pairs"]}
    assert hows["x"] == "the gradient of x"


def test_the_unrolled_lstm_matches_step_by_step():
    out = EXAMPLES["lstm_unrolled"]()
    page = tg.explore_diff(out, out, variants=("generated", "simplified"))
    assert_consistent(page)
    a, b = page.data["sides"]
    for pair in page.data["pairs"]:       # a node of step t is matched within step t
        assert a["nodes"][pair["a"]]["scope"] == b["nodes"][pair["b"]]["scope"]
    grads = pairs_by_gradient(page)
    assert {"Wx", "Wh", "b", "x1", "x2", "x3", "c1", "c2", "h1", "h2"} <= set(grads)


def test_the_page_embeds_the_data_escaped_and_offline():
    page = tg.explore_diff(EXAMPLES["rnn_cell"](), EXAMPLES["rnn_cell"](),
                           labels=("a</script>", "B"), title="<b>rnn</b>")
    found = re.search(r'<script type="application/json" id="tinygraph-data">(.*?)</script>',
                      page.html, re.S)
    assert json.loads(found.group(1)) == json.loads(json.dumps(page.data))
    assert "<" not in found.group(1)
    assert "&lt;b&gt;rnn&lt;/b&gt;" in page.html
    assert not re.search(r'(src|href)="https?:', page.html)
    assert "srcdoc" in page._repr_html_()


# --- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("call, error, message", [
    (lambda out: tg.explore_diff(out, 3), TypeError,
     "explore_diff: B must be a Tensor or a non-empty list of Tensors, got int"),
    (lambda out: tg.explore_diff([], out), TypeError, "explore_diff: A must be a Tensor"),
    (lambda out: tg.explore_diff(out, out, variants=("generated", "raw")), ValueError,
     "variants must be two of generated, simplified"),
    (lambda out: tg.explore_diff(out, out, variants=("generated",)), ValueError,
     "variants must be two of"),
    (lambda out: tg.explore_diff(out, out, labels=("only one",)), ValueError,
     "labels must be two non-empty strings"),
    (lambda out: tg.explore_diff(out, out, view="sideways"), ValueError,
     "unknown view 'sideways'; choose one of forward, backward, both"),
    (lambda out: tg.explore_diff(out, tg.tensor(np.ones(2)) * 2), ValueError,
     "explore_diff: B: nothing requires grad"),
    (lambda out: tg.explore_diff(out, out).save("diff.svg"), ValueError,
     "explore_diff: save to a file ending in .html"),
])
def test_bad_input_is_one_clear_error(call, error, message):
    with pytest.raises(error, match=re.escape(message)):
        call(EXAMPLES["rnn_cell"]())


# --- the command line --------------------------------------------------------------------------
def embedded(path):
    text = path.read_text(encoding="utf-8")
    found = re.search(r'id="tinygraph-data">(.*?)</script>', text, re.S)
    return json.loads(found.group(1))


def test_cli_writes_the_diff_of_two_examples(tmp_path, capsys):
    out = tmp_path / "diff.html"
    assert main(["diff", "lstm_cell", "gru_cell", "--hidden-size", "5", "--forget-bias", "1",
                 "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    data = embedded(out)
    assert [s["label"] for s in data["sides"]] == ["lstm_cell", "gru_cell"]
    assert data["title"] == "tinygraph diff: lstm_cell (simplified) vs gru_cell (simplified)"
    # --hidden-size reached both sides; --forget-bias only the LSTM, which takes it.
    shapes = [{n["name"]: n["shape"] for n in s["nodes"] if n["kind"] == "parameter"}
              for s in data["sides"]]
    assert shapes[0]["Wh"] == [5, 20] and shapes[1]["Wh"] == [5, 15]
    assert data["counts"]["matched"] == len(data["pairs"]) > 5


def test_cli_compares_one_example_generated_with_simplified(tmp_path, capsys):
    out = tmp_path / "gs.html"
    assert main(["diff", "lstm_cell", "lstm_cell", "--a-variant", "generated", "-o",
                 str(out)]) == 0
    data = embedded(out)
    assert [s["variant"] for s in data["sides"]] == ["generated", "simplified"]
    assert data["counts"]["only_a"] == 4 and data["counts"]["only_b"] == 0
    # One graph built once: its forward values are the same tensors on both sides.
    assert "same tensor" in {p["by"] for p in data["pairs"]}


@pytest.mark.parametrize("args, status, message", [
    (["diff", "lstm_cell", "nope"], 2, "error: unknown example 'nope'"),
    (["diff", "lstm_cell", "gru_cell", "-o", "d.svg"], 2, "error: diff writes an .html file"),
    (["diff", "lstm_cell", "gru_cell", "--steps", "3"], 2,
     "error: lstm_cell has no parameter --steps; lstm_cell's parameters (defaults)"),
    (["diff", "lstm_cell", "gru_cell", "--hidden-size", "0"], 2,
     "error: lstm_cell: --hidden-size must be an integer >= 1, got '0'"),
    (["diff", "lstm_cell", "nomodule_xyz:build"], 2, "error: cannot import module"),
])
def test_cli_bad_input_is_one_line(args, status, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == status
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
    assert not (tmp_path / "diff.html").exists()
