"""A compiled step's program: the traced graph flattened into steps over slots, with its
memory planned when it is made.

A program is a list of (primitive forward, input slots, output slot) over a list of values:
the inputs, the leaves it reads at every call (parameters, carried state, inputs cast as
eager mode casts bare arrays), then one slot per step. Each intermediate value is dropped
right after its last use, so memory stays at what the eager pass keeps alive.

Big intermediate arrays are written into buffers the program owns, assigned at trace time
from the values' lifetimes (as tinygrad and XLA plan memory): two values share a buffer only
when one is dead before the other is born. A value's lifetime is extended by every later
value that may be a view of it (the output of a primitive with no `forward_into`, which may
return its input or a view of it). No buffer is ever handed out: the loss, the gradients,
the carried state and auxiliary outputs are fresh arrays, or copies where they are views, so
nothing the caller holds is written by a later call. No reference counts are read.

Listing(program, params) prints a program as a learner reads it (`step.program()`): its
inputs, one line per instruction with the buffer its result is written into, and its outputs.
"""
import math

from ..backend import xp
from ..core.autodiff import collector_paused, nodes
from ..core.interpreter import interpreter
from ..core.tensor import Tensor, describe
from .anomaly import where
from .codegen import Generated

# Outputs this big get a planned buffer: glibc serves bigger requests with fresh pages from
# the system, each a page fault when first written, so reusing them saves that every call.
REUSE_BYTES = 1 << 17
_NEVER = float("inf")


def _where(node, known):
    """anomaly.where(...) for the node's step, made once per forward op and role."""
    forward = node.forward_node
    key = (None if forward is None else forward.op, node.role)
    phrase = known.get(key)
    if phrase is None:
        phrase = known[key] = where(forward, node.role)
    return phrase


