"""The interactive explorer: one self-contained HTML page for a forward and generated backward
graph, built from the picture (picture.py).

    ex = tg.explore(loss)           # shows inline in Jupyter / VS Code notebooks
    ex.save("graph.html")           # one file: works offline, no server, no CDN

The page holds the model of both the generated and the simplified backward graph (nodes,
edges, scopes, the rule behind each gradient, the engine's order), the values of the tensors
(small ones whole, for heatmaps; statistics for all), Graphviz compiled to WebAssembly
(vendor/viz-global.js, with its licences in vendor/LICENSES.txt) to lay the graph out in the
browser whenever a scope is collapsed or expanded, and the page's own script (explorer/).
"""
import base64
import dataclasses
import html
import json
import math
import pathlib
import re

from ..backend import xp
from ..core.tensor import CELL_STATE, STATE, Tensor
from ..ops.elementwise import Add
from ..ops.shape import Concat
from ..transforms.saved import saved_values
from .folding import fold_steps
from .highway import mark_highway
from .picture import build, default_seed, norm, stepped_name, time_step_paths
from .replay import replay

HERE = pathlib.Path(__file__).resolve().parent
VIEWS = ("forward", "backward", "both")
HEATMAP_MAX = 1024        # tensors up to this many elements are embedded whole
# The time strip's key for each recurrent state a model marks (Tensor.role): h and c.
STATE_KEY = {STATE: "h", CELL_STATE: "c"}
MARKER = re.compile(r"/\*(TITLE|STYLE|DATA|VIZ|APP)\*/")
# The page's script, one module per concern, in this order (app.js first: the others register
# with it; start.js last: it draws).
SCRIPTS = ("app.js", "worked.js", "camera.js", "rewrites.js", "fold.js", "memory.js",
           "start.js")
STYLES = ("style.css", "worked.css", "camera.css", "rewrites.css", "fold.css", "memory.css")


class Explorer:
    """An explorer page: `.html` (the text), `.save(path)`, and `_repr_html_` for notebooks."""

    command = "explore"       # what made the page, for save's errors

    def __init__(self, html_text, data):
        self.html = html_text
        self.data = data          # what the page embeds, as plain Python data

    def save(self, path):
        """Write the page to `path` (one .html file); returns the path."""
        path = pathlib.Path(path)
        if path.suffix.lower() not in (".html", ".htm"):
            raise ValueError(f"{self.command}: save to a file ending in .html, got "
                             f"{str(path)!r}")
        path.write_text(self.html, encoding="utf-8")
        return path

    def _repr_html_(self):
        # An iframe keeps the page's script and style apart from the notebook's.
        return (f'<iframe srcdoc="{html.escape(self.html, quote=True)}" '
                'style="width:100%;height:720px;border:1px solid #ccc" '
                'sandbox="allow-scripts allow-downloads"></iframe>')


def explore(outputs, view="backward", simplify=True, wrt=None, grad_outputs=None, collapse=(),
            title=None):
    """An interactive explorer of the graph behind `outputs` (see `tinygraph.render` for
    outputs, wrt and grad_outputs). The page can switch view (forward, backward, both) and
    generated/simplified at any time; these arguments choose how it opens. collapse: scope
    names drawn collapsed at first, or True for every top-level scope."""
    if view not in VIEWS:
        raise ValueError(f"explore: unknown view {view!r}; choose one of {', '.join(VIEWS)}")
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    if grad_outputs is None:
        grad_outputs = [visible_seed(out) for out in outputs]
    variants = {}
    values = {}     # id(tensor) -> its embedded value: the two variants share forward tensors
    memory = _memory(outputs)
    for name, simplified in (("simplified", True), ("generated", False)):
        model, sources = build(outputs, "both", simplified, wrt, grad_outputs,
                               grad_norms=True, with_sources=True)
        variants[name] = _variant(model, sources, values, memory)
    data = {"title": title or "tinygraph explorer", "view": view,
            "memory": None if memory is None else {
                "peak": memory.peak_bytes, "saved": memory.total_bytes,
                "start": memory.timeline[0]},
            "variant": "simplified" if simplify else "generated",
            "collapsed": _initial_collapse(collapse, variants["simplified"]["scopes"]),
            "variants": variants}
    data["replay"] = replay(outputs, wrt, grad_outputs, variants["generated"],
                            variants["simplified"])     # how the simplified graph was reached
    return Explorer(_page(data), data)


