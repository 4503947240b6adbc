"""Compiled mode: trace a training step once, on shapes only, and replay it as a flat program.

    step = tinygraph.compile(model.loss, model.parameters())
    loss = step(ids, targets)     # same call and effect as tinygraph.value_and_grad

The first call with inputs of a given shape and dtype traces: the function runs on abstract
input tensors (shape and dtype, no values: see Primitive.spec), so the trace records the
forward graph without computing it; the backward graph is generated from it by the same vjps
and the same gradient accumulator as every backward pass (weight gradients joined into one
matmul per sequence), simplified by the rewrite passes, and both are flattened into a list of
(primitive, input slots, output slot). No value is computed during the trace: that call's
results, like every later call's, come from replaying the list on the arrays. A replay makes
no Tensors and no nodes, and drops each intermediate array right after its last use.

What may change from call to call is read afresh on every replay: the inputs, the parameters'
current values, dropout masks (drawn by their dropout_mask nodes) and the recurrent state a
stateful layer carries from one call to the next (handed over with `carry`). Everything else
the function computed from Python values at trace time is fixed, as in any tracing compiler,
so the function must not branch on the values of its inputs (it cannot read them: they have
none while it is traced). Eager mode stays the reference; tests check that both agree.
"""
import contextlib
import sys

from ..backend import xp
from ..core.autodiff import gradients_for_program, nodes
from ..core.state import changed, current
from ..core.tensor import Tensor, describe
from .anomaly import where
from .rewrite import SPEED_RULES, simplify
from .step import Step, check_loss

MAX_PROGRAMS = 8     # per CompiledStep: the oldest is dropped beyond this (varying shapes)
# Outputs this big are written into buffers freed earlier (see replay): glibc serves bigger
# requests with fresh pages from the system by default, each a page fault when first written.
REUSE_BYTES = 1 << 17


def carry(holder, attribute, start, final):
    """Set `holder.<attribute>` to the detached `final` state, the state the next call starts
    from (truncated BPTT), and tell a compiled step's trace about it.

    start: the Tensor (or tuple of them) this call read as its initial state, or None when
    the caller passed the state in; final: the Tensor(s) computed as the new state. Stateful
    layers call this instead of assigning the attribute themselves.
    """
    previous = getattr(holder, attribute, None)
    detached = _detach(final)
    setattr(holder, attribute, detached)
    trace = current().trace
    if trace is not None:
        trace.append(_Carry(holder, attribute, start, final, detached, previous))


def _detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, (tuple, list)) \
        else state.detach()


class _Carry:
    """One carry() of a trace: the holder, the start leaves it read, the final tensors, the
    detached value it stored (a later call in the same step may start there) and the value
    the attribute had before."""

    def __init__(self, holder, attribute, start, final, stored, previous):
        self.holder, self.attribute = holder, attribute
        self.start_value = start
        self.start = () if start is None else _as_tuple(start)
        self.final, self.stored, self.previous = _as_tuple(final), _as_tuple(stored), previous


def _as_tuple(state):
    return tuple(state) if isinstance(state, (tuple, list)) else (state,)


class CompiledStep(Step):
    """`fn(*inputs)` -> scalar loss, traced per input signature and replayed (see module).

    static: a function returning the Python state `fn` branches on, part of the signature a
    program is kept for (default: when fn is a method of a Module, the `training` flags of
    its modules, so a model switched to eval() gets a program without dropout; pass it for
    a lambda or a plain function that calls a model).
    """

    def __init__(self, fn, params, static=None):
        super().__init__(fn, params)
        self.static = static if static is not None else _training_flags(fn)
        self.programs = {}       # input signature -> _Program, oldest first

    def run(self, inputs):
        if current().trace is not None:
            raise RuntimeError("compiled step: called while another compiled step is being "
                               "traced; call the inner loss function directly instead")
        arrays = [_input_array(x, k) for k, x in enumerate(inputs)]
        signature = (tuple((a.shape, a.dtype.str) for a in arrays), self.static())
        program = self.programs.get(signature)
        if program is None or not program.carries_current():
            program = _trace(self.fn, self.params, arrays)
            self.programs.pop(signature, None)
            self.programs[signature] = program
            while len(self.programs) > MAX_PROGRAMS:
                del self.programs[next(iter(self.programs))]
        return program.replay(arrays)

    def reset(self):
        """Forget the traced programs; the next call traces again."""
        self.programs.clear()


