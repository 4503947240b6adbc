"""Eager steps that replay their backward pass: the tape's shape is the cache key.

An eager step runs its function on every call, so the forward graph (the tape) is recorded
afresh each time; in a training loop it is usually the same graph on new values. Deriving the
backward pass op by op costs ~10 µs of Python per forward op, several times the numpy work of
a small model. So an eager step remembers the backward pass of a tape it met twice, as a
program (tinygraph.transforms.program) made by the same vjps, accumulator and rewrites as a
compiled step's, and replays it on the next tapes of that shape: the program is given the
forward values the eager pass computed (never recomputing them: dropout masks, random draws
and all stay those of this call) and returns the parameters' gradients.

The key (`signature`) is everything the backward graph is derived from: per node the
primitive's class and all its attributes, with their types (a key of True is not a key of 1;
arrays by bytes), and where each input comes from (an earlier node, or a leaf with its shape,
dtype, requires_grad flag and which trained parameter it is); for a source with no inputs (a
dropout mask) only its shape and dtype, since its value is given. Values are not part of it
and not read while the program is made (its inputs are abstract), so no value of one call is
ever baked into another's gradients. The ordinary backward pass runs instead for a tape whose
saved values changed in place (it refuses, naming the value), one met under another
interpreter (detect_anomaly, a trace), one holding a primitive with a mutable attribute (an
object, a dict, a function: a program could not see it change) or a node whose vjp reads a
closure (a checkpoint).
"""
from ..backend import xp
from ..core.autodiff import collector_paused, gradient_graph, nodes, saved_changed
from ..core.state import changed, current
from ..core.primitive import apply
from ..core.tensor import Tensor
from .program import Program
from .rewrite import SPEED_RULES, simplify
from .trace import Trace

_ORDINARY = "the ordinary backward pass"   # a tape whose backward no program replays
MAX_PROGRAMS = 4     # per step: tapes of a few shapes (say, a last shorter batch)
GIVE_UP_AFTER = 16   # calls in a row with no tape met before: the graph changes every call


class ReplayedBackward:
    """An eager step's backward programs, by tape signature (see module). `gradients(loss,
    params)` gives the gradient arrays by a program, or None: take the ordinary pass."""

    def __init__(self):
        self.programs = []       # (signature, BackwardProgram), oldest first
        self.last = None         # the signature of the latest tape with no program
        self.misses = 0          # calls in a row that met a new tape
        self.replays = 0
        self.why_not = None      # the error that made a tape's program impossible, if any

    def gradients(self, loss, params):
        if self.misses >= GIVE_UP_AFTER or current().interpreter is not None:
            return None
        tape = Tape(loss, params)
        if not tape.unchanged:       # the ordinary pass refuses, naming the changed value (or
            return None              # differentiates a node whose vjp reads its closure)
        signature = tape.signature
        program = next((p for s, p in self.programs if _same(s, signature)), None)
        if program is None:
            if not _same(signature, self.last):
                self.last, self.misses = signature, self.misses + 1
                return None
            try:
                program = BackwardProgram(tape, params)
            except Exception as e:   # e.g. a user's vjp that computes on arrays: it runs
                program = _ORDINARY  # in the ordinary pass, which has values
                self.why_not = e     # (kept for whoever wonders why nothing is replayed)
            self.programs.append((signature, program))
            del self.programs[:-MAX_PROGRAMS]
            self.last = None
        self.misses = 0
        if program is _ORDINARY:
            return None
        grads = program.gradients(tape)
        if grads is not None:
            self.replays += 1
        return grads


def _same(a, b):
    """a == b for two signatures; an attribute whose == cannot say (an array inside a dict)
    makes them different: the ordinary pass then runs, never a wrong program."""
    try:
        return bool(a == b)
    except (ValueError, TypeError):
        return False


