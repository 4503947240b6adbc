"""Rewrite passes over generated backward graphs, so they read like a hand derivation.

`simplify(tensors)` rebuilds the backward nodes reachable from `tensors` (forward nodes are
left as they are) in one topological sweep. Each node is first offered to the local rules
below, in order; whatever survives is deduplicated (common-subexpression elimination) and
re-applied with its metadata (forward node, role, scope, what it is the gradient of). Values
are unchanged: every rule is an algebraic identity.

Rules:
- constant folding: a node whose inputs are all constants becomes a constant;
- identities: x * 1, x / 1, x + 0, x - 0, x ** 1, -(-x) and shape ops that change nothing
  become x;
- slice tiling: a sum of slice gradients (each a zero buffer with one piece filled in) whose
  pieces tile the buffer along one axis becomes one concat of the pieces, in order. For an
  LSTM cell this is the textbook dA = concat(df, dg, di, do).
"""
from collections import Counter
from dataclasses import dataclass, field

from .autodiff import nodes
from .backend import xp
from .mode import recording_backward
from .tensor import Tensor
from . import ops


@dataclass
class Simplified:
    """What `simplify` returns: the rewritten tensors and how much was removed."""

    outputs: list
    nodes_before: int
    nodes_after: int
    rewrites: Counter = field(default_factory=Counter)

    def __str__(self):
        done = ", ".join(f"{name} {n}" for name, n in sorted(self.rewrites.items())) or "none"
        return (f"backward nodes: {self.nodes_before} -> {self.nodes_after} "
                f"(rewrites: {done})")


def simplify(tensors, rules=None):
    """Simplify the backward graph behind `tensors` (a Tensor or a list of them).

    rules: the rewrite rules to try, in order (default RULES, those that make the graph read
    like a hand derivation; SPEED_RULES adds those that only make it faster to run).

    A gradient may simplify to a tensor of the forward graph itself (d(x*w)/dx is w): the
    outputs can then be forward tensors or parameters, so treat them as read-only values.
    """
    single = isinstance(tensors, Tensor)
    outputs = [tensors] if single else list(tensors)
    rewriter = _Rewriter(RULES if rules is None else rules)
    new_outputs = rewriter.run(outputs)
    return Simplified(
        outputs=new_outputs,
        nodes_before=_count_backward(outputs),
        nodes_after=_count_backward(new_outputs),
        rewrites=rewriter.counts)


def _count_backward(tensors):
    return sum(1 for node in nodes(tensors) if node.is_backward)


class _Rewriter:
    def __init__(self, rules):
        self.rules = rules
        self.memo = {}        # id(old tensor) -> its replacement
        self.seen = {}        # CSE key -> tensor
        self.counts = Counter()

    def run(self, outputs):
        order = nodes(outputs)
        # Adds whose output feeds another add of a sum (inner nodes of a sum tree): rules
        # marked whole_sums_only wait for the root, which sees all the terms at once.
        self.partial_sums = {id(inp._node) for node in order if _is_sum_node(node)
                             for inp in node.inputs
                             if inp._node is not None and _is_sum_node(inp._node)
                             and inp.shape == node.output.shape}
        for node in order:
            if node.is_backward:
                inputs = [self.memo.get(id(t), t) for t in node.inputs]
                self.memo[id(node.output)] = self.rebuild(node, inputs)
        return [self.memo.get(id(t), t) for t in outputs]

    def rebuild(self, node, inputs):
        for rule in self.rules:
            if getattr(rule, "whole_sums_only", False) and id(node) in self.partial_sums:
                continue
            result = rule(node, inputs)
            if result is not None:
                self.counts[rule.__name__.lstrip("_")] += 1
                return result
        key = (node.op, _hashable(node.attrs), tuple(_input_key(t) for t in inputs))
        if key in self.seen:
            self.counts["cse"] += 1
            kept = self.seen[key]
            # Shared by two scopes (e.g. transpose(Wh), met in every time step): it belongs
            # to their common enclosing scope, not to the first one met.
            kept._node.scope = _common_prefix(kept._node.scope, node.scope)
            return kept
        with recording_backward(node.forward_node, node.role):
            out = ops.apply(node.prim, *inputs)
        _copy_metadata(node, out._node)
        self.seen[key] = out
        return out


def _copy_metadata(source, target):
    target.grad_of = source.grad_of
    target.grad_sources = source.grad_sources
    target.scope = source.scope


# --- rules: each takes (node, new inputs) and returns a replacement tensor or None ---------

def _constant_folding(node, inputs):
    if all(t.constant for t in inputs):
        data = node.prim.forward(*[t.data for t in inputs])
        return Tensor(xp.asarray(data), constant=True)
    return None


def _is_constant(t, value):
    return t.constant and t.size > 0 and bool(xp.all(t.data == value))


# op -> (its neutral element, whether it may stand on the left too)
_NEUTRAL = {"mul": (1, True), "div": (1, False), "add": (0, True), "sub": (0, False)}


def _identities(node, inputs):
    out = node.output
    op = node.op

    def same(t):   # t can stand for the output only if nothing was broadcast or cast
        return t if t.shape == out.shape and t.dtype == out.dtype else None

    # x * 1, 1 * x, x / 1, x + 0, 0 + x, x - 0. (x * 0 is not rewritten to 0: it is NaN where
    # x is infinite.)
    if op in _NEUTRAL:
        neutral, commutes = _NEUTRAL[op]
        a, b = inputs
        if _is_constant(b, neutral):
            return same(a)
        if commutes and _is_constant(a, neutral):
            return same(b)
    if op == "pow" and node.prim.exponent == 1:
        return inputs[0]
    if op == "neg" and inputs[0]._node is not None and inputs[0]._node.op == "neg":
        return inputs[0]._node.inputs[0]
    if op in ("reshape", "broadcast_to", "sum_to") and inputs[0].shape == out.shape:
        return inputs[0]
    return None


