"""Small built-in graphs: the demo's default and the examples the command line draws by name.

Each example function returns the output tensors of its graph; `EXAMPLES` maps names to them.
"""
from .backend import xp
from .core.state import scope
from .core.tensor import Parameter, tensor
from . import ops
from .nn import attention, lstm_gates


def _rng_leaf(rng, dtype):
    def leaf(name, *shape, parameter=False):
        data = rng.standard_normal(shape).astype(dtype)
        if parameter:
            return Parameter(data, name=name)
        return tensor(data, name=name, requires_grad=True)
    return leaf


def lstm_cell(x, h_prev, c_prev, Wx, Wh, b):
    """The LSTM cell on tensors: one fused affine sliced in gate order f, g, i, o.

    `A = x @ Wx + h_prev @ Wh + b`; `c = f * c_prev + g * i`; `h = o * tanh(c)`. Returns
    (h, c).
    """
    return lstm_gates(x @ Wx + h_prev @ Wh + b, c_prev)


def lstm_cell_step(batch=2, input_size=3, hidden_size=4, seed=0, dtype=xp.float64):
    """One LSTM cell step on random data. Returns (inputs, (h, c)), where inputs maps the
    names x, h_prev, c_prev, Wx, Wh, b to leaves that require grad (Wx, Wh, b Parameters)."""
    leaf = _rng_leaf(xp.random.default_rng(seed), dtype)
    H = hidden_size
    inputs = {
        "x": leaf("x", batch, input_size),
        "h_prev": leaf("h_prev", batch, H),
        "c_prev": leaf("c_prev", batch, H),
        "Wx": leaf("Wx", input_size, 4 * H, parameter=True),
        "Wh": leaf("Wh", H, 4 * H, parameter=True),
        "b": leaf("b", 4 * H, parameter=True),
    }
    return inputs, lstm_cell(**inputs)


def rnn_cell_step(batch=2, input_size=3, hidden_size=4, seed=0, dtype=xp.float64):
    """One plain (tanh) RNN step: `h = tanh(x @ Wx + h_prev @ Wh + b)`. Returns (inputs, h)."""
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
    h.name = "h"
    return inputs, h


def lstm_unrolled(steps=3, batch=2, input_size=3, hidden_size=4, seed=0, dtype=xp.float64):
    """An LSTM cell run over `steps` time steps, one `scope("t=k")` per step, shared weights.

    Returns (inputs, loss) with loss = sum of the last hidden state.
    """
    leaf = _rng_leaf(xp.random.default_rng(seed), dtype)
    H = hidden_size
    Wx = leaf("Wx", input_size, 4 * H, parameter=True)
    Wh = leaf("Wh", H, 4 * H, parameter=True)
    b = leaf("b", 4 * H, parameter=True)
    xs = [leaf(f"x{t}", batch, input_size) for t in range(1, steps + 1)]
    h = tensor(xp.zeros((batch, H), dtype=dtype), name="h0")
    c = tensor(xp.zeros((batch, H), dtype=dtype), name="c0")
    for t, x in enumerate(xs, start=1):
        with scope(f"t={t}"):
            h, c = lstm_cell(x, h, c, Wx, Wh, b)
            h.name, c.name = f"h{t}", f"c{t}"
    loss = h.sum()
    loss.name = "L"
    return {"Wx": Wx, "Wh": Wh, "b": b, **{x.name: x for x in xs}}, loss


def attention_step(steps=3, batch=2, input_size=3, hidden_size=4, seed=0, dtype=xp.float64):
    """One decoder step with attention over `steps` encoder states (the book's chapter 8):
    an LSTM cell step gives the decoder state h; h scores every encoder state, a softmax over
    time weighs them, and out = tanh([context, h] @ Wc). The encoder states are separate
    leaves, so the backward graph shows the gradient reaching each one.

    Returns (inputs, loss) with loss = sum(out).
    """
    leaf = _rng_leaf(xp.random.default_rng(seed), dtype)
    H = hidden_size
    encoder = [leaf(f"hs{t}", batch, H) for t in range(1, steps + 1)]
    inputs = {
        "x": leaf("x", batch, input_size), "h_prev": leaf("h_prev", batch, H),
        "c_prev": leaf("c_prev", batch, H),
        "Wx": leaf("Wx", input_size, 4 * H, parameter=True),
        "Wh": leaf("Wh", H, 4 * H, parameter=True), "b": leaf("b", 4 * H, parameter=True),
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
    def example():
        _, outputs = builder()
        return outputs
    example.__doc__ = description
    return example


#: The built-in examples by name (`python -m tinygraph render NAME`): each function returns
#: the example's output tensors, and its docstring is a one-line summary.
#:
#: :meta hide-value:
EXAMPLES = {
    "lstm_cell": _outputs_of(lstm_cell_step, "one LSTM cell step (gates f, g, i, o); "
                             "outputs h and c"),
    "rnn_cell": _outputs_of(rnn_cell_step, "one tanh RNN step; output h"),
    "lstm_unrolled": _outputs_of(lstm_unrolled, "an LSTM over 3 steps (scopes t=1..3); "
                                 "L = sum(h3)"),
    "attention_step": _outputs_of(attention_step, "an LSTM decoder step with attention over "
                                  "3 states; L = sum(out)"),
}
