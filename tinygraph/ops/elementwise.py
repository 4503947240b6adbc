"""Elementwise primitives: add, sub, mul, div (broadcasting), neg, pow, exp, log, sigmoid,
tanh, relu and heaviside, with their checked public functions."""
import functools
import inspect

from ..backend import xp
from ..core.interpreter import interpreter
from ..core.primitive import Primitive, apply
from ..core.tensor import Tensor
from .labels import number_text
from .operands import broadcast_shape, pair, tensor_arg
from .parallel import for_blocks
from . import shape as _shape


def _named(t, name):
    """t, named (a vjp's intermediate tensors get names that say what they are)."""
    t.name = name
    return t


def unbroadcast(g, shape):
    """Gradient of an implicit broadcast: sum g back down to the operand's shape."""
    data = g._data                    # (the array's shape: no property call on the hot path)
    return g if (data.shape if data is not None else g.shape) == shape \
        else _shape.sum_to(g, shape)


# One cheap pass over memory gains from two threads only when it is big: a (20, 35, 650) mul
# split in two ran 2.5x slower, a (10000, 650) add 1.8x faster.
SPLIT_ELEMENTS = 1 << 21


# (op class, its attributes, input dtypes) -> result dtype: a pure function of the key.
_RESULT_DTYPES = {}


class Elementwise(Primitive):
    """Output shape: the inputs' broadcast shape; dtype: what numpy's forward gives. A
    primitive whose forward is one ufunc names it (`ufunc`) and gets forward_into."""

    ufunc = None

    @property
    def forward_into(self):
        return None if self.ufunc is None else self._ufunc_into

    def _ufunc_into(self, out, *arrays):
        """The ufunc into `out`, in row blocks over the workers when `out` is large (an
        operand broadcast along the rows is passed whole to each block)."""
        if out.size < SPLIT_ELEMENTS:
            return self.ufunc(*arrays, out=out)

        def rows(start, stop):
            self.ufunc(*[a[start:stop] if getattr(a, "ndim", 0) == out.ndim
                         and a.shape[0] == out.shape[0] else a for a in arrays],
                       out=out[start:stop])

        for_blocks(rows, out.shape[0])
        return out

    def rule(self, k):
        """The hand-written template where the class has one, else the rule derived from the
        vjp (tinygraph.ops.derive): an elementwise vjp reads the same at every shape, so it is
        derived once per class on 0-d inputs (the explorer adds sum_to where one broadcast)."""
        if self.rules is not None:
            return super().rule(k)
        return _derived_rule(type(self), k)

    def spec(self, *inputs):
        shape = inputs[0].shape
        for t in inputs[1:]:
            shape = xp.broadcast_shapes(shape, t.shape)
        return shape, self._result_dtype(tuple(t.dtype for t in inputs))

    def _result_dtype(self, dtypes):
        """What numpy's forward gives on these dtypes, found by running it on 0-d ones (20 us)
        once per op and dtypes: a trace asks for every node it records."""
        try:
            key = (type(self), tuple(sorted(vars(self).items())), dtypes)
            return _RESULT_DTYPES[key]
        except TypeError:             # an attribute that cannot be a key: no memo
            key = None
        except KeyError:
            pass
        with xp.errstate(all="ignore"):
            dtype = xp.asarray(self.forward(*[xp.ones((), d) for d in dtypes])).dtype
        if key is not None:
            _RESULT_DTYPES[key] = dtype
        return dtype


@functools.lru_cache(maxsize=None)
def _derived_rule(cls, k):
    """cls's rule for input k, derived from its vjp on 0-d inputs (cls takes no arguments:
    an elementwise op with attributes, like pow, writes its own `rule`)."""
    from .derive import derived_rule          # (derive records ops: imported when first used)
    arity = len(inspect.signature(cls.forward).parameters) - 1      # less self
    if k >= arity:
        return None
    return derived_rule(cls(), k, [xp.asarray(0.5)] * arity)


