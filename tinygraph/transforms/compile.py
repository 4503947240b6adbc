"""Compiled mode: trace a training step once, on shapes only, and replay it as a flat program.

    step = tinygraph.compile(model.loss, model.parameters())
    loss = step(ids, targets)     # same call and effect as tinygraph.eager_step

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
stateful layer carries from one call to the next (handed over with `carry`). What the
function read besides — the modules' training flags, numpy arrays and Python values it closes
over — is guarded (tinygraph.transforms.trace): a change traces again, so a replay never
ignores it. So are the parameters' `requires_grad` flags (a frozen parameter is a constant
with no gradient; each set of flags has its program) and the shape and dtype of every tensor
the program reads (`model.to(np.float64)` traces again). The function must not branch on the
values of its inputs (it cannot read them: they have none while it is traced). Eager mode
stays the reference; tests check that both agree, and both follow one rule for what they
accept and how they cast.
"""
import warnings

from ..backend import xp
from ..core.autodiff import gradient_graph
from ..core.interpreter import interpreter
from ..core.state import changed, current
from ..core.tensor import Tensor, describe
from .program import Listing, Program
from .rewrite import SPEED_RULES, simplify
from .step import Step, check_loss, split_output
from .trace import Trace

MAX_PROGRAMS = 8     # per CompiledStep: the oldest is dropped beyond this (varying shapes)


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
    interpreter().carried(_Carry(holder, attribute, start, final, detached, previous))


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
    """`fn(*inputs, **kwargs)` -> scalar loss (or `(loss, aux)` with has_aux), traced per
    input signature and replayed (see module).

    Inputs (positional, and keyword arguments that are arrays or tensors) are the program's
    inputs, read at every call; a keyword argument of another kind (a number, a string) is
    part of the signature: another value traces again. static: an optional function
    returning more Python state `fn` branches on, made part of the signature too.
    """

    def __init__(self, fn, params, static=None, has_aux=False):
        super().__init__(fn, params, has_aux)
        self.static = static
        self.programs = {}       # (signature, serial) -> Program, oldest first
        self.traces = self.calls = 0
        self.warned = False
        self.latest = None       # the program the latest call replayed (see program())

    def run(self, inputs, kwargs):
        if isinstance(current().interpreter, Trace):
            raise RuntimeError("compiled step: called while another compiled step is being "
                               "traced; call the inner loss function directly instead")
        self.calls += 1
        program, arrays = self._program_for(inputs, kwargs, stacklevel=5)
        self.latest = program
        loss, grads, aux = program.replay(arrays)
        return loss, grads, program.rebuild(aux)

    def program(self, *inputs, **kwargs):
        """The program as a printable Listing: with no arguments, the one the latest call
        replayed; with a call's arguments, the one such a call replays (traced now if it
        is not cached yet, and kept; nothing is computed, no gradient is written)."""
        return Listing(self._chosen(inputs, kwargs), self.params)

    def source(self, *inputs, **kwargs):
        """The Python code a replay runs: the program as one generated function, one line
        per instruction of `program()` (tinygraph.transforms.codegen). Arguments as for
        `program`."""
        return self._chosen(inputs, kwargs).generated().source

    def _chosen(self, inputs, kwargs):
        """The latest call's program, or the one a call with these arguments replays."""
        if inputs or kwargs:
            if isinstance(current().interpreter, Trace):
                raise RuntimeError("compiled step: program() called while a step is traced")
            with self._lock:
                return self._program_for(inputs, kwargs, stacklevel=5)[0]
        if self.latest is None:
            raise ValueError("compiled step: not called yet; pass example inputs to "
                             "program(...) to see the program a call with them replays")
        return self.latest

    def _program_for(self, inputs, kwargs, stacklevel):
        """(the program for a call with these arguments, traced if none holds, the arrays)."""
        names, arrays, given_as_array, statics = _split_inputs(inputs, kwargs)
        live = self.trained("compiled step")
        signature = (tuple((a.shape, a.dtype.str) for a in arrays), tuple(names),
                     tuple(given_as_array), statics,
                     self.static() if self.static is not None else None, tuple(live))
        program, why = self._find(signature)
        if program is None:
            program = self._trace(names, arrays, given_as_array, dict(statics), live)
            self.traces += 1
            self.programs[(signature, self.traces)] = program
            while len(self.programs) > MAX_PROGRAMS:
                del self.programs[next(iter(self.programs))]
            self._warn_if_thrashing(why, stacklevel)
        return program, arrays

    def _find(self, signature):
        """(a program whose guards hold for this signature, None) or (None, why a trace is
        needed: a broken guard of the newest program of this signature, else the difference
        from the newest program)."""
        guard, shape = None, None
        for (sig, _), program in reversed(self.programs.items()):
            if sig != signature:
                shape = shape or _difference(sig, signature)
                continue
            broken = program.guards.broken()
            if broken is None and not program.carries_current():
                broken = "a carried state was reset or changed shape"
            if broken is None:
                broken = _changed_leaf(program)
            if broken is None:
                return program, None
            guard = guard or broken
        return None, guard or shape

    def _warn_if_thrashing(self, why, stacklevel):
        # More traces than the cache holds, and most calls trace: the step runs slower than
        # eager mode would, silently. Say so once, naming what keeps changing.
        if not self.warned and self.traces > MAX_PROGRAMS and 2 * self.traces > self.calls:
            self.warned = True
            warnings.warn(f"compiled step: traced {self.traces} times in {self.calls} calls "
                          f"({why or 'the signature changes'}); each trace costs more than "
                          "an eager step. Keep shapes fixed (pad or bucket them) or use "
                          "tg.eager_step", RuntimeWarning, stacklevel=stacklevel)

    def _trace(self, names, arrays, given_as_array, statics, live):
        """Run fn on abstract inputs, derive and simplify its backward graph, flatten both."""
        inputs = [Tensor(None, name=name, spec=(a.shape, a.dtype))
                  for name, a in zip(names, arrays)]
        positional = [t for name, t in zip(names, inputs) if not name.startswith("kwarg ")]
        keywords = {name[6:]: t for name, t in zip(names, inputs) if name.startswith("kwarg ")}
        trace = Trace({id(t): k for k, t in enumerate(inputs) if given_as_array[k]})
        try:
            # A trace records, even when called under no_grad.
            with changed(interpreter=trace, grad_enabled=True):
                loss, aux, rebuild = split_output(
                    self.fn(*positional, **keywords, **statics), self.has_aux,
                    "compiled step")
                check_loss(loss, "compiled step")
                # Frozen parameters are constants: leaves the program reads, no gradient.
                grads = [None] * len(self.params)
                for k, g in zip(live, gradient_graph(loss, [self.params[k] for k in live])):
                    grads[k] = g
                used = [g for g in grads if g is not None]
                simplified = iter(simplify(used, SPEED_RULES).outputs)
                grads = [None if g is None else next(simplified) for g in grads]
        finally:
            _restore(trace.carries)
        program = Program(inputs, loss, grads, aux, trace.carries, trace.casts)
        program.guards, program.rebuild = trace.guards(self.fn), rebuild
        return program

    def reset(self):
        """Forget the traced programs; the next call traces again."""
        self.programs.clear()
        self.latest = None


