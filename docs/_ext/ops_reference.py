"""The Ops reference table: every public op function of tinygraph, what it computes, whether it
is one primitive or composed of several, and its gradient rule.

Nothing in the table is written by hand: each function in `tinygraph.__all__` that builds a
graph (one defined in `tinygraph.ops`) is run on the small example inputs of EXAMPLES and what
it recorded decides its row. One recorded node is a primitive, shown with its vjp rule as the
explorer writes it (`Primitive.rule(k)`, filled in with the example's argument names); several
are a composition, listed by the primitives it recorded (its gradient is their vjps, chained).

A public op function without an entry in EXAMPLES is an error (`missing_examples()`): the docs
build fails and so does tests/e2e/test_ops_reference.py, so a new op cannot be left out.
"""
import inspect
import re

import numpy as np

import tinygraph as tg


class T:
    """An example tensor input: a Parameter of this shape, named after its argument, with
    values in (0.5, 1.5) (inside every op's domain: log, sqrt, pow)."""

    def __init__(self, *shape):
        self.shape = shape


# The example call of each public op function: argument name -> value (a T becomes a
# Parameter). Small shapes: only what the function records matters, never its numbers.
EXAMPLES = {
    "add": dict(a=T(2, 3), b=T(2, 3)),
    "sub": dict(a=T(2, 3), b=T(2, 3)),
    "mul": dict(a=T(2, 3), b=T(2, 3)),
    "div": dict(a=T(2, 3), b=T(2, 3)),
    "neg": dict(x=T(2, 3)),
    "pow": dict(x=T(2, 3), exponent=3.0),
    "exp": dict(x=T(2, 3)),
    "log": dict(x=T(2, 3)),
    "sigmoid": dict(x=T(2, 3)),
    "tanh": dict(x=T(2, 3)),
    "relu": dict(x=T(2, 3)),
    "heaviside": dict(x=T(2, 3)),
    "abs": dict(x=T(2, 3)),
    "sqrt": dict(x=T(2, 3)),
    "cast": dict(x=T(2, 3), dtype=np.float32),
    "matmul": dict(a=T(2, 3), b=T(3, 4)),
    "matmul_tn": dict(a=T(3, 2), g=T(3, 4)),
    "sum": dict(x=T(2, 3), axis=1),
    "mean": dict(x=T(2, 3), axis=1),
    "var": dict(x=T(2, 3), axis=1),
    "std": dict(x=T(2, 3), axis=1),
    "reshape": dict(x=T(2, 3), shape=(3, 2)),
    "transpose": dict(x=T(2, 3)),
    "broadcast_to": dict(x=T(1, 3), shape=(2, 3)),
    "sum_to": dict(x=T(2, 3), shape=(1, 3)),
    "getitem": dict(x=T(2, 3), key=(slice(None), slice(0, 2))),
    "concat": dict(tensors=[T(2, 3), T(2, 3)], axis=0),
    "stack": dict(tensors=[T(2, 3), T(2, 3)], axis=0),
    "einsum": dict(spec="bi,ij->bj", operands=[T(2, 3), T(3, 4)]),
    "log_softmax": dict(x=T(2, 3)),
    "softmax": dict(x=T(2, 3)),
    "cross_entropy": dict(logits=T(2, 3), targets=np.array([0, 2])),
    "mse_loss": dict(input=T(2, 3), target=T(2, 3)),
    "binary_cross_entropy_with_logits": dict(logits=T(2, 3), target=T(2, 3)),
    "greater": dict(a=T(2, 3), b=T(2, 3)),
    "greater_equal": dict(a=T(2, 3), b=T(2, 3)),
    "less": dict(a=T(2, 3), b=T(2, 3)),
    "less_equal": dict(a=T(2, 3), b=T(2, 3)),
    "equal": dict(a=T(2, 3), b=T(2, 3)),
    "not_equal": dict(a=T(2, 3), b=T(2, 3)),
    "logical_and": dict(a=np.array([True, False]), b=np.array([True, True])),
    "logical_or": dict(a=np.array([True, False]), b=np.array([False, False])),
    "logical_not": dict(a=np.array([True, False])),
    "where": dict(cond=np.array([[True, False, True], [False, True, False]]), a=T(2, 3),
                  b=T(2, 3)),
    "maximum": dict(a=T(2, 3), b=T(2, 3)),
    "minimum": dict(a=T(2, 3), b=T(2, 3)),
    "clip": dict(x=T(2, 3), min=0.8, max=1.2),
    "max": dict(x=T(2, 3), axis=1),
    "min": dict(x=T(2, 3), axis=1),
    "argmax": dict(x=T(2, 3), axis=1),
    "argmin": dict(x=T(2, 3), axis=1),
    "logsumexp": dict(x=T(2, 3), axis=1),
    "dropout_mask": dict(p=0.5, shape=(2, 3), dtype=np.float64,
                         rng=np.random.default_rng(0)),
}