# --- binary -----------------------------------------------------------------------------------

class Add(Elementwise):
    name = "add"
    formula = "{0} + {1}"
    ufunc = xp.add
    neutral = (0, True)

    def forward(self, a, b):
        return a + b

    def scalar(self, a, b):
        return f"{a} + {b}"

    def vjp(self, node, g, needs):
        a, b = node.inputs
        return [unbroadcast(g, a.shape) if needs[0] else None,
                unbroadcast(g, b.shape) if needs[1] else None]


class Sub(Elementwise):
    name = "sub"
    formula = "{0} − {1}"
    ufunc = xp.subtract
    neutral = (0, False)

    def forward(self, a, b):
        return a - b

    def scalar(self, a, b):
        return f"{a} - {b}"

    def vjp(self, node, g, needs):
        a, b = node.inputs
        return [unbroadcast(g, a.shape) if needs[0] else None,
                unbroadcast(neg(g), b.shape) if needs[1] else None]


class Mul(Elementwise):
    name = "mul"
    formula = "{0} ⊙ {1}"
    ufunc = xp.multiply
    # x * 0 is not rewritten to 0: it is NaN where x is infinite.
    neutral = (1, True)

    def forward(self, a, b):
        return a * b

    def scalar(self, a, b):
        return f"{a} * {b}"

    def vjp(self, node, g, needs):
        a, b = node.inputs
        return [unbroadcast(g * b, a.shape) if needs[0] else None,
                unbroadcast(g * a, b.shape) if needs[1] else None]


class Div(Elementwise):
    name = "div"
    formula = "{0} / {1}"
    neutral = (1, False)

    def forward(self, a, b):
        return a / b

    def scalar(self, a, b):
        return f"{a} / {b}"

    def vjp(self, node, g, needs):
        a, b = node.inputs
        # d(a/b)/db = -a/b**2 = -(a/b)/b: reuse the saved output.
        return [unbroadcast(g / b, a.shape) if needs[0] else None,
                unbroadcast(neg(g * node.output) / b, b.shape) if needs[1] else None]


def _binary(prim_class, a, b):
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        x, y = a._data, b._data
        if x is not None and y is not None and x.dtype == y.dtype and x.shape == y.shape:
            return apply(prim_class(), a, b)     # (the hot path: nothing to coerce or check)
    a, b = pair(*promoted(a, b, prim_class.name), prim_class.name)
    sa, sb = a.shape, b.shape
    if sa != sb and sa and sb:           # (a 0-d operand broadcasts to anything)
        broadcast_shape(a, b, prim_class.name)
    return apply(prim_class(), a, b)


def promoted(a, b, op_name):
    """The operands of an arithmetic op or a comparison, promoted where their kinds differ,
    as PyTorch and numpy do:
    - a boolean or integer tensor meeting a floating one takes its dtype (recorded casts:
      `w * (x > 0)`, `loss / mask.sum()`);
    - two boolean or integer tensors meet in numpy's common dtype (`argmax == labels`);
    - a boolean or integer tensor meeting a constant: a Python int takes the tensor's dtype
      where it fits, a Python float or an array is numpy's (`ids * 0.5` is float64);
    - in a compiled step's trace, two values eager mode would compute with numpy (both made
      only from inputs given as arrays) meet in numpy's dtype, so the modes agree.
    A floating tensor meeting a constant is left to `pair` (the constant takes its dtype), and
    float32 meeting float64 stays refused there: a mix to fix, not to hide."""
    if isinstance(a, Tensor) is not isinstance(b, Tensor):
        a, b = _constant_for_whole_numbers(a, b, op_name)
    if not (isinstance(a, Tensor) and isinstance(b, Tensor)):
        return a, b
    da, db = a.dtype, b.dtype
    if da == db or da.kind == db.kind == "f":
        return a, b
    trace = interpreter()
    if trace.abstract and trace.is_array_value(a) and trace.is_array_value(b):
        common = xp.result_type(da, db)         # what numpy gives eager mode
    else:
        common = db if db.kind == "f" else da if da.kind == "f" else xp.result_type(da, db)
    return (a if da == common else cast(a, common)), (b if db == common else cast(b, common))