class Program:
    """The flattened graph of one trace: leaves read on every call, then one step per op node.

    inputs: the trace's input Tensors (or values of the graph, given at each call); loss,
    grads (None where unused), aux: the outputs;
    carries: the trace's carry() records; casts: {(position, dtype): Tensor} for inputs given
    as arrays and cast where they met a tensor of another dtype.
    """

    def __init__(self, inputs, loss, grads, aux, carries, casts):
        with collector_paused():           # (a graph of ~10^5 objects: see there)
            self._flatten(inputs, loss, grads, aux, carries, casts)

    def _flatten(self, inputs, loss, grads, aux, carries, casts):
        finals = [t for c in carries for t in c.final]
        outputs = [loss] + [g for g in grads if g is not None] + \
            [t for t in aux if t is not None] + finals
        slots = {id(t): k for k, t in enumerate(inputs)}
        self.n_inputs = len(inputs)
        self.leaves = []         # (slot, how to read it: a Tensor, (holder, attr, k), or a cast)
        self.holder_reads = []   # ((holder, attribute, k), traced shape, traced dtype)
        self.leaf_specs = {}     # slot -> (shape, dtype) of each leaf, for listings
        starts = _carried_starts(carries)
        casts = {id(t): key for key, t in casts.items()}
        self.steps, self.wheres, self.specs, into = [], [], [], []
        wheres = {}              # (forward op, role) -> the phrase: one string per kind
        # An input may be a value some op computed (a backward program is given the forward
        # values): the program starts from it, never computing it again.
        for node in nodes(outputs, given=slots):
            ins = []
            for t in node.inputs:
                slot = slots.get(id(t))
                if slot is None:             # a leaf (a node's output has its slot already)
                    self._add_leaf(t, slots, starts, casts)
                    slot = slots[id(t)]
                ins.append(slot)
            out = node.output
            slots[id(out)] = slot = len(slots)
            prim = node.prim
            self.steps.append((prim.forward, tuple(ins), slot))
            self.specs.append((out.shape, out.dtype))
            into.append(prim.forward_into)
            self.wheres.append(_where(node, wheres))
        for t in outputs:        # an output may be a leaf itself (a gradient equal to x)
            if id(t) not in slots:
                self._add_leaf(t, slots, starts, casts)
        self.size = len(slots)
        self.loss_slot = slots[id(loss)]
        self.grad_slots = [None if g is None else slots[id(g)] for g in grads]
        self.aux_slots = [None if t is None else slots[id(t)] for t in aux]
        self.input_specs = [(t.shape, t.dtype) for t in inputs]
        self.input_names = [t.name for t in inputs]
        self.may_view = [f is None for f in into]   # its output may be a view of an input
        # Only the last carry of each holder is written back.
        last = {}
        for c in carries:
            last[(id(c.holder), c.attribute)] = c
        self.carries = [(c.holder, c.attribute, [slots[id(t)] for t in c.final], c.stored,
                         isinstance(c.start_value if c.start_value is not None else
                                    c.previous, tuple) or len(c.final) > 1)
                        for c in last.values()]
        kept = {slots[id(t)] for t in outputs if t is not None}
        last = self._last_reads()
        self.frees = self._frees(last, kept)
        self.plan, self.buffer_sizes = self._plan_buffers(into, kept, last)
        self.buffers = [None] * len(self.buffer_sizes)      # allocated on first use
        self.checked = False     # the first replay checks each result against its spec
        self.kept = kept
        self._generated = None   # the generated function (codegen), made at the 2nd replay
        self._views = None       # per step, the view of its planned buffer it writes into
        # Outputs that are the program's leaves (a parameter, an input) or each other are
        # copied before they are handed out: the caller may write into what it gets.
        self.shared = {s for s, _ in self.leaves} | set(range(self.n_inputs))

    def _add_leaf(self, t, slots, starts, casts):
        holder = starts.get(id(t))
        slots[id(t)] = len(slots)
        self.leaf_specs[slots[id(t)]] = (t.shape, t.dtype)
        if id(t) in casts:
            self.leaves.append((slots[id(t)], ("cast",) + casts[id(t)]))
        elif holder is not None:                       # carried state, read from its holder
            self.leaves.append((slots[id(t)], holder))
            self.holder_reads.append((holder, t.shape, t.dtype))
        elif t.data is None:
            raise ValueError(
                f"compiled step: the function uses {describe(t)}, a tensor with no value that "
                "no op of the trace computes (made from an input's values outside the graph?); "
                "use the input Tensor itself")
        else:
            self.leaves.append((slots[id(t)], t))

    def _last_reads(self):
        """{slot: the last step that reads it (or makes it, if none reads it)}."""
        last = {}
        for i, (_, ins, out) in enumerate(self.steps):
            for s in ins:
                last[s] = i
            last.setdefault(out, i)
        return last

    def _frees(self, last, kept):
        """For each step, the slots no later step reads: dropped right after it."""
        frees = [[] for _ in self.steps]
        for s, i in last.items():
            if s not in kept:
                frees[i].append(s)
        return frees

    def _plan_buffers(self, into, kept, last):
        """Per step, the buffer its output is written into (or None), and each buffer's
        (element count, dtype): an interval assignment over the values' lifetimes."""
        death = dict(last)
        for s in kept:
            death[s] = _NEVER
        # A value that may be a view of an input keeps that input's buffer alive with it.
        for i in reversed(range(len(self.steps))):
            _, ins, out = self.steps[i]
            if into[i] is None:
                for s in ins:
                    death[s] = max(death.get(s, i), death[out])
        plan, sizes, free, releases = [], [], {}, {}
        for i, (_, _, out) in enumerate(self.steps):
            shape, dtype = self.specs[i]
            size = int(math.prod(shape))
            big = into[i] is not None and out not in kept and \
                size * dtype.itemsize >= REUSE_BYTES
            if big:
                key = (size, dtype)
                buffer = free[key].pop() if free.get(key) else len(sizes)
                if buffer == len(sizes):
                    sizes.append(key)
                releases.setdefault(death[out], []).append(buffer)
                plan.append((into[i], buffer, shape))
            else:
                plan.append(None)
            for buffer in releases.pop(i, ()):
                free.setdefault(sizes[buffer], []).append(buffer)
        return plan, sizes

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
        """(the loss array, the gradient arrays (None where unused), the aux arrays)."""
        values = [None] * self.size
        for k, (array, (shape, dtype)) in enumerate(zip(arrays, self.input_specs)):
            if array.shape != shape or array.dtype != dtype:
                raise ValueError(f"compiled step: input of shape {array.shape} ({array.dtype}) "
                                 f"does not match the traced {shape} ({dtype})")
            values[k] = array
        for slot, source in self.leaves:
            if isinstance(source, Tensor):
                values[slot] = source.data
            elif source[0] == "cast":
                _, position, dtype = source
                values[slot] = arrays[position].astype(dtype)
            else:
                holder, attribute, k = source
                values[slot] = _as_tuple(getattr(holder, attribute))[k].data
        interp = interpreter()         # detect_anomaly's checks each replayed step's result
        with interp.quiet():
            if self.checked and interp.check_result is None:
                self._run_generated(values)
            else:
                self._run_steps(values, interp.check_result)
        self.checked = True
        handed = set()
        grads = [self._hand_out(values, s, handed) for s in self.grad_slots]
        aux = [self._hand_out(values, s, handed) for s in self.aux_slots]
        loss = self._hand_out(values, self.loss_slot, handed)
        self._carry_over(values, handed)
        return loss, grads, aux

    def _run_steps(self, values, check):
        buffers, first = self.buffers, not self.checked
        k = 0
        try:
            for k, ((forward, ins, out), frees, plan) in enumerate(
                    zip(self.steps, self.frees, self.plan)):
                args = [values[s] for s in ins]
                if plan is not None:
                    forward_into, b, shape = plan
                    flat = buffers[b]
                    if flat is None:
                        size, dtype = self.buffer_sizes[b]
                        flat = buffers[b] = xp.empty(size, dtype)
                    out_view = flat.reshape(shape)
                    result = forward_into(out_view, *args)
                    if result is not out_view:
                        raise TypeError(_not_into_message(self.steps[k][0]))
                else:
                    result = forward(*args)
                values[out] = result if type(result) is xp.ndarray else xp.asarray(result)
                if first:
                    self._check_spec(k, values[out])
                if check is not None:
                    check(forward.__self__.name, values[out], args, where=self.wheres[k])
                for s in frees:
                    values[s] = None
        except (IndexError, ValueError) as e:   # e.g. an id outside an embedding's rows
            raise type(e)(f"compiled step: op {self.steps[k][0].__self__.name} failed on the "
                          f"given inputs: {e}") from None

    def generated(self):
        """The program as one generated Python function (tinygraph.transforms.codegen)."""
        if self._generated is None:
            self._generated = Generated(self, self.kept)
        return self._generated

    def _run_generated(self, values):
        """The steps by the generated function, on the buffers the first replay allocated."""
        generated = self.generated()
        if self._views is None:
            self._views = [None if plan is None else self.buffers[plan[1]].reshape(plan[2])
                           for plan in self.plan]
        try:
            generated.run(values, self._views)
        except (IndexError, ValueError) as e:   # e.g. an id outside an embedding's rows
            k = generated.step_of(e.__traceback__)
            if k is None:
                raise
            raise type(e)(f"compiled step: op {self.steps[k][0].__self__.name} failed on the "
                          f"given inputs: {e}") from None

    def _check_spec(self, k, value):
        shape, dtype = self.specs[k]
        if value.shape != shape or value.dtype != dtype:
            name = self.steps[k][0].__self__.name
            raise TypeError(f"compiled step: primitive {name!r} computed a {value.dtype} array of "
                            f"shape {value.shape}, but its spec() said {dtype} of shape "
                            f"{shape}; its forward and spec must agree")

    def _hand_out(self, values, slot, handed):
        """The array of `slot` for the caller: a copy where it is a view, one of the
        program's leaves (a parameter, an input) or already handed out."""
        if slot is None:
            return None
        array = values[slot]
        if array.base is not None or slot in self.shared or slot in handed:
            array = array.copy()
        handed.add(slot)
        return array

    def _carry_over(self, values, handed):
        for holder, attribute, final_slots, stored, is_tuple in self.carries:
            new = tuple(Tensor(self._hand_out(values, s, handed), name=t.name)
                        for s, t in zip(final_slots, stored))
            setattr(holder, attribute, new if is_tuple else new[0])


