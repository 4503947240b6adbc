"""Indexing: slice (basic keys, a view), index (integer arrays, a gather), their gradients
slice_grad and index_grad (scatters into zeros), and ids_in_range (a checked pass-through)."""
from ..backend import xp
from ..core.primitive import Primitive, apply
from ..core.tensor import Tensor, captured, describe
from .labels import key_text
from .operands import placeholder, tensor_arg
from . import shape as _shape


class _IndexSlot:
    """Marks the place of an integer index array in an Index key."""

    def __repr__(self):
        return "<ints>"


INDEX_SLOT = _IndexSlot()


def fill(key, indices):
    """The key with its index slots replaced by the index arrays, in order."""
    it = iter(indices)
    return tuple(next(it) if part is INDEX_SLOT else part for part in key)


class Slice(Primitive):
    """x[key] for a basic key (ints, slices, None, Ellipsis): a view."""

    name = "slice"
    rules = "zeros with {gy} put in at the slice"
    selects_part = True

    def __init__(self, key):
        self.key = key

    def forward(self, a):
        return a[self.key]

    def spec(self, a):
        return placeholder(a.shape)[self.key].shape, a.dtype

    def pending_gradient(self, node, k):
        return (node.output,)      # a lazy slice_grad term: g, added into a buffer at the end

    def flops(self, node):
        return 0                   # a view

    def vjp(self, node, g, needs):
        return [apply(SliceGrad(self.key, node.inputs[0].shape), g)]

    def label(self, inputs, inline):
        return f"{super().label(inputs, inline)} {key_text(self.key)}"

    def write(self, names):
        return f"{names[0]}{key_text(self.key)}"


class Scatter(Primitive):
    """Base of the ops that put g into zeros of `shape` at `key` (the gradients of indexing).

    `add_into(target, g, *indices)` does the same into an existing buffer, in place: the
    accumulator sums the gradients of many slices of one tensor (one per time step, say)
    into one buffer instead of building a zero-filled array for each.
    """

    sum_term = True

    def __init__(self, key, shape):
        self.key = key
        self.shape = shape

    def forward(self, g, *indices):
        out = xp.zeros(self.shape, dtype=g.dtype)
        self.add_into(out, g, *indices)
        return out

    def forward_into(self, out, g, *indices):
        out.fill(0)
        self.add_into(out, g, *indices)
        return out

    def spec(self, g, *indices):
        return self.shape, g.dtype


class SliceGrad(Scatter):
    """Place g at `key` in zeros of `shape`: the gradient of a slice, itself differentiable."""

    name = "slice_grad"
    rules = "the slice of {gy}"
    join_name = "slice_tiling"
    join_for_reading = True   # for an LSTM cell: the textbook dA = concat(df, dg, di, do)

    def add_into(self, target, g):
        target[self.key] += g

    def vjp(self, node, g, needs):
        return [apply(Slice(self.key), g)]

    def label(self, inputs, inline):
        return f"{super().label(inputs, inline)} {key_text(self.key)}"

    def write(self, names):
        return f"{names[0]} put in zeros at {key_text(self.key)}"

    @staticmethod
    def join(terms):
        """Slice gradients whose pieces tile their buffer along one axis -> one concat of the
        pieces in order (a piece cut out by an integer, x[:, t], gets its axis back)."""
        shape = terms[0]._node.prim.shape
        spans = []
        for t in terms:
            span = _span(t._node.prim.key, shape) if t._node.prim.shape == shape else None
            if span is None:
                return None
            spans.append(span + (t,))
        axis = spans[0][0]
        spans.sort(key=lambda s: s[1])
        end = 0
        for span_axis, start, stop, _, _ in spans:
            if span_axis != axis or start != end:
                return None
            end = stop
        if end != shape[axis]:
            return None
        pieces = [_shape.reshape(t._node.inputs[0], shape[:axis] + (1,) + shape[axis + 1:])
                  if dropped else t._node.inputs[0] for _, _, _, dropped, t in spans]
        # Unchecked: the pieces tile the buffer along `axis` (checked above), so they fit (the
        # checked concat() costs 1.5 us per piece more, once per LSTM step on a batch of 1).
        out = apply(_shape.Concat(axis), *pieces)
        if out._node is not None:
            out._node.grad_sources = tuple(t._node.forward_node for *_, t in spans)
        return [out]


def _span(key, shape):
    """(axis, start, stop, dropped) when `key` selects one contiguous run along a single axis;
    dropped: the key is an integer there (x[:, t]), so the slice has no such axis."""
    if len(key) > len(shape):
        return None
    span = None
    for axis, k in enumerate(key):
        n = shape[axis]
        if type(k) is slice:
            start, stop, step = k.indices(n)
            if start == 0 and stop == n and step == 1:
                continue
            if step != 1 or span is not None or stop <= start:
                return None
            span = (axis, start, stop, False)
        elif isinstance(k, (int, xp.integer)):
            if span is not None or not -n <= k < n:
                return None
            span = (axis, k % n, k % n + 1, True)
        else:
            return None
    return span


