"""The explorer in a real browser (Debian's Chromium driven by Playwright; never a
downloaded browser): offline, complete, and doing what the page says."""
import numpy as np
import pytest

import tinygraph as tg
from tinygraph.examples import EXAMPLES, lstm_cell_step, lstm_unrolled

from tests.e2e.explorer_pages import model_nodes

pytestmark = pytest.mark.browser


def test_every_node_of_the_model_is_drawn_offline(open_page):
    page = open_page(EXAMPLES["lstm_cell"](), view="both")
    assert page.drawn() == len(model_nodes(page))
    page.page.click("button[data-variant=generated]")
    assert page.drawn() == len(model_nodes(page, "generated"))
    page.page.click("button[data-view=forward]")
    assert page.drawn() == sum(n["kind"] in ("op", "tensor", "parameter")
                               for n in model_nodes(page, "generated"))
    assert "36" in page.page.inner_text("button[data-variant=generated]")


def test_a_time_step_collapses_to_one_box_and_expands_again(open_page):
    page = open_page(EXAMPLES["lstm_unrolled"](), name="unrolled", view="both")
    page.page.select_option("#zoom", "fit")     # the zoom this test was written for
    total = page.drawn()
    in_t2 = sum(1 for n in model_nodes(page) if n["scope"][:1] == ["t=2"])
    page.page.click("g.cluster[id='s:t=2'] > text")          # its title collapses it
    assert page.drawn() == total - in_t2 + 1
    assert page.js("window.tinygraphExplorer.boxes") == ["t=2"]
    page.page.click("g.node[id^=c]")                          # the box expands again
    assert page.drawn() == total


def test_stepping_follows_the_engines_order(open_page):
    page = open_page(EXAMPLES["lstm_cell"](), view="backward", simplify=False)
    expected = [n["id"] for n in sorted((n for n in model_nodes(page, "generated")
                                         if "order" in n), key=lambda n: n["order"])]
    seen = []
    for _ in range(len(expected)):
        page.page.keyboard.press("ArrowRight")
        seen.append(page.js("window.tinygraphExplorer.stepNode"))
        highlighted = page.js("[...document.querySelectorAll('#graph g.hl-step')].map(g => g.id)")
        assert highlighted == [f"n{seen[-1]}"]
    assert seen == expected
    page.page.keyboard.press("ArrowLeft")
    assert page.js("window.tinygraphExplorer.stepNode") == expected[-2]


def test_the_panel_shows_the_values_to_its_precision(open_page):
    inputs, outputs = lstm_cell_step()
    page = open_page(list(outputs))
    node = next(n for n in model_nodes(page) if n["lines"][0] == "∂L/∂Wx")
    page.page.click(f"g#n{node['id']}")
    cells = page.page.locator("#panel .values .cell").all_inner_texts()
    (dWx,) = tg.grad(outputs[0].sum() + outputs[1].sum(), [inputs["Wx"]])
    expected = [float(f"{v:.4g}") for v in dWx.data.astype(np.float32).ravel()]
    assert [float(c) for c in cells] == pytest.approx(expected, rel=1e-3, abs=1e-12)
    assert "∂L/∂Wx = xᵀ · ∂L/∂A" in page.page.inner_text("#panel .rule")
    reads = page.page.locator("#panel li a").all_inner_texts()
    assert sorted(reads) == ["x", "∂L/∂A"]               # what this node itself reads


def test_hovering_a_gradient_lights_up_its_forward_node_and_saved_values(open_page):
    page = open_page(EXAMPLES["lstm_cell"](), view="both")
    nodes = model_nodes(page)
    grad_f = next(n for n in nodes if n["lines"][0] == "∂L/∂A_f")
    page.page.hover(f"g#n{grad_f['id']}")
    paired = page.js("[...document.querySelectorAll('#graph g.hl-pair')].map(g => g.id)")
    names = {nodes[int(i[1:])]["name"] for i in paired}
    assert names == {"f"}                              # the sigmoid that made f
    saved = lambda: page.js("[...document.querySelectorAll('#graph g.hl-saved')].map(g => g.id)")
    # Saved values are marked per node: ∂L/∂A_f = (∂L/∂f ⊙ f) ⊙ (1 − f) reads no forward
    # value itself; its first factor ∂L/∂f ⊙ f reads f.
    assert saved() == []
    factor = next(n for n in nodes if n["lines"][0] == "∂L/∂f ⊙ f")
    page.page.hover(f"g#n{factor['id']}")
    assert {nodes[int(i[1:])]["name"] for i in saved()} == {"f"}