def _not_into_message(forward):
    return (f"compiled step: primitive {forward.__self__.name!r}'s forward_into returned "
            "another array than the `out` it was given; forward_into must write its result "
            "into `out` and return it (the program plans that buffer's lifetime)")


def _carried_starts(carries):
    """id(start leaf) -> (holder, attribute, k) for a carried state the program reads from
    its holder. (A layer run twice in one step starts its second run from the first's stored
    state: in a trace that is a stop_gradient node, computed by the program, not a leaf.)"""
    starts = {}
    for c in carries:
        for k, leaf in enumerate(c.start):
            if leaf._node is None:
                starts.setdefault(id(leaf), (c.holder, c.attribute, k))
    return starts


def _as_tuple(state):
    return tuple(state) if isinstance(state, (tuple, list)) else (state,)


class Listing:
    """A program written out like a jaxpr: str() lists the inputs (given ones, parameters,
    constants, carried state), one line per instruction and the outputs; deterministic
    (values are named by slot, v0, v1, ..., never by id). Attributes, for tests and tools:

    inputs: [(value, type, what it is)]; instructions: [Instruction], in run order;
    outputs: [(what it is, value or None)]; buffer_bytes: the planned buffers' sizes.
    """

    def __init__(self, program, params):
        self.types = {}
        for k, spec in enumerate(program.input_specs):
            self.types[k] = _type(*spec)
        for i, (_, _, out) in enumerate(program.steps):
            self.types[out] = _type(*program.specs[i])
        self.inputs = [(k, self.types[k], "given: " + _input_name(name))
                       for k, name in enumerate(program.input_names)]
        for slot, source in program.leaves:
            self.types[slot] = _type(*program.leaf_specs[slot])
            what = _leaf(source, params)
            self.inputs.append((slot, self.types[slot], what))
        self.instructions = _instructions(program)
        self.outputs = _outputs(program, params)
        self.buffer_bytes = [size * dtype.itemsize for size, dtype in program.buffer_sizes]

    def lifetimes(self):
        """{value: (the instruction that makes it, or -1 for an input; the last one that
        reads it)}, read off the instructions' arguments."""
        spans = {v: (-1, -1) for v, _, _ in self.inputs}
        for i, ins in enumerate(self.instructions):
            spans[ins.value] = (i, i)
            for v in ins.args:
                spans[v] = (spans[v][0], i)
        return spans

    def __str__(self):
        kib = sum(self.buffer_bytes) // 1024
        head = (f"program: {len(self.instructions)} instructions, "
                f"{len(self.buffer_bytes)} planned buffers ({kib} KiB)")
        lines = [head, "inputs"]
        width = max((len(f"v{v}: {t}") for v, t, _ in self.inputs), default=0)
        lines += [f"  {f'v{v}: {t}':<{width}}  {what}" for v, t, what in self.inputs]
        lines.append("instructions")
        texts = [f"v{ins.value}: {self.types[ins.value]} = {ins.op} "
                 + " ".join(f"v{a}" for a in ins.args) for ins in self.instructions]
        width = max(map(len, texts), default=0)
        for text, ins in zip(texts, self.instructions):
            notes = [] if ins.buffer is None else [f"in buf{ins.buffer}" + (
                f" (reuses v{ins.reuses}'s)" if ins.reuses is not None else "")]
            if ins.last_reads:
                notes.append("last read: " + " ".join(f"v{v}" for v in ins.last_reads))
            lines.append(f"  {text:<{width}}  {'; '.join(notes)}".rstrip())
        lines.append("outputs")
        width = max(len(what) for what, _ in self.outputs)
        lines += [f"  {what:<{width}}  {'unused' if v is None else f'v{v}'}"
                  for what, v in self.outputs]
        return "\n".join(lines)

    def __repr__(self):
        return str(self)


