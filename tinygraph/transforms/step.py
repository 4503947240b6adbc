"""The step contract: a training step is `loss = step(*inputs)`, with the gradients of the
parameters added into their `.grad`.

    step = tg.eager_step(model.loss, model.parameters())   # eager
    step = tg.compile(model.loss, model.parameters())          # compiled: same call, same effect
    for ids, targets in batches:
        opt.zero_grad()
        loss = step(ids, targets)
        clip_grad_norm(opt.params, 0.25)
        opt.step()

So a trainer, a benchmark or a test chooses eager or compiled by one flag and has one code
path. An unused parameter's `.grad` is left as it is, as `backward()` does.

Freezing: a Parameter with `requires_grad = False` (`p.requires_grad = False`, or
`model.requires_grad_(False)` for a whole module) is a constant to the step: its value is
used, no gradient is computed for it and its `.grad` is not touched (None after
`zero_grad`, so optimizers skip it). The flags are read at every call: unfreezing makes it
trained again (a compiled step traces again for the new set of flags, never replaying a
program made for the old one).

A step called from several threads at once runs one call at a time (a lock per step): the
result is that of the calls made one after the other, in some order, never a mix (a compiled
program's buffers, a model's carried state and the `.grad` sums are shared).
"""
from ..core.autodiff import collector_paused, grad
from ..core.tensor import ForkSafeLock, Parameter, Tensor, add_to_grad, describe
from ..ops.parallel import cores_to_workers
from .tape import ReplayedBackward


class Step:
    """`fn(*inputs)` -> a scalar loss; calling the step returns the loss (a Tensor with no
    graph) and adds d(loss)/d(param) into each parameter's `.grad`."""

    def __init__(self, fn, params, has_aux=False):
        self.fn = fn
        self.has_aux = has_aux
        self.params = list(params)
        for p in self.params:
            # A frozen Parameter may be listed (it may be unfrozen later); another tensor
            # that requires no grad is likely an input passed by mistake.
            if not isinstance(p, Tensor) or not (p.requires_grad or isinstance(p, Parameter)):
                raise TypeError(f"{type(self).__name__}: params must be Parameters or Tensors "
                                "that require grad, got " + (describe(p) if isinstance(p, Tensor)
                                                             else type(p).__name__))
        self._lock = ForkSafeLock(f"a call of this {type(self).__name__}")

    def __call__(self, *inputs, **kwargs):
        # Big products split over the workers; the cyclic collector paused: a step makes a
        # few thousand graph objects with no reference cycles (see collector_paused), and
        # its collections rescanned the whole heap (0.7 of a 5 ms eager step with PyTorch
        # imported); it runs after the step, when the graph is gone.
        with self._lock, cores_to_workers(), collector_paused():
            loss, grads, aux = self.run(inputs, kwargs)
            for p, g in zip(self.params, grads):
                if g is not None:
                    add_to_grad(p, g)
        return (Tensor(loss), aux) if self.has_aux else Tensor(loss)

    def run(self, inputs, kwargs):
        """(the loss array, one gradient array or None per parameter, aux as returned to the
        caller or None)."""
        raise NotImplementedError

    def trained(self, who):
        """The positions of the parameters not frozen now (read at every call); an error
        when all are frozen (there would be nothing to differentiate)."""
        live = [k for k, p in enumerate(self.params) if p.requires_grad]
        if self.params and not live:
            raise ValueError(f"{who}: all {len(self.params)} parameters are frozen "
                             "(requires_grad = False): nothing to train")
        return live


class EagerStep(Step):
    """Runs `fn` and the fast backward pass on every call (see `eager_step`). The backward
    pass of a graph met before is replayed as a program (tinygraph.transforms.tape)."""

    def __init__(self, fn, params, has_aux=False, replay=True):
        super().__init__(fn, params, has_aux)
        self.replayed = ReplayedBackward() if replay else None

    def run(self, inputs, kwargs):
        live = self.trained("eager_step")
        loss, aux, rebuild = split_output(self.fn(*inputs, **kwargs), self.has_aux,
                                          "eager_step")
        check_loss(loss, "eager_step")
        trained = [self.params[k] for k in live]
        grads = [None] * len(self.params)
        found = None if self.replayed is None else self.replayed.gradients(loss, trained)
        if found is None:
            found = [None if g is None else g.data
                     for g in grad(loss, trained, allow_unused=True)]
        for k, g in zip(live, found):
            grads[k] = g
        return loss.data, grads, rebuild([None if t is None else t.data for t in aux])


