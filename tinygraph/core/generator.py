"""The default random generator: what layers and dropout draw from when given no `rng`.

    tg.manual_seed(0)                 # as torch.manual_seed
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)    # draw in turn: a and b differ
    tg.default_generator()            # the numpy Generator they drew from

One numpy Generator (PCG64) per process, seeded from OS entropy when tinygraph is imported;
`manual_seed(s)` moves that same object to seed s (so a compiled step's dropout node that
holds it draws from the new seed too). An explicit `rng` given to a layer always wins.

Threads: each draw is atomic (a numpy Generator holds its bit generator's lock while it
draws) and `manual_seed` takes the same lock, so no draw sees a half-set state. Draws from
several threads interleave in the order they take the lock: a model built while another
thread draws gets other numbers than it would alone. Give each thread its own `rng` where
that matters.

Fork: a forked child reseeds its default generator from OS entropy, as Python's `random`
module does (torch does not: its forked workers repeat the parent's draws unless each is
seeded). Without this, two workers would draw the same dropout masks. A child that must be
reproducible calls `manual_seed` itself, e.g. with a base seed plus its worker number.
"""
import os

from ..backend import xp

_GENERATOR = xp.random.Generator(xp.random.PCG64())


def default_generator():
    """The numpy Generator layers (`Linear`, `Embedding`, `Dropout`, the recurrent cells)
    draw from when given no `rng` (see the module docstring)."""
    return _GENERATOR


def manual_seed(seed):
    """Seed the default generator (in place) with a non-negative integer; returns it."""
    if isinstance(seed, bool) or not isinstance(seed, (int, xp.integer)) or seed < 0:
        raise ValueError(f"manual_seed: the seed must be a non-negative integer, got {seed!r}")
    _reseed(xp.random.PCG64(int(seed)))
    return _GENERATOR


def _reseed(bit_generator):
    with _GENERATOR.bit_generator.lock:
        _GENERATOR.bit_generator.state = bit_generator.state


def _before_fork():
    # Wait for a draw in progress, so the child does not inherit a held lock.
    _GENERATOR.bit_generator.lock.acquire()


def _after_fork_in_parent():
    _GENERATOR.bit_generator.lock.release()


def _after_fork_in_child():
    _GENERATOR.bit_generator.lock.release()
    _reseed(xp.random.PCG64())


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)
