"""The documentation site's promises, checked without Sphinx: the pages' doctests pass, the code
of every build-time diagram runs, every public name in the API reference has a docstring, no
image is checked in.

The full build (`bash scripts/docs.sh`, run by CI) runs the same doctests through
sphinx.ext.doctest and draws the diagrams; this file makes them fail fast under pytest too.
"""
import doctest
import importlib
import inspect
import os
import pathlib
import re

import pytest

import tinygraph as tg
from tinygraph.examples import EXAMPLES

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
FENCE = re.compile(r"^```\{([\w-]+)\}[ \t]*(.*?)\n(.*?)^```[ \t]*$", re.S | re.M)
# sphinx.ext.doctest's default flags (docs/conf.py does not change them).
FLAGS = doctest.ELLIPSIS | doctest.IGNORE_EXCEPTION_DETAIL | doctest.DONT_ACCEPT_TRUE_FOR_1

# Public names documented in the API reference that have no docstring yet (autodoc leaves
# undocumented members out, so the page is complete without them, but they should get one).
KNOWN_UNDOCUMENTED = set()


def fences(page, *kinds):
    """(kind, argument, option dict, body) of each ```{kind} fence of a page."""
    found = []
    for kind, argument, content in FENCE.findall(page.read_text(encoding="utf-8")):
        if kind not in kinds:
            continue
        lines = content.splitlines()
        options = {}
        while lines and re.match(r"^:[\w-]+:", lines[0]):
            name, _, value = lines.pop(0)[1:].partition(":")
            options[name] = value.strip()
        found.append((kind, argument.strip(), options, "\n".join(lines).strip("\n")))
    return found


def pages_with(*kinds):
    return [page for page in PAGES if fences(page, *kinds)]


@pytest.mark.parametrize("page", pages_with("doctest"), ids=lambda p: p.name)
def test_the_doctests_of_a_page_pass(page):
    """All ```{doctest} blocks of a page run as one session, after its ```{testsetup}."""
    blocks = fences(page, "doctest", "testsetup", "testcleanup")
    namespace = {"__name__": "__docs__"}
    cwd = os.getcwd()
    try:
        for _, _, _, body in (b for b in blocks if b[0] == "testsetup"):
            exec(compile(body, f"{page.name} testsetup", "exec"), namespace)
        text = "\n\n".join(body for kind, _, _, body in blocks if kind == "doctest")
        test = doctest.DocTestParser().get_doctest(text, namespace, page.name, str(page), 0)
        assert test.examples, f"{page.name}: no examples found"
        runner = doctest.DocTestRunner(optionflags=FLAGS)
        report = []
        result = runner.run(test, out=report.append, clear_globs=False)
        for _, _, _, body in (b for b in blocks if b[0] == "testcleanup"):
            exec(compile(body, f"{page.name} testcleanup", "exec"), namespace)
    finally:
        os.chdir(cwd)
    assert result.failed == 0, "".join(report)


def diagram_cases():
    return [pytest.param(page, k, options, argument, body, id=f"{page.stem}-{k}")
            for page in PAGES
            for k, (_, argument, options, body) in enumerate(
                fences(page, "tinygraph-diagram", "tinygraph-explorer"))]


@pytest.mark.parametrize("page, k, options, argument, body", diagram_cases())
def test_the_code_of_every_diagram_runs_and_draws(page, k, options, argument, body):
    """What the docs' tinygraph-diagram directive does, up to the DOT text (no Graphviz)."""
    extra = {}
    if argument:
        outputs = EXAMPLES[argument]()
    else:
        namespace = {"__name__": "__docs__"}
        exec(compile(body, f"{page.name} diagram {k}", "exec"), namespace)
        outputs = namespace["outputs"]
        extra = {key: namespace[key] for key in ("wrt", "grad_outputs") if key in namespace}
    collapse = True if "collapse-all" in options else options.get("collapse", "").split()
    dot = tg.to_dot(outputs, view=options.get("view", "both"),
                    simplify="no-simplify" not in options, collapse=collapse,
                    color_by=options.get("color-by"), **extra)
    assert dot.startswith("digraph")