def _constant_for_whole_numbers(a, b, op_name):
    """(a, b) with a constant beside a boolean or integer tensor made a Tensor, both in
    numpy's result dtype (a Python number is weak there: `ids * 2` stays int32, `ids * 0.5` is
    float64), so eager mode and a trace, where eager mode would have computed with numpy,
    agree. Beside a floating tensor: unchanged (`pair` gives the constant its dtype)."""
    tensor_first = isinstance(a, Tensor)
    t, constant = (a, b) if tensor_first else (b, a)
    if t.dtype.kind == "f":
        return a, b
    held = tensor_arg(constant, op_name)        # (checks it; guards an array in a trace)
    common = xp.result_type(t.dtype, constant if isinstance(constant, (bool, int, float))
                            else held.dtype)
    if held.dtype != common:
        held = Tensor(xp.array(constant, dtype=common), constant=True)
    if t.dtype != common:
        t = cast(t, common)
    return (t, held) if tensor_first else (held, t)


def add(a, b):
    """a + b with numpy broadcasting."""
    return _binary(Add, a, b)


def sub(a, b):
    """a - b with numpy broadcasting."""
    return _binary(Sub, a, b)


def mul(a, b):
    """Elementwise (Hadamard) product a * b with numpy broadcasting."""
    return _binary(Mul, a, b)


def div(a, b):
    """Elementwise a / b with numpy broadcasting."""
    return _binary(Div, a, b)


# --- unary ------------------------------------------------------------------------------------

class Neg(Elementwise):
    name = "neg"
    formula = "−{0}"

    def forward(self, a):
        return -a

    def scalar(self, a):
        return f"-{a}"

    def vjp(self, node, g, needs):
        return [neg(g)]

    def identity(self, inputs, out):
        inner = inputs[0]._node
        return inner.inputs[0] if inner is not None and isinstance(inner.prim, Neg) else None


class Pow(Elementwise):
    name = "pow"
    formula = "{0}^p"        # written with its exponent: see write

    def __init__(self, exponent):
        self.exponent = exponent

    def forward(self, a):
        return a ** self.exponent

    def scalar(self, a):
        # numpy computes these exponents by exact operations (square, sqrt, reciprocal);
        # other ones by its SIMD power, which a kernel's libm pow rounds otherwise: not fused.
        p = self.exponent
        special = {1: a, 2: f"{a} * {a}", 0.5: f"sqrt({a})", -1: f"T(1) / {a}"}
        return special.get(p)

    def vjp(self, node, g, needs):
        (x,) = node.inputs
        p = self.exponent
        if p == 0:
            return [None]        # constant: not 0 * x**-1, which is NaN at x = 0
        if p == 1:
            return [g]
        return [g * p * pow(x, p - 1)]

    def label(self, inputs, inline):
        return f"pow ** {number_text(self.exponent)}"

    def write(self, names):
        p = number_text(self.exponent)
        return f"{names[0]}²" if p == "2" else f"{names[0]}^{p}"

    def rule(self, k):
        p = self.exponent
        return f"{{gy}} ⊙ {number_text(p)}·{{x0}}^{number_text(p - 1)}"

    def identity(self, inputs, out):
        return inputs[0] if self.exponent == 1 else None


class Exp(Elementwise):
    name = "exp"
    formula = "exp({0})"
    ufunc = xp.exp

    def forward(self, a):
        return xp.exp(a)

    def scalar(self, a):
        return f"exp({a})"

    def vjp(self, node, g, needs):
        return [g * node.output]


class Log(Elementwise):
    name = "log"
    formula = "log({0})"

    def forward(self, a):
        return xp.log(a)

    def scalar(self, a):
        return f"log({a})"

    def vjp(self, node, g, needs):
        return [g / node.inputs[0]]


