"""The explorer's camera in a real browser: it opens on the backward view with labels that read,
at the start of the backward pass; the wheel zooms around the pointer, a drag pans, stepping
keeps the current node in the pane, and the overview map moves the view."""
import functools

import pytest

import tinygraph as tg
from tinygraph.examples import lstm_unrolled

from tests.e2e.explorer_pages import model_nodes

pytestmark = pytest.mark.browser

DESKTOP, PHONE = (1400, 900), (390, 844)


@functools.lru_cache(maxsize=None)
def unrolled_loss(steps):
    return lstm_unrolled(steps=steps)[1]


def unrolled_page(open_page, steps, size=DESKTOP, **options):
    page = open_page(unrolled_loss(steps), name=f"unrolled{steps}", **options)
    if size != DESKTOP:               # open it afresh at this size, as a phone would
        page.page.set_viewport_size({"width": size[0], "height": size[1]})
        page.page.reload()
        page.page.wait_for_selector("body[data-ready='1']", timeout=60_000)
    return page


def rect(page, selector):
    return page.js(f"(() => {{ const r = document.querySelector({selector!r})"
                   ".getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })()")


def pane(page):
    """The graph pane's visible area (without its scroll bars), in page pixels."""
    return page.js("(() => { const p = document.getElementById('graph'), r = p.getBoundingClientRect();"
                   " const x = r.left + p.clientLeft, y = r.top + p.clientTop;"
                   " return [x, y, x + p.clientWidth, y + p.clientHeight]; })()")


def inside(box, frame, slack=1):
    return (box[0] >= frame[0] - slack and box[1] >= frame[1] - slack and
            box[2] <= frame[2] + slack and box[3] <= frame[3] + slack)


def label_height(page, node_id):
    return page.js(f"document.querySelector('#graph g#n{node_id} text').getBoundingClientRect().height")


def first_step(page):
    return page.js("window.tinygraphExplorer.order()[0]")


def seed(page):
    """Where the backward view starts: the seed node (the gradient fed in), else the first step."""
    nodes = model_nodes(page)
    seeds = [i for i in page.js("window.tinygraphExplorer.drawnNodeIds") if nodes[i]["kind"] == "seed"]
    return seeds[0] if seeds else first_step(page)


def settled(page):
    page.page.wait_for_function("!window.tinygraphExplorer.camera.moving()")


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["1400x900", "390x844"])
@pytest.mark.parametrize("steps", [3, 20])
def test_it_opens_on_the_backward_view_readable_at_the_first_step(open_page, steps, size):
    page = unrolled_page(open_page, steps, size)
    assert page.js("window.tinygraphExplorer.state.view") == "backward"
    assert page.page.inner_text("[data-view].on") == "backward"
    start = seed(page)
    assert label_height(page, start) >= 10            # was 1 to 4 px at "fit" on "both"
    assert inside(rect(page, f"#graph g#n{start}"), pane(page))
    assert page.page.input_value("#zoom") == "readable"


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["1400x900", "390x844"])
def test_stepping_keeps_every_step_in_the_pane(open_page, size):
    page = unrolled_page(open_page, 3, size)
    total = len(page.js("window.tinygraphExplorer.order()"))
    assert total > 50
    for k in range(total):
        page.page.keyboard.press("ArrowRight")
        settled(page)
        assert page.js("window.tinygraphExplorer.state.step") == k
        box = rect(page, "#graph g.hl-step")
        assert inside(box, pane(page)), f"step {k + 1}: {box} outside {pane(page)}"


