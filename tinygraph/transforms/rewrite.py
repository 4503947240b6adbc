"""Rewrite passes over generated backward graphs, so they read like a hand derivation.

`simplify(tensors)` rebuilds the backward nodes reachable from `tensors` (forward nodes are
left as they are) in one topological sweep. Each node is first offered to the local rules
below, in order; whatever survives is deduplicated (common-subexpression elimination) and
re-applied with its metadata (forward node, role, scope, what it is the gradient of). Values
are unchanged: every rule is an algebraic identity.

Rules (what each applies to is known by the primitive classes, never by op names):
- constant folding: a node of a pure primitive whose inputs are all constants becomes a
  constant (dropout_mask, which draws random numbers, is never folded or merged);
- identities: each primitive's `identity` (x * 1, x / 1, x + 0, x - 0, x ** 1, -(-x), shape
  ops that change nothing) gives the input that stands for the output;
- joins: at the root of a sum of gradient terms, each primitive's `join` gives a cheaper
  equal form of its terms. Slice tiling (RULES): slice gradients whose pieces tile their
  buffer along one axis become one concat; for an LSTM cell this is the textbook
  dA = concat(df, dg, di, do). Weight-gradient joins (SPEED_RULES only): a weight's
  per-step products a_tᵀ g_t become one matmul per sequence. The gradient accumulator uses
  the same joins (see tinygraph.core.accumulate).
- fusions (SPEED_RULES only): each primitive's `fuse` gives a node that does its work and
  that of the nodes making its inputs in one pass (the gradient of cross-entropy through
  log-softmax, with no (rows, classes) array of zeros).

Every rewrite done is recorded, in order, in `Simplified.log` (which rule, which generated
nodes it replaced, which tensor stands for them now), so the way from the generated graph to
the simplified one can be replayed one named step at a time: `simplify(tensors, stop_after=k)`
does the first k rewrites only and copies the rest of the graph as generated, the graph k
steps into that way.
"""
from collections import Counter
from dataclasses import dataclass, field

from ..backend import xp
from ..core.accumulate import join_terms
from ..core.autodiff import collector_paused, nodes
from ..core.primitive import Primitive, apply
from ..core.state import recording_backward
from ..core.tensor import Tensor
from ..ops.elementwise import Add


@dataclass(frozen=True)
class Rewrite:
    """One step of a simplification: `rule` (a name counted in Simplified.rewrites) replaced
    the generated nodes `replaced` (the node rewritten first; for a join, the sum's nodes
    too) by `result`, the tensor that stands for them in the simplified graph (a new node,
    an input, a constant, or the node it duplicated, for "cse")."""

    rule: str
    replaced: tuple
    result: object

    def __str__(self):
        made = self.result._node.op if self.result._node is not None else (
            "a constant" if self.result.constant else "an input")
        return f"{self.rule}: {' + '.join(n.op for n in self.replaced)} -> {made}"


@dataclass
class Simplified:
    """What `simplify` returns: the rewritten tensors, how much was removed, and the log of
    the rewrites in the order they were done."""

    outputs: list
    nodes_before: int
    nodes_after: int
    rewrites: Counter = field(default_factory=Counter)
    log: list = field(default_factory=list)
    # id(generated tensor) -> (it, the tensor standing for it): it is kept, so ids stay unique
    rebuilt: dict = field(default_factory=dict, repr=False)

    def stands_for(self, tensor):
        """The tensor that stands in the result for `tensor`, a tensor of the generated graph
        (`tensor` itself when it was not rebuilt: a forward tensor, a leaf)."""
        old, new = self.rebuilt.get(id(tensor), (None, None))
        return new if old is tensor else tensor

    def __str__(self):
        done = ", ".join(f"{name} {n}" for name, n in sorted(self.rewrites.items())) or "none"
        return (f"backward nodes: {self.nodes_before} -> {self.nodes_after} "
                f"(rewrites: {done})")