class Sigmoid(Elementwise):
    name = "sigmoid"
    formula = "σ({0})"

    # σ(a) = σ(|a|) for a >= 0 and e·σ(|a|) for a < 0, with e = exp(-|a|) and σ(|a|) =
    # 1/(1 + e): exp of a non-positive number only (no overflow), no cancellation for very
    # negative a (σ(-20) is 2e-9, not 0), and in place over one buffer and one scratch
    # (12 us on a gate's (20, 650) against 18 with temporaries).
    def forward(self, a):
        return self._into(xp.empty(xp.shape(a), xp.result_type(a, 0.5)), a)

    @property
    def forward_into(self):
        return self._into

    @staticmethod
    def _into(out, a):
        xp.abs(a, out=out)
        xp.negative(out, out=out)
        xp.exp(out, out=out)                       # e = exp(-|a|)
        s = xp.add(out, 1, out=xp.empty_like(out))
        xp.reciprocal(s, out=s)                    # σ(|a|)
        xp.maximum(out, xp.greater_equal(a, 0), out=out)     # 1 where a >= 0, else e
        out *= s
        return out

    def scalar(self, a):
        # _into's operations in its order: (1 or e) * (1 / (1 + e)), e = exp(-|a|).
        e = f"exp(-abs({a}))"
        return f"(T(1) if {a} >= T(0) else {e}) * (T(1) / (T(1) + {e}))"

    def vjp(self, node, g, needs):
        y = node.output
        return [g * y * _named(1 - y, f"1 − {y.name or 'σ'}")]


class Tanh(Elementwise):
    name = "tanh"
    formula = "tanh({0})"
    ufunc = xp.tanh

    def forward(self, a):
        return xp.tanh(a)

    def scalar(self, a):
        return f"tanh({a})"

    def vjp(self, node, g, needs):
        y = node.output
        square = _named(y * y, f"{y.name or 'tanh'}²")        # diagrams say what it is
        return [g * _named(1 - square, f"1 − {square.name}")]


class Relu(Elementwise):
    name = "relu"
    formula = "relu({0})"

    def forward(self, a):
        return xp.maximum(a, 0)

    def scalar(self, a):
        # as numpy's maximum: NaN propagates, -0.0 gives 0.0
        return f"({a} if {a} > T(0) or {a} != {a} else T(0))"

    def vjp(self, node, g, needs):
        return [g * heaviside(node.inputs[0])]


class Heaviside(Elementwise):
    """The Heaviside step (1 where x > 0): relu's derivative. Its own derivative is zero."""

    name = "heaviside"
    formula = "heaviside({0})"

    def forward(self, a):
        return (a > 0).astype(a.dtype)

    def scalar(self, a):
        return f"(T(1) if {a} > T(0) else T(0))"

    def vjp(self, node, g, needs):
        return [None]


def neg(x):
    """-x."""
    return apply(Neg(), tensor_arg(x, "neg"))


def pow(x, exponent):
    """x ** exponent for a constant (Python or numpy number) exponent."""
    x = tensor_arg(x, "pow")
    if isinstance(exponent, (xp.ndarray, xp.generic)) and exponent.ndim == 0:
        # A Python scalar keeps x's dtype under numpy 2's promotion rules; np.float64 would not.
        exponent = exponent.item()
    if isinstance(exponent, bool) or not isinstance(exponent, (int, float)):
        raise TypeError(f"pow: the exponent must be a constant real number, got "
                        f"{type(exponent).__name__}; for a tensor exponent write "
                        "exp(y * log(x))")
    return apply(Pow(exponent), x)


def exp(x):
    """Elementwise e ** x."""
    return apply(Exp(), tensor_arg(x, "exp"))


def log(x):
    """Elementwise natural logarithm."""
    return apply(Log(), tensor_arg(x, "log"))


