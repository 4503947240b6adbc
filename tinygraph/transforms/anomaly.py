"""detect_anomaly(): the first op whose result holds a NaN or an Inf raises, naming itself.

Inside the context every op, in the forward pass and in the generated backward pass (fast or
recorded), checks its result; the error names the op, the shapes and names of its inputs,
whether an input was already non-finite, and, for a backward op, the forward op whose vjp it
belongs to. The check costs one pass over every result, so it is off by default, as in
PyTorch. Compiled programs check each replayed step the same way.

It also catches what the tensors' version counters cannot see: a raw numpy write into a saved
value's array (`w.data[...] = 0`, `np.copyto(w.data, ...)`) between the forward and the
backward pass. Each node made inside keeps a digest of its saved values, and the backward
pass compares them before running the node's vjp.
"""
import hashlib

from ..backend import xp
from ..core.interpreter import Interpreter
from ..core.primitive import evaluated, run_forward
from ..core.state import changed, current
from ..core.tensor import describe


def detect_anomaly(enabled=True):
    """Context manager: raise FloatingPointError at the first op producing NaN or Inf.

    It installs the `Checked` interpreter: ops run as they do without it, and every result
    (of an op, of a gradient sum, of a compiled replay's step) is passed to `check_result`.
    Context-local, like grad mode. detect_anomaly(False) turns it off inside a block.
    """
    return changed(interpreter=CHECKED if enabled else None)


class Checked(Interpreter):
    """detect_anomaly()'s interpreter: every op computes and records as it does by default,
    and its result is checked; each node keeps digests of its saved values, verified before
    its vjp runs."""

    def check_result(self, *args, **kwargs):
        check_result(*args, **kwargs)

    def apply(self, prim, inputs, state):
        arrays = [t._data for t in inputs]
        return evaluated(prim, inputs, arrays, self.run(prim, arrays, inputs), state)

    def run(self, prim, arrays, inputs, where=None):
        # numpy's warning would only repeat, less precisely, the error the check raises.
        with xp.errstate(all="ignore"):
            data = run_forward(prim, arrays, inputs)
        check_result(prim.name, data, arrays, [t.name for t in inputs], where=where)
        return data

    def saved(self, inputs, output):
        return SavedDigests([_digest(t._data) for t in inputs] + [_digest(output._data)])


class SavedDigests:
    """Digests of a node's saved values when it was made."""

    __slots__ = ("digests",)

    def __init__(self, digests):
        self.digests = digests

    def verify(self, node, output):
        tensors = list(node.inputs) + [output]
        for t, saved in zip(tensors, self.digests):
            if saved is not None and _digest(t._data) != saved:
                raise RuntimeError(
                    f"detect_anomaly: {describe(t)}, saved by {node.op!r} for its gradient, "
                    "was changed in place after it was saved (a write into its array, which "
                    "its version counter cannot see); the gradient would mix old and new values")


def _digest(array):
    if array is None:            # abstract (a trace): nothing saved yet
        return None
    data = xp.ascontiguousarray(array)
    return (data.shape, data.dtype.str, hashlib.blake2b(data.view(xp.uint8).reshape(-1),
                                                      digest_size=16).digest())


CHECKED = Checked()


def check_result(op_name, data, input_arrays, input_names=None, where=None):
    """Raise FloatingPointError when `data` (an op's result) is floating and not all finite.

    where: the phrase saying where the op ran (default: where_running())."""
    if data.dtype.kind not in "fc" or bool(xp.isfinite(data).all()):
        return
    kinds = [k for k, bad in (("NaN", xp.isnan(data).any()), ("Inf", xp.isinf(data).any()))
             if bad]
    names = input_names or [None] * len(input_arrays)
    described = ", ".join(f"{name or 'input'} {a.shape}" + (
        " (already non-finite)" if a.dtype.kind in "fc" and not xp.isfinite(a).all() else "")
        for name, a in zip(names, input_arrays))
    where = where if where is not None else where_running()
    raise FloatingPointError(
        # Two lines: which op, and what it was given (each short enough to read at once).
        f"detect_anomaly: op {op_name!r} {where} produced {' and '.join(kinds)}\n"
        f"in its result of shape {data.shape}" + (f" from {described}" if described else ""))


def where_running():
    """"in the forward pass", or "in the backward pass of 'op'" while op's vjp runs."""
    state = current()
    running = state.running.vjp_of if state.running is not None else None
    return where(running if running is not None else state.backward_of, state.backward_role)


def where(forward_node, role):
    """Where an op runs, as the errors say it: in the vjp of `forward_node`, in a gradient sum
    (role "accumulate"), or in the forward pass."""
    if forward_node is not None:
        return f"in the backward pass of {forward_node.op!r}"
    if role == "accumulate":
        return "in the backward pass, summing the gradients of a tensor used more than once"
    return "in the forward pass"
