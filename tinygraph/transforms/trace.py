"""What a compiled step's trace learns besides the graph, and the guards it leaves.

While a function is traced on abstract inputs (see tinygraph.transforms.compile) it reads
things that are not its inputs: the modules' `training` flags, numpy arrays it closes over
(made constants of the graph), Python values in its closure and globals, and the recurrent
state stateful layers carry. A replay does not run the function, so it would not see these
change. The trace records each of them with the value it read; the program is replayed only
while every guard still holds, and is traced again otherwise, so a change is never ignored.
An array too big to compare cheaply on every call is refused instead, with a way out.

Inputs given as arrays follow eager mode's rule for bare arrays: where one meets a floating
tensor of another dtype it takes that tensor's dtype (a float64 batch into a float32 model).
"""
import numbers

from ..backend import xp

# A captured array up to this size is compared with a copy on every call (a few µs); a
# bigger one is refused: pass it as an input, or make it a Tensor (read at every call).
MAX_CAPTURED_BYTES = 1 << 16
_PLAIN = (numbers.Number, str, bytes, type(None), tuple, frozenset)


class Trace:
    """The record of one trace (`current().trace` while it runs)."""

    def __init__(self, array_inputs):
        self.carries = []            # tinygraph.transforms.compile._Carry, in order
        self.flags = {}              # id(module) -> (module, the training flag read)
        self.captured = {}           # id(array) -> (array, its copy when traced)
        self.array_inputs = array_inputs   # id(input Tensor) -> its position (given as array)
        self.casts = {}              # (position, dtype) -> the cast input's Tensor

    def read_flag(self, module, value):
        self.flags.setdefault(id(module), (module, value))

    def capture(self, array, shown):
        """A numpy array the function made a constant of the graph (shown: how to name it)."""
        if id(array) in self.captured:
            return
        if array.nbytes > MAX_CAPTURED_BYTES:
            raise ValueError(
                f"compiled step: the function reads {shown}, a numpy array of shape "
                f"{array.shape} that is not one of its inputs. A replay would keep the values "
                "it had when traced, and it is too big to compare on every call: pass it as "
                "an input of the step, or make it a tinygraph tensor (tg.tensor), which is "
                "read afresh at every call")
        self.captured[id(array)] = (array, array.copy())

    def cast_input(self, t, dtype):
        """The input Tensor t, given as an array, cast to `dtype` (as eager mode casts a bare
        array meeting a tensor); None when t is not such an input."""
        position = self.array_inputs.get(id(t))
        if position is None:
            return None
        key = (position, xp.dtype(dtype))
        if key not in self.casts:
            from ..core.tensor import Tensor
            self.casts[key] = Tensor(None, name=t.name, spec=(t.shape, dtype))
        return self.casts[key]

    def guards(self, fn):
        """The checks a replay of this trace needs, as a Guards."""
        return Guards(list(self.flags.values()), list(self.captured.values()),
                      _closure_values(fn))


class Guards:
    """What must still hold for a traced program to stand for the function (see module)."""

    def __init__(self, flags, captured, closure):
        self.flags, self.captured, self.closure = flags, captured, closure

    def broken(self):
        """None while every guard holds; else a phrase naming the first that does not."""
        for module, value in self.flags:
            if module._training != value:
                return (f"{type(module).__name__}.training changed to {module._training} "
                        f"(traced with {value})")
        for array, copy in self.captured:
            if array.shape != copy.shape or array.dtype != copy.dtype or \
                    not xp.array_equal(array, copy, equal_nan=array.dtype.kind in "fc"):
                return f"a numpy array of shape {copy.shape} it reads changed"
        for where, name, read, value in self.closure:
            now = read()
            if now is not value and not _same_plain(now, value):
                return f"the {where} {name!r} changed"
        return None


def _closure_values(fn):
    """(where, name, how to read it now, value) for the plain values (numbers, strings,
    arrays) that `fn` itself reads from its closure cells and its module's globals.
    A bound method or a callable object reads through `self`: modules' flags and captured
    arrays cover what it reads there."""
    code = getattr(fn, "__code__", None)
    if code is None or hasattr(fn, "__self__"):
        return []
    found = []
    for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
        try:
            value = cell.cell_contents
        except ValueError:          # a cell not filled yet
            continue
        if isinstance(value, _PLAIN + (xp.ndarray,)):
            found.append(("closure variable", name, lambda c=cell: _cell(c), _frozen(value)))
    scope = getattr(fn, "__globals__", {})
    for name in code.co_names:
        if name in scope and isinstance(scope[name], _PLAIN + (xp.ndarray,)):
            found.append(("global", name, lambda n=name: scope.get(n), _frozen(scope[name])))
    return found


def _cell(cell):
    try:
        return cell.cell_contents
    except ValueError:
        return None


def _frozen(value):
    # An array is compared by value (numpy_array_equal), so keep a copy of a small one; a big
    # array read this way is compared by identity only (its values are captured elsewhere).
    if isinstance(value, xp.ndarray):
        return value.copy() if value.nbytes <= MAX_CAPTURED_BYTES else value
    return value


def _same_plain(now, then):
    if isinstance(then, xp.ndarray):
        return isinstance(now, xp.ndarray) and now.shape == then.shape and \
            now.dtype == then.dtype and bool(xp.array_equal(now, then))
    try:
        return type(now) is type(then) and bool(now == then)
    except Exception:               # noqa: BLE001 (a value that cannot be compared: changed)
        return False
