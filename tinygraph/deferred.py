"""Gradient contributions the fast backward pass may compute late, and more cheaply.

While a backward pass runs unrecorded, two kinds of vjp results are returned as a recipe
instead of an array:

- the gradient of a slice or an index (a zero buffer with one piece filled in) is added
  straight into the buffer where the gradients of that tensor are summed;
- the gradient of a weight used by many matmuls (Wh, once per time step) is kept as the list
  of its factors, and all of them become one matmul: sum_t a_t^T g_t = [a_1..a_T]^T [g_1..g_T],
  so the weight gradient costs one well-shaped matmul per sequence instead of T small ones
  and T weight-sized additions.

Reading `.data` computes the array, so a deferred value can go wherever a Tensor can. The
arithmetic is the vjp's own; only the order of evaluation changes. Recorded backward passes
(create_graph=True) never defer.
"""
from .backend import xp
from .mode import state
from .tensor import Tensor


def deferring():
    """True while the fast (unrecorded) backward pass runs."""
    return state.defer_gradients and not state.grad_enabled


class Deferred(Tensor):
    """Base: subclasses give shape, dtype, `compute()`, `add_into(buffer)` and `merge`."""

    __slots__ = ("_value",)

    def __init__(self):
        super().__init__(None)

    @property
    def data(self):
        if self._value is None:
            self._value = self.compute()
        return self._value

    @data.setter
    def data(self, value):
        self._value = value

    def add_into(self, buffer):
        buffer += self.data

    def merge(self, other):
        """A deferred value for self + other, or None when there is no cheaper way."""
        return None


class DeferredScatter(Deferred):
    """zeros(shape) with g put in at the scatter op's key."""

    __slots__ = ("prim", "source", "indices")

    def __init__(self, prim, source, indices=()):
        super().__init__()
        self.prim, self.source, self.indices = prim, source, indices

    shape = property(lambda self: self.prim.shape)
    dtype = property(lambda self: self.source.dtype)

    def compute(self):
        return self.prim.forward(self.source.data, *[t.data for t in self.indices])

    def add_into(self, buffer):
        self.prim.add_into(buffer, self.source.data, *[t.data for t in self.indices])


class DeferredMatmul(Deferred):
    """sum_i lefts[i]^T @ rights[i] for 2-D factors: a weight's gradient over its uses."""

    __slots__ = ("lefts", "rights")

    def __init__(self, lefts, rights):
        super().__init__()
        self.lefts, self.rights = lefts, rights

    shape = property(lambda self: (self.lefts[0].shape[1], self.rights[0].shape[1]))
    dtype = property(lambda self: self.rights[0].dtype)

    def compute(self):
        if len(self.lefts) == 1:
            return self.lefts[0].T @ self.rights[0]
        return xp.concatenate(self.lefts).T @ xp.concatenate(self.rights)

    def merge(self, other):
        if isinstance(other, DeferredMatmul):
            return DeferredMatmul(self.lefts + other.lefts, self.rights + other.rights)
        return None
