"""Running a cell over time: one layer, stacks of layers, stateful truncated BPTT."""
import contextlib

import numpy as np

import tinygraph as tg
from tinygraph.nn import Dropout, Module

from .cells import CELLS


class Recurrent(Module):
    """A cell run over a batch-first sequence (N, T, D) -> all hidden states (N, T, H).

    The inputs of all time steps are projected with one matmul (cell.project on the whole
    sequence), so the weight gradient of that projection is one matmul per sequence too; each
    step then only adds h @ Wh. Each step runs in `tinygraph.time_step(k)` (a scope named
    "t=k"), so diagrams show one cluster per step.

    stateful=True carries the final state into the next call, detached from the graph
    (truncated BPTT: the gradient stops at the batch boundary); `reset_state()` forgets it.

    checkpoint_every=k runs the sequence in segments of k steps, each through `tg.checkpoint`: the
    backward pass keeps only each segment's inputs and hidden states and recomputes its
    steps (input projection included) when it reaches them. Small k keeps more segment
    boundaries, large k a bigger recomputed segment: benchmarks/checkpoint_memory.py measures
    a few (on an LSTM over 1,000 steps, 8 kept the least of 2, 8, 32 and 125).
    For eager steps: a compiled step traces the segments as plain steps (its program keeps
    what its backward part reads); with no gradient recorded (no_grad) it runs as without.
    """

    def __init__(self, cell, stateful=False, checkpoint_every=None):
        if checkpoint_every is not None and (not isinstance(checkpoint_every, int)
                                             or checkpoint_every < 1):
            raise ValueError("Recurrent: checkpoint_every must be a positive int (steps per "
                             f"segment) or None, got {checkpoint_every!r}")
        self.cell = cell
        self.stateful = stateful
        self.checkpoint_every = checkpoint_every
        self.state = None
        self.position = None     # "layer k of n" when in a StackedRecurrent (for errors)

    def extra_repr(self):
        options = (["stateful=True"] if self.stateful else []) + \
            ([f"checkpoint_every={self.checkpoint_every}"] if self.checkpoint_every else [])
        return ", ".join(options)

    def _to_dtype(self, dtype):
        # The carried state follows the parameters (a float32 state would meet float64 weights).
        if self.state is not None:
            parts = self.state if isinstance(self.state, tuple) else (self.state,)
            cast = tuple(tg.tensor(s.value().astype(dtype), name=s.name) for s in parts)
            for new, old in zip(cast, parts):
                new.role = old.role
            self.state = cast if isinstance(self.state, tuple) else cast[0]

    def reset_state(self):
        """Forget the carried state: the next call starts from zeros."""
        self.state = None

    def extra_state(self):
        """The carried state, {"state.0": h} or {"state.0": h, "state.1": c}; {} when none."""
        if self.state is None:
            return {}
        parts = self.state if isinstance(self.state, tuple) else (self.state,)
        return {f"state.{j}": s.value().copy() for j, s in enumerate(parts)}

    def load_extra_state(self, state):
        keys = sorted((k for k in state if k.startswith("state.")), key=lambda k: int(k[6:]))
        parts = tuple(tg.tensor(state[k]) for k in keys)
        self.state = None if not parts else parts if len(parts) > 1 else parts[0]
        return set(keys)

    def _label(self):
        """The layer as errors name it: Recurrent(LSTMCell), with its place in a stack."""
        name = f"{type(self).__name__}({type(self.cell).__name__})"
        return f"{name}, {self.position}" if self.position else name

    def _check_carried_batch(self, batch):
        """A carried state is one batch size's: another batch size would be broadcast (a
        one-row state copied to every row) or fail deep in a matmul; refuse it here. A
        compiled step's trace runs this too (it reads the state from the layer)."""
        carried = self.state[0] if isinstance(self.state, tuple) else self.state
        if carried.shape[0] != batch:
            raise ValueError(
                f"{self._label()}: the state carried from the previous call has batch size "
                f"{carried.shape[0]}, but this input has batch size {batch}. A carried state "
                "is not broadcast to another batch size: call reset_state() (on the model or "
                "the layer) to start a fresh state for the new batch size, or keep the batch "
                "size the same from call to call")

    def forward(self, xs, state=None):
        """Run the cell over xs (N, T, D) from `state` (None: the carried state when
        stateful, else zeros). Returns (hidden states (N, T, H), final state)."""
        if xs.ndim != 3:
            raise ValueError(f"{type(self).__name__}: expected a batch-first sequence (N, T, D), "
                             f"got shape {xs.shape}")
        N, T, _ = xs.shape
        start = None      # the state this layer chose itself (carried or zeros)
        if state is None:
            if self.stateful and self.state is not None:
                self._check_carried_batch(N)
                state = self.state
            else:
                state = self.cell.zero_state(N)
            start = state
        if self.checkpoint_every and tg.is_grad_enabled():
            hs, state = self._segments(xs, state)
        else:
            hs, state = self._steps(xs, state, 0)
        hs = tg.concat(hs, axis=1)
        if self.stateful:
            # Sets self.state to the detached final state (and tells a compiled step's trace).
            tg.carry(self, "state", start, state)
        return hs, state

    def _steps(self, xs, state, first):
        """The cell over xs (N, T', D) from `state`, its steps numbered from first + 1:
        ([hidden states, one (N, 1, H) each], final state)."""
        N, T, _ = xs.shape
        projected = self.cell.project(xs)              # (N, T', kH) in one matmul
        hs = []
        for t in range(T):
            with tg.time_step(first + t + 1):
                state = self.cell.step(projected[:, t, :], state)
            h = state[0] if isinstance(state, tuple) else state
            hs.append(tg.reshape(h, (N, 1, h.shape[-1])))
        return hs, state

    def _segments(self, xs, state):
        """_steps in checkpointed segments of checkpoint_every steps."""
        T, k = xs.shape[1], self.checkpoint_every
        parts = isinstance(state, tuple)
        hs = []
        for first in range(0, T, k):
            def segment(x, *start, first=first):
                seg_hs, final = self._steps(x, start if parts else start[0], first)
                return (tg.concat(seg_hs, axis=1),) + (final if parts else (final,))
            out = tg.checkpoint(segment, xs[:, first:first + k, :],
                                *(state if parts else (state,)))
            hs.append(out[0])
            state = tuple(out[1:]) if parts else out[1]
        return hs, state


