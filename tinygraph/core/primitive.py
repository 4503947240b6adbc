"""Primitive: the base of every op, and `apply`, the one place an op is run.

A primitive knows everything about its op, so no other module keys on op names. Its class
attributes and methods fall in groups (docs/own-primitive.md walks through writing one):

- required: `name`; `forward(*arrays)`, the op on arrays; `spec(*inputs)`, its output's
  (shape, dtype) without computing it (shape-only evaluation); `vjp(node, g, needs)`, the
  input gradients written in tinygraph ops (never on arrays);
- notation (diagrams, the explorer): `label(inputs, inline)`, its text in a diagram;
  `formula` / `write(names)`, the op written on its inputs' names; `rules` / `rule(k)`, its
  gradient in that notation (elementwise ops derive it from the vjp: tinygraph.ops.derive);
- rewrites (the rewrite passes): `neutral` / `identity(inputs, out)`, a rewrite to
  one of its inputs (x + 0, x * 1); `fuse(inputs)`, an equal cheaper form merged with the
  node(s) making its inputs (compiled programs' speed rewrites only); `pure`, False for ops
  that draw random numbers (never merged or folded);
- gradient accumulation (tinygraph.core.accumulate): `sum_term`, its results are terms of
  gradient sums the accumulator evaluates its own way; such a primitive may have `join`, a
  cheaper equal form for several terms (a weight's per-step products as one matmul), counted
  under `join_name` and applied by the readable rewrites too when `join_for_reading`; and
  `add_into(buffer, *arrays)`, its work added into an existing buffer;
- compiled programs: `forward_into(out, *arrays)`, the forward written into a planned buffer;
  `scalar(*names)`, the op on scalars as a Python expression, from which fused elementwise
  kernels are generated (tinygraph.transforms.fuse);
- meta: `selects_part`, its output is a part of its input (diagrams name such a use by the
  part); `attrs()`, the static attributes diagrams show and rewrites compare.

How it is run lies below the class: `apply` hands it to the current interpreter, or
evaluates it and records its node.
"""
from ..backend import xp
from .node import Node
from .state import current
from .tensor import Tensor, describe


