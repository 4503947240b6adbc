"""Small built-in graphs: the demo's default and the examples other tools refer to by name."""
from .backend import xp
from .tensor import tensor
from . import ops


def lstm_cell_step(batch=2, input_size=3, hidden_size=4, seed=0, dtype=xp.float64):
    """One LSTM cell step written inline from primitives, the textbook way.

    One fused affine A = x@Wx + h_prev@Wh + b, sliced into the gates in the order f, g, i, o;
    c = f*c_prev + g*i; h = o*tanh(c). Returns (inputs, (h, c)), where inputs maps the names
    x, h_prev, c_prev, Wx, Wh, b to leaf tensors that require grad.
    """
    rng = xp.random.default_rng(seed)
    H = hidden_size

    def leaf(name, *shape):
        return tensor(rng.standard_normal(shape).astype(dtype), name=name, requires_grad=True)

    inputs = {
        "x": leaf("x", batch, input_size),
        "h_prev": leaf("h_prev", batch, H),
        "c_prev": leaf("c_prev", batch, H),
        "Wx": leaf("Wx", input_size, 4 * H),
        "Wh": leaf("Wh", H, 4 * H),
        "b": leaf("b", 4 * H),
    }
    h, c = lstm_cell(**inputs)
    return inputs, (h, c)


def lstm_cell(x, h_prev, c_prev, Wx, Wh, b):
    """The LSTM cell equations on tensors (gate order f, g, i, o)."""
    H = h_prev.shape[-1]
    A = x @ Wx + h_prev @ Wh + b
    f = ops.sigmoid(A[:, :H])
    g = ops.tanh(A[:, H:2 * H])
    i = ops.sigmoid(A[:, 2 * H:3 * H])
    o = ops.sigmoid(A[:, 3 * H:])
    c = f * c_prev + g * i
    h = o * ops.tanh(c)
    c.name, h.name = "c", "h"
    return h, c
