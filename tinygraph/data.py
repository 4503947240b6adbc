"""Batching for training scripts: shuffle, batch, pad variable-length sequences with a mask,
bucket by length.

    for questions, answers in batches((questions, answers), 32, rng=0):
        ...
    ids, mask = pad([[5, 2, 9], [4], [7, 7]])      # (3, 3) ids, (3, 3) bool: True = real

A training run that may be resumed wants its epoch order to be a function of (seed, epoch),
never of how many batches were drawn before: `Batches` gives the position-th batch of an
epoch directly, so a run resumed mid-epoch reads exactly the batches it would have read.

Everything here is host-side index arithmetic on arrays; nothing records a graph.
"""
import numbers

from .backend import xp
from .core.generator import default_generator

__all__ = ["Batches", "batches", "buckets", "epoch_order", "length_mask", "pad"]


# --- checks ----------------------------------------------------------------------------------

def _check_batch_size(batch_size):
    if (isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral)
            or batch_size < 1):
        raise ValueError(f"batch_size must be an integer of at least 1, got {batch_size!r}")
    return int(batch_size)


def _count_and_arrays(data):
    """(number of examples, arrays or None) of `data`: a count, one array, or a tuple/list of
    arrays of equal first dimension (aligned: row k of each is example k)."""
    if isinstance(data, numbers.Integral) and not isinstance(data, bool):
        count, arrays = int(data), None
    elif isinstance(data, (tuple, list)):
        if not data:
            raise ValueError("batches of no arrays: give a count or at least one array")
        arrays = [_array(a) for a in data]
        sizes = [a.shape[0] if a.ndim else None for a in arrays]
        if None in sizes:
            raise ValueError("every array to batch needs a first (example) dimension; "
                             f"array {sizes.index(None)} is a scalar")
        if len(set(sizes)) > 1:
            raise ValueError("the arrays to batch must have the same number of examples "
                             f"(first dimension), got {', '.join(map(str, sizes))}"
                             f"{_RAGGED_HINT}")
        count = sizes[0]
    else:
        array = _array(data)
        if array.ndim == 0:
            raise ValueError(f"batches needs a count or arrays of examples, got {data!r}")
        count, arrays = array.shape[0], [array]
    if count < 1:
        raise ValueError(f"nothing to batch: {count} examples")
    return count, arrays


_RAGGED_HINT = (" (for a list of sequences of different lengths, batch their indices, "
                "batches(len(sequences), batch_size), and pad each batch's sequences with pad)")


def _array(data):
    """data as an array; sequences of different lengths are refused with the way to batch
    them (numpy's own "inhomogeneous shape" error would not say it)."""
    try:
        return xp.asarray(data)
    except ValueError:
        raise ValueError("cannot batch sequences of different lengths as one array"
                         + _RAGGED_HINT) from None


def _generator(rng):
    """A numpy Generator from `rng`: a Generator (used, and advanced, as is), an int or a
    tuple of ints (a seed: e.g. (seed, epoch)), or None: tinygraph's default generator, as
    layers and dropout use it (repeatable after tg.manual_seed)."""
    if rng is None:
        return default_generator()
    if isinstance(rng, xp.random.Generator):
        return rng
    return xp.random.default_rng(rng)


# --- orders ----------------------------------------------------------------------------------

def epoch_order(count, seed, epoch):
    """The shuffled order of `count` examples in epoch `epoch`: a function of (seed, epoch)
    alone, so any epoch's order can be made again without replaying the earlier ones."""
    return _generator((seed, epoch)).permutation(count)


def _chunks(order, batch_size, drop_last):
    """`order` cut into consecutive batches of batch_size (the last one shorter, or dropped)."""
    stop = len(order) - len(order) % batch_size if drop_last else len(order)
    return [order[k:k + batch_size] for k in range(0, stop, batch_size)]


