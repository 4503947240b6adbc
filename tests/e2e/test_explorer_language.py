"""The explorer's language in a real browser: a rule on every step naming only what is drawn,
numbers worked out for one element, the highway, and the time strip's axes."""
import re

import pytest

from tinygraph.examples import lstm_unrolled

from tests.e2e.explorer_pages import model_nodes

pytestmark = pytest.mark.browser


@pytest.fixture
def unrolled(open_page):
    _, loss = lstm_unrolled(steps=3, forget_bias=1.0)
    return open_page(loss, name="unrolled")


def drawn_text(page, model_id):
    """The text of a model node as drawn in the SVG, or None when it is not drawn."""
    return page.js(f"(() => {{ const g = window.tinygraphExplorer.gOf({model_id});"
                   f" return g ? g.textContent : null; }})()")


def test_every_step_shows_a_rule_naming_only_drawn_nodes(unrolled):
    page = unrolled
    nodes = model_nodes(page)
    count = len(page.js("window.tinygraphExplorer.order()"))
    assert count > 80
    page.page.click("#next")
    for step in range(count):
        node = nodes[page.js("window.tinygraphExplorer.stepNode")]
        rule = page.page.inner_text("#panel .rule")
        assert rule == node["rule"] and rule.strip()
        assert page.page.inner_text("#panel .role") == node["role"]
        for operand in node["operands"]:
            if "id" in operand:        # each node the rule names is on screen, so labelled
                text = drawn_text(page, operand["id"])
                assert text is not None and operand["name"] in text, (rule, operand)
        if step < count - 1:
            page.page.keyboard.press("ArrowRight")


def test_the_panel_says_which_vjp_made_a_node(unrolled):
    nodes = model_nodes(unrolled)
    share = next(n for n in nodes if n["lines"][0] == "part of ∂L/∂c2")
    unrolled.js(f"window.tinygraphExplorer.show({share['id']})")
    text = unrolled.page.inner_text("#panel .vjp")
    assert text.startswith("made by the vjp of mul in c3 = f₃⊙c2 + g₃⊙i₃")
    reads = unrolled.page.locator("#panel li").all_inner_texts()
    assert any(r.startswith("f₃ saved forward value") for r in reads)
    assert any(r.startswith("∂L/∂c3") and "saved" not in r for r in reads)


def test_clicking_an_element_works_the_rule_out_with_numbers(unrolled):
    nodes = model_nodes(unrolled)
    share = next(n for n in nodes if n["lines"][0] == "part of ∂L/∂c2")
    unrolled.js(f"window.tinygraphExplorer.show({share['id']})")
    unrolled.page.locator("#panel > .value .cell").nth(1).click()      # element [0, 1]
    text = unrolled.page.inner_text("#panel .worked")
    match = re.fullmatch(r"\(part of ∂L/∂c2\)\[0,1\] = ∂L/∂c3\[0,1\] ⊙ f₃\[0,1\] = (\S+) × (\S+) = (\S+)"
                         r"  ✓ \(the node holds (\S+)\)", text)
    assert match, text
    ds, f, product, held = map(float, match.groups())
    assert product == pytest.approx(ds * f, rel=1e-3) == pytest.approx(held, rel=1e-3)
    # The operands' numbers are the values the page holds for those nodes.
    value = lambda name: unrolled.js(
        "(() => { const v = window.tinygraphExplorer.variant(); const n = v.nodes.find("
        f"m => (m.display || m.lines[0]) === {name!r} && m.value); "
        "return window.tinygraphExplorer.decode(n.value)[1]; })()")
    assert value("∂L/∂c3") == pytest.approx(ds, rel=1e-3)
    assert value("f₃") == pytest.approx(f, rel=1e-3)


def test_every_gradient_of_the_step_checks_out_element_by_element(unrolled):
    results = unrolled.js("""(() => {
      const api = window.tinygraphExplorer, out = [];
      for (const n of api.variant().nodes) {
        if ((n.kind === "backward" || n.kind === "sum") && n.value && n.value.f32) {
          api.show(n.id);
          out.push(api.work(n.id, n.value.stats.size - 1));
        }
      }
      return out; })()""")
    assert len(results) > 80
    assert all("✓" in text for text in results), [t for t in results if "✓" not in t]


