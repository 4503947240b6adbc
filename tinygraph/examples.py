"""Small built-in graphs: the demo's default and the examples the command line draws by name.

Each example function returns the output tensors of its graph; `EXAMPLES` maps names to them.
An example's parameters are its keyword arguments with their defaults (`steps=3`,
`forget_bias=0.0`, ...): `EXAMPLES["lstm_unrolled"](steps=20, forget_bias=1.0)` in Python,
`python -m tinygraph render lstm_unrolled --steps 20 --forget-bias 1` on the command line, and
`parameters(name)` lists them. Bad values raise `ExampleParameterError` (a ValueError) naming
the parameter.
"""
import inspect
import math
import numbers

from .backend import xp
from .core.state import scope, time_step
from .core.tensor import CELL_STATE, STATE, Parameter, tensor
from . import ops


class ExampleParameterError(ValueError):
    """A bad value for an example's parameter: `parameter` must be `requirement`, got `value`."""

    def __init__(self, parameter, requirement, value):
        self.parameter, self.requirement, self.value = parameter, requirement, value
        super().__init__(f"{parameter} must be {requirement}, got {value!r}")


def _whole(minimum):
    def ok(value):
        return (isinstance(value, numbers.Integral) and not isinstance(value, bool)
                and value >= minimum)
    return ok, f"an integer >= {minimum}"


def _finite(value):
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


# What each parameter of the examples must be: (test, requirement in words).
_RULES = {
    "steps": _whole(1), "batch": _whole(1), "input_size": _whole(1), "hidden_size": _whole(1),
    "seed": _whole(0), "forget_bias": (_finite, "a finite number"),
}


def _check(**values):
    """Raise ExampleParameterError for the first value its rule in _RULES rejects."""
    for name, value in values.items():
        ok, requirement = _RULES[name]
        if not ok(value):
            raise ExampleParameterError(name, requirement, value)


def _rng_leaf(rng, dtype):
    def leaf(name, *shape, parameter=False):
        data = rng.standard_normal(shape).astype(dtype)
        if parameter:
            return Parameter(data, name=name)
        return tensor(data, name=name, requires_grad=True)
    return leaf


def lstm_cell(x, h_prev, c_prev, Wx, Wh, b):
    """The LSTM cell on tensors, spelled out from primitives: one fused affine sliced in gate
    order f, g, i, o.

    `A = x @ Wx + h_prev @ Wh + b`; `c = f * c_prev + g * i`; `h = o * tanh(c)`. Returns
    (h, c). The tensors are named as in the book (A_f, f, c, h, ...); h and c carry the roles
    STATE and CELL_STATE that diagrams read (the time strip, the cell-state highway).
    """
    A = x @ Wx + h_prev @ Wh + b
    H = c_prev.shape[-1]
    A_f, A_g, A_i, A_o = A[:, :H], A[:, H:2 * H], A[:, 2 * H:3 * H], A[:, 3 * H:]
    f, g, i, o = ops.sigmoid(A_f), ops.tanh(A_g), ops.sigmoid(A_i), ops.sigmoid(A_o)
    c = f * c_prev + g * i
    tanh_c = ops.tanh(c)
    h = o * tanh_c
    named = dict(A=A, A_f=A_f, A_g=A_g, A_i=A_i, A_o=A_o, f=f, g=g, i=i, o=o, c=c,
                 tanh_c=tanh_c, h=h)
    for name, t in named.items():
        t.name = name
    h.role, c.role = STATE, CELL_STATE
    return h, c


def attention(queries, states):
    """Dot-product attention over time, spelled out from primitives: each query (N, Tq, H)
    scores every state (N, Ts, H), a softmax over the states weighs them, and the context is
    the weighted sum of the states. Returns (context, weights)."""
    with scope("attention"):
        scores = ops.matmul(queries, ops.transpose(states, (0, 2, 1)))
        scores.name = "scores"
        weights = ops.softmax(scores, axis=2)
        weights.name = "weights"
        context = ops.matmul(weights, states)
        context.name = "context"
        return context, weights


def _state_leaf(leaf, name, role, *shape):
    """A leaf that stands for a recurrent state coming in (h_prev, c_prev), with its role."""
    state = leaf(name, *shape)
    state.role = role
    return state


def _gate_bias(leaf, H, forget_bias):
    """The LSTM bias b (gate order f, g, i, o): random, its f slice b[:H] shifted by
    forget_bias, so the forget gates' pre-activations are too."""
    b = leaf("b", 4 * H, parameter=True)
    if forget_bias:
        b.data[:H] += forget_bias
    return b


