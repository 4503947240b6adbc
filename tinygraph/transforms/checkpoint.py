"""Checkpointing: a segment of the forward pass that keeps only its inputs and recomputes the
rest during the backward pass (PyTorch's `torch.utils.checkpoint`, JAX's `jax.checkpoint`).

    h, c = tg.checkpoint(segment, x, h, c)      # as segment(x, h, c), keeping less

The segment runs once without recording; one `checkpoint` node stands for it, its inputs the
tensors the segment read from outside (the arguments and whatever it closes over: the
weights), its output the segment's outputs packed into one flat array (unpacked by slice and
reshape nodes, so a primitive keeps its one output). Its vjp runs the segment again, recorded,
on those same input tensors (nodes of role "recompute"), then the recorded segment's own
backward pass seeded with the gradient that reached the outputs. So the derivative is the
segment ops' vjps, as without checkpointing: the gradients are the same to rounding.

Values drawn at random inside the segment (dropout masks) are kept from the first run and
used again by the recomputation, so it computes the same function. A saved input changed in
place before the backward pass is refused as for any node. In a compiled step's trace the
segment is traced as its own ops: the program keeps what its backward part reads, as without
checkpointing (checkpointing is for eager steps). Not available under detect_anomaly yet (it
says so). A checkpoint inside a checkpointed segment is a checkpoint when the outer segment
is recomputed.

The recomputation is compared with the forward pass's outputs, exactly: a segment that reads
a value that changed in between (a Python number, an array changed in place) is refused. A
change that leaves the outputs equal (a factor of an input that is 0) cannot be seen, so a
segment must not read what changes before the backward pass: pass such values as arguments.
"""
import math

from ..backend import xp
from ..core.accumulate import LazyTerms
from ..core.autodiff import partial_gradients
from ..core.interpreter import Interpreter
from ..core.primitive import Primitive, evaluate, evaluated, run_forward
from ..core.state import changed, current
from ..core.tensor import Tensor, describe
from ..ops.indexing import getitem
from ..ops.shape import reshape
from .step import tensor_outputs

SEGMENT = "tg.checkpoint: the segment"     # how errors name what fn returned


def checkpoint(fn, *args):
    """Returns `fn(*args)`, keeping only the segment's inputs for the backward pass: its vjp
    runs fn again, recorded, and differentiates that (tinygraph.transforms.checkpoint says
    more). fn returns a
    Tensor or a tuple or list of Tensors of one floating dtype; the result has that form."""
    state = current()
    if state.interpreter is not None and state.interpreter.abstract:
        # A compiled step's trace: the segment's ops become ops of the program, which plans
        # its memory itself (it keeps what its backward part reads, as without checkpoint).
        return fn(*args)
    if isinstance(state.interpreter, _Reads):
        return fn(*args)                 # inside a segment's first run: the outer one keeps
    if state.interpreter is not None:    # only its own inputs already
        raise RuntimeError("tg.checkpoint: not available under detect_anomaly (or another "
                           "interpreter) yet; call the segment directly there")
    # Arrays become Tensors; other values (a step index, a flag) reach fn as they are.
    args = [Tensor(a) if isinstance(a, xp.ndarray) else a for a in args]
    if not state.grad_enabled:
        return fn(*args)
    watch = _Reads([a for a in args if isinstance(a, Tensor)])
    with changed(interpreter=watch):
        out = fn(*args)
    outputs, rebuild = tensor_outputs(out, SEGMENT)
    inputs = watch.outside()
    if not any(t.requires_grad for t in inputs):
        return out                       # nothing to differentiate: values, as under no_grad
    dtype = outputs[0].dtype
    for o in outputs:
        if o.dtype != dtype or not xp.issubdtype(o.dtype, xp.floating):
            raise TypeError("tg.checkpoint: the segment's outputs must share one floating "
                            f"dtype, got {describe(o)} ({o.dtype}) beside {dtype}")
    position = {id(t): k for k, t in enumerate(inputs)}
    template = [(position[id(a)], None) if isinstance(a, Tensor) else (None, a) for a in args]
    prim = Segment(fn, template, [o.shape for o in outputs], dtype, watch.drawn)
    prim.recompute_bytes = watch.bytes   # what its recomputation will hold (saved_values)
    flat = xp.concatenate([xp.ravel(o._data) for o in outputs]) if len(outputs) > 1 \
        else xp.ravel(outputs[0]._data).copy()
    packed = evaluated(prim, inputs, [t._data for t in inputs], flat, state)
    return rebuild(_unpacked(packed, prim.shapes))