def sigmoid(x):
    """Elementwise logistic function 1 / (1 + exp(-x)), stable for large |x|."""
    return apply(Sigmoid(), tensor_arg(x, "sigmoid"))


def tanh(x):
    """Elementwise hyperbolic tangent."""
    return apply(Tanh(), tensor_arg(x, "tanh"))


def relu(x):
    """Elementwise max(x, 0)."""
    return apply(Relu(), tensor_arg(x, "relu"))


def heaviside(x):
    """Elementwise 1 where x > 0 else 0, the Heaviside step (no gradient flows through it)."""
    return apply(Heaviside(), tensor_arg(x, "heaviside"))


# --- abs, sqrt ------------------------------------------------------------------------------

class Abs(Elementwise):
    """|x|. Its gradient at 0 is 0 (sign(0) = 0), as PyTorch's torch.abs gives."""

    name = "abs"
    formula = "|{0}|"

    def forward(self, a):
        return xp.abs(a)

    def scalar(self, a):
        return f"abs({a})"

    def vjp(self, node, g, needs):
        x = node.inputs[0]
        return [g * _named(heaviside(x) - heaviside(neg(x)), "sign")]


class Sqrt(Elementwise):
    """√x. Its gradient at 0 is infinite, as PyTorch's torch.sqrt gives."""

    name = "sqrt"
    formula = "√{0}"

    def forward(self, a):
        return xp.sqrt(a)

    def scalar(self, a):
        return f"sqrt({a})"

    def vjp(self, node, g, needs):
        return [g / (node.output * 2)]       # d√x/dx = 1/(2√x): the saved output


def abs(x):
    """Elementwise |x|; the gradient at x = 0 is 0 (as in PyTorch)."""
    return apply(Abs(), tensor_arg(x, "abs"))


def sqrt(x):
    """Elementwise square root; the gradient at x = 0 is infinite (as in PyTorch)."""
    return apply(Sqrt(), tensor_arg(x, "sqrt"))


# --- cast -----------------------------------------------------------------------------------

class Cast(Primitive):
    """x converted to another dtype, elementwise. Between floating dtypes the gradient is
    cast back to the input's dtype; from a boolean or integer input (a mask, labels), or to
    a non-floating dtype, no gradient flows (the map is piecewise constant)."""

    name = "cast"

    def __init__(self, dtype):
        self.dtype = xp.dtype(dtype)

    def forward(self, a):
        return a.astype(self.dtype)

    def spec(self, a):
        return a.shape, self.dtype

    def vjp(self, node, g, needs):
        source = node.inputs[0].dtype
        if source.kind != "f" or self.dtype.kind != "f":
            return [None]
        return [cast(g, source)]

    def write(self, names):
        return f"{names[0]} as {self.dtype.name}"

    def label(self, inputs, inline):
        return f"as {self.dtype.name}"

    def rule(self, k):
        return "{gy}"      # (cast back to the input's dtype: the notation has no dtypes)

    def identity(self, inputs, out):
        return inputs[0] if inputs[0].dtype == self.dtype else None


def cast(x, dtype):
    """x as `dtype` (a numpy dtype or its name: "float32", np.float64, bool, ...), recorded so
    a compiled step casts too. `x.astype(dtype)`, `x.float()` (float32) and `x.double()`
    (float64) are its method forms, as in numpy and PyTorch; `(pred == y).float().mean()` is an
    accuracy. A floating cast passes the gradient back in the input's dtype."""
    x = tensor_arg(x, "cast")
    try:
        dtype = xp.dtype(dtype)
    except TypeError:
        raise TypeError(f"cast: {dtype!r} is not a dtype (e.g. 'float32', np.float64, bool)") \
            from None
    if dtype.kind not in "biuf":
        raise TypeError(f"cast: tinygraph computes on bool, integer and floating arrays, not "
                        f"{dtype}")
    out = apply(Cast(dtype), x)
    if dtype.kind != "f":
        out.requires_grad = False       # no gradient into labels or masks
    return out