def test_search_finds_a_gradient_by_name_and_step(open_page):
    _, loss = lstm_unrolled(steps=3)
    page = open_page(loss, name="search")
    page.page.fill("#search", "∂L/∂c2")
    page.page.press("#search", "Enter")
    matches = page.js("window.tinygraphExplorer.matches")
    nodes = model_nodes(page)
    assert matches and all(nodes[i]["grad_of"] == "c2" for i in matches)
    assert not nodes[matches[0]]["lines"][0].startswith("part of")   # the whole gradient first
    assert "match" in page.page.inner_text("#found")
    page.page.fill("#search", "")
    page.page.wait_for_function("window.tinygraphExplorer.matches.length === 0")
    page.page.fill("#search", "dc2")                     # as typed without a ∂ key, live
    page.page.wait_for_function("window.tinygraphExplorer.matches.length > 0")
    assert page.js("window.tinygraphExplorer.matches")[0] == matches[0]


def test_time_strip_jumps_and_the_highway_lights_up(open_page):
    _, loss = lstm_unrolled(steps=3)
    page = open_page(loss, name="strip", collapse=["t=1"])
    assert page.page.locator("#strip .t").count() == 3
    page.page.click("#strip .t[data-step='1']")        # expands t=1 to show its node
    assert page.js("window.tinygraphExplorer.boxes") == []
    page.page.check("#highway")
    highway = page.js("window.tinygraphExplorer.highway")
    names = {model_nodes(page)[i]["grad_of"] for i in highway}
    assert names == {"c1", "c2"}     # the ⊙ f chain from ∂L/∂c3 down; c3 only comes via tanh


def test_export_gives_the_svg_of_the_current_view(open_page):
    page = open_page(EXAMPLES["rnn_cell"](), name="export", view="forward")
    svg = page.js("window.tinygraphExplorer.exportSVG()")
    forward = [n for n in model_nodes(page) if n["kind"] in ("op", "tensor", "parameter")]
    assert svg.startswith("<svg") and svg.count('class="node"') == len(forward)
    assert all(f'id="n{n["id"]}"' in svg for n in forward)


def test_non_finite_values_and_odd_names_are_shown_safely(open_page):
    """NaN and Inf reach the page (JSON has neither: they travel as text) and are marked;
    a tensor name with markup is shown as text, never run."""
    x = tg.tensor(np.array([1.0, 0.0, -1.0]), name="<img src=x onerror=alert(1)>",
                  requires_grad=True)
    with np.errstate(all="ignore"):
        page = open_page(tg.log(x).sum(), name="nonfinite", view="both")
    node = next(n for n in model_nodes(page) if n["lines"][0] == "log")
    page.page.click(f"g#n{node['id']}")
    assert page.page.locator("#panel .cell.nan").count() == 1
    assert page.page.locator("#panel .cell.inf").count() == 1
    assert page.page.locator("#panel img").count() == 0
    page.page.check("#norms")                    # inf norms get the non-finite colour
    assert page.drawn() == len(model_nodes(page))


def test_a_name_that_opens_a_script_comment_does_not_break_the_page(open_page):
    x = tg.tensor(np.ones(2), name="<!--<script>", requires_grad=True)
    page = open_page((x * 2.0).sum(), name="comment", view="both")
    assert page.drawn() == len(model_nodes(page))
    assert any(n["name"] == "<!--<script>" for n in model_nodes(page))


def test_a_nested_scope_collapsed_by_name_expands_by_clicking_its_box(open_page):
    x = tg.tensor(np.ones(3), name="x", requires_grad=True)
    with tg.scope("enc"):
        with tg.scope("t=1"):
            y = tg.tanh(x)
        with tg.scope("t=2"):
            y = tg.tanh(y)
    page = open_page(y.sum(), name="nested", collapse=["t=1"])
    assert page.js("window.tinygraphExplorer.boxes") == ["enc/t=1"]
    page.page.click("g.node[id^=c]")
    assert page.js("window.tinygraphExplorer.boxes") == []


def test_switching_the_variant_starts_afresh(open_page):
    page = open_page(EXAMPLES["lstm_cell"]())
    node = next(n for n in model_nodes(page) if n["lines"][0] == "∂L/∂Wh")
    page.page.click(f"g#n{node['id']}")
    page.page.keyboard.press("ArrowRight")
    page.page.click("button[data-variant=generated]")
    assert page.js("window.tinygraphExplorer.panelNode") is None
    assert "∂L/∂Wh" not in page.page.inner_text("#panel")
    assert page.js("window.tinygraphExplorer.state.step") == -1


def test_the_arrow_keys_still_step_after_ticking_a_checkbox(open_page):
    page = open_page(EXAMPLES["rnn_cell"](), name="keys")
    page.page.keyboard.press("ArrowRight")
    page.page.check("#norms")
    page.page.keyboard.press("ArrowRight")
    assert page.js("window.tinygraphExplorer.state.step") == 1


