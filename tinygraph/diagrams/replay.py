"""The replay of the rewrite log: the way from the generated backward graph to the simplified
one, one named rewrite at a time, as the explorer shows it.

`simplify` logs every rewrite it does (tinygraph.transforms.rewrite). The replay draws the
graph after each of them: frame k is the picture of `simplify(..., stop_after=k)`, the
graph with the first k rewrites done and the rest as generated, built like the explorer's
variants. Frame 0 is the generated graph and the last frame the simplified one. A long log on
a large graph is shown a few rewrites per frame (the page says how many; see MAX_FRAMES).

The page holds the frames compactly: each distinct node once (a reference to the same node
of the generated or simplified variant where there is one; only the nodes of the frames in
between are written out), each distinct edge once, and each frame as what changed since the
one before.
"""
import difflib
import math

from ..core.autodiff import nodes
from ..transforms.rewrite import simplify
from .picture import BACKWARD_KINDS, build, norm

# Each frame is a model built: a log of more rewrites than MAX_FRAMES, or a large graph (more
# than MAX_FRAME_NODES nodes in all frames together), is shown several rewrites per frame.
MAX_FRAMES = 24
MAX_FRAME_NODES = 6_000     # about a second of building per 1,000 nodes
# One line per rule, for a learner: what the rewrite saw and why the graph may change so.
RULE_TEXT = {
    "constant_folding": "every input of this node is a constant, so its value is known "
                        "without running it: the node becomes that constant",
    "identities": "this node changes nothing (x · 1, x + 0, a reshape to the same shape), so "
                  "its input stands for it",
    "slice_tiling": "the gradient of a tensor cut into slices came back as a Σ of slices each "
                    "put in zeros; they tile the tensor, so one concat lays them side by "
                    "side (for an LSTM: ∂L/∂A = concat(∂L/∂A_f, ∂L/∂A_g, ∂L/∂A_i, ∂L/∂A_o))",
    "cse": "the same op on the same inputs was computed twice (Whᵀ in every time step): one "
           "copy is kept and read by both",
    "join_weight_gradients": "a weight's per-step products a_tᵀ g_t become one matmul over "
                             "the whole sequence",
    "fusions": "several nodes become one that does their work in one pass",
}
# What identifies a node of a frame across frames (with how many such nodes came before).
KEY_FIELDS = ("kind", "lines", "shape", "dtype", "scope", "step", "grad_of", "rule", "name",
              "op")


def replay(outputs, wrt, grad_outputs, generated, simplified):
    """The page data of the replay, for the explorer's variants `generated` and `simplified`
    (their plain-data nodes and edges): {"frames", "records", "edges", "steps", "per_frame",
    "rules", "ends_simplified"}; None when nothing was rewritten."""
    first = _Frame(outputs, wrt, grad_outputs, 0, whole_log=True)
    log = first.log
    if not log:
        return None
    # Each frame derives its own generated graph, the same one: a node is found in each by
    # its position in the graph's order.
    position = {id(node): k for k, node in enumerate(first.order)}
    replaced = [[position[id(node)] for node in entry.replaced] for entry in log]
    ends = _rewrite_ends(log)
    per_frame = _per_frame(len(ends), len(first.nodes))
    stops = [0] + ends[per_frame - 1::per_frame] + ([ends[-1]] if len(ends) % per_frame else [])
    frames = [first] + [_Frame(outputs, wrt, grad_outputs, k) for k in stops[1:]]
    table = _Records(generated, simplified)
    node_lists = [[table.node(key, node) for key, node in zip(_keys(f.nodes), f.nodes)]
                  for f in frames]
    edge_lists = [table.edges(f.edges, ids) for f, ids in zip(frames, node_lists)]
    steps = [_step(log, replaced, stops[k], stops[k + 1], frames[k], frames[k + 1], first,
                   frames[-1]) for k in range(len(frames) - 1)]
    for k, step in enumerate(steps):
        step["removed"], step["appeared"] = _changes(node_lists[k], node_lists[k + 1])
    return {
        "records": table.records, "edges": table.edge_records,
        "frames": _frame_deltas(node_lists, edge_lists, frames),
        "steps": steps, "per_frame": per_frame,
        "rules": {name: RULE_TEXT.get(name, "a rewrite rule of tinygraph.simplify")
                  for name in sorted({r.rule for r in log})},
        # The last frame is the simplified graph (the page says so only when it is).
        "ends_simplified": _same_nodes(frames[-1].nodes, simplified["nodes"]),
        "starts_generated": _same_nodes(frames[0].nodes, generated["nodes"]),
    }


