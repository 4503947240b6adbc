"""Recurrent cells composed from tinygraph primitives; no backward pass is written here.

Each cell has fused weights: Wx (D, kH) for the input, Wh (H, kH) for the hidden state, and
biases, with the k gate blocks side by side. A cell splits its work in two, so that a layer can
project the inputs of all time steps with one matmul and only run `step` per time step:

    project(x)          -> the input's contribution x @ Wx (+ input bias), for any leading shape
    step(xw, state)     -> the new state, given one step's projected input
    cell(x, state=None) -> step(project(x), state); state None means a zero state

The tensors a step makes carry names (A, f, g, i, o, c, h, ...) so diagrams read like the book.
"""
import math

import numpy as np

import tinygraph as tg
from tinygraph.nn import Module


def lstm_gates(A, c_prev):
    """The LSTM equations from the fused pre-activation
    `A = x @ Wx + h @ Wh + b`, gates in the order f, g, i, o.

    `c = f * c_prev + g * i`; `h = o * tanh(c)`. Returns (h, c). The
    tensors it makes are named (A_f, f, c, h, ...) so diagrams read
    like the book; h and c carry their roles (tg.STATE, tg.CELL_STATE),
    which diagrams read to find the states and the cell-state highway.
    """
    H = c_prev.shape[-1]
    A_f, A_g, A_i, A_o = A[:, :H], A[:, H:2 * H], A[:, 2 * H:3 * H], A[:, 3 * H:]
    f, g, i, o = tg.sigmoid(A_f), tg.tanh(A_g), tg.sigmoid(A_i), tg.sigmoid(A_o)
    c = f * c_prev + g * i
    tanh_c = tg.tanh(c)
    h = o * tanh_c
    named = dict(A=A, A_f=A_f, A_g=A_g, A_i=A_i, A_o=A_o, f=f, g=g, i=i, o=o, c=c,
                 tanh_c=tanh_c, h=h)
    for name, t in named.items():
        t.name = name
    h.role, c.role = tg.STATE, tg.CELL_STATE
    return h, c


def _init(rng, shape, fan_in, dtype):
    """The book's initialisation: standard normal / sqrt(fan_in)."""
    return (rng.standard_normal(shape) / math.sqrt(fan_in)).astype(dtype)


class _Cell(Module):
    """What the cells share: fused weights Wx (D, kH), Wh (H, kH), b (kH,), the split
    into `project` and `step`, and the zero state."""

    gates = 1            # gate blocks in the fused weights
    has_cell_state = False

    def __init__(self, input_size, hidden_size, rng=None, dtype=np.float32):
        if input_size <= 0 or hidden_size <= 0:
            raise ValueError(f"{type(self).__name__}: sizes must be positive, got "
                             f"input_size={input_size}, hidden_size={hidden_size}")
        rng = rng if rng is not None else tg.default_generator()   # tg.manual_seed seeds it
        k = self.gates
        self.input_size, self.hidden_size, self.dtype = input_size, hidden_size, np.dtype(dtype)
        self.Wx = tg.Parameter(_init(rng, (input_size, k * hidden_size), input_size, dtype),
                               name="Wx")
        self.Wh = tg.Parameter(_init(rng, (hidden_size, k * hidden_size), hidden_size, dtype),
                               name="Wh")
        self.b = tg.Parameter(np.zeros(k * hidden_size, dtype), name="b")

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}"     # as PyTorch's LSTMCell(16, 32)

    def _to_dtype(self, dtype):
        self.dtype = np.dtype(dtype)          # the zero state is made in the parameters' dtype

    def zero_state(self, batch):
        """The all-zero state for `batch` rows: h0 (batch, H), or (h0, c0) for an LSTM."""
        def zeros(name, role):
            state = tg.tensor(np.zeros((batch, self.hidden_size), self.dtype), name=name)
            state.role = role
            return state
        h0 = zeros("h0", tg.STATE)
        return (h0, zeros("c0", tg.CELL_STATE)) if self.has_cell_state else h0

    def project(self, x):
        """The input's contribution x @ Wx + b, for x of any leading shape (..., D); a
        layer calls it once for all time steps."""
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{type(self).__name__}: expected inputs with {self.input_size} "
                             f"features, got shape {x.shape}")
        return x @ self.Wx + self.b

    def forward(self, x, state=None):
        """One step on x (N, D) from `state` (None: the zero state); returns the new state."""
        if state is None:
            state = self.zero_state(x.shape[0])
        return self.step(self.project(x), state)


class RNNCell(_Cell):
    """`h = tanh(x @ Wx + h_prev @ Wh + b)`. State: h."""

    def step(self, xw, h_prev):
        """The new h from one step's projected input xw (N, H) and h_prev (N, H)."""
        h = tg.tanh(xw + h_prev @ self.Wh)
        h.name, h.role = "h", tg.STATE
        return h


class LSTMCell(_Cell):
    """The book's LSTM: one fused affine sliced into gates f, g, i, o. State: (h, c).

    forget_bias initialises the forget gate's bias (0 in the book; 1 is the common choice
    that keeps f near 1 at first, so the cell-state highway carries gradients far back).
    """

    gates = 4
    has_cell_state = True

    def __init__(self, input_size, hidden_size, rng=None, dtype=np.float32, forget_bias=0.0):
        super().__init__(input_size, hidden_size, rng, dtype)
        self.b.data[:hidden_size] = forget_bias

    def step(self, xw, state):
        """The new (h, c) from one step's projected input xw (N, 4H) and (h_prev, c_prev)."""
        h_prev, c_prev = state
        return lstm_gates(xw + h_prev @ self.Wh, c_prev)


class GRUCell(_Cell):
    """Gated recurrent unit with gates r, z, n (PyTorch's equations and gate order):

    r = σ(x Wx_r + h Wh_r + b_r), z = σ(x Wx_z + h Wh_z + b_z),
    n = tanh(x Wx_n + b_n + r * (h Wh_n + bh_n)), h' = (1 - z) * n + z * h.
    `b` is the input bias; `bh` the hidden bias (it matters for n, which r gates).
    """

    gates = 3

    def __init__(self, input_size, hidden_size, rng=None, dtype=np.float32):
        super().__init__(input_size, hidden_size, rng, dtype)
        self.bh = tg.Parameter(np.zeros(3 * hidden_size, dtype), name="bh")

    def step(self, xw, h_prev):
        """The new h from one step's projected input xw (N, 3H) and h_prev (N, H)."""
        H = self.hidden_size
        hw = h_prev @ self.Wh + self.bh
        hw_r, hw_z, hw_n = hw[:, :H], hw[:, H:2 * H], hw[:, 2 * H:]
        a_r = xw[:, :H] + hw_r
        a_z = xw[:, H:2 * H] + hw_z
        r, z = tg.sigmoid(a_r), tg.sigmoid(a_z)
        a_n = xw[:, 2 * H:] + r * hw_n
        n = tg.tanh(a_n)
        keep = 1.0 - z
        h = keep * n + z * h_prev
        for t, name in ((hw, "hw"), (hw_r, "hw_r"), (hw_z, "hw_z"), (hw_n, "hw_n"),
                        (a_r, "a_r"), (a_z, "a_z"), (r, "r"), (z, "z"),
                        (a_n, "a_n"), (n, "n"), (keep, "1 − z"), (h, "h")):
            t.name = name
        h.role = tg.STATE
        return h


#: The cell classes by the names layers and models accept: "rnn", "lstm", "gru".
#:
#: :meta hide-value:
CELLS = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}
