"""The small PTB model's training step (35 time steps) in the explorer, in a real browser
(Debian's Chromium through Playwright): it opens with its identical steps folded into one
drawn cell, paints in under 3 s, and the time scrubber replays step k's values in that cell."""
import json

import pytest

import tinygraph as tg
from lstm.examples import ptb_step

pytestmark = pytest.mark.browser

PAINT_BOUND_MS = 3000       # the bound for the folded 35-step page (generous)


@pytest.fixture(scope="module")
def ptb_page(tmp_path_factory):
    """The page (built once: the graph and its values take seconds) and its data."""
    explorer = tg.explore(ptb_step(), title="PTB small, one training step")
    path = explorer.save(tmp_path_factory.mktemp("fold") / "ptb.html")
    data = json.loads(json.dumps(explorer.data))          # as the page reads it
    return path, data


def variant_of(data):
    return data["variants"][data["variant"]]


def drawn_ids(page):
    return set(page.js("[...document.querySelectorAll('#graph g.node')]"
                       ".map(g => g.id).filter(id => id.startsWith('n'))"
                       ".map(id => Number(id.slice(1)))"))


def panel_norm(page):
    cells = page.page.locator("#panel table.stats td").all_inner_texts()
    return float(cells[cells.index("norm") + 1])


def test_it_opens_folded_with_one_cell_drawn_in_under_3_s(open_page, ptb_page, record_property):
    path, data = ptb_page
    page = open_page(path)
    paint_ms = page.js("window.tinygraphExplorer.firstPaintMs")
    record_property("folded_first_paint_ms", paint_ms)
    print(f"folded 35-step PTB page: first paint {paint_ms:.0f} ms, "
          f"{path.stat().st_size / 1e6:.1f} MB")
    assert paint_ms < PAINT_BOUND_MS
    (group,) = variant_of(data)["fold"]
    assert group["steps"] == list(range(2, 35)) and group["total"] == 35
    clusters = page.js("[...document.querySelectorAll('#graph g.cluster')].map(g => g.id)")
    steps_drawn = sorted(c for c in clusters if c.startswith("s:t="))
    assert steps_drawn == ["s:t=1", "s:t=2", "s:t=35"]     # the odd ends and one cell
    drawn = drawn_ids(page)
    folded_away = {i for ids in group["nodes"][1:] for i in ids}
    assert not drawn & folded_away
    assert drawn & set(group["nodes"][0])
    assert "t = 2 / 35" in page.page.inner_text("#foldbar")
    assert page.page.text_content("g.cluster.folded-cell > text").startswith("t=2")


def test_the_scrubber_replays_step_k_in_the_drawn_cell(open_page, ptb_page):
    path, data = ptb_page
    page = open_page(path)
    v = variant_of(data)
    (group,) = v["fold"]
    nodes = v["nodes"]
    drawn = drawn_ids(page)
    # The cell's ∂L/∂c (the whole gradient of its cell state): click it at t=2.
    at = next(i for i, n in enumerate(group["nodes"][0]) if n in drawn
              and nodes[n]["grad_of"] and nodes[n]["kind"] == "sum"
              and nodes[n]["lines"][0].startswith("∂L/∂c"))
    page.page.click(f"g#n{group['nodes'][0][at]}")
    assert panel_norm(page) == pytest.approx(nodes[group["nodes"][0][at]]["value"]["stats"]["norm"],
                                             rel=1e-3)
    # Keyboard: focus the scrubber and press → ten times: t=12. The backward pass's own
    # stepping (also on →) does not move.
    page.page.focus("#fold-step")
    for _ in range(10):
        page.page.keyboard.press("ArrowRight")
    assert page.page.inner_text("#fold-label") == "t = 12 / 35"
    assert page.js("window.tinygraphExplorer.state.step") == -1
    twelve = nodes[group["nodes"][group["steps"].index(12)][at]]
    assert twelve["scope"] == ["t=12"]
    assert panel_norm(page) == pytest.approx(twelve["value"]["stats"]["norm"], rel=1e-3)
    assert panel_norm(page) != pytest.approx(nodes[group["nodes"][0][at]]["value"]["stats"]["norm"],
                                             rel=1e-3)
    assert "t=12" in page.page.inner_text("#panel")
    # The drawn node keeps the selection mark; a label that names its step follows it.
    assert page.js("[...document.querySelectorAll('#graph g.hl-selected')].map(g => g.id)") == \
        [f"n{group['nodes'][0][at]}"]
    named = next(i for i, n in enumerate(group["nodes"][0]) if n in drawn and
                 nodes[n]["kind"] == "backward" and
                 nodes[n]["lines"] != nodes[group["nodes"][1][i]]["lines"])
    label = page.page.locator(f"g#n{group['nodes'][0][named]} text").all_text_contents()
    assert label == nodes[group["nodes"][group["steps"].index(12)][named]]["lines"]


def test_the_strip_moves_the_scrubber_to_a_folded_step(open_page, ptb_page):
    path, data = ptb_page
    page = open_page(path)
    page.page.click("#strip .t[data-step='20']")
    assert page.page.inner_text("#fold-label") == "t = 20 / 35"
    assert "t=20" in page.page.inner_text("#panel")
    assert page.js("document.querySelectorAll('#graph g.cluster').length") > 0
    assert page.js("window.tinygraphExplorer.fold.on") is True      # nothing unfolded


def test_unfold_draws_every_step(open_page, ptb_page):
    path, data = ptb_page
    page = open_page(path)
    folded = len(drawn_ids(page))
    page.page.click("#fold-toggle")
    page.page.wait_for_function("window.tinygraphExplorer.fold.on === false")
    clusters = page.js("[...document.querySelectorAll('#graph g.cluster')].map(g => g.id)")
    assert sorted(c for c in clusters if c.startswith("s:t=")) == \
        sorted(f"s:t={k}" for k in range(1, 36))
    (group,) = variant_of(data)["fold"]
    folded_gradients = {i for ids in group["nodes"] for i in ids
                        if data["variants"][data["variant"]]["nodes"][i]["kind"]
                        in ("backward", "sum")}
    assert folded_gradients and drawn_ids(page) >= folded_gradients
    assert len(drawn_ids(page)) > 5 * folded
    assert page.js("getComputedStyle(document.getElementById('fold-controls')).display") == "none"