def documented_modules():
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    return re.findall(r"^\.\. automodule:: (\S+)\n((?:   :.*\n)*)", text, re.M)


def public_members(module_name, options):
    """(qualified name, object) of what autodoc documents for an `automodule` with these
    options: the module's public functions and classes (its __all__ when it has one) and
    their public methods and properties, inherited ones included unless they come from
    a base named in :inherited-members: (or are object's)."""
    module = importlib.import_module(module_name)
    if ":no-members:" in options:
        return [(module_name, module)]
    chosen = re.search(r":members: (.+)", options)
    if chosen:
        names = [n.strip() for n in chosen.group(1).split(",")]
    elif hasattr(module, "__all__"):
        names = list(module.__all__)
    else:
        names = [n for n, v in vars(module).items() if not n.startswith("_")
                 and (inspect.isfunction(v) or inspect.isclass(v))
                 and v.__module__ == module_name]
    inherited = re.search(r":inherited-members: (.+)", options)
    stop = {"object"} | ({n.strip() for n in inherited.group(1).split(",")} if inherited
                         else set())
    found = [(module_name, module)]
    for name in names:
        obj = getattr(module, name)
        found.append((f"{module_name}.{name}", obj))
        if inspect.isclass(obj):
            for klass in obj.__mro__:
                if klass.__name__ in stop or (klass is not obj and not inherited):
                    continue
                for attr, value in vars(klass).items():
                    if attr.startswith("_") or not (
                            inspect.isfunction(value) or isinstance(value, property)):
                        continue
                    found.append((f"{module_name}.{name}.{attr}", getattr(obj, attr)))
    return found


def test_every_public_name_in_the_api_reference_has_a_docstring():
    modules = documented_modules()
    assert {"tinygraph", "tinygraph.nn", "tinygraph.optim", "lstm.cells",
            "lstm.train"} <= {m for m, _ in modules}
    missing = sorted({name for module, options in modules
                      for name, obj in public_members(module, options)
                      if not (inspect.getdoc(obj) or "").strip()} - KNOWN_UNDOCUMENTED)
    assert not missing, f"public names without a docstring: {missing}"


def test_no_image_is_checked_in_under_docs():
    images = [p.relative_to(ROOT) for p in DOCS.rglob("*")
              if p.suffix.lower() in {".png", ".svg", ".jpg", ".jpeg", ".gif", ".pdf"}
              and "_build" not in p.parts]
    assert not images, f"figures must be drawn at build time, not checked in: {images}"


def test_the_link_check_finds_missing_pages_anchors_and_mailto_links(tmp_path):
    """docs/_ext/local_links.py, run by the docs build after writing the site."""
    import sys
    sys.path.insert(0, str(DOCS / "_ext"))
    from local_links import broken_links
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.html").write_text('<p id="here">x</p><a href="a.html#here">ok</a>'
                                     '<a href="sub/b.html">ok</a><a href="https://x.org">out</a>'
                                     '<a href="gone.html">1</a><a href="sub/b.html#nope">2</a>'
                                     '<a href="mailto:x%40Wx">3</a>')
    (tmp_path / "sub" / "b.html").write_text('<a href="../a.html#here">ok</a>')
    found = sorted((page.name, href) for page, href, _ in broken_links(tmp_path))
    assert found == [("a.html", "gone.html"), ("a.html", "mailto:x%40Wx"),
                     ("a.html", "sub/b.html#nope")]


def test_math_is_served_with_the_site_not_from_a_cdn():
    """The pages' math renders offline: MathJax is a file of the site, named by conf.py."""
    conf = (DOCS / "conf.py").read_text(encoding="utf-8")
    (path,) = re.findall(r'^mathjax_path = "([^"]+)"', conf, re.M)
    assert not path.startswith(("http:", "https:", "//"))
    assert (DOCS / "_static" / path).stat().st_size > 1_000_000
    assert (DOCS / "_static" / "mathjax" / "LICENSE").exists()