def compile(fn, params, static=None):
    """A CompiledStep for the loss function `fn` and the parameters it trains (see
    CompiledStep for `static`)."""
    return CompiledStep(fn, params, static)


def _training_flags(fn):
    owner = getattr(fn, "__self__", None)
    if callable(getattr(owner, "modules", None)):
        return lambda: tuple(m.training for m in owner.modules())
    return lambda: None


def _input_array(x, position):
    if isinstance(x, Tensor):
        x = x.value()
    array = xp.asarray(x)
    if array.dtype.kind not in "iuf":
        raise TypeError(f"compiled step: input {position} has dtype {array.dtype}; inputs must "
                        "be integer or floating-point arrays")
    return array


def _trace(fn, params, arrays):
    """Run fn on abstract inputs, derive and simplify its backward graph, flatten both."""
    inputs = [Tensor(None, name=f"input{k}", spec=(a.shape, a.dtype))
              for k, a in enumerate(arrays)]
    carries = []
    try:
        # A trace records, even when called under no_grad.
        with changed(abstract=True, grad_enabled=True, trace=carries):
            loss = fn(*inputs)
            check_loss(loss, "compiled step")
            grads = gradients_for_program(loss, params)
            used = [g for g in grads if g is not None]
            simplified = iter(simplify(used, SPEED_RULES).outputs)
            grads = [None if g is None else next(simplified) for g in grads]
    finally:
        _restore(carries)
    return _Program(inputs, loss, grads, params, carries)


def _restore(carries):
    """Put each carried attribute back as it was before the trace (the trace stored abstract
    tensors there); a state that was None becomes the start the trace read (the layer's own
    zeros), so that the program can read it from the holder."""
    done = set()
    for c in carries:
        key = (id(c.holder), c.attribute)
        if key in done:
            continue
        done.add(key)
        if c.previous is None and c.start and all(t.data is not None for t in c.start):
            setattr(c.holder, c.attribute, c.start_value)
        else:
            setattr(c.holder, c.attribute, c.previous)