def visible_seed(out):
    """The seed of an output's gradient, drawn where the backward pass starts: for a scalar
    loss L, ∂L/∂L = 1 as a named upstream gradient rather than the constant 1 (which
    simplification would fold away, and with it ∂L/∂h_T = broadcast(1), the first gradient
    a learner looks for); for any other output, the model's default seed."""
    if out.size != 1:
        return default_seed(out)
    # Unnamed, the model names it after the output as drawn (∂L/∂sum₁, ∂L/∂sum₂).
    return Tensor(xp.ones_like(out.data), name=f"∂L/∂{out.name}" if out.name else None)


def _initial_collapse(collapse, scopes):
    """The scope paths ("enc/t=1") to open collapsed: `collapse` names a scope by its name
    (every scope of that name) or by its path; True: every top-level scope."""
    paths = ["/".join(s) for s in scopes]
    if collapse is True:
        return sorted({s[0] for s in scopes})
    names = [collapse] if isinstance(collapse, str) else list(collapse)
    chosen = []
    for name in names:
        found = [p for p in paths if p == name or p.endswith("/" + name)]
        if not found:
            raise ValueError(f"explore: cannot collapse unknown scope {name!r}; the graph has "
                             f"{sorted(set(paths))}")
        chosen += found
    return sorted(set(chosen))


def _memory(outputs):
    """saved_values of the graph (the memory strip under the stepping bar), or None where
    it has no backward pass."""
    if not any(t.requires_grad for t in outputs):
        return None
    return saved_values(outputs)


def _variant(model, sources, values, memory=None):
    """The model as plain data, with what the page shows beyond the diagram: values, the
    engine's order of the backward pass, running sums, the per-step gradient norms, and per
    backward node the bytes alive while its forward op's vjp runs (`mem`: see
    tinygraph.saved_values; a Σ takes the step before it)."""
    data = dataclasses.asdict(model)
    # JSON has no NaN or Infinity: non-finite norms travel as the strings "nan", "inf".
    data["grad_norms"] = None if data["grad_norms"] is None else [
        _number(x) for x in data["grad_norms"]]
    order = 0
    for node, (tensor, graph_node) in zip(data["nodes"], sources):
        if node["grad_norm"] is not None:
            node["grad_norm"] = _number(node["grad_norm"])
        if id(tensor) not in values:
            values[id(tensor)] = (tensor, _value(tensor))   # kept: so its id is not reused
        node["value"] = values[id(tensor)][1]
        node["op"] = graph_node.op if graph_node is not None else None
        node["name"] = tensor.name
        pieces = _pieces(graph_node, node.get("parts"))
        if pieces is not None:
            node["pieces"] = pieces
        if node["kind"] in ("backward", "sum"):
            node["order"] = order      # drawing order follows creation: the engine's order
            order += 1
            if memory is not None:
                step = memory.step_of(graph_node.forward_node) if graph_node is not None \
                    and graph_node.forward_node is not None else None
                node["mem"] = memory.timeline[step] if step is not None else None
    for node, (_, graph_node) in zip(data["nodes"], sources):
        if node["kind"] == "sum" and graph_node is not None and isinstance(graph_node.prim, Add):
            node["partials"] = _partial_sums(node["id"], data["edges"], sources)
    mark_highway(data["nodes"], sources)
    steps = time_step_paths(model.scopes)
    data["time_steps"] = _time_steps(data["nodes"], sources, steps)
    data["fold"] = fold_steps(data["nodes"], data["edges"], steps)   # long runs: one cell drawn
    return data


def _pieces(graph_node, parts):
    """For a concat along the last axis of equal pieces (the LSTM's four gate gradients
    re-joined into ∂L/∂A): the pieces' names (`parts`, the model's names of a join's pieces,
    else the inputs' names) and widths in order, so that the heatmap can mark where one ends
    and the next begins; None for any other node."""
    if graph_node is None or not isinstance(graph_node.prim, Concat) or not graph_node.inputs:
        return None
    ndim = len(graph_node.inputs[0].shape)
    if ndim == 0 or graph_node.prim.axis % ndim != ndim - 1 or len(graph_node.inputs) < 2:
        return None
    widths = [t.shape[-1] for t in graph_node.inputs]
    if len(set(widths)) != 1:
        return None
    names = parts if parts and len(parts) == len(widths) else [
        stepped_name(t) if t.name else None for t in graph_node.inputs]
    return [{"label": name or "·", "size": width} for name, width in zip(names, widths)]


