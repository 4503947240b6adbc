"""The explorer at scale, in headless Chromium: long unrolled graphs with their time steps
folded into one drawn cell (see docs/explorer.md, "Long sequences: folded steps").

For each graph (the small PTB model's training step, 35 steps, from lstm.examples:ptb_step;
an LSTM unrolled over --steps steps, about 46 model nodes a step: 220 steps make ~10,000) it
reports the page's size, the time to build it in Python, the first paint (navigation to the
end of the first layout and drawing, folded), and the time of each interaction: hover a
node, click a node (the panel), one step of the backward pass, one move of the time
scrubber, a search, and unfolding (laying out every step; skipped above --unfold-max
nodes drawn, where Graphviz takes minutes). Medians over --repeats tries; Debian's
/usr/bin/chromium through Playwright, every network request blocked.

    python benchmarks/explorer_scale.py [--steps 220] [--repeats 5] [--unfold-max 3000]
"""
import argparse
import pathlib
import statistics
import tempfile
import time

import tinygraph as tg
from tinygraph.examples import lstm_unrolled

from explorer_paint import open_page       # (this folder: the scripts run from it)

# Each interaction, as page script returning its time in ms; `api` is the explorer's object,
# `id` a drawn backward node of the folded cell, `k` a time step of the fold.
INTERACTIONS = {
    "hover": "api.hover(id)",
    "click": "api.show(id)",
    "step": "api.goStep(api.state.step + 1)",
    "scrub": "api.fold.setStep(k)",
    "search": "api.search('∂L/∂c')",
    # colour by gradient norm: a new drawing (layout included), then back
    "norms on": "api.state.norms = !api.state.norms; api.render()",
}


def cases(steps):
    from lstm.examples import ptb_step      # benchmarks may use lstm; tinygraph never does
    return [("PTB small, 35 steps", ptb_step),
            (f"LSTM, {steps} steps", lambda: lstm_unrolled(steps=steps)[1])]


def interaction_ms(page, script, repeats):
    """Median time of `script` run `repeats` times, each on a fresh node/step of the fold."""
    return page.evaluate("""([script, repeats]) => {
        const api = window.tinygraphExplorer;
        const group = api.fold.groups()[0];
        const kept = api.drawn.p.kept;
        const cell = group ? group.nodes[0].filter((i) => kept.get(i) === "node" &&
            api.variant().nodes[i].kind === "backward") : [...kept.keys()];
        const run = new Function("api", "id", "k", script);
        const times = [];
        for (let r = 0; r < repeats; r++) {
            const id = cell[r % cell.length];
            const k = group ? group.steps[(3 + 5 * r) % group.steps.length] : 0;
            const t0 = performance.now();
            run(api, id, k);
            times.push(performance.now() - t0);
        }
        times.sort((a, b) => a - b);
        return times[Math.floor(times.length / 2)];
    }""", [script, repeats])


def measure(browser, path, repeats, unfold_max):
    paints = []
    for _ in range(repeats):
        page = open_page(browser, path, timeout_ms=300_000)
        paints.append(page.evaluate("window.tinygraphExplorer.firstPaintMs"))
        page.close()
    page = open_page(browser, path, timeout_ms=300_000)
    row = {"first paint ms": statistics.median(paints),
           "drawn": page.evaluate("window.tinygraphExplorer.drawnNodeIds.length")}
    for name, script in INTERACTIONS.items():
        row[name + " ms"] = interaction_ms(page, script, repeats)
    folded_nodes = page.evaluate("""(() => { const api = window.tinygraphExplorer;
        return api.fold.groups().reduce((n, g) => n + (g.nodes.length - 1) * g.nodes[0].length, 0)
            + api.drawn.p.kept.size; })()""")
    if folded_nodes <= unfold_max:
        start = time.perf_counter()
        page.evaluate("window.tinygraphExplorer.fold.toggle()")
        row["unfold ms"] = (time.perf_counter() - start) * 1000
        row["drawn unfolded"] = page.evaluate("window.tinygraphExplorer.drawnNodeIds.length")
    page.close()
    return row


def _ms(value):
    if not isinstance(value, float):
        return str(value)
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=220)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--unfold-max", type=int, default=3000,
                        help="unfold only graphs with at most this many nodes to draw")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    folder = pathlib.Path(tempfile.mkdtemp(prefix="explorer-scale-"))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium,
                                    args=["--no-sandbox", "--disable-gpu"])
        for name, build in cases(args.steps):
            start = time.perf_counter()
            explorer = tg.explore(build())
            built = time.perf_counter() - start
            path = explorer.save(folder / (name.split(",")[0].replace(" ", "_") + ".html"))
            variant = explorer.data["variants"][explorer.data["variant"]]
            row = measure(browser, path, args.repeats, args.unfold_max)
            print(f"{name}: {len(variant['nodes'])} model nodes, page "
                  f"{path.stat().st_size / 1e6:.1f} MB, built in {built:.1f} s")
            print("  " + ", ".join(f"{key} {_ms(value)}" for key, value in row.items()))
        browser.close()


if __name__ == "__main__":
    main()