def _slice_tiling(node, inputs):
    if node.op != "add":
        return None
    terms = _sum_terms(inputs)
    if len(terms) < 2 or any(t._node is None or t._node.op != "slice_grad" for t in terms):
        return None
    shape = terms[0]._node.prim.shape
    spans = []
    for t in terms:
        span = _span(t._node.prim.key, shape) if t._node.prim.shape == shape else None
        if span is None:
            return None
        spans.append(span + (t,))
    axis = spans[0][0]
    spans.sort(key=lambda s: s[1])
    end = 0
    for span_axis, start, stop, _, _ in spans:
        if span_axis != axis or start != end:
            return None
        end = stop
    if end != shape[axis]:
        return None
    with recording_backward(None, "accumulate"):
        # A piece cut out by an integer (x[:, t]) gets its axis back before the concat.
        pieces = [ops.reshape(t._node.inputs[0], shape[:axis] + (1,) + shape[axis + 1:])
                  if dropped else t._node.inputs[0] for _, _, _, dropped, t in spans]
        out = ops.concat(pieces, axis=axis)
    out._node.grad_of = node.grad_of
    out._node.scope = node.scope
    out._node.grad_sources = tuple(t._node.forward_node for *_, t in spans)
    return out


def _sum_terms(inputs):
    """The summands of a tree of same-shape backward add nodes (iteratively, no recursion)."""
    terms, stack = [], list(reversed(inputs))
    while stack:
        t = stack.pop()
        node = t._node
        if (node is not None and node.is_backward and node.op == "add"
                and all(x.shape == t.shape for x in node.inputs)):
            stack.extend(reversed(node.inputs))
        else:
            terms.append(t)
    return terms


def _span(key, shape):
    """(axis, start, stop, dropped) when `key` selects one contiguous run along a single axis;
    dropped: the key is an integer there (x[:, t]), so the slice has no such axis."""
    if len(key) > len(shape) or not all(isinstance(k, (slice, int, xp.integer)) for k in key):
        return None
    span = None
    for axis, (k, n) in enumerate(zip(key, shape)):
        if not isinstance(k, slice):
            if span is not None or not -n <= k < n:
                return None
            span = (axis, k % n, k % n + 1, True)
            continue
        start, stop, step = k.indices(n)
        if (start, stop, step) == (0, n, 1):
            continue
        if step != 1 or span is not None or stop <= start:
            return None
        span = (axis, start, stop, False)
    return span


def _join_weight_gradients(node, inputs):
    """sum_t a_t^T @ g_t (a weight's gradient over its T uses) -> [a_1..a_T]^T @ [g_1..g_T].

    One well-shaped matmul per sequence instead of T small ones and T - 1 weight-sized adds.
    Not among the default rules: for reading, the sum over time steps is the clearer graph;
    compiled programs use it for speed (the fast eager path does the same, see deferred.py).
    """
    if node.op != "add":
        return None
    terms = _sum_terms(inputs)
    joinable, rest = [], []
    for t in terms:
        n = t._node
        left = n.inputs[0]._node if n is not None and n.op == "matmul" else None
        if (left is not None and left.op == "transpose" and left.prim.axes == (1, 0)
                and n.inputs[1].ndim == 2 and t.shape == node.output.shape):
            joinable.extend(_row_blocks(left.inputs[0], n.inputs[1]))
        else:
            rest.append(t)
    if len(joinable) < 2:
        return None
    with recording_backward(None, "accumulate"):
        out = ops.matmul(ops.transpose(ops.concat([a for a, _ in joinable], axis=0)),
                         ops.concat([g for _, g in joinable], axis=0))
        for t in rest:
            out = ops.add(out, t)
    out._node.grad_of = node.grad_of
    out._node.scope = node.scope
    return out


# Joined at the root of a sum only: joining at every partial sum would build T nested concats.
_join_weight_gradients.whole_sums_only = True


def _is_sum_node(node):
    return node.is_backward and node.op == "add"


def _row_blocks(a, g):
    """[(a, g)], or the pairs of row blocks when both are concats along axis 0 with the same
    splits (an earlier join in the same sum): a^T g is then the sum of the blocks' products,
    so a chain of adds is joined into one flat concat, not nested ones."""
    an, gn = a._node, g._node
    if (an is not None and gn is not None and an.op == gn.op == "concat"
            and an.prim.axis == gn.prim.axis == 0 and len(an.inputs) == len(gn.inputs)
            and all(x.shape[0] == y.shape[0] for x, y in zip(an.inputs, gn.inputs))):
        return list(zip(an.inputs, gn.inputs))
    return [(a, g)]


RULES = [_constant_folding, _identities, _slice_tiling]
# For compiled programs: the readable rules plus those that only make it faster.
SPEED_RULES = RULES + [_join_weight_gradients]


def _common_prefix(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


# --- keys for common-subexpression elimination -----------------------------------------------

def _input_key(t):
    if t.constant and t.size <= 64:
        return ("constant", t.dtype.str, t.shape, t.data.tobytes())
    return id(t)


def _hashable(value):
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, (tuple, list)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, xp.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, slice):
        return ("slice", value.start, value.stop, value.step)
    return value
