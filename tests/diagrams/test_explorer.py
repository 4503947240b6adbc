"""The explorer page, without a browser: what it embeds and that it is one offline file."""
import base64
import re

import numpy as np
import pytest

import tinygraph as tg
from tinygraph.diagrams import picture
from tinygraph.examples import EXAMPLES, lstm_unrolled


@pytest.fixture(scope="module")
def cell():
    return tg.explore(EXAMPLES["lstm_cell"]())


def by_name(variant, first_line):
    return next(n for n in variant["nodes"] if n["lines"][0] == first_line)


def test_one_self_contained_file_that_asks_for_nothing(cell, tmp_path):
    page = cell.save(tmp_path / "cell.html").read_text(encoding="utf-8")
    # No element loads anything: no src or href attribute, no @import, no fetch of a URL.
    assert not re.search(r"<(script|link|img|iframe)[^>]*\s(src|href)=", page)
    assert "@import" not in page and "fetch(\"http" not in page
    assert page.count("<script") == 3          # the data, Viz.js, the explorer
    assert "Viz.js 3.25.0" in page             # Graphviz in WebAssembly, inline


def test_both_variants_are_embedded_with_the_pictures_boxes(cell):
    outputs = EXAMPLES["lstm_cell"]()
    for name, simplify in (("simplified", True), ("generated", False)):
        expected = picture.build(outputs, "both", simplify)
        variant = cell.data["variants"][name]
        assert [n["lines"] for n in variant["nodes"]] == [n.lines for n in expected.nodes]
        assert variant["backward_count"] == expected.backward_count
    assert cell.data["variants"]["simplified"]["backward_count"] == 30
    assert cell.data["variants"]["generated"]["backward_count"] == 36


def test_values_are_embedded_exactly_in_float32_with_statistics(cell):
    inputs, _ = __import__("tinygraph.examples", fromlist=["x"]).lstm_cell_step()
    variant = cell.data["variants"]["simplified"]
    wx = by_name(variant, "Wx")
    values = np.frombuffer(base64.b64decode(wx["value"]["f32"]), "<f4").reshape(3, 16)
    np.testing.assert_array_equal(values, inputs["Wx"].data.astype(np.float32))
    assert wx["value"]["stats"]["max"] == pytest.approx(inputs["Wx"].data.max())


def test_non_finite_values_are_counted():
    x = tg.tensor(np.array([1.0, 0.0, -1.0]), name="x", requires_grad=True)
    with np.errstate(all="ignore"):
        page = tg.explore(tg.log(x).sum())
    node = by_name(page.data["variants"]["simplified"], "log")
    assert node["value"]["stats"]["nan"] == 1 and node["value"]["stats"]["inf"] == 1


def test_gradient_nodes_carry_the_formula_of_their_vjp(cell):
    variant = cell.data["variants"]["generated"]
    formulas = {n["vjp_rule"] for n in variant["nodes"] if n["vjp_rule"]}
    assert "∂L/∂A_f = ∂L/∂f ⊙ f ⊙ (1 − f)" in formulas                 # sigmoid
    assert "∂L/∂c_prev = ∂L/∂(f⊙c_prev) ⊙ f" in formulas              # the cell-state highway
    assert "∂L/∂Wh = h_prevᵀ · ∂L/∂(h_prev·Wh)" in formulas            # matmul's weight gradient


def test_backward_nodes_are_numbered_in_the_engines_order(cell):
    variant = cell.data["variants"]["generated"]
    ordered = [n for n in variant["nodes"] if "order" in n]
    assert [n["order"] for n in ordered] == list(range(len(ordered)))
    # Every drawn backward node is numbered (a chain of sums is drawn as one Σ).
    assert len(ordered) == sum(n["kind"] in ("backward", "sum") for n in variant["nodes"])
    # The first vjp to run is that of the last forward op: h = o * tanh(c).
    assert ordered[0]["rule"] == "∂L/∂o = upstream ∂L/∂h ⊙ tanh_c"


def test_a_sum_lists_its_running_sums():
    x = tg.tensor(np.array([1.0, 2.0]), name="x", requires_grad=True)
    page = tg.explore((x * 3.0 + x * x).sum(), simplify=False)
    total = next(n for n in page.data["variants"]["generated"]["nodes"] if n["kind"] == "sum")
    last = total["partials"][-1]["value"]
    np.testing.assert_allclose(
        np.frombuffer(base64.b64decode(last["f32"]), "<f4"), 3.0 + 2 * x.data)


