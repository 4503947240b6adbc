"""The explorer in a notebook: examples/explore.ipynb run by nbclient (a real kernel) shows the
explorer page in its output."""
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.subprocess
def test_the_example_notebook_shows_the_explorer_inline():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(ROOT / "examples" / "explore.ipynb", as_version=4)
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert len(html) == 1 and html[0].startswith("<iframe srcdoc=")
    page = __import__("html").unescape(html[0])
    # The notebook's own graph is in it: the gradient of c3, the cell state of step 3.
    assert '"grad_of":"c3"' in page and '"scopes":[["t=1"],["t=2"],["t=3"]]' in page