def simplify(tensors, rules=None, stop_after=None):
    """Simplify the backward graph behind `tensors` (a Tensor or a list of them).

    rules: the rewrite rules to try, in order (default RULES, those that make the graph read
    like a hand derivation; SPEED_RULES adds those that only make it faster to run).

    stop_after: do only the first `stop_after` rewrites of the log (a join logged under several
    names is done whole) and copy the rest of the graph as it was generated: the graph part
    way from the generated one to the simplified one, for replaying the log.

    A gradient may simplify to a tensor of the forward graph itself (d(x*w)/dx is w): the
    outputs can then be forward tensors or parameters, so treat them as read-only values.
    """
    single = isinstance(tensors, Tensor)
    outputs = [tensors] if single else list(tensors)
    rewriter = _Rewriter(RULES if rules is None else rules, stop_after)
    with collector_paused():
        new_outputs = rewriter.run(outputs)
        return Simplified(
            outputs=new_outputs,
            nodes_before=rewriter.backward_count,
            nodes_after=_count_backward(new_outputs),
            rewrites=rewriter.counts,
            log=rewriter.log,
            rebuilt={key: (old, rewriter.memo[key]) for key, old in rewriter.generated.items()})


def _count_backward(tensors):
    return sum(1 for node in nodes(tensors) if node.is_backward)


class _Rewriter:
    def __init__(self, rules, stop_after=None):
        self.rules = rules
        # (rule, whether it waits for a sum's root, the name it is counted under), once
        self.offered = [(rule, getattr(rule, "whole_sums_only", False),
                         getattr(rule, "__name__", repr(rule)).lstrip("_")) for rule in rules]
        self.stop_after = stop_after
        self.memo = {}        # id(old tensor) -> its replacement
        self.seen = {}        # CSE key -> tensor
        self.counts = Counter()
        self.log = []         # Rewrite, in the order done

    def run(self, outputs):
        order = nodes(outputs)
        # Adds whose output feeds another add of a sum (inner nodes of a sum tree): rules
        # marked whole_sums_only wait for the root, which sees all the terms at once.
        self.partial_sums = partial_sums = set()
        self.generated = generated = {}
        memo = self.memo
        backward = [node for node in order if node.is_backward]
        self.backward_count = len(backward)
        for node in backward:
            out = node.output
            if out is not None:
                generated[id(out)] = out
            if _is_sum_node(node):
                for inp in node.inputs:
                    source = inp._node
                    if source is not None and _is_sum_node(source) and inp.shape == out.shape:
                        partial_sums.add(id(source))
        for node in backward:
            inputs = [memo.get(id(t), t) for t in node.inputs]
            memo[id(node.output)] = self.rebuild(node, inputs)
        return [memo.get(id(t), t) for t in outputs]

    def rebuild(self, node, inputs):
        if self.stop_after is not None and len(self.log) >= self.stop_after:
            return self.copy(node, inputs)      # no more rewrites: the rest as generated
        for rule, whole_sums_only, rule_name in self.offered:
            if whole_sums_only and id(node) in self.partial_sums:
                continue
            result = rule(node, inputs)
            if result is None:
                continue
            if isinstance(result, _Joined):
                self.counts.update(result.names)
                self.log.extend(Rewrite(name, (node,) + result.summed, result.tensor)
                                for name in result.names)
                return result.tensor
            self.counts[rule_name] += 1
            self.log.append(Rewrite(rule_name, (node,), result))
            return result
        key = (type(node.prim), _hashable(node.attrs), tuple(_input_key(t) for t in inputs))
        if node.prim.pure and key in self.seen:
            self.counts["cse"] += 1
            kept = self.seen[key]
            self.log.append(Rewrite("cse", (node,), kept))
            # Shared by two scopes (e.g. transpose(Wh), met in every time step): it belongs
            # to their common enclosing scope, not to the first one met.
            kept._node.scope = _common_prefix(kept._node.scope, node.scope)
            return kept
        out = self.copy(node, inputs)
        self.seen[key] = out
        return out

    @staticmethod
    def copy(node, inputs):
        """The node as generated, applied to the (rebuilt) inputs."""
        with recording_backward(node.forward_node, node.role):
            out = apply(node.prim, *inputs)
        _copy_metadata(node, out._node)
        return out


