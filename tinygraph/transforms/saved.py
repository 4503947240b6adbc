"""What the backward pass keeps: the values a graph saved for it, and its memory over time.

A node holds its inputs until its vjp has run (a pass that does not retain the graph then
drops them), so the memory of a backward pass is the saved values still held plus the
gradients pending in the accumulator. `saved_values(loss)` reads both off the graph without
running anything (JAX's `print_saved_residuals`, drawn as a timeline):

    saved = tg.saved_values(loss)
    print(saved)                 # one row per saved value: op, shape, bytes, last read
    saved.timeline               # bytes alive after each backward step (index 0: before)
    saved.plot()                 # the timeline as a matplotlib figure, the peak marked

Memory is counted per underlying array: a slice or a reshape that is a view costs nothing of
its own and keeps its base alive. Leaves (parameters, inputs) are the script's, not the
pass's, and are left out; so are temporaries inside one vjp. A checkpoint node's step adds
the values its recomputation records (see tinygraph.transforms.checkpoint).
"""
from dataclasses import dataclass

from ..backend import xp
from ..core.autodiff import nodes


@dataclass
class SavedValue:
    """One value the graph keeps for the backward pass."""
    name: str               # the tensor's name, or "<op> output" for an unnamed one
    op: str                 # the op that computed it
    saved_by: tuple         # the ops whose nodes hold it (their vjps may read it)
    shape: tuple
    dtype: str
    bytes: int              # of the array it lives in (0 for a view of another saved value)
    last_read: int          # the backward step after which nothing holds it (None: kept)


class SavedValues:
    """The saved values of a graph (`rows`), in the order the forward pass made them, and the
    memory of its backward pass: `timeline[k]` the most bytes alive during backward step k
    (0: before the first vjp; the last: after the last vjp, when the weights' gradient terms
    are joined), `steps[k - 1]` the op whose vjp ran at step k; `saved_timeline[k]` the saved
    values' share of it (held during the step)."""

    def __init__(self, rows, steps, timeline, saved_timeline, step_of=None):
        self.rows, self.steps, self.timeline = rows, steps, timeline
        self._step_of = step_of or {}            # id(forward node) -> its backward step
        self.saved_timeline = saved_timeline     # the saved values' share of the timeline
        self.total_bytes = sum(r.bytes for r in rows)
        self.peak_step = max(range(len(timeline)), key=timeline.__getitem__)
        self.peak_bytes = timeline[self.peak_step]

    def step_of(self, node):
        """The backward step at which `node`'s vjp runs (1 for the last op), or None."""
        return self._step_of.get(id(node))

    def __str__(self):
        lines = [f"{'value':<16} {'made by':<10} {'saved by':<16} {'shape':<14} "
                 f"{'bytes':>10}  last read", "-" * 82]
        for r in self.rows:
            last = "kept" if r.last_read is None else f"step {r.last_read}"
            lines.append(f"{_cut(r.name, 16):<16} {_cut(r.op, 10):<10} "
                         f"{_cut(', '.join(r.saved_by), 16):<16} {_cut(str(r.shape), 14):<14} "
                         f"{r.bytes:>10,}  {last}")
        lines.append(f"{len(self.rows)} saved values, {self.total_bytes:,} bytes; the backward "
                     f"pass ({len(self.steps) - 1} vjps) peaks at {self.peak_bytes:,} bytes "
                     f"(step {self.peak_step})")
        return "\n".join(lines)

    def plot(self, ax=None):
        """The timeline as a step plot (bytes per backward step in B, kB or MB as the peak
        needs, saved values and gradients apart, the peak marked); returns the Figure."""
        import matplotlib.pyplot as plt
        if ax is None:
            _, ax = plt.subplots(figsize=(8, 3), layout="constrained")
        unit, scale = next((u, f) for u, f in (("MB", 2**20), ("kB", 2**10), ("B", 1))
                           if self.peak_bytes >= f or f == 1)
        mb = [b / scale for b in self.timeline]
        saved = [b / scale for b in self.saved_timeline]
        steps = range(len(mb))
        ax.fill_between(steps, saved, step="post", alpha=0.5, label="saved values")
        ax.fill_between(steps, saved, mb, step="post", alpha=0.5, label="pending gradients")
        ax.plot([self.peak_step], [mb[self.peak_step]], "v", color="black")
        ax.annotate(f"peak {mb[self.peak_step]:.1f} {unit}",
                    (self.peak_step, mb[self.peak_step]), textcoords="offset points",
                    xytext=(4, 4))
        ax.set_xlabel("backward step (vjps run, last op first)")
        ax.set_ylabel(f"{unit} alive")
        ax.legend(loc="upper right")
        return ax.figure


def saved_values(outputs):
    """The values the graph of `outputs` (a Tensor, or a list: a loss) keeps for the backward
    pass and the memory timeline of a pass that does not retain the graph: a SavedValues
    (its `rows`, `timeline`, `peak_bytes`; print it for a table, `.plot()` for a figure).
    Counted per underlying array; leaves (weights, inputs) are the script's and left out."""
    outputs = [outputs] if not isinstance(outputs, (list, tuple)) else list(outputs)
    return analysed(outputs, {})