class Segment(Primitive):
    """A checkpointed segment: its output is the segment's outputs raveled and joined; its vjp
    recomputes the segment, recorded, and runs its backward pass (see module)."""

    name = "checkpoint"
    rules = "the segment recomputed, then its own backward pass"
    closes_over = True       # fn reads the weights itself: see Primitive.closes_over

    def __init__(self, fn, template, shapes, dtype, drawn):
        # template: per argument of fn, (its position among the node's inputs, None) for a
        # Tensor, (None, the value) for anything else
        self.fn, self.template, self.shapes, self.dtype = fn, template, tuple(shapes), dtype
        self._drawn = drawn              # arrays drawn at random in the first run, in order

    def forward(self, *arrays):
        raise RuntimeError("a checkpoint node computes its value when it is made; it is not "
                           "replayed")

    def spec(self, *inputs):
        return (sum(math.prod(s) for s in self.shapes),), self.dtype

    def label(self, inputs, inline):
        return f"checkpoint {getattr(self.fn, '__name__', 'segment')}"

    def vjp(self, node, g, needs):
        state = current()
        record = state.backward_of is not None        # a recorded backward pass
        inner = state.interpreter.inner if isinstance(state.interpreter, LazyTerms) \
            else state.interpreter
        if not record and g._data is None:
            evaluate(g)
        inputs = node.inputs
        cotangents = _unpacked(g, self.shapes) if record else \
            [Tensor(part) for part in _split(g._data, self.shapes)]
        wanted = [t for t, need in zip(inputs, needs) if need]
        # The pass's own interpreter back (the fast pass's lazy terms are its business), the
        # segment run again recorded, then its backward pass.
        with changed(interpreter=inner, grad_enabled=True):
            # (with nothing drawn, the plain interpreter: no dispatch per op)
            again = _Recompute(self._drawn, inner) if self._drawn else inner
            with changed(interpreter=again,
                         backward_role="recompute" if record else None,
                         backward_of=node if record else None):
                again = self.fn(*(inputs[k] if k is not None else value
                                  for k, value in self.template))
                outputs, _ = tensor_outputs(again, SEGMENT)
            _check_same(outputs, node.output)
            found = iter(partial_gradients(outputs, wanted, cotangents, record))
        return [next(found) if need else None for need in needs]


def _check_same(outputs, packed):
    """The recomputation must give exactly what the forward pass gave (the same ops on the same
    inputs): else the segment read something that changed in between, and its gradients
    would be of another function. (A change that leaves the outputs equal cannot be seen.)"""
    saved, start = packed.data, 0
    for o in outputs:
        size = o.data.size
        part = saved[start:start + size].reshape(o.shape)
        start += size
        # (equal_nan only when needed: it copies the arrays' non-NaN parts)
        if not xp.array_equal(o.data, part) and not xp.array_equal(o.data, part,
                                                                   equal_nan=True):
            worst = float(xp.nanmax(xp.abs(o.data - part), initial=0.0))
            raise RuntimeError(
                "tg.checkpoint: the segment computed other values when it ran again for the "
                f"backward pass (largest difference {worst:.3g}): it reads something that "
                "changed since the forward pass (a Python value or an array it closes over); "
                "pass it as an argument, or leave it unchanged until the backward pass has run")


def _unpacked(flat, shapes):
    """The outputs from the packed tensor: a slice and a reshape each (a reshape alone for
    a single output)."""
    if len(shapes) == 1:
        return [reshape(flat, shapes[0])]
    parts, start = [], 0
    for shape in shapes:
        size = math.prod(shape)
        parts.append(reshape(getitem(flat, slice(start, start + size)), shape))
        start += size
    return parts


def _split(array, shapes):
    parts, start = [], 0
    for shape in shapes:
        size = math.prod(shape)
        parts.append(array[start:start + size].reshape(shape))
        start += size
    return parts


class _Reads(Interpreter):
    """The first run of a segment: computes each op (no node), and notes the tensors read
    from outside the segment and the arrays drawn at random."""

    def __init__(self, args):
        self.made = set()                # ids of the tensors the segment made
        self.read = {id(a): a for a in args}   # outside tensors read, arguments first
        self.drawn = []
        self.bytes = 0                   # of the arrays computed (not views): an upper bound

    def apply(self, prim, inputs, state):
        for t in inputs:
            if id(t) not in self.made and id(t) not in self.read:
                self.read[id(t)] = t
        arrays = [t._data for t in inputs]
        data = run_forward(prim, arrays, inputs)
        if not prim.pure:
            self.drawn.append(data)
        if data.base is None:
            self.bytes += data.nbytes
        out = Tensor(data)
        self.made.add(id(out))
        return out

    def outside(self):
        return list(self.read.values())


class _Recompute(Interpreter):
    """The recomputation in a vjp: recorded as usual (through `inner`, if any), with each
    random draw replaced by the array the first run drew."""

    def __init__(self, drawn, inner):
        self.drawn, self.k, self.inner = drawn, 0, inner

    def apply(self, prim, inputs, state):
        if prim.pure:
            if self.inner is not None:
                return self.inner.apply(prim, inputs, state)
            arrays = [t._data for t in inputs]
            return evaluated(prim, inputs, arrays, run_forward(prim, arrays, inputs), state)
        data, self.k = self.drawn[self.k], self.k + 1
        return evaluated(prim, inputs, [t._data for t in inputs], data, state)
