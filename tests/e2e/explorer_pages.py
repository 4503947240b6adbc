"""What the browser tests of the explorer share: Debian's Chromium driven by Playwright (never a
downloaded browser), and explorer pages opened with the network blocked."""
import pathlib
import shutil

import pytest

import tinygraph as tg

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="Playwright is not installed (test extras)")
    if not pathlib.Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed here (scripts/setup.sh installs it as root: "
                    "apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


class Page:
    """An explorer file opened with every network request blocked; what was attempted and
    what the page logged are kept for the assertions."""

    def __init__(self, browser, path):
        self.requests, self.errors = [], []
        self.page = browser.new_page(viewport={"width": 1400, "height": 900})
        self.page.route("**/*", self._route)
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(pathlib.Path(path).as_uri())
        self.page.wait_for_selector("body[data-ready='1']", timeout=60_000)

    def _route(self, route):
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            self.requests.append(route.request.url)
            route.abort()

    def js(self, expression):
        return self.page.evaluate(expression)

    def drawn(self):
        return self.js("document.querySelectorAll('#graph g.node').length")


@pytest.fixture
def open_page(browser, tmp_path):
    pages = []

    def opener(outputs, name="page", **options):
        """Open tg.explore(outputs, **options); or a page already made (anything with a
        .save, e.g. tg.explore_diff's), or the path of a saved one."""
        if isinstance(outputs, (str, pathlib.Path)):
            path = outputs
        elif hasattr(outputs, "save") and not isinstance(outputs, tg.Tensor):
            path = outputs.save(tmp_path / f"{name}.html")
        else:
            path = tg.explore(outputs, **options).save(tmp_path / f"{name}.html")
        pages.append(Page(browser, path))
        return pages[-1]
    yield opener
    for page in pages:
        assert page.requests == [], "the page tried the network"
        assert page.errors == [], "the page logged errors"
        page.page.close()


def model_nodes(page, variant="simplified"):
    return page.js(f"JSON.parse(document.getElementById('tinygraph-data').textContent)"
                   f".variants.{variant}.nodes")
