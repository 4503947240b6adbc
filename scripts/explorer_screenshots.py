"""Screenshots of the explorer answering a learner's three questions (the LSTM chapter of
*Deep Learning from Scratch 2* at hand), at a desktop and a phone size, in headless Chromium:

1. which node is ∂L/∂c_{t−1}, and why is it ds ⊙ f (q1-*.png: part of ∂L/∂c2 with its rule,
   the vjp that made it, and one element worked out with numbers);
2. how the four gate gradients are re-joined (q2-*.png: the concat ∂L/∂A₃ with its rule and
   gate blocks; q2-replay-*.png: the rewrite that made it, before and after);
3. how the gradient through c compares with the one through h over 20 steps (q3-*.png: the
   time strip and the highway, forget bias 0 and 1).

    python scripts/explorer_screenshots.py OUT_DIR [--chromium /usr/bin/chromium]
"""
import argparse
import pathlib

import tinygraph as tg
from tinygraph.examples import EXAMPLES, lstm_unrolled

SIZES = {"desktop": (1400, 900), "phone": (390, 844)}


def show(label):
    """JS: show the node drawn with this first line in the panel, the camera on it."""
    return ("(() => { const a = window.tinygraphExplorer; const n = a.variant().nodes.find("
            f"m => m.lines[0] === {label!r}); a.jumpTo(n.id); }})()")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=pathlib.Path)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    pages = {"u3": tg.explore(lstm_unrolled(steps=3)[1]),
             "cell": tg.explore(EXAMPLES["lstm_cell"]()),
             "u20-bias0": tg.explore(lstm_unrolled(steps=20, forget_bias=0.0)[1]),
             "u20-bias1": tg.explore(lstm_unrolled(steps=20, forget_bias=1.0)[1])}
    files = {name: page.save(out / f"{name}.html") for name, page in pages.items()}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium,
                                    args=["--no-sandbox", "--disable-gpu"])

        def open_page(name, size):
            page = browser.new_page(viewport=dict(zip(("width", "height"), SIZES[size])))
            page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:")
                       else r.abort())
            page.goto(files[name].as_uri())
            page.wait_for_selector("body[data-ready='1']", timeout=120_000)
            page.wait_for_timeout(500)
            return page

        for size in SIZES:
            page = open_page("u3", size)
            page.evaluate(show("part of ∂L/∂c2"))
            page.wait_for_timeout(500)
            page.locator("#panel > .value .cell").nth(1).click()
            page.screenshot(path=out / f"q1-{size}.png")
            page.evaluate(show("∂L/∂A₃"))
            page.wait_for_timeout(500)
            page.screenshot(path=out / f"q2-{size}.png")
            page = open_page("cell", size)
            page.click("#replay-button")
            page.wait_for_timeout(500)
            for half in ("before", "after"):
                page.keyboard.press("ArrowRight")
                page.wait_for_timeout(600)
                page.screenshot(path=out / f"q2-replay-{half}-{size}.png")
            for bias in ("bias0", "bias1"):
                page = open_page(f"u20-{bias}", size)
                page.check("#highway")
                page.wait_for_timeout(300)
                page.screenshot(path=out / f"q3-{bias}-{size}.png")
        browser.close()
    print("\n".join(sorted(str(p) for p in out.glob("*.png"))))


if __name__ == "__main__":
    main()