def lstm_cell_step(batch=2, input_size=3, hidden_size=4, seed=0, dtype=xp.float64, *,
                   forget_bias=0.0):
    """One LSTM cell step on random data. Returns (inputs, (h, c)), where inputs maps the
    names x, h_prev, c_prev, Wx, Wh, b to leaves that require grad (Wx, Wh, b Parameters).
    `forget_bias` is added to the f slice `b[:hidden_size]` of the random bias."""
    _check(batch=batch, input_size=input_size, hidden_size=hidden_size, seed=seed,
           forget_bias=forget_bias)
    leaf = _rng_leaf(xp.random.default_rng(seed), dtype)
    H = hidden_size
    inputs = {
        "x": leaf("x", batch, input_size),
        "h_prev": _state_leaf(leaf, "h_prev", STATE, batch, H),
        "c_prev": _state_leaf(leaf, "c_prev", CELL_STATE, batch, H),
        "Wx": leaf("Wx", input_size, 4 * H, parameter=True),
        "Wh": leaf("Wh", H, 4 * H, parameter=True),
        "b": _gate_bias(leaf, H, forget_bias),
    }
    return inputs, lstm_cell(**inputs)


def rnn_cell_step(batch=2, input_size=3, hidden_size=4, seed=0, dtype=xp.float64):
    """One plain (tanh) RNN step: `h = tanh(x @ Wx + h_prev @ Wh + b)`. Returns (inputs, h)."""
    _check(batch=batch, input_size=input_size, hidden_size=hidden_size, seed=seed)
    leaf = _rng_leaf(xp.random.default_rng(seed), dtype)
    inputs = {
        "x": leaf("x", batch, input_size),
        "h_prev": leaf("h_prev", batch, hidden_size),
        "Wx": leaf("Wx", input_size, hidden_size, parameter=True),
        "Wh": leaf("Wh", hidden_size, hidden_size, parameter=True),
        "b": leaf("b", hidden_size, parameter=True),
    }
    a = inputs["x"] @ inputs["Wx"] + inputs["h_prev"] @ inputs["Wh"] + inputs["b"]
    a.name = "a"
    h = ops.tanh(a)
    h.name, h.role = "h", STATE
    return inputs, h


def gru_cell(x, h_prev, Wx, Wh, b, bh):
    """The GRU cell on tensors, in PyTorch's equations and gate order r, z, n (fused weights
    Wx (D, 3H), Wh (H, 3H), input bias b and hidden bias bh, each (3H,)):

    `r = σ(xw_r + hw_r)`, `z = σ(xw_z + hw_z)`, `n = tanh(xw_n + r ⊙ hw_n)`,
    `h = (1 − z) ⊙ n + z ⊙ h_prev`, with `xw = x @ Wx + b` and `hw = h_prev @ Wh + bh`.
    Returns h.
    """
    H = h_prev.shape[-1]
    xw, hw = x @ Wx + b, h_prev @ Wh + bh
    named = {"xw": xw, "hw": hw}
    for k, gate in enumerate("rzn"):     # each gate's slices of xw and hw
        named[f"xw_{gate}"] = xw[:, k * H:(k + 1) * H]
        named[f"hw_{gate}"] = hw[:, k * H:(k + 1) * H]
    named["a_r"] = named["xw_r"] + named["hw_r"]
    named["a_z"] = named["xw_z"] + named["hw_z"]
    r, z = named["r"], named["z"] = ops.sigmoid(named["a_r"]), ops.sigmoid(named["a_z"])
    named["a_n"] = named["xw_n"] + r * named["hw_n"]
    n = named["n"] = ops.tanh(named["a_n"])
    keep = named["1 − z"] = 1.0 - z
    h = named["h"] = keep * n + z * h_prev
    # Named like the LSTM's tensors, so that its diagrams (and a diff with the LSTM) read
    # like the equations.
    for name, t in named.items():
        t.name = name
    h.role = STATE
    return h


def gru_cell_step(batch=2, input_size=3, hidden_size=4, seed=0, dtype=xp.float64):
    """One GRU cell step on random data (see `gru_cell`). Returns (inputs, h), where inputs
    maps the names x, h_prev, Wx, Wh, b, bh to leaves that require grad (Wx, Wh, b, bh
    Parameters): the LSTM cell step's names where the two cells have the same leaf."""
    _check(batch=batch, input_size=input_size, hidden_size=hidden_size, seed=seed)
    leaf = _rng_leaf(xp.random.default_rng(seed), dtype)
    H = hidden_size
    inputs = {
        "x": leaf("x", batch, input_size),
        "h_prev": leaf("h_prev", batch, H),
        "Wx": leaf("Wx", input_size, 3 * H, parameter=True),
        "Wh": leaf("Wh", H, 3 * H, parameter=True),
        "b": leaf("b", 3 * H, parameter=True),
        "bh": leaf("bh", 3 * H, parameter=True),
    }
    return inputs, gru_cell(**inputs)