class Tape:
    """A recorded forward graph read for replay: its nodes, leaves and signature."""

    def __init__(self, loss, params):
        self.order = order = nodes([loss])
        # id(tensor) -> its node's position in order; a leaf's: ~(its position in leaves)
        self.position = made = {}
        self.leaves = leaves = []
        shape, unchanged = [], True
        for i, node in enumerate(order):         # (inputs come before their users)
            prim, ins = node.prim, []
            # Whether a saved value changed in place since (as the ordinary pass checks it,
            # inline for the common case: all saved at version 0).
            all_zero = node.versions is None
            for t in node.inputs:
                k = made.get(id(t))
                if k is None:
                    k = made[id(t)] = ~len(leaves)
                    leaves.append(t)
                if all_zero and t._version is not None and t._version[0]:
                    unchanged = False
                ins.append(k)
            out = node._output()
            if out is None:
                unchanged = False
            else:
                made[id(out)] = i
                if not all_zero:
                    unchanged = unchanged and saved_changed(node, out) is None
                elif out._version is not None and out._version[0]:
                    unchanged = False
            if prim.closes_over:
                unchanged = False        # (a copy of the graph would miss the closure)
            attributes = prim.__dict__
            if not node.inputs and out is not None:
                # (a source such as a dropout mask: no gradient goes through it and its value
                # is given to the program, so only its shape matters, not its generator)
                key = ("source", out.shape, out.dtype)
            else:
                key = _comparable(tuple(attributes.values())) if attributes else ()
            if key is _UNKEYED:
                unchanged = False        # (an attribute that may change unseen)
            shape.append((type(prim), key, tuple(ins)))
        self.unchanged = unchanged
        trained = {id(p): k for k, p in enumerate(params)}
        self.signature = (tuple(shape), tuple(
            (t.shape, t.dtype, t.requires_grad, trained.get(id(t))) for t in leaves))

    def values(self, positions):
        """The arrays at these positions (node positions; ~k for leaf k), or None when one
        is gone (an output nothing holds any more)."""
        arrays = []
        for k in positions:
            t = self.leaves[~k] if k < 0 else self.order[k].output
            if t is None:
                return None
            arrays.append(t._data)
        return arrays


# Attribute values compared as they are: exact types only (True == 1 but a key of True is
# not a key of 1), and immutable.
_ATOMS = frozenset((int, str, slice, type(None), type(Ellipsis)))
_UNKEYED = object()        # an attribute no signature can hold (see _converted)


def _comparable(values):
    """A primitive's attribute values as a signature compares them: the tuple itself when it
    holds only atoms or tuples of atoms (a slice's key, a shape), else _converted."""
    for v in values:
        kind = type(v)
        if kind not in _ATOMS and not (kind is tuple and all(type(x) in _ATOMS for x in v)):
            return _converted(values)
    return values


def _converted(value):
    """A value with its type, arrays by bytes; _UNKEYED for a mutable object (a dict, a
    module, a callable whose closure may change): a copy of the tape's program could not
    see it change, so the tape takes the ordinary pass."""
    kind = type(value)
    if kind in _ATOMS:
        return value
    if kind in (bool, float, complex) or isinstance(value, (xp.generic, xp.dtype, type)):
        return (kind, value)
    if kind is xp.ndarray:
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if kind in (tuple, list):
        parts = tuple(_converted(v) for v in value)
        return _UNKEYED if any(p is _UNKEYED for p in parts) else (kind, parts)
    if isinstance(value, slice):
        return ("slice", _converted(value.start), _converted(value.stop),
                _converted(value.step))
    if not callable(value) and not getattr(value, "__dict__", None) \
            and not getattr(kind, "__slots__", ()):
        return ("marker", value)        # an object with no state (a key's slot marker)
    return _UNKEYED


class BackwardProgram:
    """The backward pass of one tape signature as a program of the forward values."""

    def __init__(self, tape, params):
        with collector_paused(), changed(interpreter=Trace({}), grad_enabled=True):
            twins = {}       # position (as in Tape) -> the abstract tensor standing for it
            for k, t in enumerate(tape.leaves):
                twins[~k] = Tensor(None, name=t.name, spec=(t.shape, t.dtype),
                                   requires_grad=t.requires_grad)
            for i, node in enumerate(tape.order):
                made = apply(node.prim, *(twins[tape.position[id(t)]] for t in node.inputs))
                made.name = node.output.name if node.output is not None else None
                twins[i] = made
            loss_twin = twins[len(tape.order) - 1]
            # (a parameter the tape does not read stands for itself: no gradient reaches it)
            grads = gradient_graph(loss_twin, [twins.get(tape.position.get(id(p)), p)
                                               for p in params])
            used = iter(simplify([g for g in grads if g is not None], SPEED_RULES).outputs)
            grads = [None if g is None else next(used) for g in grads]
        # The program is given the forward values its backward graph reads (and the loss,
        # one of its outputs), in tape positions.
        by_id = {id(t): k for k, t in twins.items()}
        read = {id(loss_twin)}
        for node in nodes([g for g in grads if g is not None], given=by_id):
            read.update(id(t) for t in node.inputs if id(t) in by_id)
        read.update(id(g) for g in grads if g is not None and id(g) in by_id)
        self.positions = sorted(by_id[i] for i in read)
        self.program = Program([twins[k] for k in self.positions], loss_twin, grads, [], [], {})

    def gradients(self, tape):
        """One gradient array per parameter (None where unused), or None: values gone."""
        arrays = tape.values(self.positions)
        if arrays is None:
            return None
        try:
            return self.program.replay(arrays)[1]
        except ValueError:       # (never expected: the ordinary pass then says what failed)
            return None

