"""The explorer's memory strip under the stepping bar (tinygraph.saved_values): it shows the
bytes alive per backward step with the peak, follows the stepping, and a checkpointed graph
shows its recomputation (dashed boxes) in the graph."""
import numpy as np
import pytest

import tinygraph as tg
from tinygraph.examples import EXAMPLES

from tests.e2e.explorer_pages import model_nodes

pytestmark = pytest.mark.browser


def test_the_strip_shows_the_peak_and_follows_the_steps(open_page):
    outputs = EXAMPLES["lstm_unrolled"]()
    page = open_page(outputs, name="memory", view="backward", simplify=False)
    saved = tg.saved_values(outputs)
    assert page.page.is_visible("#memstrip svg.mem")
    text = page.page.inner_text("#memtext")
    assert text.startswith("peak ") and "saved by the forward pass" in text
    series = page.js("window.tinygraphExplorer.memory.series()")
    steps = [n for n in model_nodes(page, "generated") if "order" in n]
    assert len(series) == len(steps)
    assert max(series) <= saved.peak_bytes and max(series) in saved.timeline
    page.page.keyboard.press("ArrowRight")
    page.page.keyboard.press("ArrowRight")
    assert page.page.inner_text("#memtext").startswith("step 2: ")
    x = float(page.js("document.getElementById('memcursor').getAttribute('x1')"))
    assert x > 0


def test_a_checkpointed_graph_draws_its_recomputation_dashed(open_page):
    V = tg.Parameter(np.eye(3) / 2, name="V")

    def segment(h):
        return tg.tanh(h @ V)
    h = tg.checkpoint(segment, np.ones((1, 3)))
    page = open_page([tg.sum(h * h)], name="checkpointed", view="backward")
    recomputed = [n for n in model_nodes(page) if n.get("recomputed")]
    assert {n["op"] for n in recomputed} == {"matmul", "tanh"}
    node = recomputed[0]
    style = page.js(f"document.querySelector('g#n{node['id']} path, g#n{node['id']} polygon')"
                    ".getAttribute('stroke-dasharray')")
    assert style                                     # drawn dashed
    page.page.click(f"g#n{node['id']}")
    assert "recomputed" in page.page.inner_text("#panel")


def test_the_compare_view_shows_forward_and_reverse_mode_side_by_side(open_page):
    W = np.random.default_rng(0).standard_normal((3, 3)) / 2
    costs = tg.mode_costs(lambda x: tg.sum(tg.tanh(x @ W) ** 2), np.array([0.5, -1.0, 2.0]))
    page = open_page(tg.explore_diff(costs.tangent, costs.gradient, view=("forward", "backward"),
                                     labels=("forward mode", "reverse mode")), name="modes")
    titles = page.page.locator(".pane-title").all_inner_texts()
    assert titles[0].startswith("A forward mode") or "forward mode" in titles[0]
    assert "reverse mode" in titles[1]
    # Each pane draws its graph: the forward side the tangent cluster and the dx input, the
    # reverse side gradient nodes (∂L/∂·) and no tangent.
    forward = page.page.inner_text(".pane[data-side='0'] .graph")
    reverse = page.page.inner_text(".pane[data-side='1'] .graph")
    assert "tangent" in forward and "dx" in forward and "∂L/∂" not in forward
    assert "∂L/∂x" in reverse and "tangent" not in reverse