def lstm_unrolled(steps=3, batch=2, input_size=3, hidden_size=4, seed=0, dtype=xp.float64, *,
                  forget_bias=0.0):
    """An LSTM cell run over `steps` time steps, one `time_step(k)` scope ("t=k") per step,
    shared weights.
    `forget_bias` is added to the f slice `b[:hidden_size]` of the random bias (1.0 is the
    usual initialisation that lets the cell state, and its gradient, pass many steps).

    Returns (inputs, loss) with loss = sum of the last hidden state.
    """
    _check(steps=steps, batch=batch, input_size=input_size, hidden_size=hidden_size, seed=seed,
           forget_bias=forget_bias)
    leaf = _rng_leaf(xp.random.default_rng(seed), dtype)
    H = hidden_size
    Wx = leaf("Wx", input_size, 4 * H, parameter=True)
    Wh = leaf("Wh", H, 4 * H, parameter=True)
    b = _gate_bias(leaf, H, forget_bias)
    xs = [leaf(f"x{t}", batch, input_size) for t in range(1, steps + 1)]
    h = tensor(xp.zeros((batch, H), dtype=dtype), name="h0")
    c = tensor(xp.zeros((batch, H), dtype=dtype), name="c0")
    h.role, c.role = STATE, CELL_STATE
    for t, x in enumerate(xs, start=1):
        with time_step(t):
            h, c = lstm_cell(x, h, c, Wx, Wh, b)
            h.name, c.name = f"h{t}", f"c{t}"
    loss = h.sum()
    loss.name = "L"
    return {"Wx": Wx, "Wh": Wh, "b": b, **{x.name: x for x in xs}}, loss


def attention_step(steps=3, batch=2, input_size=3, hidden_size=4, seed=0, dtype=xp.float64, *,
                   forget_bias=0.0):
    """One decoder step with attention over `steps` encoder states (the book's chapter 8):
    an LSTM cell step gives the decoder state h; h scores every encoder state, a softmax over
    time weighs them, and out = tanh([context, h] @ Wc). The encoder states are separate
    leaves, so the backward graph shows the gradient reaching each one.

    `forget_bias` is added to the f slice of the decoder cell's bias, as in lstm_unrolled.

    Returns (inputs, loss) with loss = sum(out).
    """
    _check(steps=steps, batch=batch, input_size=input_size, hidden_size=hidden_size, seed=seed,
           forget_bias=forget_bias)
    leaf = _rng_leaf(xp.random.default_rng(seed), dtype)
    H = hidden_size
    encoder = [leaf(f"hs{t}", batch, H) for t in range(1, steps + 1)]
    inputs = {
        "x": leaf("x", batch, input_size),
        "h_prev": _state_leaf(leaf, "h_prev", STATE, batch, H),
        "c_prev": _state_leaf(leaf, "c_prev", CELL_STATE, batch, H),
        "Wx": leaf("Wx", input_size, 4 * H, parameter=True),
        "Wh": leaf("Wh", H, 4 * H, parameter=True), "b": _gate_bias(leaf, H, forget_bias),
        "Wc": leaf("Wc", 2 * H, H, parameter=True),
    }
    with scope("decoder"):
        h, _ = lstm_cell(**{k: v for k, v in inputs.items() if k != "Wc"})
    states = ops.concat([ops.reshape(s, (batch, 1, H)) for s in encoder], axis=1)
    states.name = "hs"
    query = ops.reshape(h, (batch, 1, H))
    query.name = "query"
    context, _ = attention(query, states)
    flat = ops.reshape(context, (batch, H))
    flat.name = "ctx"
    features = ops.concat([flat, h], axis=1)
    features.name = "[ctx, h]"
    out = ops.tanh(features @ inputs["Wc"])
    out.name = "out"
    loss = out.sum()
    loss.name = "L"
    return {**inputs, **{s.name: s for s in encoder}}, loss


def _outputs_of(builder, description):
    def example(**params):
        _, outputs = builder(**params)
        return outputs
    example.__name__ = example.__qualname__ = builder.__name__
    example.__signature__ = inspect.signature(builder)     # its parameters and defaults
    example.__doc__ = description
    return example


#: The built-in examples by name (`python -m tinygraph render NAME`): each function returns
#: the example's output tensors, takes the example's parameters as keyword arguments (see
#: `parameters`), and its docstring is a one-line summary.
#:
#: :meta hide-value:
EXAMPLES = {
    "lstm_cell": _outputs_of(lstm_cell_step, "one LSTM cell step (gates f, g, i, o); "
                             "outputs h and c"),
    "rnn_cell": _outputs_of(rnn_cell_step, "one tanh RNN step; output h"),
    "gru_cell": _outputs_of(gru_cell_step, "one GRU cell step (gates r, z, n, PyTorch's "
                            "equations); output h"),
    "lstm_unrolled": _outputs_of(lstm_unrolled, "an LSTM over `steps` time steps (scopes "
                                 "t=1..steps); L = sum of the last h"),
    "attention_step": _outputs_of(attention_step, "an LSTM decoder step with attention over "
                                  "`steps` encoder states; L = sum(out)"),
}


def parameters(name):
    """The parameters of the built-in example `name` that the command line sets, with their
    defaults, in signature order: `{"steps": 3, ..., "forget_bias": 0.0}` (each option
    `--steps`, `--forget-bias`, ... takes a value of its default's type)."""
    if name not in EXAMPLES:
        raise ValueError(f"unknown example {name!r}; the examples are {', '.join(EXAMPLES)}")
    return {p.name: p.default
            for p in inspect.signature(EXAMPLES[name]).parameters.values()
            if isinstance(p.default, (int, float)) and not isinstance(p.default, bool)}