class Primitive:
    """Base of all primitives. Subclasses set `name` and implement forward, spec and vjp; the
    other groups below are optional, each with a default that does nothing."""

    # --- required: every op (apply, compiled traces and autodiff call these) --------------
    name = "primitive"

    def forward(self, *arrays):
        """The op on arrays: one ndarray per input, in order; returns the output array.

        Called when a node is created, and by compiled programs on every replay.
        """
        raise NotImplementedError

    def spec(self, *inputs):
        """(shape, dtype) of the output for these input tensors, without computing it."""
        raise NotImplementedError(f"{self.name}: no shape-only evaluation")

    def vjp(self, node, g, needs):
        """The gradients of the inputs, given `g`, the gradient of `node`'s output.

        Written in tinygraph ops (never on raw arrays), so the same code is the fast backward
        pass and, recorded, the backward graph. Returns one Tensor or None per input; `needs`
        says which inputs' gradients are wanted.
        """
        raise NotImplementedError

    # --- notation: diagrams and the explorer ----------------------------------------------
    # The op itself in formula notation: {0}, {1}, ... the inputs' names (compound ones
    # already in parentheses), {all} every input joined by " | ". None: written as a call.
    formula = None
    # The vjp in formula notation, one template per input (or one for all): {gy} is the
    # output's gradient, {y} the output, {x0}, {x1}, ... the inputs. None: no hand-written
    # text (an elementwise op's `rule` derives it from the vjp, tinygraph.ops.derive).
    rules = None

    def label(self, inputs, inline):
        """The op as diagrams write it; `inline(t)` is how input `t` appears inside the label
        (constants by value, tensors as ·). Subclasses add the attribute that matters."""
        if any(t.constant for t in inputs):
            return f"{self.name}({', '.join(inline(t) for t in inputs)})"
        return self.name

    def write(self, names):
        """The op applied to its inputs, written on their names (see `formula`)."""
        if self.formula is None:
            return f"{self.name}({', '.join(names)})"
        return self.formula.format(*names, all=" | ".join(names))

    def rule(self, k):
        """The formula of the gradient of input k, as a template (see `rules`), or None."""
        if self.rules is None:
            return None
        if isinstance(self.rules, str):
            return self.rules
        return self.rules[k] if k < len(self.rules) else None

    # --- rewrites: the rewrite passes (readable and compiled) -----------------------------
    pure = True          # False: draws random numbers (never CSE'd or constant-folded)
    neutral = None       # (element, also on the left?) for the identity rewrite, e.g. (0, True)

    def identity(self, inputs, out):
        """An input that equals the output (x + 0, x * 1, ...), or None. Only returned when
        nothing was broadcast or cast, so it can stand for the output."""
        if self.neutral is None:
            return None
        element, commutes = self.neutral
        a, b = inputs
        if _is_constant(b, element):
            return _same(a, out)
        if commutes and _is_constant(a, element):
            return _same(b, out)
        return None

    def fuse(self, inputs):
        """A tensor equal to this op's output on `inputs`, computed by fewer, fused nodes; or
        None (the default: nothing to fuse). Compiled programs' speed rewrites only."""
        return None

    # --- gradient accumulation: tinygraph.core.accumulate and the rewrites ----------------
    sum_term = False     # its results are gradient terms the accumulator evaluates itself
    add_into = None      # for a sum_term: (buffer, *arrays) -> adds its result into buffer
    join = None          # staticmethod(terms) -> a list of tensors with the same sum, or None
    join_name = None     # the name rewrite reports count its joins under
    join_for_reading = False   # whether the readable rewrites (RULES) apply `join` too

    def flops(self, node):
        """An estimate of the arithmetic the op does (node counts and FLOPs per mode in
        tinygraph.mode_costs): one operation per element of the output by default; views
        and reshapes say 0, products 2·m·k·n, reductions one per input element."""
        return node.output.size if node.output is not None else 0

    def pending_gradient(self, node, k):
        """What the fast backward pass holds for input k's gradient between this vjp and the
        moment that gradient is complete (memory estimates: tinygraph.saved_values): None for
        a dense array of the input's shape (the default), or the tensors a lazy term of the
        sum keeps instead (its operands: the output's gradient stands in for g)."""
        return None

    # --- compiled programs: their buffer planning -----------------------------------------
    # forward_into(out, *arrays): the forward written into a given array of the output's
    # shape and dtype, returning `out` itself (compiled programs write big intermediates into
    # buffers they plan so, and refuse another result); None where not provided.
    forward_into = None
    # scalar(*names): the forward on one element of each input, as a Python expression on
    # the names given ("x0 + x1"); numbers written T(1) (T: the dtype's scalar type, so a
    # float32 kernel stays float32); math's exp, log, tanh and sqrt by those names. It must
    # round as `forward` does (same operations, same order): a fused kernel equals the ops
    # it replaces. None (here, or returned): the op is never fused.
    scalar = None

    # --- meta: diagrams and rewrite passes ------------------------------------------------
    # True when the vjp reads tensors other than the node's inputs (a checkpointed segment's
    # closure: its weights): a graph holding such a node is differentiated only where it was
    # recorded, never from a copy (an eager step's replayed backward program)
    closes_over = False
    selects_part = False  # the output is a part of the input (slice, index): diagrams name
                          # such a use by the part's name

    def attrs(self):
        """Static attributes shown in diagrams and compared by rewrite passes."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.attrs().items())
        return f"{self.name}({args})"


def _is_constant(t, value):
    return t.constant and t.data is not None and t.size > 0 and bool(xp.all(t.data == value))


def _same(t, out):
    return t if t.shape == out.shape and t.dtype == out.dtype else None


def apply(prim, *inputs):
    """Run a primitive on tensors: hand it to the current interpreter (tinygraph.core.
    interpreter), or, with none installed, compute it now and, when recording, link the output
    to a new node."""
    state = current()
    if state.interpreter is not None:
        return state.interpreter.apply(prim, inputs, state)
    arrays = [t._data for t in inputs]
    try:                                  # inline: apply is the hot path
        data = prim.forward(*arrays)
    except Exception:
        _no_abstract_inputs(prim, inputs)
        raise
    return evaluated(prim, inputs, arrays,
                     data if type(data) is xp.ndarray else xp.asarray(data), state)


def evaluated(prim, inputs, arrays, data, state):
    """The output tensor of prim, computed as `data` from `arrays` (the inputs' values): its
    version counter shared with the input it is a view of, and its node when recording."""
    out = Tensor(data)
    base = data.base
    # A view (transpose, reshape, slice) or the first input passed through: see below.
    if base is not None:
        first = arrays[0] if arrays else None
        if first is not None and (first is base or first.base is base):
            version = inputs[0]._version     # (inline: views of the first input are common)
            if version is None:
                version = inputs[0]._version = [0]
            out._version = version
        else:
            _share_version(out, base, arrays, inputs)
    else:
        for a in arrays:
            if a is data:                     # an input passed through as it is
                _share_version(out, data, arrays, inputs)
                break
    if state.grad_enabled:
        for t in inputs:                  # (a loop: any() over a generator costs more)
            if t.requires_grad:
                out.requires_grad = True
                break
        out._node = Node(prim, inputs, out, state)
    return out


def _share_version(out, base, arrays, inputs):
    """An output that is a view of an input's array (or the array itself) shares that
    input's version counter, as PyTorch's views do: a change through either is a change of
    both, so a graph that saved `W.T` refuses once an optimizer step changed W."""
    for a, t in zip(arrays, inputs):
        if a is base or a.base is base or a is out._data:
            if t._version is None:
                t._version = [0]
            out._version = t._version
            return


def shaped(prim, inputs, state):
    """The output as a shape and a dtype, with the node that computes it: an abstract tensor
    (a trace) or a lazy term (the fast backward pass)."""
    shape, dtype = prim.spec(*inputs)
    out = Tensor(None, spec=(shape, dtype))
    if state.grad_enabled:
        for t in inputs:                  # (a loop: any() over a generator costs more)
            if t.requires_grad:
                out.requires_grad = True
                break
    out._node = Node(prim, inputs, out, state)
    return out


def evaluate(t, where=None):
    """t's array, computing it first for a lazy term (see accumulate.LazyTerms), which then
    keeps it. where: how an error says where it ran (default: the vjp that made it)."""
    if t._data is not None:
        return t._data
    node = t._node
    if node is None:
        raise ValueError(f"{describe(t)} has no value and no op that computes it")
    if node.forward_node is not None:
        where = f"in the backward pass of {node.forward_node.op!r}"
    arrays = [evaluate(x) for x in node.inputs]
    interpreter = current().interpreter
    t._data = run_forward(node.prim, arrays, node.inputs) if interpreter is None \
        else interpreter.run(node.prim, arrays, node.inputs, where)
    return t._data


def run_forward(prim, arrays, inputs):
    """prim.forward on arrays, as an ndarray (0-d reductions give numpy scalars)."""
    try:
        data = prim.forward(*arrays)
    except Exception:
        _no_abstract_inputs(prim, inputs)
        raise
    return data if type(data) is xp.ndarray else xp.asarray(data)


def _no_abstract_inputs(prim, inputs):
    """A clearer error than numpy's when an abstract tensor (one made by a compiled step's
    trace) is used outside the trace."""
    for t in inputs:
        if t.data is None:
            raise ValueError(f"{prim.name}: {describe(t)} has no value: it was made by "
                             "shape-only evaluation (a compiled step's trace) and can only be "
                             "used inside it") from None


class StopGradient(Primitive):
    """The value of its input, with no gradient: what `Tensor.detach()` records inside a
    compiled step's trace, where the value is not known yet and the program computes it."""

    name = "stop_gradient"
    formula = "{0}"

    def forward(self, a):
        return a

    def spec(self, a):
        return a.shape, a.dtype

    def vjp(self, node, g, needs):
        return (None,)
