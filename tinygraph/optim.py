"""Optimizers, gradient clipping and learning-rate decay. Updates work on the arrays in place,
outside the graph, and keep the parameters' dtype."""
import math

from .backend import xp


class Optimizer:
    """Base of the optimizers: holds the parameters (a list, in a fixed order) and the
    learning rate `lr`, which a schedule (`StepLR`, `CosineLR`, `DecayOnPlateau`, ...) may change
    between steps.
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
    """p -= lr * grad; with `momentum`, PyTorch's heavy ball (dampening 0):
    buf = momentum * buf + g, step along buf, or along g + momentum * buf with `nesterov`.
    `weight_decay` adds weight_decay * p to the gradient first (L2, coupled)."""

    def __init__(self, params, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(params, lr)
        if momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: momentum and weight_decay must be >= 0, got {momentum}, "
                             f"{weight_decay}")
        if nesterov and momentum == 0:
            raise ValueError("SGD: nesterov needs a momentum > 0")
        self.momentum, self.nesterov, self.weight_decay = momentum, nesterov, weight_decay
        self._scratch = {}           # id(param) -> its lr * grad array, reused every step
        # A zero buffer makes the first step buf = g, as PyTorch's clone of the first gradient.
        self.buffers = [xp.zeros_like(p.data) for p in self.params] if momentum else []

    def step(self):
        """Update every parameter that has a gradient, in place."""
        if self.momentum or self.weight_decay:
            self._step_with_momentum_or_decay()
            return
        # Plain SGD: lr * grad goes through one scratch array per parameter, kept: no fresh
        # array per step.
        for p in self.params:
            if p.grad is not None:
                scratch = self._scratch.get(id(p))
                if scratch is None or scratch.shape != p.shape or scratch.dtype != p.dtype:
                    scratch = self._scratch[id(p)] = xp.empty_like(p.data)
                xp.multiply(p.grad.data, p.data.dtype.type(self.lr), out=scratch)
                p.data -= scratch

    def _step_with_momentum_or_decay(self):
        for k, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad.data
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            if self.momentum:
                buf = self.buffers[k]
                buf *= self.momentum
                buf += g
                g = g + self.momentum * buf if self.nesterov else buf
            p.data -= (self.lr * g).astype(p.dtype, copy=False)

    def state_dict(self):
        state = {"lr": self.lr}
        state.update({f"buf{k}": buf for k, buf in enumerate(self.buffers)})
        return state

    def load_state_dict(self, state):
        """Restore the learning rate and the momentum buffers from `state_dict`; a state for
        other parameters (count or shapes) is a ValueError."""
        _check_state("SGD", state, {"lr"}, ["buf"] if self.momentum else [], self.params)
        super().load_state_dict(state)
        for k, buf in enumerate(self.buffers):
            buf[...] = state[f"buf{k}"]


def _check_state(owner, state, scalars, array_prefixes, params):
    """Raise ValueError unless `state` has exactly the scalars and one array per parameter
    under each prefix, shaped like that parameter."""
    expected = set(scalars) | {f"{w}{k}" for w in array_prefixes for k in range(len(params))}
    if set(state) != expected:
        raise ValueError(f"{owner}.load_state_dict: expected entries {sorted(expected)}, got "
                         f"{sorted(state)}")
    for k, p in enumerate(params):
        for name in (f"{w}{k}" for w in array_prefixes):
            if xp.shape(state[name]) != p.shape:
                raise ValueError(f"{owner}.load_state_dict: {name} has shape "
                                 f"{xp.shape(state[name])}, parameter {k} has {p.shape}")


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


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as PyTorch's AdamW: each
    parameter first shrinks by p -= lr * weight_decay * p, then takes the Adam step."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr, betas, eps)
        if weight_decay < 0:
            raise ValueError(f"AdamW: weight_decay must be >= 0, got {weight_decay}")
        self.weight_decay = weight_decay

    def step(self):
        for p in self.params:
            if p.grad is not None:
                p.data *= p.data.dtype.type(1 - self.lr * self.weight_decay)
        super().step()


class RMSprop(Optimizer):
    """RMSprop as PyTorch's: sq = alpha * sq + (1 - alpha) * g^2, p -= lr * g / (sqrt(sq) + eps).
    `centered` subtracts the squared running mean of g from sq first; `momentum` steps along
    buf = momentum * buf + g / (sqrt(sq) + eps); `weight_decay` adds weight_decay * p to g."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
        super().__init__(params, lr)
        self.alpha, self.eps, self.weight_decay = alpha, eps, weight_decay
        self.momentum, self.centered = momentum, centered
        self.square_avg = [xp.zeros_like(p.data) for p in self.params]
        self.grad_avg = [xp.zeros_like(p.data) for p in self.params] if centered else []
        self.buffers = [xp.zeros_like(p.data) for p in self.params] if momentum else []

    def step(self):
        """One RMSprop update of every parameter that has a gradient, in place."""
        for k, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad.data
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            sq = self.square_avg[k]
            sq *= self.alpha
            sq += (1 - self.alpha) * g * g
            if self.centered:
                mean = self.grad_avg[k]
                mean += (1 - self.alpha) * (g - mean)
                denom = xp.sqrt(sq - mean * mean) + self.eps
            else:
                denom = xp.sqrt(sq) + self.eps
            if self.momentum:
                buf = self.buffers[k]
                buf *= self.momentum
                buf += g / denom
                update = self.lr * buf
            else:
                update = self.lr * (g / denom)
            p.data -= update.astype(p.dtype, copy=False)

    def _array_prefixes(self):
        return ["sq"] + (["mean"] if self.centered else []) + (["buf"] if self.momentum else [])

    def state_dict(self):
        state = {"lr": self.lr}
        for prefix, arrays in zip(["sq", "mean", "buf"],
                                  [self.square_avg, self.grad_avg, self.buffers]):
            state.update({f"{prefix}{k}": a for k, a in enumerate(arrays)})
        return state

    def load_state_dict(self, state):
        """Restore the learning rate and the running averages from `state_dict`."""
        _check_state("RMSprop", state, {"lr"}, self._array_prefixes(), self.params)
        super().load_state_dict(state)
        for prefix, arrays in zip(["sq", "mean", "buf"],
                                  [self.square_avg, self.grad_avg, self.buffers]):
            for k, a in enumerate(arrays):
                a[...] = state[f"{prefix}{k}"]


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


