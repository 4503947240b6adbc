"""Losses: log_softmax (a fused primitive, for numerical stability) with its fused gradient,
cross_entropy (a composition that indexes the target entries; it never builds a one-hot
matrix), mse_loss and binary_cross_entropy_with_logits (compositions)."""
from types import SimpleNamespace

from ..backend import xp
from ..core.primitive import Primitive, apply
from ..core.tensor import Tensor, describe
from .operands import normalize_axes, numpy_keywords, tensor_arg
from .elementwise import exp, neg, heaviside
from .parallel import for_row_blocks
from .indexing import INDEX_SLOT, IndexGrad, getitem, ids_in_range
from .shape import Reshape, concat, mean, reshape, sum


class LogSoftmax(Primitive):
    """log(softmax(x)) along an axis, fused for numerical stability (max subtracted first)."""

    name = "log_softmax"
    rules = "{gy} − softmax({x0}) ⊙ Σ{gy}"

    def __init__(self, axis):
        self.axis = axis

    def forward(self, a):
        return self.forward_into(xp.empty_like(a), a)

    def forward_into(self, out, a):
        (a2, out2), axis = _as_rows([a, out], self.axis)

        def rows(start, stop):      # in place: no array per ufunc, one small scratch
            x, y = _rows(a2, axis, start, stop), _rows(out2, axis, start, stop)
            xp.subtract(x, xp.max(x, axis=axis, keepdims=True), out=y)
            # exp(y) is only summed: computed CHUNK rows at a time into one scratch buffer.
            parts, scratch = [], None
            n = y.shape[0 if axis != 0 else 1] if y.ndim > 1 else 1
            for c in range(0, n, CHUNK):
                piece = _rows(y, axis, c, c + CHUNK)
                if scratch is None:
                    scratch = xp.empty_like(piece)
                e = xp.exp(piece, out=scratch if scratch.shape == piece.shape
                           else xp.empty_like(piece))
                parts.append(xp.sum(e, axis=axis, keepdims=True))
            total = parts[0] if len(parts) == 1 else xp.concatenate(
                parts, axis=0 if axis != 0 else 1)
            y -= xp.log(total)

        _over_rows(rows, a2, axis)
        return out

    def spec(self, a):
        return a.shape, a.dtype

    def vjp(self, node, g, needs):
        return [apply(LogSoftmaxGrad(self.axis), g, node.output)]

    def label(self, inputs, inline):
        return f"{super().label(inputs, inline)} axis={self.axis}"


CHUNK = 64      # rows of exp(y) at a time in log_softmax's forward (a scratch of 2.5 MB for
                # 10,000 classes in float32, reused, instead of one as big as the logits)


class LogSoftmaxGrad(Primitive):
    """g − exp(y) ⊙ Σ g along an axis: the gradient of log_softmax (y its output), in one
    in-place pass. Tested against its composed twin (exp, sum, mul, sub); its own vjp is
    written in tinygraph ops."""

    name = "log_softmax_grad"
    rules = ("{gy} − Σ({gy} ⊙ exp({x1}))", "−{gy} ⊙ exp({x1}) ⊙ Σ{x0}")

    def __init__(self, axis):
        self.axis = axis

    def forward(self, g, y):
        return self.forward_into(xp.empty_like(g), g, y)

    def forward_into(self, out, g, y):
        (g2, y2, out2), axis = _as_rows([g, y, out], self.axis)

        def rows(start, stop):
            gs, ys, o = (_rows(t, axis, start, stop) for t in (g2, y2, out2))
            xp.exp(ys, out=o)
            o *= xp.sum(gs, axis=axis, keepdims=True)
            xp.subtract(gs, o, out=o)

        _over_rows(rows, g2, axis)
        return out

    def spec(self, g, y):
        return g.shape, g.dtype

    def fuse(self, inputs):
        """g scattered at (row, class) ids into zeros (cross-entropy's gradient) and a 2-D y:
        one LogSoftmaxGradAt node, which never builds g."""
        g, y = inputs
        if self.axis != y.ndim - 1 or y.ndim < 2:
            return None
        node = g._node
        if node is not None and type(node.prim) is Reshape:    # (batch, time, classes) logits
            g = node.inputs[0]
            node = g._node
        if (node is None or type(node.prim) is not IndexGrad or g.ndim != 2
                or g.shape[1] != y.shape[-1] or node.prim.key != (INDEX_SLOT, INDEX_SLOT)
                or node.inputs[0].ndim != 1):
            return None
        v, rows, classes = node.inputs
        flat = y if y.ndim == 2 else reshape(y, g.shape)
        return reshape(apply(LogSoftmaxGradAt(), v, flat, rows, classes), y.shape)

    def vjp(self, node, u, needs):
        # out = g − e ⊙ S with e = exp(y), S = Σ g: d/dg = u − Σ(u ⊙ e); d/dy = −u ⊙ e ⊙ S.
        g, y = node.inputs
        e = exp(y)
        return [u - sum(u * e, self.axis, keepdims=True) if needs[0] else None,
                neg(u * e * sum(g, self.axis, keepdims=True)) if needs[1] else None]

    def label(self, inputs, inline):
        return f"{super().label(inputs, inline)} axis={self.axis}"


