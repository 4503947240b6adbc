"""How far back does the gradient reach? ‖∂L/∂x_t‖ against the distance from the loss, for
recurrent cells of the same size on the same random inputs."""
import numpy as np

import tinygraph as tg

from .cells import CELLS
from .recurrent import Recurrent


def gradient_by_distance(cell="lstm", hidden_size=32, input_size=8, steps=100, seed=0,
                         forget_bias=1.0):
    """Run one cell type over `steps` random inputs; L = sum of the last hidden state.

    Returns an array g where g[d] = ‖∂L/∂x_t‖ for the input d steps before the loss
    (d = 0 is the last step). float64, so tiny gradients are not lost to rounding. Weights
    use the book's initialisation; an LSTM's forget-gate bias is `forget_bias`.
    """
    rng = np.random.default_rng(seed)
    options = {"forget_bias": forget_bias} if cell == "lstm" else {}
    layer = Recurrent(CELLS[cell](input_size, hidden_size, rng=rng, dtype=np.float64, **options))
    xs = tg.tensor(rng.standard_normal((1, steps, input_size)), name="x", requires_grad=True)
    hs, _ = layer(xs)
    loss = hs[:, -1, :].sum()
    (g,) = tg.grad(loss, [xs])
    norms = np.sqrt((g.data[0] ** 2).sum(axis=-1))
    return norms[::-1]


def compare(cells=("rnn", "lstm"), **kwargs):
    """{cell: gradient_by_distance(cell)} on the same inputs and sizes."""
    return {cell: gradient_by_distance(cell, **kwargs) for cell in cells}
