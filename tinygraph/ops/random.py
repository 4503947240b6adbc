"""Randomness: dropout_mask, the one impure primitive (it draws from a generator)."""
from ..backend import xp
from ..core.generator import default_generator
from ..core.primitive import Primitive, apply


class DropoutMask(Primitive):
    """A fresh inverted-dropout mask: 1/(1-p) where an element is kept, 0 where it is dropped.

    An op with no inputs rather than a constant, so that the draw is part of the graph: a
    compiled program replaying the graph draws a new mask on every call, from the same
    generator and in the same order as eager runs would. Impure: two masks of the same
    shape are different values, so rewrites never merge or fold them.
    """

    name = "dropout_mask"
    pure = False

    def __init__(self, p, shape, dtype, rng):
        self.p, self.shape, self.dtype = p, tuple(shape), xp.dtype(dtype)
        self._rng = rng

    def forward(self):
        keep = self._rng.random(self.shape) >= self.p
        return keep.astype(self.dtype) / self.dtype.type(1 - self.p)

    def spec(self):
        return self.shape, self.dtype

    def vjp(self, node, g, needs):
        return []


def dropout_mask(p, shape, dtype, rng=None):
    """A Tensor holding a fresh mask drawn from `rng` (None: `tg.default_generator()`, the
    one `tg.manual_seed` seeds; see DropoutMask)."""
    return apply(DropoutMask(p, shape, dtype, rng if rng is not None else default_generator()))