def buckets(lengths, batch_size, shuffle=True, rng=None, drop_last=False):
    """Batches of example indices grouped by length, so that a batch pads little: examples
    sorted by length (ties in a random order), cut into batches, the batches shuffled.
    Returns a list of index arrays; every example is in exactly one (but for the short batch
    of the longest examples, with drop_last). shuffle=False keeps the sorted order (ties by
    index) and the batches from shortest to longest."""
    batch_size = _check_batch_size(batch_size)
    lengths = xp.asarray(lengths)
    if lengths.ndim != 1 or len(lengths) == 0:
        raise ValueError(f"buckets needs a 1-d array of lengths, got shape {lengths.shape}")
    if not xp.issubdtype(lengths.dtype, xp.integer) or (lengths < 0).any():
        raise ValueError("lengths must be integers >= 0")
    rng = _generator(rng) if shuffle else None
    order = rng.permutation(len(lengths)) if shuffle else xp.arange(len(lengths))
    order = order[xp.argsort(lengths[order], kind="stable")]
    groups = _chunks(order, batch_size, drop_last)
    if shuffle:
        groups = [groups[k] for k in rng.permutation(len(groups))]
    return groups


def batches(data, batch_size, shuffle=True, rng=None, drop_last=False):
    """One pass over `data` in batches of `batch_size`.

    data: a count n (yields index arrays into range(n)), one array (yields its row slices) or
    a tuple/list of arrays with the same first dimension (yields tuples of aligned slices).
    shuffle: a new random order (from `rng`: a numpy Generator, a seed, or None for the
    default generator, see tg.manual_seed); False keeps the order. drop_last: leave out a
    last, shorter batch.
    """
    batch_size = _check_batch_size(batch_size)
    count, arrays = _count_and_arrays(data)
    order = _generator(rng).permutation(count) if shuffle else xp.arange(count)
    for rows in _chunks(order, batch_size, drop_last):
        yield _take(arrays, data, rows)


def _take(arrays, data, rows):
    if arrays is None:
        return rows
    if isinstance(data, (tuple, list)):
        return tuple(a[rows] for a in arrays)
    return arrays[0][rows]