class LogSoftmaxGradAt(Primitive):
    """log_softmax_grad(g, y) along axis 1 for g = zeros with v added at (rows, classes):
    −exp(y) ⊙ S with v added at the ids, S the per-row sums of v. The gradient of
    cross-entropy through log-softmax in one pass over y, without g's (rows, classes) zeros;
    made by LogSoftmaxGrad.fuse in compiled programs."""

    name = "log_softmax_grad_at"
    rules = ("({gy} − Σ({gy} ⊙ exp({x1}))) at the ids",
             "−{gy} ⊙ exp({x1}) ⊙ Σ(zeros with {x0} added in at the ids)")

    def forward(self, v, y, rows, classes):
        return self.forward_into(xp.empty(y.shape, xp.result_type(v.dtype, y.dtype)),
                                 v, y, rows, classes)

    def forward_into(self, out, v, y, rows, classes):
        sums = xp.zeros((y.shape[0], 1), out.dtype)
        xp.add.at(sums[:, 0], rows, v)

        def block(start, stop):
            o = out[start:stop]
            xp.exp(y[start:stop], out=o)
            o *= sums[start:stop]
            xp.negative(o, out=o)

        for_row_blocks(block, y.shape[0], y.size)
        xp.add.at(out, (rows, classes), v)
        return out

    def spec(self, v, y, rows, classes):
        return y.shape, xp.result_type(v.dtype, y.dtype)

    def vjp(self, node, u, needs):
        # The op is log_softmax_grad(g, y) along axis 1 after g = index_grad(v, rows, classes):
        # the chain rule through those two ops' own vjps, not a restatement of them. Only the
        # gradient of y reads g, so g (zeros the size of y) is built only when it is needed.
        # (The parts' vjps read only their node's inputs: a namespace holding them stands in.)
        v, y, rows, classes = node.inputs
        scatter = IndexGrad((INDEX_SLOT, INDEX_SLOT), y.shape)
        g = apply(scatter, v, rows, classes) if needs[1] else None
        dg, dy = LogSoftmaxGrad(1).vjp(SimpleNamespace(inputs=(g, y)), u, needs[:2])
        dv = None if dg is None else scatter.vjp(
            SimpleNamespace(inputs=(v, rows, classes)), dg, [True, False, False])[0]
        return [dv, dy, None, None]


def _rows(array, axis, start, stop):
    """The block [start, stop) of `array` along its first axis other than `axis` (a 1-D
    array is one block)."""
    if array.ndim < 2:
        return array
    key = [slice(None)] * array.ndim
    key[0 if axis != 0 else 1] = slice(start, stop)
    return array[tuple(key)]


