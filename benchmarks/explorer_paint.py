"""The explorer's size and time to first paint in headless Chromium, per graph.

Builds the explorer page of the LSTM cell, an LSTM unrolled over 3 and 10 steps, and one
unrolled over 50 steps (which opens with its identical steps folded into one drawn cell); opens each file in Chromium (Debian's
/usr/bin/chromium through Playwright, every network request blocked) and reads the time from
navigation to the end of the first layout and drawing (Graphviz in WebAssembly included).
Medians over --repeats page loads.

    python benchmarks/explorer_paint.py [--repeats 3] [--chromium /usr/bin/chromium]
"""
import argparse
import pathlib
import statistics
import tempfile
import time

import tinygraph as tg
from tinygraph.examples import lstm_cell_step, lstm_unrolled


def cases():
    return [
        ("LSTM cell", lambda: lstm_cell_step()[1], {}),
        ("LSTM, 3 steps", lambda: lstm_unrolled(steps=3)[1], {}),
        ("LSTM, 10 steps", lambda: lstm_unrolled(steps=10)[1], {}),
        ("LSTM, 50 steps, folded", lambda: lstm_unrolled(steps=50)[1], {}),
    ]


def open_page(browser, path, timeout_ms=120_000):
    """The explorer page at `path`, opened at 1400x900 with every network request refused
    (the page must ask for none), once it has drawn."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    requests = []
    page.route("**/*", lambda route: (requests.append(route.request.url), route.abort())
               if not route.request.url.startswith("file:") else route.continue_())
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=timeout_ms)
    if requests:
        raise RuntimeError(f"the page asked the network for {requests}")
    return page


def first_paint_ms(browser, path):
    page = open_page(browser, path)
    ms = page.evaluate("window.tinygraphExplorer.firstPaintMs")
    drawn = page.evaluate("window.tinygraphExplorer.drawnNodeIds.length")
    page.close()
    return ms, drawn


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    folder = pathlib.Path(tempfile.mkdtemp(prefix="explorer-"))
    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium,
                                    args=["--no-sandbox", "--disable-gpu"])
        for name, build, options in cases():
            start = time.perf_counter()
            page = tg.explore(build(), **options)
            built = time.perf_counter() - start
            path = page.save(folder / (name.replace(" ", "_").replace(",", "") + ".html"))
            times, drawn = [], None
            for _ in range(args.repeats):
                ms, drawn = first_paint_ms(browser, path)
                times.append(ms)
            nodes = len(page.data["variants"]["simplified"]["nodes"])
            rows.append((name, nodes, drawn, path.stat().st_size / 1e6, built,
                         statistics.median(times)))
        browser.close()
    print(f"{'graph':<28} {'model nodes':>11} {'drawn':>6} {'file MB':>8} {'build s':>8} "
          f"{'first paint ms':>15}")
    for name, nodes, drawn, size, built, ms in rows:
        print(f"{name:<28} {nodes:>11} {drawn:>6} {size:>8.2f} {built:>8.2f} {ms:>15.0f}")


if __name__ == "__main__":
    main()