def eager_step(fn, params, has_aux=False, replay=True):
    """An eager Step for the loss function `fn` and the parameters it trains: calling it
    returns the loss and adds the gradients into the parameters' `.grad` (`tg.compile` gives
    a step with the same call and effect that replays a traced program).

    has_aux: fn returns `(loss, aux)`, aux a Tensor or a tuple, list or dict of Tensors (or
    None); the step then returns `(loss, aux)` with aux's Tensors as values (no graph).
    Keyword arguments are passed on to fn.

    replay: the backward pass of a graph met on two calls in a row is made a program once
    and replayed on the next calls with the same graph (the same ops on the same shapes:
    tinygraph.transforms.tape), which saves most of its Python cost; the gradients are those
    the ordinary pass computes. False: the ordinary pass, op by op, on every call (the
    reference the tests compare programs with).
    """
    return EagerStep(fn, params, has_aux, replay)


def split_output(out, has_aux, who):
    """(loss, the aux Tensors (or None) in order, rebuild) from what the step's function
    returned; rebuild(arrays) gives aux's structure back with Tensors of those arrays."""
    if not has_aux:
        return out, [], lambda arrays: None
    if not (isinstance(out, tuple) and len(out) == 2):
        raise TypeError(f"{who}: with has_aux=True the function must return (loss, aux), got "
                        f"{type(out).__name__}")
    loss, aux = out
    leaves = []
    shape = _shape_of(aux, leaves, who)
    return loss, leaves, lambda arrays: _rebuild(shape, arrays)


class _Leaf:
    __slots__ = ("k",)

    def __init__(self, k):
        self.k = k


def _shape_of(aux, leaves, who):
    """aux with each Tensor (or None) replaced by a _Leaf numbering it in `leaves`."""
    if aux is None or isinstance(aux, Tensor):
        leaves.append(aux)
        return _Leaf(len(leaves) - 1)
    if isinstance(aux, (tuple, list)):
        return type(aux)(_shape_of(v, leaves, who) for v in aux)
    if isinstance(aux, dict):
        return {k: _shape_of(v, leaves, who) for k, v in aux.items()}
    raise TypeError(f"{who}: aux must hold Tensors (in tuples, lists or dicts), got a "
                    f"{type(aux).__name__}; a value computed from numbers would be fixed in a "
                    "compiled step, so make it a Tensor (both modes follow this rule)")


def _rebuild(shape, arrays):
    if isinstance(shape, _Leaf):
        array = arrays[shape.k]
        return None if array is None else Tensor(array)
    if isinstance(shape, (tuple, list)):
        return type(shape)(_rebuild(v, arrays) for v in shape)
    return {k: _rebuild(v, arrays) for k, v in shape.items()}


def check_loss(loss, who):
    """A step's function must return a scalar loss Tensor that depends on a parameter."""
    if not isinstance(loss, Tensor) or loss.size != 1:
        raise ValueError(f"{who}: the function must return a scalar loss Tensor, got "
                         f"{describe(loss) if isinstance(loss, Tensor) else type(loss).__name__}")
    if not loss.requires_grad:
        raise ValueError(f"{who}: the loss does not depend on any of the parameters")


def tensor_outputs(out, who):
    """(a function's output as a list of Tensors, a function giving a list back that
    structure): a Tensor, or a non-empty tuple or list of them. who: the error's subject."""
    if isinstance(out, Tensor):
        return [out], lambda values: values[0]
    if isinstance(out, (tuple, list)) and out and all(isinstance(o, Tensor) for o in out):
        kind = type(out)
        return list(out), lambda values: kind(values)
    raise TypeError(f"{who} must return a Tensor or a tuple or list of Tensors, got "
                    f"{type(out).__name__}")
