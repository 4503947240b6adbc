"""The step contract: a training step is `loss = step(*inputs)`, with the gradients of the
parameters added into their `.grad`.

    step = tg.value_and_grad(model.loss, model.parameters())   # eager
    step = tg.compile(model.loss, model.parameters())          # compiled: same call, same effect
    for ids, targets in batches:
        opt.zero_grad()
        loss = step(ids, targets)
        clip_grad_norm(opt.params, 0.25)
        opt.step()

So a trainer, a benchmark or a test chooses eager or compiled by one flag and has one code
path. An unused parameter's `.grad` is left as it is, as `backward()` does.

A step called from several threads at once runs one call at a time (a lock per step): the
result is that of the calls made one after the other, in some order, never a mix (a compiled
program's buffers, a model's carried state and the `.grad` sums are shared).
"""
import threading

from ..core.autodiff import grad
from ..core.tensor import Tensor, add_to_grad, describe
from ..ops.parallel import cores_to_workers


class Step:
    """`fn(*inputs)` -> a scalar loss; calling the step returns the loss (a Tensor with no
    graph) and adds d(loss)/d(param) into each parameter's `.grad`."""

    def __init__(self, fn, params):
        self.fn = fn
        self.params = list(params)
        for p in self.params:
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError(f"{type(self).__name__}: params must be Tensors that require "
                                "grad, got " + (describe(p) if isinstance(p, Tensor)
                                                else type(p).__name__))
        self._lock = threading.RLock()

    def __call__(self, *inputs):
        with self._lock, cores_to_workers():   # big products split over the workers
            loss, grads = self.run(inputs)
            for p, g in zip(self.params, grads):
                if g is not None:
                    add_to_grad(p, g)
        return Tensor(loss)

    def run(self, inputs):
        """(the loss array, one gradient array or None per parameter)."""
        raise NotImplementedError


class EagerStep(Step):
    """Runs `fn` and the fast backward pass on every call (see `value_and_grad`)."""

    def run(self, inputs):
        loss = self.fn(*inputs)
        check_loss(loss, "value_and_grad")
        grads = grad(loss, self.params, allow_unused=True)
        return loss.data, [None if g is None else g.data for g in grads]


def value_and_grad(fn, params):
    """An eager Step for the loss function `fn` and the parameters it trains: calling it
    returns the loss and adds the gradients into the parameters' `.grad` (`tg.compile` gives
    a step with the same call and effect that replays a traced program)."""
    return EagerStep(fn, params)


def check_loss(loss, who):
    """A step's function must return a scalar loss Tensor that depends on a parameter."""
    if not isinstance(loss, Tensor) or loss.size != 1:
        raise ValueError(f"{who}: the function must return a scalar loss Tensor, got "
                         f"{describe(loss) if isinstance(loss, Tensor) else type(loss).__name__}")
    if not loss.requires_grad:
        raise ValueError(f"{who}: the loss does not depend on any of the parameters")