class Index(Primitive):
    """x[key] with integer arrays in the key (a gather, e.g. an embedding lookup): a copy.

    The integer arrays are inputs of the node, after x (the key holds INDEX_SLOT where each
    one goes), not attributes: so the ids are part of the graph, drawn as its inputs, and a
    compiled program can feed new ids on every call (see tinygraph.compile).
    """

    name = "index"
    formula = "{0}[{1}]"
    rules = ("zeros with {gy} added in at the ids", None)
    selects_part = True

    def __init__(self, key):
        self.key = key

    def forward(self, a, *indices):
        return a[fill(self.key, indices)]

    def spec(self, a, *indices):
        ids = [placeholder(t.shape, xp.intp) for t in indices]
        return placeholder(a.shape)[fill(self.key, ids)].shape, a.dtype

    def pending_gradient(self, node, k):
        return (node.output,)      # a lazy index_grad term: g, scattered into a buffer later

    def vjp(self, node, g, needs):
        indices = node.inputs[1:]
        return [apply(IndexGrad(self.key, node.inputs[0].shape), g, *indices)] + [
            None] * len(indices)

    def label(self, inputs, inline):
        # The integer ids are inputs of the node; the key shows where they go.
        return f"{super().label(inputs[:1], inline)} {key_text(fill(self.key, inputs[1:]))}"


class IndexGrad(Scatter):
    """Scatter-add g into zeros of `shape` at `key`: repeated indices accumulate."""

    name = "index_grad"
    rules = ("{gy} at the ids", None)

    def add_into(self, target, g, *indices):
        xp.add.at(target, fill(self.key, indices), g)

    def vjp(self, node, g, needs):
        indices = node.inputs[1:]
        return [apply(Index(self.key), g, *indices)] + [None] * len(indices)

    def label(self, inputs, inline):
        return f"{super().label(inputs[:1], inline)} {key_text(fill(self.key, inputs[1:]))}"


class IdsInRange(Primitive):
    """Integer ids, unchanged, once each is checked to lie in [0, size).

    Embedding rows and class targets must not wrap around the way numpy reads a negative
    index. The check is a node, not Python code before the graph, so that a compiled program
    checks the ids of every call, not only those of its trace.
    """

    name = "ids_in_range"

    def __init__(self, size, message):
        self.size = size
        self._message = message       # with {bad} and {size}

    def forward(self, ids):
        if ids.size and (ids.min() < 0 or ids.max() >= self.size):
            bad = ids[(ids < 0) | (ids >= self.size)].flat[0]
            raise ValueError(self._message.format(bad=bad, size=self.size))
        return ids

    def spec(self, ids):
        return ids.shape, ids.dtype

    def vjp(self, node, g, needs):
        return [None]


def ids_in_range(ids, size, message):
    """`ids` (an integer Tensor) after checking 0 <= id < size; else ValueError(message)."""
    return apply(IdsInRange(size, message), ids)


def _normalize_key(key, op_name):
    """The key as a tuple, with its integer arrays moved out: (key with INDEX_SLOT in their
    places, the integer index Tensors in order). Lists and arrays become constant Tensors
    holding a copy (the backward must see the indices the forward used); an integer Tensor
    is used as it is, as an input of the graph."""
    parts = key if isinstance(key, tuple) else (key,)
    for part in parts:          # the common case first: a basic key (x[:, a:b]), as it is
        kind = type(part)
        if kind is not slice and kind is not int and part is not None and part is not Ellipsis:
            break
    else:
        return parts, []
    normalized, indices = [], []
    for part in parts:
        if isinstance(part, list):
            part = xp.asarray(part, dtype=xp.intp if len(part) == 0 else None)
        if isinstance(part, (Tensor, xp.ndarray)):
            if part.dtype == bool:
                if isinstance(part, xp.ndarray):
                    captured(part, f"a boolean mask of {op_name}")
                data = part.value() if isinstance(part, Tensor) else part
                for axis_ids in xp.nonzero(data):
                    normalized.append(INDEX_SLOT)
                    indices.append(Tensor(axis_ids, constant=True))
                continue
            if part.dtype.kind not in "iu":
                raise TypeError(f"{op_name}: index arrays must hold integers, got {part.dtype}")
            if isinstance(part, xp.ndarray):
                captured(part, f"an index array of {op_name}")
                part = Tensor(part.copy(), constant=True)
            normalized.append(INDEX_SLOT)
            indices.append(part)
        elif not (part is None or part is Ellipsis or isinstance(part, (slice, int, xp.integer))):
            raise TypeError(f"{op_name}: unsupported index {part!r} of type {type(part).__name__}")
        else:
            normalized.append(part)
    return tuple(normalized), indices


def getitem(x, key):
    """x[key]: basic slicing gives a "slice" node, integer-array indexing an "index" node
    whose index arrays are inputs of the node."""
    x = tensor_arg(x, "getitem")
    key, indices = _normalize_key(key, "getitem")
    prim = Index(key) if indices else Slice(key)
    try:                             # numpy's own rules say whether the key fits
        return apply(prim, x, *indices)
    except IndexError as e:
        shown = fill(key, [t.data if t.data is not None else t for t in indices])
        raise IndexError(f"{prim.name}: index {shown!r} does not fit {describe(x)}: {e}") from None