def test_the_norm_legend_shows_its_two_ends_apart(open_page):
    """Its ends are two readable powers of ten, one each side of the colour bar (they used to
    run together as "1e-21e1")."""
    page = open_page(EXAMPLES["lstm_unrolled"](), name="legend")
    page.page.check("#norms")
    norms = [x for x in page.js("JSON.parse(document.getElementById('tinygraph-data')"
                                ".textContent).variants.simplified.grad_norms")
             if isinstance(x, float) and x > 0]
    lo, hi = int(np.floor(np.log10(min(norms)))), int(np.floor(np.log10(max(norms)))) + 1
    power = lambda k: "10" + str(k).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))
    ticks = page.page.locator("#legend .tick")
    assert ticks.all_inner_texts() == [power(lo), power(hi)]
    left, right = ticks.nth(0).bounding_box(), ticks.nth(1).bounding_box()
    assert right["x"] - (left["x"] + left["width"]) > 100       # the colour bar between them
    text = page.page.inner_text("#legend")
    assert power(lo) + power(hi) not in text and "1e" not in text


def fills(page, ids):
    """The fill of each drawn node's shape, by model id."""
    return page.js(f"{list(ids)}.map(i => document.querySelector('#graph g#n' + i + "
                   "' > :is(path, polygon, ellipse)').getAttribute('fill'))")


def test_under_norm_colouring_a_node_without_a_norm_is_grey(open_page):
    page = open_page(EXAMPLES["lstm_unrolled"](), name="nonorm", view="both")
    page.page.check("#norms")
    nodes = model_nodes(page)
    drawn = page.js("window.tinygraphExplorer.drawnNodeIds")
    without = [i for i in drawn if nodes[i]["grad_norm"] is None and nodes[i]["kind"]
               not in ("constant", "ghost")]
    with_norm = [i for i in drawn if isinstance(nodes[i]["grad_norm"], float)
                 and nodes[i]["grad_norm"] > 0]
    assert without and with_norm
    assert set(fills(page, without)) == {"#eeeeee"}          # one neutral grey, no role hue
    assert "#eeeeee" not in fills(page, with_norm)
    assert "no gradient norm" in page.page.inner_text("#legend")
    page.page.uncheck("#norms")                            # off: the role hues come back
    assert set(fills(page, without)) != {"#eeeeee"}


def test_the_joined_gate_gradients_show_their_blocks(open_page):
    page = open_page(EXAMPLES["lstm_unrolled"](), name="concat")
    nodes = model_nodes(page)
    node = next(n for n in nodes if n["op"] == "concat" and n["kind"] == "sum")
    assert node["value"]["shape"][-1] == 16                 # 4H, H = 4
    page.page.click(f"g#n{node['id']}")
    labels = page.page.locator("#panel .values .piece").all_inner_texts()
    step = "₀₁₂₃₄₅₆₇₈₉"[int(node["scope"][-1].removeprefix("t="))]
    assert labels == [f"A_{gate}{step}" for gate in "fgio"]       # with their time step
    columns = page.js("[...document.querySelectorAll('#panel .values .cell')]"
                      ".map((c, k) => c.classList.contains('sep') ? k % 16 : -1)"
                      ".filter(k => k >= 0)")
    assert sorted(set(columns)) == [4, 8, 12]             # a line before g, i and o
    assert len(columns) == 3 * node["value"]["shape"][0]   # in every row
    boxes = [page.page.locator("#panel .values .piece").nth(k).bounding_box() for k in range(4)]
    first_row = page.page.locator("#panel .values .cell")
    assert boxes[1]["x"] == pytest.approx(first_row.nth(4).bounding_box()["x"], abs=1)


def test_the_stepping_buttons_say_what_they_do(open_page):
    page = open_page(EXAMPLES["rnn_cell"](), name="buttons", view="backward")
    assert "next step" in page.page.inner_text("#next")
    assert "run to the end" in page.page.inner_text("#play")
    assert "back" in page.page.inner_text("#prev")
    assert "first step" in page.page.inner_text("#first")
    page.page.click("#next")
    assert page.js("window.tinygraphExplorer.state.step") == 0
    page.page.click("#play")
    assert "pause" in page.page.inner_text("#play")
    page.page.click("#play")
    assert "run to the end" in page.page.inner_text("#play")


def test_forward_edges_in_the_backward_view_are_faded(open_page):
    page = open_page(EXAMPLES["lstm_unrolled"](), name="faded", view="backward")
    data = page.js("JSON.parse(document.getElementById('tinygraph-data').textContent)"
                   ".variants.simplified")
    nodes, edges = data["nodes"], data["edges"]
    drawn = page.js("[...document.querySelectorAll('#graph g.edge')].map(g => [Number("
                    "g.id.slice(1)), g.querySelector('path').getAttribute('stroke'), "
                    "g.querySelector('path').getAttribute('stroke-dasharray')])")
    forward = {"op", "tensor", "parameter"}
    faded = [(edges[k], stroke, dash) for k, stroke, dash in drawn
             if nodes[edges[k]["tail"]]["kind"] in forward]
    assert {e["kind"] for e, _, _ in faded} == {"data", "saved"}
    assert {stroke for _, stroke, _ in faded} == {"#aaaaaa"}           # never black
    assert all((dash is not None) == (e["kind"] == "saved") for e, _, dash in faded)
