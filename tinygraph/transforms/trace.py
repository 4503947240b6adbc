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
import dis
import numbers

from ..backend import xp
from ..core.interpreter import Interpreter
from ..core.primitive import shaped

# A captured array up to this size is compared with a copy on every call (a few µs); a
# bigger one is refused: pass it as an input, or make it a Tensor (read at every call).
MAX_CAPTURED_BYTES = 1 << 16
_PLAIN = (numbers.Number, str, bytes, type(None), tuple, frozenset)


class Trace(Interpreter):
    """A compiled step's trace: the interpreter that evaluates on shapes only (every op makes
    an abstract tensor and a node, whatever grad mode says), and the record of what the
    traced function read and did, which the program's guards check on each call."""

    abstract = True

    def apply(self, prim, inputs, state):
        return shaped(prim, inputs, state)

    def refuse(self, what):
        if what == "backward":
            return RuntimeError("backward: called while a compiled step traces its function; "
                                "the step computes the parameters' gradients itself (use "
                                "tg.grad(..., create_graph=True) for a gradient the function "
                                "needs)")
        return RuntimeError(f"{what}: not possible while a compiled step traces its function")

    def no_value(self, what):
        return ValueError(f"compiled step: {what}, a value read out of a tensor that is being "
                          "traced (a trace computes shapes only: .data is None). The function "
                          "must use its inputs as Tensors")

    def carried(self, carry):
        self.carries.append(carry)

    def __init__(self, array_inputs):
        self.carries = []            # tinygraph.transforms.compile._Carry, in order
        self.flags = {}              # id(module) -> (module, its training flag at entry)
        self.modules = {}            # id(module) -> module, for every module called
        self.assigned = set()        # (id(module), attribute) set while the function ran
        self.captured = {}           # id(array) -> (array, its copy when traced)
        self.array_inputs = array_inputs   # id(input Tensor) -> its position (given as array)
        self.casts = {}              # (position, dtype) -> the cast input's Tensor
        self.numpy_made = {}         # see _numpy_made

    def read_flag(self, module, value):
        """A module's training flag was read, or is about to be set (value: before)."""
        self.flags.setdefault(id(module), (module, value))

    def called(self, module):
        self.modules.setdefault(id(module), module)

    def assigning(self, module, name):
        self.assigned.add((id(module), name))

    def capture(self, array, shown):
        """A numpy array the function made a constant of the graph (shown: how to name it)."""
        if id(array) in self.captured:
            return
        _refuse_big(array, f"reads {shown}")
        self.captured[id(array)] = (array, array.copy())

    def is_array_input(self, t):
        """True for an input given as a bare array (or a cast of one)."""
        return id(t) in self.array_inputs or any(c is t for c in self.casts.values())

    def is_array_value(self, t):
        """True for a value computed only from inputs given as arrays and from constants
        (what eager mode computes with numpy): no parameter, no other tensor in its graph."""
        if t._node is None:
            return self.is_array_input(t)
        return self._numpy_made(t)

    def _numpy_made(self, t):
        """Whether t's graph has no leaf but constants and inputs given as arrays. Remembered
        per tensor: ops ask this of ever longer graphs (a backward pass over T time steps
        asks about each step's values), so walking each graph afresh would be quadratic."""
        known = self.numpy_made          # id(tensor) -> (tensor, answer); the tensor is kept
        stack = [t]                      # so its id is not reused by another
        while stack:
            x = stack[-1]
            if id(x) in known:
                stack.pop()
            elif x._node is None:
                known[id(x)] = (x, bool(x.constant or self.is_array_input(x)))
                stack.pop()
            else:
                pending = [i for i in x._node.inputs if id(i) not in known]
                if pending:
                    stack.extend(pending)
                else:
                    known[id(x)] = (x, all(known[id(i)][1] for i in x._node.inputs))
                    stack.pop()
        return known[id(t)][1]

    def cast_input(self, t, dtype):
        """The input Tensor t, given as an array, cast to `dtype` (as eager mode casts a bare
        array meeting a tensor)."""
        position = self.array_inputs.get(id(t))
        if position is None:             # a cast of one: cast the input itself
            position = next(k for (k, _), c in self.casts.items() if c is t)
        key = (position, xp.dtype(dtype))
        if key not in self.casts:
            from ..core.tensor import Tensor
            self.casts[key] = Tensor(None, name=t.name, spec=(t.shape, dtype))
        return self.casts[key]

    def guards(self, fn):
        """The checks a replay of this trace needs, as a Guards."""
        # The modules called, the compiled method's owner, and all their sub-modules (a cell
        # a layer uses through its methods); not what the function itself assigned.
        skipped = {(id(c.holder), c.attribute) for c in self.carries} | self.assigned
        owner = getattr(fn, "__self__", None)
        roots = list(self.modules.values()) + ([owner] if hasattr(owner, "modules") else [])
        modules = {id(m): m for root in roots for m in root.modules()}.values()
        attributes = [(module, name, value) for module in modules
                      for name, value in vars(module).items()
                      if (id(module), name) not in skipped and name != "_training"
                      and _guardable(value)]
        return Guards(list(self.flags.values()), list(self.captured.values()),
                      _closure_values(fn), attributes)


