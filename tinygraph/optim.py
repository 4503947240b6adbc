"""Optimizers, gradient clipping and learning-rate decay. Updates work on the arrays in place,
outside the graph, and keep the parameters' dtype."""
import math

from .backend import xp


class Optimizer:
    """Base of the optimizers: holds the parameters (a list, in a fixed order) and the
    learning rate `lr`, which a schedule such as `DecayOnPlateau` may change between steps.
    Subclasses implement `step`, which updates the parameters from their `.grad`.
    """

    def __init__(self, params, lr):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: no parameters to optimize")
        if lr <= 0:
            raise ValueError(f"{type(self).__name__}: lr must be positive, got {lr}")
        self.lr = lr

    def zero_grad(self):
        """Forget the accumulated gradient of every parameter."""
        for p in self.params:
            p.grad = None

    def state_dict(self):
        """Arrays and numbers needed to resume exactly (see `load_state_dict`)."""
        return {"lr": self.lr}

    def load_state_dict(self, state):
        """Restore what `state_dict` returned."""
        self.lr = float(state["lr"])


class SGD(Optimizer):
    """p -= lr * grad."""

    def __init__(self, params, lr):
        super().__init__(params, lr)
        self._scratch = {}           # id(param) -> its lr * grad array, reused every step

    def step(self):
        """Update every parameter that has a gradient, in place (lr * grad goes through one
        scratch array per parameter, kept: no fresh array per step)."""
        for p in self.params:
            if p.grad is not None:
                scratch = self._scratch.get(id(p))
                if scratch is None or scratch.shape != p.shape or scratch.dtype != p.dtype:
                    scratch = self._scratch[id(p)] = xp.empty_like(p.data)
                xp.multiply(p.grad.data, p.data.dtype.type(self.lr), out=scratch)
                p.data -= scratch


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, lr)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.t = 0
        self.m = [xp.zeros_like(p.data) for p in self.params]
        self.v = [xp.zeros_like(p.data) for p in self.params]

    def step(self):
        """One Adam update of every parameter that has a gradient, in place."""
        self.t += 1
        correction1 = 1 - self.beta1 ** self.t
        correction2 = 1 - self.beta2 ** self.t
        for p, m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            g = p.grad.data
            m *= self.beta1
            m += (1 - self.beta1) * g
            v *= self.beta2
            v += (1 - self.beta2) * g * g
            step = self.lr / correction1
            p.data -= (step * m / (xp.sqrt(v / correction2) + self.eps)).astype(p.dtype)

    def state_dict(self):
        state = {"lr": self.lr, "t": self.t}
        state.update({f"m{k}": m for k, m in enumerate(self.m)})
        state.update({f"v{k}": v for k, v in enumerate(self.v)})
        return state

    def load_state_dict(self, state):
        """Restore the step count and both moment estimates from `state_dict`; a state for
        other parameters (count or shapes) is a ValueError."""
        expected = {"lr", "t"} | {f"{w}{k}" for w in "mv" for k in range(len(self.params))}
        if set(state) != expected:
            raise ValueError(f"Adam.load_state_dict: expected entries {sorted(expected)}, got "
                             f"{sorted(state)}")
        for k, p in enumerate(self.params):
            for name in (f"m{k}", f"v{k}"):
                if xp.shape(state[name]) != p.shape:
                    raise ValueError(f"Adam.load_state_dict: {name} has shape "
                                     f"{xp.shape(state[name])}, parameter {k} has {p.shape}")
        super().load_state_dict(state)
        self.t = int(state["t"])
        for k in range(len(self.params)):
            self.m[k][...] = state[f"m{k}"]
            self.v[k][...] = state[f"v{k}"]


def clip_grad_norm(params, max_norm):
    """Scale all gradients together so their global L2 norm is at most max_norm.

    Returns the norm before clipping. Gradients are replaced, never modified in place.
    """
    grads = [p.grad for p in params if p.grad is not None]
    total = math.sqrt(sum(_sum_of_squares(g.data) for g in grads))
    if not math.isfinite(total):
        raise FloatingPointError(f"clip_grad_norm: the gradient norm is {total}")
    if total > max_norm:
        scale = max_norm / (total + 1e-6)
        for p in params:
            if p.grad is not None:
                p.grad = type(p.grad)(p.grad.data * p.grad.dtype.type(scale))
    return total


def _sum_of_squares(array):
    """sum(array ** 2) as a Python float: one BLAS dot in the array's dtype (no float64 copy
    of every gradient), redone in float64 only if that overflowed."""
    flat = array.reshape(-1)
    total = float(xp.dot(flat, flat))
    if not math.isfinite(total):
        total = float(xp.sum(xp.square(flat, dtype=xp.float64)))
    return total


class DecayOnPlateau:
    """Divide the learning rate by `1/factor` whenever the metric (lower is better) does not
    improve on the best so far: the book's rule is factor=0.25 on validation perplexity."""

    def __init__(self, optimizer, factor=0.25):
        self.optimizer = optimizer
        self.factor = factor
        self.best = math.inf

    def step(self, metric):
        """Returns True when the metric improved."""
        if metric < self.best:
            self.best = metric
            return True
        self.optimizer.lr *= self.factor
        return False
