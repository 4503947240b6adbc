"""Global recording state: whether ops are recorded, and which vjp is being recorded.

Kept in one small module so the tensor, op and autodiff modules share it without cycles.
"""
import contextlib


class _State:
    grad_enabled = True
    # While a vjp runs with create_graph=True, the forward node it differentiates; nodes made
    # then are marked as backward nodes pointing at it.
    backward_of = None
    # "vjp" for nodes a vjp makes, "accumulate" for the fan-in sums the engine adds.
    backward_role = None
    # The user's scope names, outermost first (see `scope`).
    scope = ()
    # True while the fast backward pass runs: some gradients may be deferred (see deferred.py).
    defer_gradients = False
    # Inside detect_anomaly(): every op checks its result is finite (see anomaly.py).
    detect_anomaly = False
    # While a vjp runs (recorded or not), the forward node it differentiates: named by the
    # anomaly check when a backward op goes non-finite.
    vjp_of = None


state = _State()


def is_grad_enabled():
    """True when new ops are recorded into the graph."""
    return state.grad_enabled


class _GradMode(contextlib.ContextDecorator):
    def __init__(self, enabled):
        self.enabled = enabled
        # A stack, not one slot: a decorated function may re-enter itself.
        self._previous = []

    def __enter__(self):
        self._previous.append(state.grad_enabled)
        state.grad_enabled = self.enabled
        return self

    def __exit__(self, *exc):
        state.grad_enabled = self._previous.pop()
        return False


def no_grad():
    """Context manager (or decorator) inside which no op is recorded.

    Tensors computed inside have no producing node and do not require grad, so no graph is
    kept alive: use it for evaluation and for parameter updates.
    """
    return _GradMode(False)


def enable_grad():
    """Context manager (or decorator) that turns recording back on inside a `no_grad` block."""
    return _GradMode(True)


@contextlib.contextmanager
def recording_backward(forward_node, role):
    """Mark every node created inside as a backward node of `forward_node` (see autodiff)."""
    saved = (state.backward_of, state.backward_role, state.grad_enabled)
    state.backward_of, state.backward_role, state.grad_enabled = forward_node, role, True
    try:
        yield
    finally:
        state.backward_of, state.backward_role, state.grad_enabled = saved



@contextlib.contextmanager
def scope(name):
    """Group the ops created inside under `name`, e.g. one time step of an unrolled RNN.

    Scopes nest; a node records the path of names (`node.scope`). Diagrams draw each scope as
    a cluster that can be collapsed to one box. Backward nodes inherit the scope of the
    forward node they differentiate.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"scope: the name must be a non-empty string, got {name!r}")
    saved = state.scope
    state.scope = saved + (name,)
    try:
        yield
    finally:
        state.scope = saved