def _as_rows(arrays, axis):
    """The arrays as 2-D (rows, classes) views when `axis` is their last and they are
    C-ordered (the logits of a (batch, time, vocabulary) model): blocks of rows are then
    cache-sized, not whole (time, vocabulary) planes. (arrays, axis) otherwise unchanged."""
    if arrays[0].ndim > 2 and axis == arrays[0].ndim - 1 and all(
            a.flags.c_contiguous for a in arrays):
        return [a.reshape(-1, a.shape[-1]) for a in arrays], 1
    return arrays, axis


def _over_rows(fn, array, axis):
    """fn(start, stop) over row blocks of `array`, in parallel when it is large."""
    if array.ndim < 2:
        fn(0, 1)
    else:
        for_row_blocks(fn, array.shape[0 if axis != 0 else 1], array.size)


@numpy_keywords
def log_softmax(x, axis=-1):
    """log(exp(x) / sum(exp(x), axis)), computed without overflow."""
    x = tensor_arg(x, "log_softmax")
    if not xp.issubdtype(x.dtype, xp.floating):
        raise TypeError(f"log_softmax: {describe(x)} has dtype {x.dtype}; cast it to a float "
                        "dtype")
    if x.ndim == 0:
        raise ValueError("log_softmax: needs at least one dimension")
    (axis,) = normalize_axes(axis, x.ndim, "log_softmax")
    if x.shape[axis] == 0:
        raise ValueError(f"log_softmax: {describe(x)} has no entries along axis {axis}")
    return apply(LogSoftmax(axis), x)


@numpy_keywords
def softmax(x, axis=-1):
    """exp(x) / sum(exp(x), axis), as exp(log_softmax(x, axis)): no overflow, and the
    gradient is the log-softmax primitive's (attention weights over time use it)."""
    return exp(log_softmax(x, axis))


REDUCTIONS = ("mean", "sum", "none")


def cross_entropy(logits, targets, ignore_index=None, reduction="mean", label_smoothing=0.0):
    """Negative log-likelihood of integer `targets` under softmax(logits), as PyTorch's
    F.cross_entropy with the class axis last.

    logits: (..., C) floating; targets: integers of shape logits.shape[:-1] in [0, C), or
    equal to `ignore_index` (None, the default, ignores nothing: every target is checked).
    reduction: "mean" (over the targets not ignored), "sum" or "none" (one loss per target,
    0 where ignored). label_smoothing ε in [0, 1): (1 − ε)·nll + ε·mean over the classes of
    −log p, as PyTorch. The backward indexes the target entries; it never builds a one-hot
    matrix.
    """
    logits = tensor_arg(logits, "cross_entropy")
    _check_reduction(reduction, "cross_entropy")
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) \
            or not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be a number in [0, 1), got "
                         f"{label_smoothing!r}")
    if ignore_index is not None and (isinstance(ignore_index, bool)
                                     or not isinstance(ignore_index, int)):
        raise TypeError(f"cross_entropy: ignore_index must be an int or None, got "
                        f"{ignore_index!r}")
    if not xp.issubdtype(logits.dtype, xp.floating):
        raise TypeError(f"cross_entropy: logits must be floating point, got {logits.dtype}")
    if logits.ndim == 0:
        raise ValueError("cross_entropy: logits need a class axis, got a 0-d tensor")
    # An integer Tensor is used as it is (a graph input, so a compiled program can feed new
    # targets); anything else is copied: the backward must see the targets the forward used.
    if not isinstance(targets, Tensor):
        targets = Tensor(xp.array(targets), constant=True)
    if targets.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: targets must be integer class indices, got dtype "
                        f"{targets.dtype}")
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"cross_entropy: targets of shape {targets.shape} do not match "
                         f"{describe(logits)} (expected {logits.shape[:-1]})")
    classes = logits.shape[-1]
    if targets.size == 0:
        raise ValueError("cross_entropy: there are no rows to average over")
    flat = reshape(targets, (targets.size,))
    keep = None
    if ignore_index is not None:
        flat, keep = _not_ignored(flat, ignore_index, logits.dtype)
    flat = ids_in_range(flat, classes, "cross_entropy: target {bad} is outside the {size} classes")
    logp = log_softmax(logits, -1)
    if logp.ndim != 2:
        logp = reshape(logp, (-1, classes))
    nll = neg(getitem(logp, (xp.arange(targets.size), flat)))
    if keep is None and label_smoothing == 0 and reduction == "mean":
        return mean(nll)            # the plain loss keeps its plain graph
    per_row = nll
    if label_smoothing:
        smooth = neg(sum(logp, -1)) * (label_smoothing / classes)
        per_row = nll * (1.0 - label_smoothing) + smooth
    if keep is not None:
        per_row = per_row * keep
    if reduction == "none":
        return reshape(per_row, targets.shape)
    total = sum(per_row)
    if reduction == "sum":
        return total
    return total / sum(keep) if keep is not None else mean(per_row)