class StackedRecurrent(Module):
    """num_layers Recurrent layers of one cell type, with dropout between layers."""

    def __init__(self, cell, input_size, hidden_size, num_layers=1, dropout=0.0, stateful=False,
                 rng=None, dtype=np.float32):
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}; choose one of {', '.join(CELLS)}")
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        rng = rng if rng is not None else tg.default_generator()   # tg.manual_seed seeds it
        self.cell_name, self.input_size, self.hidden_size = cell, input_size, hidden_size
        self.num_layers, self.dropout, self.stateful = num_layers, dropout, stateful
        self.layers = [
            Recurrent(CELLS[cell](input_size if k == 0 else hidden_size, hidden_size, rng=rng,
                                  dtype=dtype), stateful=stateful)
            for k in range(num_layers)]
        for k, layer in enumerate(self.layers):
            layer.position = f"layer {k + 1} of {num_layers} (layers[{k}])"
        self.dropouts = [Dropout(dropout, rng=np.random.default_rng(rng.integers(2**63)))
                         for _ in range(num_layers - 1)]

    def extra_repr(self):
        """As PyTorch's LSTM(16, 32, num_layers=2, dropout=0.2), with the cell's name."""
        text = f"{self.cell_name!r}, {self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if self.dropout:
            text += f", dropout={self.dropout}"
        return text + (", stateful=True" if self.stateful else "")

    def reset_state(self):
        """Forget the carried state of every layer."""
        for layer in self.layers:
            layer.reset_state()

    def forward(self, xs):
        """Returns (hidden states of the top layer (N, T, H), final state of every layer)."""
        finals = []
        for k, layer in enumerate(self.layers):
            if k > 0:
                xs = self.dropouts[k - 1](xs)
            layer_scope = tg.scope(f"layer{k + 1}", kind=tg.LAYER) if len(self.layers) > 1 \
                else contextlib.nullcontext()
            with layer_scope:
                xs, final = layer(xs)
            finals.append(final)
        return xs, finals