def compile(fn, params, static=None, has_aux=False):
    """A CompiledStep for the loss function `fn` and the parameters it trains: calling it
    returns the loss (with has_aux, `(loss, aux)`) and adds the gradients into `.grad`, as
    `eager_step` does (see CompiledStep for `static`)."""
    return CompiledStep(fn, params, static, has_aux)


def _split_inputs(inputs, kwargs):
    """(names, arrays, given as an array?, static keyword values) for one call: positional
    inputs and array or tensor keyword arguments become arrays; other keyword arguments are
    static (part of the signature)."""
    names, arrays, given_as_array, statics = [], [], [], []
    for k, x in enumerate(inputs):
        names.append(f"input{k}")
        arrays.append(_input_array(x, f"input {k}"))
        given_as_array.append(not isinstance(x, Tensor))
    for key in sorted(kwargs):
        x = kwargs[key]
        if isinstance(x, (Tensor, xp.ndarray)):
            names.append(f"kwarg {key}")
            arrays.append(_input_array(x, f"keyword argument {key!r}"))
            given_as_array.append(not isinstance(x, Tensor))
        else:
            try:
                hash(x)
            except TypeError:
                raise TypeError(f"compiled step: keyword argument {key!r} is a "
                                f"{type(x).__name__}: pass arrays or tensors (inputs read at "
                                "every call) or hashable Python values (part of the "
                                "signature: another value traces again)") from None
            statics.append((key, x))
    return names, arrays, given_as_array, tuple(statics)


def _difference(old, new):
    """What differs between two signatures, said for the thrashing warning."""
    for name, a, b in zip(new[1], old[0], new[0]):
        if a != b:
            shown = f"keyword argument {name[6:]!r}" if name.startswith("kwarg ") \
                else f"input {name[5:]}"
            return (f"{shown} has shape {b[0]} ({xp.dtype(b[1]).name}), traced before with "
                    f"{a[0]} ({xp.dtype(a[1]).name})")
    if old[3] != new[3]:
        return f"keyword arguments {dict(new[3])}, traced before with {dict(old[3])}"
    if old[5] != new[5]:
        return "the parameters frozen (requires_grad = False) changed"
    return "the inputs or the static state changed"


def _changed_leaf(program):
    """None while every tensor the program reads (parameters, constants) has the shape and
    dtype it was traced with; else what changed (e.g. `model.to(np.float64)`: a replay would
    write float64 results into float32 buffers)."""
    for slot, source in program.leaves:
        if isinstance(source, Tensor) and not source.constant:   # (constants never change)
            shape, dtype = program.leaf_specs[slot]
            data = source.data
            if data is None or data.shape != shape or data.dtype != dtype:
                return (f"{describe(source)} is now {getattr(data, 'dtype', None)}"
                        f"{getattr(data, 'shape', '')}, traced as {xp.dtype(dtype)}{shape}")
    return None


def _input_array(x, position):
    if isinstance(x, Tensor):
        x = x.value()
    array = xp.asarray(x)
    if array.dtype.kind not in "iufb":
        raise TypeError(f"compiled step: {position} has dtype {array.dtype}; inputs must "
                        "be boolean, integer or floating-point arrays")
    return array


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
