"""tg.saved_values: which values a graph keeps for its backward pass, their bytes (a view
counted once, with its base), when each is last read, and a memory timeline that agrees with
tracemalloc's measured peak within 10 %, with and without checkpointing."""
import tracemalloc

import numpy as np
import pytest

import tinygraph as tg
from lstm.cells import LSTMCell
from lstm.recurrent import Recurrent


def test_the_values_a_small_graph_saves():
    x = tg.tensor(np.ones((2, 3)), name="x")
    W = tg.tensor(np.ones((3, 4)), name="W", requires_grad=True)
    z = x @ W
    z.name = "z"
    y = tg.tanh(z)
    y.name = "y"
    loss = tg.sum(y[:, :2] * y[:, :2])
    saved = tg.saved_values(loss)
    # z is read by tanh; y by the slices; a slice (a view of y) costs no bytes of its own.
    ops = [(r.op, r.saved_by, r.shape, r.bytes) for r in saved.rows]
    assert ops[0] == ("matmul", ("tanh",), (2, 4), 2 * 4 * 8)
    assert ops[1] == ("tanh", ("slice", "slice"), (2, 4), 2 * 4 * 8)
    assert [o[:2] for o in ops[2:]] == [("slice", ("mul",)), ("slice", ("mul",)),
                                        ("mul", ("sum",))]
    assert ops[2][3] == ops[3][3] == 0 and ops[4][3] == 2 * 2 * 8
    # Last read: the backward pass runs the last op first; z goes when tanh's vjp has run.
    assert saved.steps[0] == "sum" and saved.steps[-2] == "matmul"
    tanh_step = saved.steps.index("tanh") + 1
    assert saved.rows[0].last_read == tanh_step
    assert saved.timeline[0] >= saved.total_bytes
    assert "peaks at" in str(saved) and "matmul" in str(saved)


def lstm_step(T, every):
    rng = np.random.default_rng(0)
    xs, ys = rng.standard_normal((20, T, 8)), rng.standard_normal((20, T, 1))
    cell = LSTMCell(8, 96, rng=np.random.default_rng(1), dtype=np.float64)
    layer = Recurrent(cell, checkpoint_every=every)
    readout = tg.nn.Linear(96, 1, rng=np.random.default_rng(2), dtype=np.float64)
    params = cell.parameters() + readout.parameters()
    return lambda: tg.mse_loss(readout(layer(xs)[0]), ys), params


@pytest.mark.parametrize("every", [None, 8])
def test_the_timeline_agrees_with_tracemalloc(every):
    loss_fn, params = lstm_step(64, every)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        loss = loss_fn()
        saved = tg.saved_values(loss)
        tracemalloc.reset_peak()
        tg.grad(loss, params)
        measured = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert saved.peak_bytes == pytest.approx(measured, rel=0.10)


def test_checkpointing_shows_in_the_timeline():
    plain = tg.saved_values(lstm_step(64, None)[0]())
    checkpointed = tg.saved_values(lstm_step(64, 8)[0]())
    assert checkpointed.total_bytes < plain.total_bytes / 4
    assert checkpointed.steps.count("checkpoint") == 8
    # The recomputation: each checkpoint step holds more than the steps around it.
    k = checkpointed.steps.index("checkpoint") + 1
    assert checkpointed.timeline[k] > checkpointed.timeline[k - 1]


def test_the_plot_marks_the_peak():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    saved = tg.saved_values(lstm_step(8, None)[0]())
    figure = saved.plot()
    ax = figure.axes[0]
    assert ax.get_xlabel().startswith("backward step")
    texts = [t.get_text() for t in ax.texts]
    assert texts == [f"peak {saved.peak_bytes / 2**20:.1f} MB"]
    tiny = tg.saved_values(tg.sum(tg.tanh(tg.tensor(np.ones(3), requires_grad=True)) * 2.0))
    ax = tiny.plot().axes[0]
    assert ax.get_ylabel() == "B alive" and ax.texts[0].get_text().endswith(" B")