def _not_ignored(ids, ignore_index, dtype):
    """(ids with the ignored ones made 0, a float mask of `dtype`: 1 kept, 0 ignored), both
    computed in the graph from the ids, so that a compiled program masks the targets of every
    call, not those of its trace."""
    offset = ids - ignore_index
    kept = heaviside(offset * offset)           # 1 where id != ignore_index (integers)
    as_float = Tensor(xp.array([0, 1], dtype=dtype), constant=True)
    return ids * kept, getitem(as_float, kept)


def _check_reduction(reduction, op_name):
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op_name}: reduction must be one of {', '.join(map(repr, REDUCTIONS))}"
                         f", got {reduction!r}")


def _reduce(loss, reduction):
    return {"mean": mean, "sum": sum}[reduction](loss) if reduction != "none" else loss


def _float_pair(input, target, op_name):
    """input and target as float tensors of one shape (target a constant unless a Tensor)."""
    input = tensor_arg(input, op_name)
    if not xp.issubdtype(input.dtype, xp.floating):
        raise TypeError(f"{op_name}: input must be floating point, got {input.dtype}")
    if not isinstance(target, Tensor):
        target = Tensor(xp.asarray(target, dtype=input.dtype), constant=True)
    if target.shape != input.shape:
        raise ValueError(f"{op_name}: target of shape {target.shape} does not match "
                         f"{describe(input)}")
    return input, target


def mse_loss(input, target, reduction="mean"):
    """(input − target)², reduced as PyTorch's F.mse_loss ("mean", "sum" or "none")."""
    _check_reduction(reduction, "mse_loss")
    input, target = _float_pair(input, target, "mse_loss")
    diff = input - target
    return _reduce(diff * diff, reduction)


def binary_cross_entropy_with_logits(logits, target, reduction="mean", pos_weight=None):
    """−[pos_weight·y·log σ(x) + (1 − y)·log σ(−x)], as PyTorch's
    F.binary_cross_entropy_with_logits. log σ(x) and log σ(−x) are the log-softmax of the pair
    (0, x): no overflow for any x, and the gradient is derived (σ(x)·… − y·…) through the
    log-softmax primitive. pos_weight (optional) broadcasts against the logits."""
    _check_reduction(reduction, "binary_cross_entropy_with_logits")
    x, y = _float_pair(logits, target, "binary_cross_entropy_with_logits")
    pair = concat([Tensor(xp.zeros(x.shape + (1,), x.dtype), constant=True),
                   reshape(x, x.shape + (1,))], axis=-1)
    logp = log_softmax(pair, -1)
    last = (slice(None),) * x.ndim
    log_sig_neg, log_sig = getitem(logp, last + (0,)), getitem(logp, last + (1,))
    positive = y * log_sig
    if pos_weight is not None:
        if not isinstance(pos_weight, Tensor):
            pos_weight = Tensor(xp.asarray(pos_weight, dtype=x.dtype), constant=True)
        positive = positive * pos_weight
    return _reduce(neg(positive + (1.0 - y) * log_sig_neg), reduction)