class Batches:
    """The batches of every epoch of a seeded run, by (epoch, position).

    data: as for `batches`. Each epoch's order is `epoch_order(count, seed, epoch)` (or, with
    `lengths`, `buckets(lengths, batch_size, rng=(seed, epoch))`): a function of the seed and
    the epoch, so a run resumed at (epoch, position) reads the batches it would have read.
    drop_last (the default here: every step sees a full batch) leaves a shorter last batch out.
    """

    def __init__(self, data, batch_size, seed=0, shuffle=True, drop_last=True, lengths=None):
        self.batch_size = _check_batch_size(batch_size)
        self.data = data
        self.count, self.arrays = _count_and_arrays(data)
        self.seed, self.shuffle, self.drop_last = seed, shuffle, drop_last
        if lengths is not None:
            lengths = xp.asarray(lengths)
            if lengths.shape != (self.count,):
                raise ValueError(f"lengths has shape {lengths.shape}, expected one per "
                                 f"example ({self.count},)")
        self.lengths = lengths
        if len(self) == 0:
            raise ValueError(f"{self.count} examples are fewer than one batch of "
                             f"{self.batch_size} (drop_last)")
        self._cached = (None, None)       # (epoch, its batches): one epoch's order, kept

    def __len__(self):
        """Batches per epoch."""
        full, rest = divmod(self.count, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def epoch(self, epoch):
        """The index arrays of epoch `epoch`'s batches, in order."""
        if self._cached[0] != epoch:
            self._cached = (epoch, self._make(epoch))
        return self._cached[1]

    def _make(self, epoch):
        if self.lengths is not None:
            return buckets(self.lengths, self.batch_size, self.shuffle, (self.seed, epoch),
                           self.drop_last)
        order = (epoch_order(self.count, self.seed, epoch) if self.shuffle
                 else xp.arange(self.count))
        return _chunks(order, self.batch_size, self.drop_last)

    def indices(self, epoch, position):
        """The example indices of the position-th batch of epoch `epoch`."""
        groups = self.epoch(epoch)
        if not 0 <= position < len(groups):
            raise IndexError(f"batch {position} of an epoch of {len(groups)} batches")
        return groups[position]

    def batch(self, epoch, position):
        """The position-th batch of epoch `epoch`: indices, or the arrays' rows (see data)."""
        return _take(self.arrays, self.data, self.indices(epoch, position))


# --- padding ---------------------------------------------------------------------------------

def length_mask(lengths, width=None, side="right"):
    """(len(lengths), width) bool: True at the lengths[n] real positions of row n, False at
    padding (after them, or before them with side="left"). width: default max(lengths)."""
    lengths = xp.asarray(lengths)
    if lengths.ndim != 1:
        raise ValueError(f"lengths must be 1-d, got shape {lengths.shape}")
    width = int(lengths.max(initial=0)) if width is None else width
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    if lengths.size and (lengths.min() < 0 or lengths.max() > width):
        raise ValueError(f"lengths must be between 0 and the width {width}, got "
                         f"{int(lengths.min())}..{int(lengths.max())}")
    positions = xp.arange(width)[None, :]
    if side == "right":
        return positions < lengths[:, None]
    return positions >= width - lengths[:, None]


def _exactly(sequence, dtype, k):
    """Sequence k as an array of `dtype` (None: its own), refusing a conversion that would
    change values (floats to integers would truncate them)."""
    array = xp.asarray(sequence)
    if dtype is None or array.dtype == dtype:
        return array
    with xp.errstate(invalid="ignore"):
        converted = array.astype(dtype)
    if not xp.array_equal(converted, array, equal_nan=converted.dtype.kind in "fc"):
        raise ValueError(f"pad: sequence {k} ({array.dtype}) cannot be held exactly in "
                         f"{xp.dtype(dtype).name}; convert it yourself if rounding is meant")
    return converted


def pad(sequences, value=0, dtype=None, width=None, side="right", return_lengths=False):
    """Sequences of different lengths as one array and a mask.

    sequences: a non-empty list of sequences (lists or arrays; each of shape ``(length,
    *features)``, the features the same for all). Returns ``(array, mask)``: the array of shape
    ``(batch, width, *features)``, the mask ``(batch, width)`` bool, True at real entries; and
    the lengths too with return_lengths. width: default the
    longest length; a longer sequence is an error. side="left" puts the padding first.
    """
    if isinstance(sequences, (str, bytes)) or not hasattr(sequences, "__len__"):
        raise ValueError(f"pad needs a list of sequences, got {type(sequences).__name__}")
    if len(sequences) == 0:
        raise ValueError("pad needs at least one sequence, got none")
    arrays = [_exactly(s, dtype, k) for k, s in enumerate(sequences)]
    for k, a in enumerate(arrays):
        if a.ndim == 0:
            raise ValueError(f"sequence {k} is a scalar ({a!r}), not a sequence")
        if a.shape[1:] != arrays[0].shape[1:]:
            raise ValueError(f"sequence {k} has features of shape {a.shape[1:]}, sequence 0 "
                             f"{arrays[0].shape[1:]}: only the lengths may differ")
    lengths = xp.array([len(a) for a in arrays])
    longest = int(lengths.max())
    width = longest if width is None else width
    if longest > width:
        raise ValueError(f"sequence {int(lengths.argmax())} has length {longest}, longer "
                         f"than width {width}")
    if dtype is None:      # an empty sequence ([], float by default) does not decide it
        dtype = xp.result_type(*([a for a in arrays if a.size] or arrays))
    with xp.errstate(invalid="ignore"):
        kept = xp.asarray(value).astype(dtype)
    if not xp.array_equal(kept, value, equal_nan=kept.dtype.kind in "fc"):
        raise ValueError(f"pad: the padding value {value!r} cannot be held exactly in "
                         f"{xp.dtype(dtype).name} (the sequences' dtype); give another value "
                         "or dtype=")
    out = xp.full((len(arrays), width, *arrays[0].shape[1:]), value, dtype=dtype)
    mask = length_mask(lengths, width, side)
    for row, a in enumerate(arrays):
        start = 0 if side == "right" else width - len(a)
        out[row, start:start + len(a)] = a
    return (out, mask, lengths) if return_lengths else (out, mask)
