"""Bad input to the diagrams (render and save): each case raises a specific exception type
whose message names what was wrong."""
import pytest

import tinygraph as tg
from tests.bad_input import Case, t

CASES = [
    # rendering
    Case("render: unknown view", lambda p: tg.render(t(3, grad=True).sum(), view="sideways"),
         ValueError, "unknown view 'sideways'"),
    Case("render: unknown color_by",
         lambda p: tg.render(t(3, grad=True).sum(), color_by="size"), ValueError,
         "unknown color_by 'size'"),
    Case("render: not tensors", lambda p: tg.render("loss"), TypeError, "must be a Tensor"),
    Case("save: unknown file type", lambda p: tg.save(t(3, grad=True).sum(), p / "g.xyz"),
         ValueError, "cannot tell the format"),
    Case("render: collapse an unknown scope",
         lambda p: tg.render(t(3, grad=True).sum(), collapse=["t=9"]), ValueError,
         "unknown scope"),
    Case("save: Graphviz missing", lambda p: _without_dot(
        lambda: tg.save(t(3, grad=True).sum(), p / "g.svg")),
         tg.GraphvizNotFoundError, "Graphviz"),
]


def _without_dot(fn):
    import os
    saved = os.environ.get("PATH", "")
    os.environ["PATH"] = ""
    try:
        fn()
    finally:
        os.environ["PATH"] = saved


@pytest.mark.filterwarnings("ignore::RuntimeWarning")     # numpy's, for the NaN/Inf cases
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input_raises_a_specific_error_naming_it(case, tmp_path):
    with pytest.raises(case.error, match=case.match):
        case.run(tmp_path)
