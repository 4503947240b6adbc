"""The main job on the embedded default: learn a sine wave, then draw what was learned.

No download: the data is generated. Trains a small LSTM to predict the next value of a noisy
sine wave (about a minute on two cores), then writes the LSTM cell's forward and backward
graphs, the loss curve and the vanishing-gradient figure.
"""
import pathlib
import shutil
import time
import types

import numpy as np

import tinygraph as tg
from tinygraph.optim import Adam

from . import plots, vanishing
from .loop import TrainingLoop, optimizer_step
from .models import SequenceRegressor


def sine_windows(count=64, steps=30, seed=0, noise=0.02):
    """`count` windows of a sine wave (period ~ 25 steps) and the values one step later."""
    rng = np.random.default_rng(seed)
    t = np.arange(count * steps + steps + 1)
    wave = np.sin(2 * np.pi * t / 25) + noise * rng.standard_normal(t.shape)
    starts = rng.integers(0, len(t) - steps - 1, count)
    xs = np.stack([wave[s:s + steps] for s in starts])[..., None].astype(np.float32)
    ys = np.stack([wave[s + 1:s + steps + 1] for s in starts])[..., None].astype(np.float32)
    return xs, ys


def train_sine(steps=400, hidden_size=32, seed=0, progress=True):
    """Train the regressor with Adam, `steps` steps on the whole set (one epoch of the
    training loop, no checkpoints); returns (model, losses)."""
    xs, ys = sine_windows(seed=seed)
    model = SequenceRegressor(hidden_size=hidden_size, seed=seed)
    opt = Adam(model.parameters(), lr=0.01)
    losses = []

    def loss_with_gradients():
        loss = model.loss(tg.tensor(xs), ys)
        loss.backward()
        return loss

    def train_batch(epoch, position):
        losses.append(optimizer_step(opt, loss_with_gradients, clip=1.0))
        return losses[-1]

    loop = TrainingLoop(batches=steps, train_batch=train_batch, label="sine LSTM",
                        bar_text=lambda losses, seconds: f"mse {losses[-1]:.5f}")
    loop.run(types.SimpleNamespace(epoch=0, position=0), epochs=1, progress=progress)
    return model, losses


def draw_cell(model, out_dir, suffix):
    """Forward and backward graphs of one step of the trained model's LSTM cell."""
    cell = model.rnn.layers[0].cell
    x = tg.tensor(np.array([[0.5]], np.float32), name="x", requires_grad=True)
    h_prev, c_prev = (tg.tensor(s.data, name=n, requires_grad=True)
                      for s, n in zip(cell.zero_state(1), ("h_prev", "c_prev")))
    h, c = cell(x, (h_prev, c_prev))
    paths = []
    for view in ("forward", "backward"):
        paths.append(tg.save([h, c], out_dir / f"lstm_cell_{view}.{suffix}", view=view,
                             title=f"trained LSTM cell, {view} graph"))
    return paths


def explore_unrolled(model, out_dir, steps=4):
    """The explorer page of the trained model on a window of `steps` time steps: its loss's
    forward graph and generated backward graph, one scope per step."""
    xs, ys = sine_windows(count=1, steps=steps, seed=1)
    loss = model.loss(tg.tensor(xs, name="x"), ys)
    loss.name = "L"
    page = tg.explore(loss, title=f"trained sine-wave LSTM unrolled over {steps} steps")
    return page.save(out_dir / "explorer.html")


def run(out_dir, steps=400, progress=True):
    """Train the sine-wave LSTM for `steps` steps, then write its cell's diagrams, the loss
    curve and the vanishing-gradient figure into `out_dir`; returns the paths written."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    model, losses = train_sine(steps=steps, progress=progress)
    print(f"trained in {time.perf_counter() - start:.0f} s: mse {losses[0]:.4f} -> {losses[-1]:.5f}")
    suffix = "svg" if shutil.which("dot") else "dot"
    written = draw_cell(model, out_dir, suffix)
    written.append(explore_unrolled(model, out_dir))
    written.append(plots.loss_curve(losses, out_dir / "loss_curve.png",
                                    title="sine-wave LSTM: training loss (MSE)"))
    norms = vanishing.compare(("rnn", "lstm"))
    written.append(plots.vanishing_figure(norms, out_dir / "vanishing_gradients.png"))
    far = len(norms["rnn"]) - 1
    print(f"vanishing gradients at distance {far}: RNN {norms['rnn'][far]:.1e}, "
          f"LSTM {norms['lstm'][far]:.1e}")
    print("wrote:")
    for path in written:
        print(f"  {path}")
    return written
