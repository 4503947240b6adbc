"""The training loop every model here shares: one optimisation step (the finiteness check and
gradient clipping), epochs of batches under a progress bar, checkpoints, and Ctrl-C that
finishes the step, saves and stops. What differs per model — the step on a batch, the
evaluation after an epoch, what the bar and the log say, how a checkpoint is written — is
passed in as functions (see `TrainingLoop`)."""
import contextlib
import dataclasses
import math
import signal
import threading
import time
from typing import Callable, Optional

from tqdm import tqdm

from tinygraph.optim import clip_grad_norm


class Interrupted(Exception):
    """Training was stopped by SIGINT after saving a checkpoint to resume from (`path`)."""

    def __init__(self, message, path=None):
        super().__init__(message)
        self.path = path


class NonFiniteLoss(FloatingPointError):
    """The loss became NaN or Inf; the step that produced it changed nothing."""


def optimizer_step(optimizer, loss_with_gradients, clip):
    """One step: clear the gradients, `loss_with_gradients()` (the loss tensor, with the
    parameters' gradients in .grad), clip them to global norm `clip`, update; returns the loss.
    A non-finite loss is a NonFiniteLoss, raised before the parameters are touched."""
    optimizer.zero_grad()
    loss = float(loss_with_gradients().data)
    if not math.isfinite(loss):
        raise NonFiniteLoss(f"the loss became {loss}; training stopped")
    clip_grad_norm(optimizer.params, clip)
    optimizer.step()
    return loss


@contextlib.contextmanager
def interrupt_flag():
    """Turn SIGINT into a flag the loop checks between steps (a step is never cut in half).
    A second Ctrl-C stops at once, as usual. Off the main thread, where no handler can be set,
    the flag never rises."""
    flag = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return

    def handler(*_):
        if flag:
            raise KeyboardInterrupt
        flag.append(True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(flag)
    finally:
        signal.signal(signal.SIGINT, previous)


@dataclasses.dataclass
class TrainingLoop:
    """The parts of a model's training that the loop cannot know.

    `train_batch(epoch, position)` takes one optimisation step on that batch (usually through
    `optimizer_step`) and returns its loss. `bar_text(losses, seconds)` is the bar's status from
    this session's losses in the epoch and the seconds they took. `end_epoch(losses, started)`
    runs after an epoch's last batch, once the run has moved on to the next epoch: it evaluates,
    records and logs (`started`: the epoch's time.perf_counter()). `save(name)` writes a
    checkpoint and returns its path; without it there are no checkpoints and Ctrl-C stops at
    once. `checkpoint_note(losses, seconds)`, if given, is logged at each checkpoint when there
    is no bar. `label` names the bar (default "epoch k/n").
    """

    batches: int
    train_batch: Callable[[int, int], float]
    bar_text: Callable[[list, float], str]
    end_epoch: Optional[Callable[[list, float], None]] = None
    save: Optional[Callable[[str], object]] = None
    checkpoint_note: Optional[Callable[[list, float], str]] = None
    log: Callable[[str], None] = print
    label: Optional[str] = None

    def run(self, run, epochs, progress=True, checkpoint_every=0, interrupted=None):
        """Train `run` — where the run stands: an object with `epoch` and `position` (the
        batch in the epoch), which this advances — up to `epochs`. Every `checkpoint_every`
        batches and after every epoch last.npz is saved. `interrupted()` says whether to stop
        (default: whether Ctrl-C was pressed); then last.npz is saved and Interrupted raised."""
        if self.save is None:          # nothing to save: Ctrl-C stops at once, as usual
            flag = contextlib.nullcontext(lambda: False)
        elif interrupted is not None:
            flag = contextlib.nullcontext(interrupted)
        else:
            flag = interrupt_flag()
        with flag as stop:
            while run.epoch < epochs:
                self._epoch(run, epochs, progress, checkpoint_every, stop)

    def _epoch(self, run, epochs, progress, checkpoint_every, stop):
        bar = tqdm(total=self.batches, initial=run.position, unit="batch", dynamic_ncols=True,
                   desc=self.label or f"epoch {run.epoch + 1}/{epochs}",
                   disable=None if progress else True)   # None: a bar on a terminal only
        start, losses = time.perf_counter(), []       # losses: this session's, for the bar
        while run.position < self.batches:
            losses.append(self._step(run))
            run.position += 1
            seconds = time.perf_counter() - start
            bar.set_postfix_str(self.bar_text(losses, seconds))
            bar.update(1)
            if self.save and checkpoint_every and run.position % checkpoint_every == 0:
                path = self.save("last.npz")
                if not progress and self.checkpoint_note:   # no bar: say how it goes
                    self.log(f"epoch {run.epoch + 1}, batch {run.position}/{self.batches}: "
                             f"{self.checkpoint_note(losses, seconds)}; saved {path}")
            if stop():
                bar.close()
                path = self.save("last.npz")
                raise Interrupted(f"saved {path} at epoch {run.epoch + 1}, batch "
                                  f"{run.position}", path)
        bar.close()
        run.epoch, run.position = run.epoch + 1, 0
        if self.end_epoch:
            self.end_epoch(losses, start)
        if self.save:
            path = self.save("last.npz")
            if stop():        # pressed during the evaluation or saving
                raise Interrupted(f"saved {path} after epoch {run.epoch}", path)

    def _step(self, run):
        try:
            return self.train_batch(run.epoch, run.position)
        except NonFiniteLoss as e:
            if self.save is None:
                raise
            raise NonFiniteLoss(f"{e} (the last good checkpoint is kept)") from None