class _Program:
    """The flattened graph: leaves read on every call, then one step per op node."""

    def __init__(self, inputs, loss, grads, params, carries):
        finals = [t for c in carries for t in c.final]
        outputs = [loss] + [g for g in grads if g is not None] + finals
        slots = {id(t): k for k, t in enumerate(inputs)}
        self.n_inputs = len(inputs)
        self.leaves = []             # (slot, how to read it: a Tensor, or (holder, attr, k))
        # A carry's start leaves are read from its holder at each call, unless an earlier call
        # in the same step stored them (a layer run twice): then they are that call's finals.
        stored_by, starts = {}, {}
        for c in carries:
            for k, leaf in enumerate(c.start):
                if id(leaf) in stored_by:
                    starts[id(leaf)] = ("final", stored_by[id(leaf)])
                else:
                    starts.setdefault(id(leaf), ("holder", (c.holder, c.attribute, k)))
            for leaf, final in zip(c.stored, c.final):
                stored_by[id(leaf)] = final
        self.steps = []              # (forward, input slots, output slot)
        # Per step, for a big output whose primitive can write into a given array:
        # (forward_into, shape, (bytes, dtype)). The buffers freed by one step are reused by
        # later steps and later replays (self.pool), instead of the allocator handing out,
        # and the system zeroing, fresh pages for every big array of every step.
        self.into = []
        self.pool = {}               # (bytes, dtype) -> arrays no one else holds
        self.handed_out = []         # the last replay's results: pooled once the caller drops them
        self.holder_reads = []       # ((holder, attribute, k), traced shape, traced dtype)
        self.wheres = []             # per step, for detect_anomaly's errors
        for node in nodes(outputs):
            for t in node.inputs:
                if t._node is None and id(t) not in slots:
                    how = starts.get(id(t))
                    if how is not None and how[0] == "final":
                        slots[id(t)] = slots[id(how[1])]       # computed earlier this step
                        continue
                    slots[id(t)] = len(slots)
                    self.leaves.append((slots[id(t)], t if how is None else how[1]))
                    if how is not None:     # carried state, read from its holder
                        self.holder_reads.append((how[1], t.shape, t.dtype))
            slots[id(node.output)] = len(slots)
            self.steps.append((node.prim.forward, tuple(slots[id(t)] for t in node.inputs),
                               slots[id(node.output)]))
            out = node.output
            big = out.size * out.dtype.itemsize >= REUSE_BYTES
            self.into.append((node.prim.forward_into, out.shape,
                              (out.size * out.dtype.itemsize, out.dtype))
                             if big and node.prim.forward_into is not None else None)
            self.wheres.append(where(node.forward_node, node.role))
        for t in outputs:            # an output may be a leaf itself (a gradient equal to x)
            if id(t) not in slots:
                slots[id(t)] = len(slots)
                self.leaves.append((slots[id(t)], t))
        self._check_leaves(inputs, slots)
        self.size = len(slots)
        self.input_specs = [(t.shape, t.dtype) for t in inputs]
        self.loss_slot = slots[id(loss)]
        self.grad_slots = [None if g is None else slots[id(g)] for g in grads]
        # Only the last carry of each holder is written back.
        last = {}
        for c in carries:
            last[(id(c.holder), c.attribute)] = c
        self.carries = [(c.holder, c.attribute, [slots[id(t)] for t in c.final], c.stored,
                         isinstance(c.start_value if c.start_value is not None else
                                    c.previous, tuple) or len(c.final) > 1)
                        for c in last.values()]
        self.frees = self._last_uses(outputs, slots)
        # The pool keeps, per size, at most as many buffers as steps can take: a buffer no
        # step would take is left to the allocator (the pool must not grow replay by replay).
        self.pool_limit = {}
        for into in self.into:
            if into is not None:
                self.pool_limit[into[2]] = self.pool_limit.get(into[2], 0) + 1
        # Gradients that are not this step's own fresh arrays are copied before they are
        # handed out: the caller may scale them in place (clipping does).
        shared = {s for s, _ in self.leaves} | set(range(self.n_inputs)) | {self.loss_slot} | {
            s for _, _, final_slots, _, _ in self.carries for s in final_slots}
        seen = set()
        self.copy_grad = []
        for s in self.grad_slots:
            self.copy_grad.append(s in shared or s in seen)
            seen.add(s)

    def _check_leaves(self, inputs, slots):
        """Every input must be read by the program, and every other leaf must have a value:
        an abstract leaf is an input used through a detached copy, which would be frozen."""
        for k, t in enumerate(inputs):
            if not any(k in ins for _, ins, _ in self.steps) and not any(
                    slots.get(id(t)) == s for s, _ in self.leaves):
                raise ValueError(
                    f"compiled step: input {k} is not an input of the traced graph. The "
                    "function must use its inputs as Tensors: values read out of them (.data, "
                    "numpy) would be fixed at the first call")
        names = [t.name for t in inputs]
        for _, source in self.leaves:
            if isinstance(source, Tensor) and source.data is None:
                which = (f"input {names.index(source.name)}" if source.name in names
                         else "an input")
                raise ValueError(
                    f"compiled step: {which} is also used through {describe(source)}, a copy "
                    "of its values (detach(), .data) that would be fixed at the first call; "
                    "use the input Tensor itself")

    def _last_uses(self, outputs, slots):
        """For each step, the slots no later step reads: dropped right after it, so memory
        stays at what the eager pass keeps alive, not the sum of all intermediates."""
        kept = {slots[id(t)] for t in outputs}
        last = {}
        for i, (_, ins, out) in enumerate(self.steps):
            for s in ins:
                last[s] = i
            last.setdefault(out, i)
        frees = [[] for _ in self.steps]
        for s, i in last.items():
            if s not in kept:
                frees[i].append(s)
        return frees

    def carries_current(self):
        """False when a carried state the program reads is missing (reset_state()) or has
        another shape or dtype than traced: then the program must be traced again."""
        for (holder, attribute, k), shape, dtype in self.holder_reads:
            value = getattr(holder, attribute, None)
            parts = () if value is None else _as_tuple(value)
            if k >= len(parts) or parts[k].data is None or parts[k].shape != shape \
                    or parts[k].dtype != dtype:
                return False
        return True

    def replay(self, arrays):
        for array in self.handed_out:   # dropped by now (zero_grad)? then it is ours again
            if array.nbytes >= REUSE_BYTES and array.base is None and \
                    sys.getrefcount(array) == 3:        # the list, this loop, the call
                self._keep(array)
        self.handed_out = []
        values = [None] * self.size
        for k, (array, (shape, dtype)) in enumerate(zip(arrays, self.input_specs)):
            if array.shape != shape or array.dtype != dtype:
                raise ValueError(f"compiled step: input of shape {array.shape} ({array.dtype}) "
                                 f"does not match the traced {shape} ({dtype})")
            values[k] = array
        for slot, source in self.leaves:
            if isinstance(source, Tensor):
                values[slot] = source.data
            else:
                holder, attribute, k = source
                values[slot] = _as_tuple(getattr(holder, attribute))[k].data
        check = current().check
        # Checking, numpy's warnings would only repeat the error the check raises.
        with xp.errstate(all="ignore") if check is not None else contextlib.nullcontext():
            self._run_steps(values, check)
        self._carry_over(values)
        grads = self.owned([None if s is None else values[s] for s in self.grad_slots])
        self.handed_out = [g for g in grads if g is not None]
        return values[self.loss_slot], grads

    def _run_steps(self, values, check):
        pool = self.pool
        try:
            for k, ((forward, ins, out), frees, into) in enumerate(
                    zip(self.steps, self.frees, self.into)):
                buffers = pool.get(into[2]) if into is not None else None
                if buffers:
                    buffer = buffers.pop()
                    buffer.shape = into[1]          # the same memory, in this step's shape
                    result = into[0](buffer, *[values[s] for s in ins])
                    buffer = None                   # no stale hold when its slot is freed
                else:
                    result = forward(*[values[s] for s in ins])
                values[out] = result if type(result) is xp.ndarray else xp.asarray(result)
                if check is not None:
                    check(forward.__self__.name, values[out], [values[s] for s in ins],
                          where=self.wheres[k])
                for s in frees:
                    array = values[s]
                    values[s] = None
                    if array is None or array.nbytes < REUSE_BYTES:
                        continue
                    if array.base is not None:      # a view: its base may be free now
                        array = array.base          # (dropping the view drops its hold)
                        if type(array) is not xp.ndarray or array.base is not None:
                            continue
                    # Reusable only if nothing else holds it: no view of it alive, not a
                    # parameter's or an input's array (this frame and the call: 2).
                    if sys.getrefcount(array) == 2:
                        self._keep(array)
        except (IndexError, ValueError) as e:   # e.g. an id outside an embedding's rows
            raise type(e)(f"compiled step: op {forward.__self__.name} failed on the given "
                          f"inputs: {e}") from None

    def _keep(self, array):
        # Only plain C-ordered, writable arrays: a transposed (F-ordered) array cannot take
        # another shape in place, and reshaping it for a matmul would copy.
        if not (array.flags.c_contiguous and array.flags.writeable):
            return
        key = (array.nbytes, array.dtype)
        kept = self.pool.setdefault(key, [])
        if len(kept) < self.pool_limit.get(key, 0):
            kept.append(array)

    def _carry_over(self, values):
        for holder, attribute, final_slots, stored, is_tuple in self.carries:
            new = tuple(Tensor(values[s], name=t.name) for s, t in zip(final_slots, stored))
            setattr(holder, attribute, new if is_tuple else new[0])

    def owned(self, grads):
        """The gradient arrays to hand out: copies where they are shared with the program,
        the model or each other (see copy_grad) or are views."""
        return [None if g is None else g.copy() if copy or g.base is not None else g
                for g, copy in zip(grads, self.copy_grad)]
