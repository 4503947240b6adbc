"""Interpreters: how ops run in a context.

`apply` hands every primitive to the current interpreter (`State.interpreter`), as JAX's
`bind` does. None, the default, is the core's own: compute the op now and, when grad mode is
on, record a node. The fast backward pass uses another of the core's (`accumulate.LazyTerms`);
each transform defines its own beside itself: a compiled step's shape-only trace
(`transforms.trace.Trace`), detect_anomaly's checked evaluation (`transforms.anomaly`). The
core names none of them: it calls the hooks below, whose defaults do nothing.

An interpreter is installed for a block with `state.changed(interpreter=...)`; it is
context-local like every field of the state.
"""
import contextlib

from ..backend import xp
from .state import current


class Interpreter:
    """The hooks the core calls; a subclass overrides the ones it needs."""

    # Shape-only evaluation: ops make tensors with a shape and a dtype and no value (a trace).
    abstract = False
    # A function every op's result is passed to, check_result(op, data, input_arrays,
    # input_names, where), or None (see transforms.anomaly); compiled replays call it too.
    check_result = None

    def apply(self, prim, inputs, state):
        """The output of prim on inputs (see core.primitive.apply)."""
        raise NotImplementedError

    def run(self, prim, arrays, inputs, where=None):
        """prim.forward on arrays (a lazy term evaluated late, an op applied)."""
        from .primitive import run_forward
        return run_forward(prim, arrays, inputs)

    def quiet(self):
        """A context in which numpy's floating-point warnings are off: a check that raises
        says more."""
        return contextlib.nullcontext() if self.check_result is None else \
            xp.errstate(all="ignore")

    def saved(self, inputs, output):
        """What a new node keeps to verify its saved values before its vjp runs: an object
        with verify(node, output), or None."""
        return None

    def refuse(self, what):
        """An exception for an operation this interpreter cannot run (backward() inside a
        trace), or None where it can."""
        return None

    def no_value(self, what):
        """An exception for `what` asking for a value where there is none (an abstract
        tensor's .data read in a trace), or None."""
        return None

    # What a program's stateful parts and constants report (a trace guards them).
    def capture(self, array, shown):
        """A numpy array made a constant of the graph (shown: how to name it)."""

    def read_flag(self, module, value):
        """A module's training flag was read, or is about to be set (value: before)."""

    def assigning(self, module, name):
        """A module's attribute is being set."""

    def called(self, module):
        """A module is being called."""

    def carried(self, carry):
        """A stateful layer stored a new state (see nn.carry)."""

    # Operands given as numpy arrays (a trace types them as eager mode would).
    def is_array_input(self, t):
        return False

    def is_array_value(self, t):
        return False

    def cast_input(self, t, dtype):
        return t


DEFAULT = Interpreter()


def interpreter():
    """The interpreter in force in this context (an `Interpreter` whose hooks do nothing when
    none is installed)."""
    return current().interpreter or DEFAULT