def test_the_highway_lights_only_the_f_chain(unrolled):
    unrolled.page.check("#highway")
    nodes = model_nodes(unrolled)
    lit = unrolled.js("[...document.querySelectorAll('#graph g.node.hl-highway')]"
                      ".map(g => Number(g.id.slice(1)))")
    assert {nodes[i]["lines"][0] for i in lit} == {"part of ∂L/∂c2", "∂L/∂c2",
                                                   "part of ∂L/∂c1", "∂L/∂c1"}
    assert all(nodes[i]["kind"] == "sum" or nodes[i]["rule"].endswith(("⊙ f₂", "⊙ f₃"))
               for i in lit)


def texts(page, selector):
    return page.js(f"[...document.querySelectorAll({selector!r})].map(e => e.textContent)")


def test_the_time_strip_has_a_log_axis_numbers_and_the_highways_share(unrolled):
    ticks = texts(unrolled, "#strip .tick")
    assert ticks and all(re.fullmatch(r"10[⁻⁰¹²³⁴⁵⁶⁷⁸⁹]+", t) for t in ticks)
    steps = unrolled.js("window.tinygraphExplorer.variant().time_steps")
    numbers = texts(unrolled, "#strip .num.c")
    assert [float(x) for x in numbers] == pytest.approx([s["c"] for s in steps], rel=1e-3)
    shares = texts(unrolled, "#strip .num.share")
    expected = [round(100 * s["c_highway"] / (s["c_highway"] + s["c_through_h"])) for s in steps]
    assert shares == [f"⊙f {k}%" for k in expected] and expected[-1] == 0
    # Bars on a log scale: a ten times larger norm is a fixed step taller.
    heights = unrolled.js("[...document.querySelectorAll('#strip rect.c')].map(r => r.height.baseVal.value)")
    assert len(heights) == 3 and heights[2] > heights[0]


def test_search_finds_a_node_by_the_label_it_is_drawn_with(unrolled):
    nodes = model_nodes(unrolled)
    for query, first_line in (("part of ∂L/∂c2", "part of ∂L/∂c2"), ("∂L/∂f₃", "∂L/∂f₃"),
                              ("dL/df3", "∂L/∂f₃")):
        unrolled.page.fill("#search", query)
        unrolled.page.press("#search", "Enter")
        matches = unrolled.js("window.tinygraphExplorer.matches")
        assert matches and nodes[matches[0]]["lines"][0] == first_line, query


def test_a_heatmap_wider_than_the_panel_says_it_scrolls(unrolled):
    nodes = model_nodes(unrolled)
    joined = next(n for n in nodes if n["lines"][0] == "∂L/∂A₃")
    unrolled.js(f"window.tinygraphExplorer.show({joined['id']})")
    assert unrolled.page.inner_text("#panel .scroll-hint") == "scroll sideways for all 16 columns →"
    width = unrolled.js("(() => { const s = document.querySelector('#panel > .value .scroll');"
                        " return [s.scrollWidth, s.clientWidth]; })()")
    assert width[0] > width[1]
    narrow = next(n for n in nodes if n["lines"][0] == "part of ∂L/∂c2")     # 4 columns
    unrolled.js(f"window.tinygraphExplorer.show({narrow['id']})")
    assert unrolled.page.locator("#panel .scroll-hint").count() == 0


def test_stepping_in_a_folded_cell_names_the_scrubbed_step(open_page):
    _, loss = lstm_unrolled(steps=12)
    page = open_page(loss, name="folded")
    assert page.js("window.tinygraphExplorer.fold.on")
    page.js("window.tinygraphExplorer.fold.setStep(7)")
    api = "window.tinygraphExplorer"
    order = page.js(f"{api}.order()")
    nodes = model_nodes(page)
    # the first drawn step that is a node of the folded cell (scope t=2, drawn for t=2…11)
    k = next(i for i, nid in enumerate(order) if nodes[nid]["scope"] == ["t=2"])
    page.js(f"{api}.goStep({k})")
    shown = nodes[page.js(f"{api}.fold.counterpart({api}.stepNode)")]
    assert shown["scope"] == ["t=7"]
    assert page.page.inner_text("#steptext").endswith(" ".join(shown["lines"]))
    assert page.page.inner_text("#panel .rule") == shown["rule"]