class Guards:
    """What must still hold for a traced program to stand for the function (see module)."""

    def __init__(self, flags, captured, closure, attributes):
        self.flags, self.captured, self.closure = flags, captured, closure
        # (module, attribute, value): the plain values and the tensors (by identity) of the
        # modules the function called, e.g. Dropout.p or a Parameter that was replaced.
        # A big array attribute is guarded by identity only: if the function reads it as an
        # operand, the capture refuses it; if it does not, its values do not matter.
        self.attributes = [(m, name, v.copy() if isinstance(v, xp.ndarray)
                            and v.nbytes <= MAX_CAPTURED_BYTES else v)
                           for m, name, v in attributes]

    def broken(self):
        """None while every guard holds; else a phrase naming the first that does not."""
        for module, value in self.flags:
            if module._training != value:
                return (f"{type(module).__name__}.training changed to {module._training} "
                        f"(traced with {value})")
        for array, copy in self.captured:
            if not _same_array(array, copy):
                return f"a numpy array of shape {copy.shape} it reads changed"
        for module, name, value in self.attributes:
            now = getattr(module, name, None)
            if now is not value and not _same_plain(now, value):
                return f"{type(module).__name__}.{name} changed"
        for where, name, read, value in self.closure:
            now = read()
            if now is not value and not _same_plain(now, value):
                return f"the {where} {name!r} changed"
        return None


def _guardable(value):
    from ..core.tensor import Tensor
    return isinstance(value, _PLAIN + (xp.ndarray, Tensor)) or hasattr(value, "modules")


def _refuse_big(array, how):
    if array.nbytes > MAX_CAPTURED_BYTES:
        raise ValueError(
            f"compiled step: the function {how}, a numpy array of shape {array.shape} that is "
            "not one of its inputs. A replay would keep the values it had when traced, and it "
            "is too big to compare on every call: pass it as an input of the step, or make it "
            "a tinygraph tensor once, outside the function (tg.tensor), which a replay reads "
            "afresh at every call")


def _closure_values(fn):
    """(where, name, how to read it now, value) for the plain values (numbers, strings,
    arrays) that `fn`'s code reads from its closure cells and from its module's globals (its
    comprehensions and lambdas included; for a bound method, its function's). What it reads
    through `self` is covered by the modules' flags and attributes."""
    fn = getattr(fn, "__func__", fn)          # a bound method: its function's code and globals
    code = getattr(fn, "__code__", None)
    if code is None:
        return []
    found = []
    for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
        try:
            value = cell.cell_contents
        except ValueError:          # a cell not filled yet
            continue
        if isinstance(value, _PLAIN + (xp.ndarray,)):
            found.append(("closure variable", name, lambda c=cell: _cell(c),
                          _frozen(value, f"closure variable {name!r}")))
    scope = getattr(fn, "__globals__", {})
    for name in sorted(_global_names(code)):
        if name in scope and isinstance(scope[name], _PLAIN + (xp.ndarray,)):
            found.append(("global", name, lambda n=name: scope.get(n),
                          _frozen(scope[name], f"global {name!r}")))
    return found


def _global_names(code):
    """The names `code` (and the code nested in it) loads as globals."""
    names = {ins.argval for ins in dis.get_instructions(code)
             if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            names |= _global_names(const)
    return names


def _cell(cell):
    try:
        return cell.cell_contents
    except ValueError:
        return None


def _frozen(value, shown):
    """The value to compare later: a copy of an array (a big one is refused, as a captured
    array is), the value itself otherwise."""
    if isinstance(value, xp.ndarray):
        _refuse_big(value, f"reads the {shown}")
        return value.copy()
    return value


def _same_array(now, then):
    return now.shape == then.shape and now.dtype == then.dtype and \
        bool(xp.array_equal(now, then, equal_nan=now.dtype.kind in "fc"))


def _same_plain(now, then):
    if isinstance(then, xp.ndarray):
        return isinstance(now, xp.ndarray) and _same_array(now, then)
    if not isinstance(then, _PLAIN):    # a Tensor: the same object, checked by the caller
        return False
    try:
        return type(now) is type(then) and bool(now == then)
    except Exception:               # noqa: BLE001 (a value that cannot be compared: changed)
        return False