class _Frame:
    """The graph after the first `stop_after` rewrites, as a picture; with the nodes of
    the generated graph it was made from (`order`) and its partial simplification (`part`),
    and with whole_log, the log of the whole simplification of that graph."""

    def __init__(self, outputs, wrt, grad_outputs, stop_after, whole_log=False):
        made = {}

        def part_way(roots):
            made["roots"] = roots            # kept alive: `order` holds weak outputs
            made["log"] = simplify(roots).log if whole_log else None
            made["part"] = simplify(roots, stop_after=stop_after)
            return made["part"]

        # No second backward pass for the norms: a node that the variants have too takes
        # theirs, and a gradient's norm is that of its value (_plain).
        model, self.sources = build(outputs, "both", part_way, wrt, grad_outputs,
                                    with_sources=True)
        self.roots, self.log, self.part = made["roots"], made["log"], made["part"]
        self.order = [n for n in nodes(self.roots) if n.is_backward]
        self.backward_count = model.backward_count
        self.nodes = [_plain(node, source) for node, source in zip(model.nodes, self.sources)]
        self.edges = [dict(vars(e)) for e in model.edges]
        self.id_of_node = {id(g): i for i, (_, g) in enumerate(self.sources) if g is not None}
        self.id_of_tensor = {}
        for i, (t, _) in enumerate(self.sources):
            self.id_of_tensor.setdefault(id(t), i)

    def drawn(self, tensor):
        """The model ids that show `tensor` of this frame's graph: its node; or, for a value
        written into labels (a constant), the nodes that read it."""
        if tensor._node is not None and id(tensor._node) in self.id_of_node:
            return [self.id_of_node[id(tensor._node)]]
        if id(tensor) in self.id_of_tensor:
            return [self.id_of_tensor[id(tensor)]]
        return [i for i, (_, g) in enumerate(self.sources)
                if g is not None and any(t is tensor for t in g.inputs)]

    def replaced(self, positions):
        """The model ids, in this frame, of the generated nodes at `positions` (a log entry's
        replaced nodes, which the frame has not rewritten yet: drawn as generated)."""
        found = []
        for node in (self.order[k] for k in positions):
            if node.output is None:
                continue
            for i in self.drawn(self.part.stands_for(node.output)):
                if i not in found:
                    found.append(i)
        return found


def _plain(node, source):
    data = dict(vars(node))          # the model is thrown away: its lists can be shared
    tensor, graph_node = source
    data["op"] = graph_node.op if graph_node is not None else None
    data["name"] = tensor.name
    if data["kind"] in BACKWARD_KINDS and data["grad_of"] is not None and tensor.data is not None:
        value = norm(tensor.data)              # as build(grad_norms=True) gives it
        data["grad_norm"] = value if math.isfinite(value) else str(value)   # JSON: no NaN
    return data


def _rewrite_ends(log):
    """How many log entries are done after each rewrite: a join logged under several names is
    one rewrite (its entries have the same first node), never cut in two by a frame."""
    return [k + 1 for k, entry in enumerate(log)
            if k + 1 == len(log) or log[k + 1].replaced[0] is not entry.replaced[0]]