def _copy_metadata(source, target):
    out, rebuilt = source.output, target.output
    if out is not None and out.name and rebuilt is not None and not rebuilt.name:
        rebuilt.name = out.name          # a vjp's named intermediate (tanh_c²) keeps its name
    if out is not None and out.role and rebuilt is not None and not rebuilt.role:
        rebuilt.role = out.role
    target.grad_of = source.grad_of
    target.grad_input = source.grad_input
    target.grad_sources = source.grad_sources
    target.scope = source.scope


# --- rules: each takes (node, new inputs) and returns a replacement tensor or None ---------

def _constant_folding(node, inputs):
    if node.prim.pure and all(t.constant and t.data is not None for t in inputs):
        data = node.prim.forward(*[t.data for t in inputs])
        return Tensor(xp.asarray(data), constant=True)
    return None


def _identities(node, inputs):
    return node.prim.identity(inputs, node.output)


def _joins(for_reading):
    """The rule that applies the primitives' joins (core.accumulate.join_terms, as the
    gradient accumulator does) to the terms of a sum: only those meant for reading, or all."""
    accept = (lambda cls: cls.join_for_reading) if for_reading else None

    def joins(node, inputs):
        if not _is_sum_node(node):
            return None
        with recording_backward(None, "accumulate"):
            terms, names = join_terms(_sum_terms(inputs), accept)
            if not names:
                return None
            out = terms[0]
            for t in terms[1:]:
                out = out + t
        if out.shape != node.output.shape or out.dtype != node.output.dtype:
            return None
        if out._node is not None:
            out._node.grad_of = node.grad_of
            out._node.scope = node.scope
        return _Joined(out, names, _inner_sums(node))
    joins.__name__ = "joins"
    # At the root of a sum only: joining at every partial sum would nest the joins.
    joins.whole_sums_only = True
    return joins


class _Joined:
    """A join rule's result, with the names its joins are counted under and the generated
    add nodes below the sum's root that it replaced too."""

    def __init__(self, tensor, names, summed=()):
        self.tensor, self.names, self.summed = tensor, names, tuple(summed)


def _inner_sums(root):
    """The generated add nodes under a sum's root (the tree _sum_terms walks), root excluded."""
    found, stack = [], [t._node for t in root.inputs]
    while stack:
        node = stack.pop()
        if node is not None and _is_sum_node(node) and node.output is not None and \
                all(x.shape == node.output.shape for x in node.inputs):
            found.append(node)
            stack.extend(t._node for t in node.inputs)
    return found


def _sum_terms(inputs):
    """The summands of a tree of same-shape backward add nodes (iteratively, no recursion)."""
    terms, stack = [], list(reversed(inputs))
    while stack:
        t = stack.pop()
        node = t._node
        if (node is not None and node.is_backward and isinstance(node.prim, Add)
                and all(x.shape == t.shape for x in node.inputs)):
            stack.extend(reversed(node.inputs))
        else:
            terms.append(t)
    return terms


def _is_sum_node(node):
    return node.is_backward and isinstance(node.prim, Add)


def _fusions(node, inputs):
    if getattr(node.prim.fuse, "__func__", None) is Primitive.fuse:
        return None                   # nothing to fuse (most primitives): no state change
    # The fused nodes are backward nodes of the same forward node, with its metadata (anomaly
    # errors and diagrams name them like the node they replace).
    with recording_backward(node.forward_node, node.role):
        out = node.prim.fuse(inputs)
    if out is not None and out._node is not None:
        _copy_metadata(node, out._node)
    return out


RULES = [_constant_folding, _identities, _joins(for_reading=True)]
# For compiled programs: the readable rules plus those that only make it faster.
SPEED_RULES = [_constant_folding, _identities, _joins(for_reading=False), _fusions]


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
