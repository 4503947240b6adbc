"""Recording state, context-local: what `apply` and the backward pass consult while they run.

One immutable `State` per context (a `contextvars.ContextVar`), replaced, never mutated, by
the context managers that change it. So each thread (and each asyncio task) has its own: a
`no_grad()` in one thread leaves recording in another untouched, as in JAX's thread-local
trace state. It holds what is the core's: grad mode, the backward node being recorded, the
scope, the backward pass running, and the current interpreter (what a transform changes about
how ops run is its interpreter's business, not a field here). Nothing else in tinygraph keeps
mutable global state (Node's creation counter only numbers nodes, in any thread).
"""
import contextlib
import contextvars
import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class State:
    """What is in force now. Read it with `current()`; change it with `changed(...)`."""

    grad_enabled: bool = True
    # While a vjp runs recorded, the forward node it differentiates: nodes made then are
    # backward nodes pointing at it.
    backward_of: object = None
    # "vjp" for nodes a vjp makes, "accumulate" for the sums the gradient accumulator makes.
    backward_role: str = None
    # The user's scope names, outermost first (see `scope`).
    scope: tuple = ()
    # The backward pass in progress (tinygraph.core.autodiff.BackwardPass): which forward
    # node's vjp runs now, named when a backward op fails.
    running: object = None
    # How ops run (tinygraph.core.interpreter): None, the core's own (evaluate, and record
    # when grad mode is on), or an Interpreter a transform installed for the block.
    interpreter: object = None


_STATE = contextvars.ContextVar("tinygraph_state", default=State())


def current():
    """The State in force in this context."""
    return _STATE.get()


_FIELDS = tuple(f.name for f in dataclasses.fields(State))
# Each field's slot setter: a new State is filled through them, as dataclasses.replace would
# fill it through __init__ at several times the cost (a trace replaces the state ~100,000
# times: once per vjp it records).
_SETTERS = tuple(vars(State)[name].__set__ for name in _FIELDS)


def _replaced(state, fields):
    """A copy of `state` with `fields` (a dict) replaced."""
    unknown = fields.keys() - set(_FIELDS)
    if unknown:
        raise TypeError(f"changed: State has no field {sorted(unknown)[0]!r}")
    new = object.__new__(State)
    for name, set_field in zip(_FIELDS, _SETTERS):
        set_field(new, fields[name] if name in fields else getattr(state, name))
    return new


class _Changed(contextlib.ContextDecorator):
    """`changed(...)`: the state with some fields replaced while the block runs."""

    def __init__(self, fields):
        self.fields = fields
        self._tokens = []        # a stack: the same object may be entered again inside

    def new_state(self, state):
        return _replaced(state, self.fields)

    def __enter__(self):
        self._tokens.append(_STATE.set(self.new_state(_STATE.get())))

    def __exit__(self, *exc):
        _STATE.reset(self._tokens.pop())
        return False

    def _recreate_cm(self):
        # As a decorator each call gets its own tokens (calls in other threads or tasks).
        return type(self)(self.fields)


def changed(**fields):
    """Run the block with some fields of the state replaced (restored on exit)."""
    return _Changed(fields)


def is_grad_enabled():
    """True when new ops are recorded into the graph."""
    return _STATE.get().grad_enabled


class _GradMode(contextlib.ContextDecorator):
    def __init__(self, enabled):
        self.enabled = enabled
        # A stack, not one slot: a decorated function may re-enter itself.
        self._tokens = []

    def __enter__(self):
        self._tokens.append(_STATE.set(_replaced(_STATE.get(), {"grad_enabled": self.enabled})))
        return self

    def __exit__(self, *exc):
        _STATE.reset(self._tokens.pop())
        return False

    def _recreate_cm(self):
        # Used as a decorator, each call gets its own instance: calls in other threads (or
        # tasks) must not share the stack of tokens.
        return type(self)(self.enabled)


def no_grad(fn=None):
    """Context manager (or decorator) inside which no op is recorded.

    Tensors computed inside have no producing node and do not require grad, so no graph is
    kept alive: use it for evaluation and for parameter updates. It applies to the current
    thread (context) only. As a decorator both `@no_grad()` and `@no_grad` work.
    """
    return _grad_mode(False, fn, "no_grad")


