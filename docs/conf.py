"""Sphinx configuration of tinygraph's documentation (MyST Markdown pages, the furo theme).

Build it with `bash scripts/docs.sh` (warnings are errors; the doctests run too).
"""
import os
import pathlib
import sys

# Before numpy is imported: one BLAS thread, so a docs build beside other numpy work on a
# small machine does not slow both down many times over.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path[:0] = [str(ROOT), str(DOCS / "_ext")]

import tinygraph  # noqa: E402

project = "tinygraph"
author = "the tinygraph authors"
copyright = "tinygraph authors (MIT licence)"
release = version = tinygraph.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
    "tinygraph_sphinx",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# Every cross-reference must resolve (with -W, a broken one fails the build).
nitpicky = True

myst_enable_extensions = ["colon_fence", "deflist", "dollarmath", "amsmath"]
# Math renders with MathJax served from docs/_static (no CDN: the site works offline).
extensions.append("sphinx.ext.mathjax")
mathjax_path = "mathjax/tex-svg.js"
myst_heading_anchors = 3

# Docstrings are plain reST; `name` in them is code, as in the Markdown pages.
default_role = "code"
autodoc_member_order = "bysource"
autodoc_preserve_defaults = True
autodoc_typehints = "none"
autodoc_default_options = {"members": True}

# The doctests: ```{doctest} blocks in the pages, run by `sphinx-build -b doctest` (and by
# tests/e2e/test_docs.py under pytest, with the same flags).
doctest_test_doctest_blocks = ""

html_theme = "furo"
html_title = f"tinygraph {release}"
html_static_path = ["_static"]
html_css_files = ["tinygraph.css"]
