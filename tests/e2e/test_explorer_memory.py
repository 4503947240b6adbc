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