def public_op_functions():
    """The names in tinygraph.__all__ of the functions that build graphs (defined in
    tinygraph.ops), in __all__'s order."""
    return [name for name in tg.__all__
            if inspect.isfunction(getattr(tg, name))
            and getattr(tg, name).__module__.startswith("tinygraph.ops")]


def missing_examples():
    return [name for name in public_op_functions() if name not in EXAMPLES]


class Row:
    """One op of the table: name, summary (its docstring's first paragraph), primitives (the
    names of the primitives it recorded, in order, each once), primitive (whether it is one
    primitive's function) and rules: for a primitive, the text of each input's gradient."""

    def __init__(self, name, summary, primitives, primitive, rules):
        self.name, self.summary, self.primitives = name, summary, primitives
        self.primitive, self.rules = primitive, rules

    def __repr__(self):
        kind = "primitive" if self.primitive else "composed"
        return f"Row({self.name!r}, {kind}, {self.primitives}, {self.rules})"


def summary(fn):
    """The first sentence of fn's docstring, as one line."""
    paragraph = " ".join((inspect.getdoc(fn) or "").split("\n\n")[0].split())
    return re.split(r"(?<=\.) (?=\S)", paragraph)[0]


def _call(name):
    """Run the op on its example inputs: (output, {id(parameter): its name})."""
    rng = np.random.default_rng(0)
    names = {}

    def made(value, name):
        if isinstance(value, T):
            p = tg.Parameter(rng.uniform(0.5, 1.5, size=value.shape), name=name)
            names[id(p)] = name
            return p
        if isinstance(value, np.ndarray):         # a constant input, named for the rules
            constant = tg.tensor(value)
            constant.name = name
            names[id(constant)] = name
            return constant
        if isinstance(value, list):
            return [made(v, f"{name}[{k}]") for k, v in enumerate(value)]
        return value

    fn = getattr(tg, name)
    args, kwargs = [], {}
    for parameter in inspect.signature(fn).parameters.values():
        if parameter.name not in EXAMPLES[name]:
            continue
        value = made(EXAMPLES[name][parameter.name], parameter.name)
        if parameter.kind is parameter.VAR_POSITIONAL:
            args.extend(value)
        elif parameter.kind is parameter.KEYWORD_ONLY:
            kwargs[parameter.name] = value
        else:
            args.append(value)
    with tg.enable_grad():
        return fn(*args, **kwargs), names


def _d(name):
    return f"∂L/∂({name})" if any(ch in name for ch in " ⊙·+−/[") else f"∂L/∂{name}"


def rule_lines(node, names):
    """The gradient of each input of a primitive node that gets one, in the explorer's
    notation (∂L/∂a = ∂L/∂y · bᵀ); the inputs of a list (tensors[0], tensors[1]) that share a
    rule are written once, as tensors[k]."""
    if not np.issubdtype(node.output.dtype, np.floating):
        return []                   # a boolean or integer result: no gradient flows through
    inputs = [names.get(id(t), f"x{k}") for k, t in enumerate(node.inputs)]
    fill = {"gy": _d("y"), "y": "y", **{f"x{k}": n for k, n in enumerate(inputs)}}
    lines = []
    for k, name in enumerate(inputs):
        template = node.prim.rule(k)
        if template is not None:
            lines.append(re.sub(r"\[\d+\]", "[k]", f"{_d(name)} = {template.format(**fill)}"))
    return list(dict.fromkeys(lines))


def is_primitive(fn, recorded):
    """A function is a primitive's own when it records one node of a primitive defined
    beside it (einsum recording one matmul is still a composition)."""
    return len(recorded) == 1 and type(recorded[0].prim).__module__ == fn.__module__