def test_time_steps_have_their_state_gradient_norms():
    _, loss = lstm_unrolled(steps=4)
    steps = tg.explore(loss).data["variants"]["simplified"]["time_steps"]
    assert [s["step"] for s in steps] == [1, 2, 3, 4]
    # Each step's h and c are the norms of ∂L/∂h_t and ∂L/∂c_t.
    named = {n.output.name: n.output for n in tg.nodes([loss]) if n.output is not None}
    states = [named[f"{kind}{t}"] for kind in "hc" for t in (1, 2, 3, 4)]
    norms = [float(np.linalg.norm(g.data)) for g in tg.grad(loss, states)]
    np.testing.assert_allclose([s["h"] for s in steps] + [s["c"] for s in steps], norms,
                               rtol=1e-12)
    assert min(norms) > 0
    assert all("c_node" in s for s in steps)
    # ∂L/∂h_t for t < 4 (∂L/∂h4 is the seed): made by step t+1's vjps, filed under step t.
    assert all("h_node" in s for s in steps[:3])


def test_bad_arguments_are_named(cell, tmp_path):
    with pytest.raises(ValueError, match="unknown view 'sideways'"):
        tg.explore(EXAMPLES["lstm_cell"](), view="sideways")
    with pytest.raises(ValueError, match="unknown scope"):
        tg.explore(EXAMPLES["lstm_unrolled"](), collapse=["t=9"])
    with pytest.raises(ValueError, match=r"\.html"):
        cell.save(tmp_path / "cell.svg")


def test_notebooks_get_an_iframe_with_the_page(cell):
    html = cell._repr_html_()
    assert html.startswith("<iframe srcdoc=\"") and "&lt;script" in html


def test_unequal_slices_join_without_running_sums():
    x = tg.tensor(np.ones((2, 5)), name="x", requires_grad=True)
    page = tg.explore(tg.tanh(x[:, :2]).sum() + tg.sigmoid(x[:, 2:]).sum())
    joins = [n for n in page.data["variants"]["simplified"]["nodes"]
             if n["kind"] == "sum" and "partials" not in n]
    assert joins and joins[0]["lines"][1].startswith("concat")


def test_vjp_formulas_follow_the_input_position_and_broadcasting():
    x = tg.tensor(np.array([1.0, 2.0]), name="x", requires_grad=True)
    b = tg.tensor(np.array([0.5]), name="b", requires_grad=True)
    page = tg.explore(((x / x) + (x * b)).sum() + (x ** 3).sum(), simplify=False)
    formulas = {n["vjp_rule"] for n in page.data["variants"]["generated"]["nodes"]
                if n["vjp_rule"]}
    assert "part of ∂L/∂x = ∂L/∂(x/x) / x" in formulas
    assert "part of ∂L/∂x = −∂L/∂(x/x) ⊙ x/x / x" in formulas    # the second input of x / x
    assert "∂L/∂b = sum_to(∂L/∂(x⊙b) ⊙ x)" in formulas           # b was broadcast
    assert any(r.endswith("⊙ 3·x^2") for r in formulas)          # pow with its exponent


def test_a_concat_of_equal_pieces_along_the_last_axis_names_its_pieces(cell):
    joined = by_name(cell.data["variants"]["simplified"], "∂L/∂A")
    assert joined["pieces"] == [{"label": f"A_{gate}", "size": 4} for gate in "fgio"]
    x = tg.tensor(np.ones((2, 3)), name="x", requires_grad=True)
    y = tg.tensor(np.ones((2, 2)), name="y", requires_grad=True)
    rows = tg.explore(tg.ops.concat([x, x], axis=0).sum()).data["variants"]["simplified"]
    unequal = tg.explore(tg.ops.concat([x, y], axis=1).sum()).data["variants"]["simplified"]
    assert not any("pieces" in n for n in rows["nodes"] + unequal["nodes"])
    both = tg.explore(tg.ops.concat([x, x * 2.0], axis=-1).sum()).data["variants"]["simplified"]
    (forward,) = [n for n in both["nodes"] if n["op"] == "concat" and n["kind"] == "op"]
    assert [p["size"] for p in forward["pieces"]] == [3, 3]