class Schedule:
    """Base of the step schedules: sets `optimizer.lr` to `lr_at(count)` from the learning rate
    the optimizer had when the schedule was made (`base_lr`). Call `step()` once after each
    optimizer step, as with torch.optim.lr_scheduler; works with any `Optimizer`."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.count = 0
        optimizer.lr = self.lr_at(0)

    def lr_at(self, count):
        """The learning rate after `count` calls of `step`."""
        raise NotImplementedError

    def step(self):
        """Advance one step and set the optimizer's learning rate (`optimizer.lr`). Returns
        None, as torch's schedules do (a script's REPL output stays the same)."""
        self.count += 1
        self.optimizer.lr = self.lr_at(self.count)

    def state_dict(self):
        """The base learning rate and the step count: with the optimizer's own state, enough
        to continue exactly."""
        return {"base_lr": self.base_lr, "count": self.count}

    def load_state_dict(self, state):
        """Restore `state_dict` and set the optimizer's learning rate for that step."""
        self.base_lr = float(state["base_lr"])
        self.count = int(state["count"])
        self.optimizer.lr = self.lr_at(self.count)


class StepLR(Schedule):
    """lr = base_lr * gamma ** (count // step_size), as torch's StepLR."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        if step_size < 1:
            raise ValueError(f"StepLR: step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer)

    def lr_at(self, count):
        return self.base_lr * self.gamma ** (count // self.step_size)


class ExponentialLR(Schedule):
    """lr = base_lr * gamma ** count, as torch's ExponentialLR."""

    def __init__(self, optimizer, gamma):
        self.gamma = gamma
        super().__init__(optimizer)

    def lr_at(self, count):
        return self.base_lr * self.gamma ** count


class CosineLR(Schedule):
    """Linear warm-up then cosine decay: for count < warmup_steps, lr = base_lr * (count + 1) /
    warmup_steps; then lr falls from base_lr to min_lr along half a cosine, reaching min_lr at
    count = total_steps and staying there."""

    def __init__(self, optimizer, total_steps, warmup_steps=0, min_lr=0.0):
        if not 0 <= warmup_steps < total_steps:
            raise ValueError(f"CosineLR: need 0 <= warmup_steps < total_steps, got "
                             f"{warmup_steps}, {total_steps}")
        self.total_steps, self.warmup_steps, self.min_lr = total_steps, warmup_steps, min_lr
        super().__init__(optimizer)

    def lr_at(self, count):
        if count < self.warmup_steps:
            return self.base_lr * (count + 1) / self.warmup_steps
        progress = min(1.0, (count - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