class Instruction:
    """One step of a listing: `value = op args`, the planned buffer it is written into
    (None: a fresh array), the value that held that buffer before (None: first use), the
    values read for the last time here, and whether the result may be a view of an input."""

    def __init__(self, value, op, args, buffer, reuses, last_reads, may_view):
        self.value, self.op, self.args = value, op, args
        self.buffer, self.reuses, self.last_reads, self.may_view = \
            buffer, reuses, last_reads, may_view


def _instructions(program):
    holder = {}                       # buffer -> the value last written into it
    result = []
    for i, ((forward, ins, out), plan) in enumerate(zip(program.steps, program.plan)):
        buffer = None if plan is None else plan[1]
        reuses = holder.get(buffer)
        if buffer is not None:
            holder[buffer] = out
        result.append(Instruction(out, _op(forward.__self__), ins, buffer, reuses,
                                  sorted(program.frees[i]), program.may_view[i]))
    return result


def _op(prim):
    """`sum[axis=(0, 1), keepdims=False]`: the primitive's name and static attributes."""
    attrs = ", ".join(f"{k}={_short(v)}" for k, v in prim.attrs().items())
    return f"{prim.name}[{attrs}]" if attrs else prim.name


def _short(value):
    text = repr(value)
    if " at 0x" in text or len(text) > 40:          # an object (a generator), a big array
        shape = getattr(value, "shape", None)
        return type(value).__name__ + ("" if shape is None else str(list(shape)))
    return text