def enable_grad(fn=None):
    """Context manager (or decorator: `@enable_grad()` or `@enable_grad`) that turns
    recording back on inside a `no_grad` block."""
    return _grad_mode(True, fn, "enable_grad")


def _grad_mode(enabled, fn, who):
    if fn is None:
        return _GradMode(enabled)
    if not callable(fn):
        raise TypeError(f"{who}: takes no arguments as a context manager (`with {who}():`) and "
                        f"a function as a decorator, got {type(fn).__name__}")
    return _GradMode(enabled)(fn)


def recording_backward(forward_node, role):
    """Mark every node created inside as a backward node of `forward_node` with `role`."""
    return _RecordingBackward({"backward_of": forward_node, "backward_role": role,
                               "grad_enabled": True})


class _RecordingBackward(_Changed):
    """changed(backward_of=..., backward_role=..., grad_enabled=True), on the hot path of
    recorded backward passes and rewrites: the new state is filled field by field."""

    def new_state(self, state):
        fields = self.fields
        new = object.__new__(State)
        _SET_GRAD_ENABLED(new, True)
        _SET_BACKWARD_OF(new, fields["backward_of"])
        _SET_BACKWARD_ROLE(new, fields["backward_role"])
        _SET_SCOPE(new, state.scope)
        _SET_RUNNING(new, state.running)
        _SET_INTERPRETER(new, state.interpreter)
        return new


# By name, not by position: reordering State's fields must not swap them here. A field added
# to State and not set here stays unset, and reading it fails loudly (AttributeError).
_SETTER = dict(zip(_FIELDS, _SETTERS))
(_SET_GRAD_ENABLED, _SET_BACKWARD_OF, _SET_BACKWARD_ROLE, _SET_SCOPE, _SET_RUNNING,
 _SET_INTERPRETER) = (_SETTER[name] for name in ("grad_enabled", "backward_of",
                                                 "backward_role", "scope", "running",
                                                 "interpreter"))


TIME_STEP = "time step"      # the scope kinds a model may declare (diagrams read them)
LAYER = "layer"
SCOPE_KINDS = (TIME_STEP, LAYER)


class ScopeName(str):
    """A scope's name that also carries the scope's `kind` (TIME_STEP, LAYER or None) and,
    for a time step, its `index`. It is a str, so a node's scope stays a tuple of names that
    compare, join and print as before, and a copy of the tuple keeps the kinds."""

    def __new__(cls, name, kind=None, index=None):
        self = super().__new__(cls, name)
        self.kind, self.index = kind, index
        return self

    def __reduce__(self):
        return (ScopeName, (str(self), self.kind, self.index))


@contextlib.contextmanager
def scope(name, kind=None, index=None):
    """Group the ops created inside under `name`, e.g. one time step of an unrolled RNN.

    Scopes nest; a node records the path of names (`node.scope`) and their kinds
    (`node.scope_kinds`). kind: what the scope is, for diagrams that treat it specially:
    TIME_STEP (with its `index`, an int: see `time_step`) or LAYER; None for any other group.
    Diagrams draw each scope as a cluster that can be collapsed to one box. Backward nodes
    inherit the scope of the forward node they differentiate.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"scope: the name must be a non-empty string, got {name!r}")
    if kind is not None and kind not in SCOPE_KINDS:
        raise ValueError(f"scope: unknown kind {kind!r}; choose one of {SCOPE_KINDS} or None")
    if (kind == TIME_STEP) != (index is not None) or not isinstance(index, (int, type(None))):
        raise ValueError(f"scope: a time step needs an int index and only a time step has "
                         f"one; got kind={kind!r}, index={index!r}")
    with changed(scope=_STATE.get().scope + (ScopeName(name, kind, index),)):
        yield


def time_step(k, name=None):
    """The scope of time step k of a recurrent computation, named "t=k" unless `name` is
    given: `scope(name, kind=TIME_STEP, index=k)`."""
    return scope(f"t={k}" if name is None else name, kind=TIME_STEP, index=k)
