"""The diff page (tg.explore_diff, issue 21 point 8) in Debian's Chromium with the network
blocked: both graphs drawn, the counts it shows are the data's, hovering a matched node lights
exactly its partner in the other graph and describes both, unmatched nodes are marked, a
clicked node's partner is scrolled into view, and on a phone the graphs stack."""
import pytest

import tinygraph as tg
from tinygraph.examples import EXAMPLES

pytestmark = pytest.mark.browser

PANE = ".pane[data-side='{}']"


@pytest.fixture
def lstm_vs_gru(open_page):
    return open_page(tg.explore_diff(EXAMPLES["lstm_cell"](), EXAMPLES["gru_cell"](),
                                     labels=("LSTM", "GRU")), name="lstm-gru")


def data(page):
    return page.js("window.tinygraphDiff.DATA")


def node_id(data, side, first_line):
    return next(n["id"] for n in data["sides"][side]["nodes"] if n["lines"][0] == first_line)


def lit(page, side, cls):
    """The SVG ids of the nodes of one pane that carry a class."""
    return page.js(f"[...document.querySelectorAll(\"{PANE.format(side)} g.node.{cls}\")]"
                   ".map((g) => g.id)")


def test_both_graphs_are_drawn_and_the_counts_shown_are_the_datas(lstm_vs_gru):
    page, d = lstm_vs_gru, data(lstm_vs_gru)
    for side in (0, 1):
        drawn = page.js(f"document.querySelectorAll(\"{PANE.format(side)} g.node\").length")
        assert drawn == len(d["sides"][side]["nodes"]) > 30
    shown = {key: int(page.page.inner_text(f"[data-count='{key}'] b"))
             for key in ("matched", "only_a", "only_b")}
    assert shown == d["counts"]
    assert shown["matched"] == len(d["pairs"]) and shown["only_a"] == sum(
        n["pair"] is None for n in d["sides"][0]["nodes"])
    titles = page.page.inner_text(".pane[data-side='0'] .pane-title")
    assert "LSTM" in titles and "simplified" in titles and "42 nodes" in titles


def test_hovering_a_matched_node_lights_exactly_its_partner(lstm_vs_gru):
    page, d = lstm_vs_gru, data(lstm_vs_gru)
    a = node_id(d, 0, "∂L/∂h_prev")
    b = next(p["b"] for p in d["pairs"] if p["a"] == a)
    page.page.hover(f"{PANE.format(0)} g.node[id='A{a}']")
    assert lit(page, 0, "hl-self") == [f"A{a}"]
    assert lit(page, 1, "hl-partner") == [f"B{b}"]
    assert lit(page, 0, "hl-partner") == [] and lit(page, 1, "hl-self") == []
    # The partner is the GRU's ∂L/∂h_prev, a Σ of two uses where the LSTM has one matmul.
    panel = page.page.inner_text("#panel")
    assert "∂L/∂h_prev · matmul" in panel and "∂L/∂h_prev · Σ" in panel
    assert "matched: the gradient of h_prev" in panel
    # Every pair, from either side: the partner lit is the pair's other node, and only it.
    for pair in d["pairs"]:
        for side, mine, other in ((0, pair["a"], pair["b"]), (1, pair["b"], pair["a"])):
            page.js(f"document.querySelector(\"{PANE.format(side)} g.node[id='{'AB'[side]}{mine}'] "
                    "text\").dispatchEvent(new MouseEvent('mouseover', {bubbles: true}))")
            assert lit(page, 1 - side, "hl-partner") == [f"{'AB'[1 - side]}{other}"]
            assert lit(page, side, "hl-partner") == []


def test_matched_nodes_share_a_number_and_colour_and_unmatched_are_marked(lstm_vs_gru):
    page, d = lstm_vs_gru, data(lstm_vs_gru)
    # Each node's badge text and colour, its outline's fill and dashes.
    badges = [page.js(f"""(() => {{
        const shape = (g) => g.querySelector(':scope > polygon, :scope > ellipse, :scope > path');
        const nodes = document.querySelectorAll("{PANE.format(side)} g.node");
        return Object.fromEntries([...nodes].map((g) => [g.id, [
            g.querySelector('.badge text').textContent,
            g.querySelector('.badge circle, .badge rect').getAttribute('fill'),
            shape(g).getAttribute('fill'), shape(g).getAttribute('stroke-dasharray')]]));
        }})()""")
              for side in (0, 1)]
    for number, pair in enumerate(d["pairs"], start=1):
        a, b = badges[0][f"A{pair['a']}"], badges[1][f"B{pair['b']}"]
        assert a[0] == b[0] == str(number)
        assert a[1] == b[1] and a[2] == b[2] != "#ffffff"       # badge colour and fill
    for side in (0, 1):
        for n in d["sides"][side]["nodes"]:
            if n["pair"] is None:
                text, _, fill, dashes = badges[side][f"{'AB'[side]}{n['id']}"]
                assert text == "AB"[side] and fill == "#ffffff" and dashes
    assert len(lit(page, 0, "only")) == d["counts"]["only_a"] == 30
    assert len(lit(page, 1, "only")) == d["counts"]["only_b"]


def test_an_unmatched_node_says_it_has_no_partner(lstm_vs_gru):
    page, d = lstm_vs_gru, data(lstm_vs_gru)
    a = node_id(d, 0, "∂L/∂c_prev")
    page.page.hover(f"{PANE.format(0)} g.node[id='A{a}']")
    assert lit(page, 1, "hl-partner") == []
    assert "only in A: no node of GRU matches it" in page.page.inner_text("#panel")


def test_clicking_a_node_scrolls_its_partner_into_view(open_page):
    out = EXAMPLES["lstm_unrolled"]()
    page = open_page(tg.explore_diff(out, out, variants=("generated", "simplified")),
                     name="unrolled")
    d = data(page)
    a = node_id(d, 0, "∂L/∂x1")
    b = next(p["b"] for p in d["pairs"] if p["a"] == a)
    page.page.click(f"{PANE.format(0)} g.node[id='A{a}']")
    inside = page.js(f"""(() => {{
        const frame = document.querySelector("{PANE.format(1)} .graph").getBoundingClientRect();
        const box = document.querySelector("{PANE.format(1)} g.node[id='B{b}']")
            .getBoundingClientRect();
        return box.left >= frame.left && box.right <= frame.right && box.top >= frame.top &&
            box.bottom <= frame.bottom; }})()""")
    assert inside
    assert lit(page, 1, "selected") == [f"B{b}"] and lit(page, 1, "hl-partner") == [f"B{b}"]


def test_on_a_phone_the_graphs_stack(open_page):
    out = EXAMPLES["lstm_cell"]()
    page = open_page(tg.explore_diff(out, out, variants=("generated", "simplified")),
                     name="phone")
    page.page.set_viewport_size({"width": 390, "height": 844})
    boxes = page.js("""[...document.querySelectorAll('.pane')].map((p) => {
        const r = p.getBoundingClientRect(); return [r.top, r.bottom, r.width, r.height]; })""")
    (top_a, bottom_a, width_a, height_a), (top_b, _, width_b, height_b) = boxes
    assert top_b >= bottom_a - 1 and width_a == width_b <= 390
    assert height_a > 150 and height_b > 150
    # Fit width stops at 70%: the labels stay readable and the pane scrolls instead.
    assert float(page.js("window.tinygraphDiff.svgs[0].dataset.scale")) >= 0.7