def _type(shape, dtype):
    """`f32[20,400]`, as jaxprs write types."""
    dtype = xp.dtype(dtype)
    short = "bool" if dtype.kind == "b" else f"{dtype.kind}{dtype.itemsize * 8}"
    return f"{short}[{','.join(map(str, shape))}]"


def _input_name(name):
    return f"keyword {name[6:]}" if name.startswith("kwarg ") else f"input {name[5:]}"


def _param_label(k, params):
    name = params[k].name
    return f"{k}" if name is None else f"{k} ({name})"


def _leaf(source, params):
    """What a value the program reads besides its inputs is."""
    if isinstance(source, Tensor):
        kind = next((f"parameter {_param_label(k, params)}" for k, p in enumerate(params)
                     if p is source), None)
        if kind is None:
            kind = f"constant {source.data.item()!r}" if source.size == 1 else \
                "constant" + (f" ({source.name})" if source.name else "")
        return kind
    if source[0] == "cast":
        _, position, dtype = source
        return f"input {position} cast to {xp.dtype(dtype).name}"
    holder, attribute, k = source
    return f"carried {type(holder).__name__}.{attribute}[{k}]"


def _outputs(program, params):
    outputs = [("loss", program.loss_slot)]
    outputs += [(f"grad {_param_label(k, params)}", s) for k, s in enumerate(program.grad_slots)]
    outputs += [(f"aux {k}", s) for k, s in enumerate(program.aux_slots)]
    for holder, attribute, slots, _, _ in program.carries:
        outputs += [(f"carry {type(holder).__name__}.{attribute}[{k}]", s)
                    for k, s in enumerate(slots)]
    return outputs