def _value(tensor):
    """Statistics of a value (NaN and Inf counted), and the value itself when small."""
    array = tensor.data
    if array is None:
        return None
    floats = xp.asarray(array, dtype=xp.float64)
    finite = floats[xp.isfinite(floats)]
    stats = {"size": int(floats.size), "nan": int(xp.isnan(floats).sum()),
             "inf": int(xp.isinf(floats).sum()), "norm": _number(norm(floats))}
    if finite.size:
        stats.update(min=_number(finite.min()), max=_number(finite.max()),
                     mean=_number(finite.mean()), std=_number(finite.std()))
    value = {"shape": list(array.shape), "stats": stats}
    if 0 < floats.size <= HEATMAP_MAX:
        raw = xp.ascontiguousarray(floats.astype("<f4")).tobytes()
        value["f32"] = base64.b64encode(raw).decode("ascii")
    return value


def _partial_sums(sum_id, edges, sources):
    """The running sum of a Σ after each summand, in the order of its edges."""
    total, partials = None, []
    for edge in edges:
        if edge["head"] != sum_id or edge["kind"] != "gradient":
            continue
        term = sources[edge["tail"]][0].data
        if term is None:
            continue
        total = term.astype(xp.float64) if total is None else total + term
        partials.append({"from": edge["tail"], "use": edge["use"],
                         "value": _value(Tensor(xp.asarray(total)))})
    return partials


def _time_steps(nodes, sources, time_steps):
    """Per time-step scope (time_steps: {scope path: k}): the norms of ∂L/∂h and ∂L/∂c of
    the state (Tensor.role) made in that step, and the nodes to jump to (the whole gradient,
    not one use's part of it; ∂L/∂h_t is made in step t+1, by the vjps that read h_t)."""
    steps = {}

    def entry(scope):
        k = time_steps.get(tuple(scope))
        if k is None:
            return None
        return steps.setdefault(k, {"step": k, "scope": list(scope)})

    for node, (tensor, graph_node) in zip(nodes, sources):
        key = STATE_KEY.get(tensor.role) if node["kind"] == "op" else None
        if key is not None and entry(node["scope"]) is not None:
            entry(node["scope"])[key] = node["grad_norm"]
            entry(node["scope"]).setdefault(key + "_forward", node["id"])
        of = graph_node.grad_of if graph_node is not None else None
        state = STATE_KEY.get(of.role) if of is not None else None
        if (node["kind"] in ("backward", "sum") and state is not None and of._node is not None
                and node["rule"] is not None and not node["rule"].startswith("part of")):
            made_in = entry(of._node.scope)
            if made_in is not None:
                made_in[state + "_node"] = node["id"]
    for step in steps.values():      # how ∂L/∂c_t came: along the highway, through h_t
        if "c_node" in step:
            whole = nodes[step["c_node"]]
            shares = whole.get("shares") or {"highway": 0.0, "through_h": step.get("c")}
            step["c_highway"], step["c_through_h"] = shares["highway"], shares["through_h"]
    return [steps[k] for k in sorted(steps)]


def _number(value):
    value = float(value)
    return value if math.isfinite(value) else str(value)


def _page(data, template="page.html", scripts=SCRIPTS, styles=STYLES):
    """The HTML page: the data, Viz.js and the page's own script and style (files of
    explorer/: the explorer's by default), inline."""
    def part(path):
        return (HERE / path).read_text(encoding="utf-8")

    # Inside <script> no "<" may appear at all: "<!--" and "<script" change how the HTML
    # parser reads the rest. JSON spells <, > and & as escapes, which JSON.parse reads back.
    payload = (json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
               .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))
    parts = {"TITLE": html.escape(data["title"]), "STYLE": "\n".join(part("explorer/" + name) for name in styles),
             "DATA": payload, "VIZ": part("vendor/viz-global.js"),
             "APP": "\n".join(part("explorer/" + name) for name in scripts)}
    # One pass over the template: inserted text is never searched for markers again.
    return MARKER.sub(lambda m: parts[m.group(1)], part("explorer/" + template))