def row(name):
    fn = getattr(tg, name)
    out, names = _call(name)
    recorded = tg.nodes(out)
    primitive = is_primitive(fn, recorded)
    return Row(name, summary(fn), list(dict.fromkeys(node.op for node in recorded)), primitive,
               rule_lines(recorded[0], names) if primitive else [])


def rows():
    """The table's rows, one per public op function, in tinygraph.__all__'s order. Raises
    LookupError naming the functions EXAMPLES lacks."""
    missing = missing_examples()
    if missing:
        raise LookupError(f"no example inputs for the public op function(s) {missing}: add "
                          f"them to EXAMPLES in {__file__}")
    return [row(name) for name in public_op_functions()]


def code_spans(text):
    """[(is_code, piece)] of a docstring line: `...` spans are code."""
    return [(k % 2 == 1, piece) for k, piece in enumerate(re.split(r"`", text)) if piece]


# --- the Sphinx directive ---------------------------------------------------------------------

COLUMNS = [("Op", 21), ("What it computes", 33), ("Primitive or composed", 17),
           ("Gradient (vjp rule)", 29)]


def _paragraph(*children):
    from docutils import nodes
    return nodes.paragraph("", "", *children)


def _text_with_code(text):
    from docutils import nodes
    return [nodes.literal(piece, piece) if code else nodes.Text(piece)
            for code, piece in code_spans(text)]


def _api_link(name):
    """`tg.name`, linked to its entry in the API reference."""
    from docutils import nodes
    from sphinx import addnodes
    link = addnodes.pending_xref("", refdomain="py", reftype="func",
                                 reftarget=f"tinygraph.{name}", refexplicit=True)
    link += nodes.literal(f"tg.{name}", f"tg.{name}", classes=["xref", "py", "py-func"])
    return link


def _made_of(row):
    from docutils import nodes
    names = [nodes.literal(p, p) for p in row.primitives]
    joined = [piece for k, n in enumerate(names) for piece in ([nodes.Text(", ")] if k else [])
              + [n]]
    return _paragraph(nodes.Text("primitive " if row.primitive else "composed of "), *joined)


def _gradient(row):
    from docutils import nodes
    if not row.primitive:
        return [_paragraph(nodes.Text("its primitives' vjps, chained (derived)"))]
    if not row.rules:
        return [_paragraph(nodes.Text("none: no gradient flows through it"))]
    return [_paragraph(nodes.Text(line)) for line in row.rules]


def table(rows):
    """The docutils table of `rows`."""
    from docutils import nodes
    group = nodes.tgroup(cols=len(COLUMNS))
    group += [nodes.colspec(colwidth=width) for _, width in COLUMNS]
    head = nodes.thead()
    head += nodes.row("", *[nodes.entry("", _paragraph(nodes.Text(title)))
                            for title, _ in COLUMNS])
    body = nodes.tbody()
    for r in rows:
        body += nodes.row("", nodes.entry("", _paragraph(_api_link(r.name))),
                          nodes.entry("", _paragraph(*_text_with_code(r.summary))),
                          nodes.entry("", _made_of(r)),
                          nodes.entry("", *_gradient(r)))
    group += [head, body]
    # colwidths-given: the HTML writer emits the colspecs' widths (else the browser sizes
    # the columns by their longest unbreakable word and the table overflows the page).
    return nodes.table("", group, classes=["tinygraph-ops", "colwidths-given"])


def directive():
    """The ``tinygraph-ops-table`` directive class (made here so this module imports without
    Sphinx, for the tests)."""
    from sphinx.util.docutils import SphinxDirective

    class OpsTableDirective(SphinxDirective):
        """``tinygraph-ops-table``: the table of every public op function, recorded now."""

        def run(self):
            import pathlib
            root = pathlib.Path(tg.__file__).parent
            sources = sorted(root.glob("ops/*.py")) + [root / "__init__.py"]
            for path in sources + [pathlib.Path(__file__)]:
                self.env.note_dependency(str(path))
            try:
                found = rows()
            except Exception as error:
                raise self.error(f"tinygraph-ops-table: {error}")
            return [table(found)]

    return OpsTableDirective
