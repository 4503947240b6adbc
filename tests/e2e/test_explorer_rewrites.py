"""The explorer's replay of the rewrite log in a real browser (Debian's Chromium driven by
Playwright): from the generated graph to the simplified one, one named rewrite at a time."""
import pytest

from tinygraph.examples import EXAMPLES, lstm_unrolled

pytestmark = pytest.mark.browser

LABELS = ("[...document.querySelectorAll('#graph g.node')].map(g => [...g.querySelectorAll('text')]"
          ".map(t => t.textContent).join(' ')).sort()")


def labels(page):
    return page.js(LABELS)


def marked(page, cls):
    """The labels (first two lines) of the drawn nodes with class `cls`."""
    return page.js(f"[...document.querySelectorAll('#graph g.{cls}')].map(g => "
                   "window.tinygraphExplorer.variant().nodes[Number(g.id.slice(1))].lines"
                   ".slice(0, 2).join(' '))")


def variant_drawing(page, name):
    page.page.click(f"button[data-variant={name}]")
    return labels(page)


def test_the_replay_of_the_lstm_cell_reaches_the_textbook_concat(open_page):
    page = open_page(EXAMPLES["lstm_cell"]())
    generated, simplified = variant_drawing(page, "generated"), variant_drawing(page, "simplified")
    assert len(generated) > len(simplified)
    page.page.click("#replay-button")
    assert labels(page) == generated                           # it starts at the generated graph
    assert "36 generated → 36 now → 30 simplified" in page.page.inner_text("#replay-counts")
    assert page.page.is_hidden("#stepbar")                     # the replay steps, not the pass

    page.page.click("#replay-next")                            # the rewrite, about to be done
    text = page.page.inner_text("#replay-text")
    assert "1 / 1 slice_tiling: add + add + add -> concat" in text
    assert "concat lays them side by side" in text             # the rule, said in one line
    assert marked(page, "rw-old") == ["∂L/∂A Σ"]
    assert sorted(marked(page, "rw-gone")) == ["part of ∂L/∂A slice_grad [:, 12:]",
                                               "part of ∂L/∂A slice_grad [:, 4:8]",
                                               "part of ∂L/∂A slice_grad [:, 8:12]",
                                               "part of ∂L/∂A slice_grad [:, :4]"]
    assert labels(page) == generated

    page.page.click("#replay-next")                            # done: the end of the log
    assert marked(page, "rw-new") == ["∂L/∂A concat axis=1"]
    assert labels(page) == simplified                          # same nodes, labels and count
    assert "30 now" in page.page.inner_text("#replay-counts")
    assert "this is the simplified graph" in page.page.inner_text("#replay-text")
    assert page.page.is_disabled("#replay-next")

    page.page.click("#replay-prev")                            # back goes back
    assert labels(page) == generated and marked(page, "rw-old") == ["∂L/∂A Σ"]
    page.page.keyboard.press("ArrowLeft")
    assert labels(page) == generated and marked(page, "rw-old") == []
    assert "the generated graph" in page.page.inner_text("#replay-text")

    page.page.click("button[data-variant=simplified]")         # leaving the replay
    assert page.page.is_hidden("#replay-bar") and page.page.is_visible("#stepbar")
    assert labels(page) == simplified


def test_the_replay_of_three_unrolled_steps_names_each_rewrite(open_page):
    _, loss = lstm_unrolled(steps=3)
    page = open_page(loss, name="unrolled")
    generated, simplified = variant_drawing(page, "generated"), variant_drawing(page, "simplified")
    r = page.js("window.tinygraphExplorer.replay.data")
    page.page.click("#replay-button")
    assert labels(page) == generated
    counts = [f["backward"] for f in r["frames"]]
    assert f"{counts[0]} generated → {counts[0]} now" in page.page.inner_text("#replay-counts")
    steps = r["steps"]
    assert len(steps) >= 5
    for j, step in enumerate(steps, start=1):
        page.page.keyboard.press("ArrowRight")                 # about to do step j
        text = page.page.inner_text("#replay-text")
        assert f"{j} / {len(steps)} {step['entries'][0]['text']}" in text
        assert f"{step['entries'][0]['rule']}: " in text       # its rule, explained
        assert marked(page, "rw-old") and marked(page, "rw-new") == []
        assert f"→ {counts[j - 1]} now" in page.page.inner_text("#replay-counts")
        page.page.keyboard.press("ArrowRight")                 # step j done
        assert marked(page, "rw-new") and marked(page, "rw-old") == []
        assert f"→ {counts[j]} now" in page.page.inner_text("#replay-counts")
    assert labels(page) == simplified
    assert counts[-1] == page.js("window.tinygraphExplorer.DATA.variants.simplified.backward_count")
    page.page.keyboard.press("ArrowRight")                     # the end stays the end
    assert page.js("window.tinygraphExplorer.replay.position") == 2 * len(steps)
    for _ in range(2):
        page.page.keyboard.press("ArrowLeft")                  # back: step by step
    assert f"→ {counts[-2]} now" in page.page.inner_text("#replay-counts")
    page.page.click("#replay-first")
    assert labels(page) == generated


def test_a_log_entry_clicked_shows_that_rewrite(open_page):
    _, loss = lstm_unrolled(steps=3)
    page = open_page(loss, name="unrolled_list", view="both")
    page.page.click("#replay-button")
    page.page.click("#replay-list summary")
    entries = page.page.locator("#replay-log li")
    texts = entries.all_inner_texts()
    k = next(i for i, t in enumerate(texts) if t.startswith("slice_tiling"))
    entries.nth(k).click()
    assert page.js("window.tinygraphExplorer.replay.position") == 2 * k + 1
    assert page.page.locator("#replay-log li.on").inner_text() == texts[k]
    assert [m.split(" ")[1] for m in marked(page, "rw-old")] == ["Σ"]