def test_stepping_through_twenty_steps_keeps_a_sample_of_steps_in_the_pane(open_page):
    page = unrolled_page(open_page, 20)
    total = len(page.js("window.tinygraphExplorer.order()"))
    for k in list(range(0, total, max(1, total // 12))) + [total - 1]:
        page.js(f"window.tinygraphExplorer.goStep({k})")
        page.page.keyboard.press("ArrowRight")
        settled(page)
        assert inside(rect(page, "#graph g.hl-step"), pane(page)), f"step {k + 2}"


def test_a_step_inside_a_collapsed_scope_opens_it(open_page):
    page = unrolled_page(open_page, 3, collapse=["t=3"])
    assert page.js("window.tinygraphExplorer.boxes") == ["t=3"]
    nodes = model_nodes(page)
    first_in_t3 = next(k for k, i in enumerate(page.js("window.tinygraphExplorer.order()"))
                       if nodes[i]["scope"][:1] == ["t=3"])
    page.js(f"window.tinygraphExplorer.goStep({first_in_t3 - 1})")
    assert page.js("window.tinygraphExplorer.boxes") == ["t=3"]
    page.page.keyboard.press("ArrowRight")                  # into t=3
    settled(page)
    assert page.js("window.tinygraphExplorer.boxes") == []
    assert inside(rect(page, "#graph g.hl-step"), pane(page))


def test_the_wheel_zooms_around_the_pointer(open_page):
    page = unrolled_page(open_page, 3)
    start = first_step(page)
    before = rect(page, f"#graph g#n{start}")
    x, y = (before[0] + before[2]) / 2 + 7, (before[1] + before[3]) / 2 + 5
    height, opened = label_height(page, start), page.js("window.tinygraphExplorer.camera.scale")
    page.page.mouse.move(x, y)
    page.page.mouse.wheel(0, -300)                         # in
    page.page.wait_for_function(f"window.tinygraphExplorer.camera.scale > {opened} * 1.2")
    after = rect(page, f"#graph g#n{start}")
    zoom = page.js("window.tinygraphExplorer.camera.scale") / opened
    assert label_height(page, start) > 1.2 * height
    # The graph point under the pointer stays under it: the node's box grew around (x, y).
    for k, at in ((0, x), (1, y), (2, x), (3, y)):
        assert after[k] - at == pytest.approx((before[k] - at) * zoom, abs=3)
    scale = page.js("window.tinygraphExplorer.camera.scale")
    assert page.page.locator("#zoom option:checked").inner_text() == f"{round(scale * 100)}%"
    page.page.mouse.wheel(0, 300)                          # and out again
    page.page.wait_for_function(f"window.tinygraphExplorer.camera.scale < {scale} / 1.2")
    assert label_height(page, start) == pytest.approx(height, rel=0.05)


def test_a_drag_pans_and_opens_nothing_while_a_click_opens_the_panel(open_page):
    page = unrolled_page(open_page, 3)
    start = first_step(page)
    before = rect(page, f"#graph g#n{start}")
    x, y = (before[0] + before[2]) / 2, (before[1] + before[3]) / 2
    # Drag the way the pane can scroll: towards the graph's far side where there is room.
    room = page.js("(() => { const p = document.getElementById('graph'); return [p.scrollLeft,"
                   " p.scrollWidth - p.clientWidth - p.scrollLeft, p.scrollTop,"
                   " p.scrollHeight - p.clientHeight - p.scrollTop]; })()")
    dx = -150 if room[1] >= 150 else 150
    dy = -100 if room[3] >= 100 else 100
    assert room[0 if dx > 0 else 1] >= 150 and room[2 if dy > 0 else 3] >= 100
    page.page.mouse.move(x, y)
    page.page.mouse.down()
    page.page.mouse.move(x + dx / 3, y + dy / 3, steps=4)
    page.page.mouse.move(x + dx, y + dy, steps=6)
    page.page.mouse.up()
    after = rect(page, f"#graph g#n{start}")
    assert after[0] - before[0] == pytest.approx(dx, abs=2)
    assert after[1] - before[1] == pytest.approx(dy, abs=2)
    assert page.js("window.tinygraphExplorer.panelNode") is None
    page.page.mouse.click((after[0] + after[2]) / 2, (after[1] + after[3]) / 2)
    assert page.js("window.tinygraphExplorer.panelNode") == start
    assert rect(page, f"#graph g#n{start}") == pytest.approx(after, abs=0.5)   # a click pans nothing


def test_clicking_the_overview_map_moves_the_view(open_page):
    page = unrolled_page(open_page, 3)
    assert page.page.is_visible("#minimap canvas")
    canvas = rect(page, "#minimap canvas")
    view_before = rect(page, "#minimap .view")
    scroll = "[document.getElementById('graph').scrollLeft, document.getElementById('graph').scrollTop]"
    before = page.js(scroll)
    x, y = canvas[0] + 0.2 * (canvas[2] - canvas[0]), canvas[1] + 0.8 * (canvas[3] - canvas[1])
    page.page.mouse.click(x, y)
    assert page.js(scroll) != before
    view = rect(page, "#minimap .view")
    assert view != view_before
    assert view[0] - 2 <= x <= view[2] + 2 and view[1] - 2 <= y <= view[3] + 2
    # The map stays small on a phone.
    page.page.set_viewport_size({"width": PHONE[0], "height": PHONE[1]})
    page.page.wait_for_timeout(100)
    small = rect(page, "#minimap")
    assert small[2] - small[0] <= 110 and small[3] - small[1] <= 90


def test_fit_shows_the_whole_graph(open_page):
    page = unrolled_page(open_page, 20)
    page.page.select_option("#zoom", "fit")
    assert inside(rect(page, "#graph svg"), pane(page))
    assert page.js("(() => { const p = document.getElementById('graph');"
                   " return p.scrollWidth <= p.clientWidth && p.scrollHeight <= p.clientHeight; })()")
    assert page.page.is_hidden("#minimap")
    page.page.select_option("#zoom", "readable")
    assert label_height(page, first_step(page)) >= 10


def test_a_pinch_on_a_touch_screen_zooms(browser, tmp_path):
    path = tg.explore(unrolled_loss(3)).save(tmp_path / "pinch.html")
    context = browser.new_context(viewport={"width": PHONE[0], "height": PHONE[1]},
                                  has_touch=True, is_mobile=True)
    try:
        page = context.new_page()
        page.goto(path.as_uri())
        page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        opened = page.evaluate("window.tinygraphExplorer.camera.scale")
        touch = context.new_cdp_session(page)

        def fingers(kind, points):
            touch.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [
                {"x": x, "y": y, "id": k} for k, (x, y) in enumerate(points)]})
        x, y = PHONE[0] / 2, 480
        fingers("touchStart", [(x - 30, y), (x + 30, y)])
        for spread in (40, 50, 60):
            fingers("touchMove", [(x - spread, y), (x + spread, y)])
        fingers("touchEnd", [])
        assert page.evaluate("window.tinygraphExplorer.camera.scale") == pytest.approx(2 * opened,
                                                                                      rel=0.02)
        assert page.evaluate("window.visualViewport.scale") == 1     # the page itself kept its size
    finally:
        context.close()