def focus_cases():
    return [pytest.param(page, argument, options, id=f"{page.stem}-{options['focus']}")
            for page in PAGES
            for _, argument, options, _ in fences(page, "tinygraph-diagram")
            if "focus" in options]


def _drawn_nodes(dot):
    """{DOT id: label} of the nodes a DOT text declares with a label."""
    return dict(re.findall(r'^\s*(\w+) \[label="([^"]*)"', dot, re.M))


@pytest.mark.parametrize("page, argument, options", focus_cases())
def test_a_focused_crop_draws_its_gradients_bold_and_only_their_neighbourhood(
        page, argument, options):
    """The walk-through's crops (`:focus:`): each selector's gradient node is drawn with the
    bold outline, and the crop is a small part of the graph the full diagram draws."""
    from tinygraph.diagrams.crop import crop_dot
    selectors = options["focus"].replace(",", " ").split()
    dot = crop_dot(EXAMPLES[argument](), selectors,
                      depth=int(options.get("focus-depth", 1)),
                      view=options.get("view", "backward"),
                      simplify="no-simplify" not in options)
    crop = _drawn_nodes(dot)
    whole = _drawn_nodes(tg.to_dot(EXAMPLES[argument](), view=options.get("view", "backward"),
                                   simplify="no-simplify" not in options))
    assert 2 < len(crop) <= 12 < len(whole)
    bold = re.findall(r'^\s*(\w+) \[color="#1c4587" penwidth=3\]', dot, re.M)
    assert len(bold) >= len(selectors)
    for selector in selectors:
        name = selector.rpartition("/")[2]
        assert any(re.search(rf"∂L/∂{re.escape(name)}[₀-₉]*\\n", crop[b]) for b in bold), \
            (selector, [crop[b] for b in bold])
    assert f"{len(crop)} of the" in dot      # the crop's caption says it is a part


def test_a_focus_that_names_no_gradient_fails_and_lists_the_gradients():
    from tinygraph.diagrams.crop import crop_dot
    with pytest.raises(ValueError, match=r"'t=3/nope' matches no gradient node.*t=3/c2"):
        crop_dot(EXAMPLES["lstm_unrolled"](), ["t=3/nope"])


def toctrees(page):
    """(caption, [page names]) of each toctree of a page, in order."""
    return [(options.get("caption"), body.split())
            for _, _, options, body in fences(page, "toctree")]


def test_the_index_lists_the_course_in_order_then_the_reference():
    (course_caption, course), (reference_caption, reference) = toctrees(DOCS / "index.md")
    assert (course_caption, reference_caption) == ("Course", "Reference")
    assert course == ["getting-started", "tutorial", "concepts", "lstm", "walkthrough",
                      "rnn-lstm-gru", "nn-script", "from-pytorch", "training", "seq2seq",
                      "forward-reverse-memory"]
    assert {"compiled", "engine", "own-primitive", "explorer", "benchmarks", "api"} \
        <= set(reference)
    assert sorted(course + reference) == sorted(p.stem for p in PAGES if p.stem != "index")
    # The list on the page says the same, in the same order.
    text = (DOCS / "index.md").read_text(encoding="utf-8")
    linked = re.findall(r"^- \[[^\]]+\]\(([\w-]+)\.md\)", text, re.M)
    assert linked == course + reference


def test_every_walkthrough_stop_has_a_crop_a_doctest_and_an_answer_that_checks():
    text = (DOCS / "walkthrough.md").read_text(encoding="utf-8")
    stops = re.split(r"^## Stop \d+: ", text, flags=re.M)[1:]
    assert 6 <= len(stops) <= 8
    for stop in stops:
        title = stop.splitlines()[0]
        assert "**In the explorer.**" in stop and "**The rule.**" in stop, title
        assert "**Exercise.**" in stop, title
        assert re.search(r"```\{tinygraph-(diagram|state-norms)\}", stop), title
        question, _, answer = stop.partition("<summary>Answer</summary>")
        assert "```{doctest}" in question and "```{doctest}" in answer, title
        assert "</details>" in answer, title