def analysed(outputs, given):
    """saved_values of `outputs`' graph read down to the tensors in `given` (ids): those are
    inputs from outside (a checkpointed segment's), neither saved here nor differentiated."""
    order = nodes(outputs, given=given)
    steps = [node for node in reversed(order) if node.output is not None
             and node.output.requires_grad]
    step_of = {id(node): k + 1 for k, node in enumerate(steps)}
    end = len(steps) + 1                 # the leaves' gradients are completed after the pass

    def completed(t):                    # the step whose pop completes t's gradient
        return step_of.get(id(t._node), end) if t._node is not None else end

    # The saved values: the inputs of the graph's nodes that one of its nodes computed.
    holders, first = {}, {}
    for node in order:
        for t in node.inputs:
            if t._node is not None and t._data is not None and id(t) not in given:
                holders.setdefault(id(t), []).append(node)
                first.setdefault(id(t), t)
    life = {key: (None if any(id(n) not in step_of for n in held)
                  else max(step_of[id(n)] for n in held)) for key, held in holders.items()}
    # Lazy gradient terms keep their operands alive until the gradient they add to is done.
    terms_of = {}                        # step -> [(target tensor, bytes held for g)]
    for node in steps:
        for k, t in enumerate(node.inputs):
            if not t.requires_grad or id(t) in given and t._node is not None:
                continue
            held = node.prim.pending_gradient(node, k)
            if held is None:
                continue
            done = completed(t)
            for h in held[:-1] if held[-1] is node.output else held:
                if id(h) in life and life[id(h)] is not None:
                    life[id(h)] = max(life[id(h)], done)
            terms_of.setdefault(step_of[id(node)], []).append(
                (t, _nbytes(node.output) if held[-1] is node.output else 0))
    rows, owner, base_life, base_bytes = [], {}, {}, {}
    for key, t in first.items():
        base = _base(t._data)
        counted = id(base) not in owner
        owner.setdefault(id(base), key)
        ends = life[key]
        rows.append(SavedValue(t.name or f"{t._node.op} output", t._node.op,
                               tuple(n.op for n in holders[key]), t.shape, str(t.dtype),
                               base.nbytes if counted else 0, ends))
        b = owner[id(base)]
        base_bytes[b] = base.nbytes
        base_life[b] = _INF if ends is None or base_life.get(b) == _INF \
            else max(base_life.get(b, 0), ends)
    release = {}
    for b, ends in base_life.items():
        if ends != _INF:
            release[ends] = release.get(ends, 0) + base_bytes[b]
    alive = sum(base_bytes.values())
    # The gradients pending in the accumulator: a dense array per tensor, or lazy terms
    # (by tensor, and their running totals: a long pass has many pending at once).
    dense, lazy = {}, {}                 # id(tensor) -> bytes
    for out in outputs:
        dense[id(out)] = _nbytes(out)
    pending = sum(dense.values())
    timeline, saved_timeline = [alive + pending], [alive]
    for k, node in enumerate(steps, 1):
        out = node.output
        g = dense.pop(id(out), 0)
        joined = lazy.pop(id(out), 0)
        pending -= g + joined
        peak = alive + pending + g + \
            (joined + _nbytes(out) if joined else 0)          # the terms joined into g
        g = g or (_nbytes(out) if joined else 0)
        lazy_here = {id(t): size for t, size in terms_of.get(k, ())}
        for t in node.inputs:
            if not t.requires_grad or id(t) in given and t._node is not None:
                continue
            if id(t) in lazy_here:
                lazy[id(t)] = lazy.get(id(t), 0) + lazy_here[id(t)]
                pending += lazy_here[id(t)]
            elif id(t) not in dense:
                dense[id(t)] = _nbytes(t)
                pending += dense[id(t)]
        peak = max(peak, alive + pending + g + getattr(node.prim, "recompute_bytes", 0))
        timeline.append(peak)
        saved_timeline.append(alive)     # (held during the step, as the timeline)
        alive -= release.get(k, 0)
    # After the pass: the leaves' lazy terms are joined into their gradients.
    finishing = sum(_nbytes(t) for t in _leaves_with_terms(terms_of))
    timeline.append(alive + pending + finishing)
    saved_timeline.append(alive)
    return SavedValues(rows, [n.op for n in steps] + ["(gradients completed)"], timeline,
                       saved_timeline, step_of)


_INF = float("inf")


def _cut(text, width):
    return text if len(text) <= width else text[:width - 1] + "…"


def _leaves_with_terms(terms_of):
    """The leaves (weights) that got lazy gradient terms: joined only after the pass."""
    seen = {}
    for entries in terms_of.values():
        for t, _ in entries:
            if t._node is None:
                seen[id(t)] = t
    return list(seen.values())


def _base(array):
    while array.base is not None and isinstance(array.base, xp.ndarray):
        array = array.base
    return array


def _nbytes(t):
    return t.size * t.dtype.itemsize