def _per_frame(rewrites, model_nodes):
    """Rewrites per frame: 1 unless that would make more than MAX_FRAMES frames, or more than
    MAX_FRAME_NODES nodes in all frames (each frame a model built)."""
    frames = max(1, min(MAX_FRAMES, MAX_FRAME_NODES // max(1, model_nodes)))
    return max(1, math.ceil(rewrites / frames))


def _entry_text(rewrite):
    """A log entry as the page lists it, with the scope of what it rewrote where there is one:
    "slice_tiling [t=3]: add + add + add -> concat"."""
    scope = rewrite.replaced[0].scope if rewrite.replaced else ()
    if not scope:
        return str(rewrite)
    rule, _, rest = str(rewrite).partition(": ")
    return f"{rule} [{'/'.join(scope)}]: {rest}"


def _step(log, replaced, start, stop, before, after, first, last):
    """One frame to the next: the log entries done, with what each replaced (ids in the
    generated variant) and made (ids in the simplified one, where it is still there); the
    ids of what they replaced in the frame before, and of what they made in the frame after."""
    entries = []
    for k in range(start, stop):
        entries.append({"index": k, "rule": log[k].rule, "text": _entry_text(log[k]),
                        "generated": first.replaced(replaced[k]),
                        "simplified": last.drawn(last.part.log[k].result)})
    gone, made = [], []
    for k in range(start, stop):
        gone += [i for i in before.replaced(replaced[k]) if i not in gone]
        made += [i for i in after.drawn(after.part.log[k].result) if i not in made]
    return {"entries": entries, "before": gone, "after": made}


def _changes(before, after):
    """What a step changes in the drawing: the positions of the frame before whose nodes the
    frame after has not (the replaced nodes, and those nothing reads any more), and those of
    the frame after that are new (what stands for them, and nodes drawn otherwise now: a Σ
    whose label changed, a node moved to another scope)."""
    kept_before, kept_after = set(after), set(before)
    return ([i for i, r in enumerate(before) if r not in kept_before],
            [i for i, r in enumerate(after) if r not in kept_after])


def _keys(nodes):
    """Each node's key: its content and how many nodes with that content came before."""
    seen = {}
    for node in nodes:
        content = _content(node)
        seen[content] = seen.get(content, -1) + 1
        yield content, seen[content]


def _content(node):
    return tuple(tuple(node[f]) if isinstance(node[f], (list, tuple)) else node[f]
                 for f in KEY_FIELDS)


class _Records:
    """The distinct nodes and edges of all frames. A node that the generated or simplified
    variant has too is a reference to it, {"generated": id}; any other is written out."""

    def __init__(self, generated, simplified):
        self.records, self.ids = [], {}
        self.edge_records, self.edge_ids = [], {}
        for name, variant in (("generated", generated), ("simplified", simplified)):
            for key, node in zip(_keys(variant["nodes"]), variant["nodes"]):
                if key not in self.ids:
                    self.ids[key] = len(self.records)
                    self.records.append({name: node["id"]})

    def node(self, key, node):
        """The record id of a frame's node (written out when no variant has it)."""
        if key not in self.ids:
            self.ids[key] = len(self.records)
            self.records.append({f: v for f, v in node.items() if f != "id"})
        return self.ids[key]

    def edges(self, edges, node_ids):
        """Each edge of a frame as an edge record id; an edge record is [tail record, head
        record, kind, use]."""
        ids, seen = [], {}
        for e in edges:
            content = (node_ids[e["tail"]], node_ids[e["head"]], e["kind"], e["use"])
            seen[content] = seen.get(content, -1) + 1
            key = (content, seen[content])
            if key not in self.edge_ids:
                self.edge_ids[key] = len(self.edge_records)
                self.edge_records.append(list(content))
            ids.append(self.edge_ids[key])
        return ids


def _frame_deltas(node_lists, edge_lists, frames):
    """Frame 0 whole, each later frame as the changes to the one before: [start, end, new
    ids] replaces prev[start:end] by new ids (difflib's opcodes, applied from the last)."""
    out = []
    for k, (nodes, edges) in enumerate(zip(node_lists, edge_lists)):
        frame = {"backward": frames[k].backward_count, "done": len(frames[k].part.log)}
        if k == 0:
            frame.update(nodes=nodes, edges=edges)
        else:
            frame.update(nodes=_delta(node_lists[k - 1], nodes),
                         edges=_delta(edge_lists[k - 1], edges))
        out.append(frame)
    return out


def _delta(before, after):
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    return [[i1, i2, after[j1:j2]] for op, i1, i2, j1, j2 in matcher.get_opcodes()
            if op != "equal"]


def _same_nodes(nodes, variant_nodes):
    """Whether two node lists draw the same: the same nodes (content) in the same order."""
    return [_content(n) for n in nodes] == [_content(n) for n in variant_nodes]
