"""einsum, composed: transposes, reshapes, sums, broadcasting multiplies and matmuls.

There is no einsum primitive, so the gradient graph of `einsum("ij,jk->ik", a, b)` is the
matmul's own, and a diagram of it shows the matmul, not a new box.

The plan: each index is a label (a letter, or one axis of the `...`, numbered from the right
so ellipses of different lengths broadcast as numpy's axes do). Operands are combined
pairwise, left to right. Before a pair is combined, each side sums over the labels nobody
else needs; then a label both sides share is either kept (a batch axis) or contracted. With
something to contract, both sides are laid out as (batch, rows, contracted) and (batch,
contracted, columns) and multiplied by one matmul; with nothing to contract (an outer or a
Hadamard product), they are laid out against each other and multiplied elementwise.
"""
import math

from ..core.tensor import describe
from .operands import tensor_arg
from . import elementwise as _elementwise
from . import linalg as _linalg
from . import shape as _shape

ELLIPSIS = "..."


def einsum(spec, *operands):
    """Einstein summation: `einsum("ij,jk->ik", a, b)` is a @ b, composed of matmuls.

    `spec` names each operand's axes with letters (a letter shared by operands is the same
    axis; one left out of the output after `->` is summed over); `...` stands for any
    leading or middle axes, which broadcast as in numpy. Without `->`, the output is the
    `...` axes followed by the letters used once, in alphabetical order (numpy's and
    PyTorch's rule). More than two operands are combined pairwise, left to right.

    Not supported (an error says so): an index repeated within one operand (a trace or
    diagonal, 'ii->i'), and a letter whose sizes differ between operands (PyTorch broadcasts
    a size-1 letter; here only the `...` axes broadcast).
    """
    if not isinstance(spec, str):
        raise TypeError(f"einsum: the spec must be a string like 'ij,jk->ik', got "
                        f"{type(spec).__name__}")
    tensors = [tensor_arg(t, "einsum") for t in operands]
    inputs, output = _parse(spec, tensors)
    sizes = _label_sizes(spec, inputs, tensors)
    terms = list(zip(tensors, inputs))
    result, labels = terms[0]
    for k, (tensor, tensor_labels) in enumerate(terms[1:], start=1):
        needed = set(output).union(*(lab for _, lab in terms[k + 1:]))
        result, labels = _combine(result, labels, tensor, tensor_labels, needed, sizes)
    result, labels = _sum_out(result, labels, set(output))
    return _permuted(result, labels, output)


# --- parsing ----------------------------------------------------------------------------------

def _parse(spec, tensors):
    """Each operand's labels and the output's, with `...` expanded into numbered labels."""
    text = spec.replace(" ", "")
    left, arrow, right = text.partition("->")
    pieces = left.split(",")
    if len(pieces) != len(tensors):
        raise ValueError(f"einsum: {spec!r} names {len(pieces)} operand(s) but "
                         f"{len(tensors)} were given")
    ellipsis_length = 0
    inputs = []
    for k, (piece, tensor) in enumerate(zip(pieces, tensors)):
        letters = _letters(piece, spec)
        if ELLIPSIS in piece:
            length = tensor.ndim - len(letters)
            if length < 0:
                raise ValueError(f"einsum: operand {k} ({describe(tensor)}) has fewer axes "
                                 f"than the letters of {piece!r} in {spec!r}")
            ellipsis_length = max(ellipsis_length, length)
        elif len(letters) != tensor.ndim:
            raise ValueError(f"einsum: {piece!r} in {spec!r} names {len(letters)} axes but "
                             f"operand {k} is {describe(tensor)}")
        repeated = sorted({c for c in letters if letters.count(c) > 1})
        if repeated:
            raise ValueError(f"einsum: index {repeated[0]!r} is repeated within operand {k} "
                             f"({piece!r} in {spec!r}); a trace or diagonal is not supported")
        inputs.append(_expand(piece, tensor.ndim - len(letters)))
    everything = [label for labels in inputs for label in labels]
    if not arrow:
        once = sorted(c for c in set(everything) if len(c) == 1 and everything.count(c) == 1)
        output = _ellipsis_labels(ellipsis_length) + once
    else:
        output = _expand(right, ellipsis_length)
        letters = _letters(right, spec)
        for c in letters:
            if letters.count(c) > 1:
                raise ValueError(f"einsum: index {c!r} appears twice in the output of {spec!r}")
            if c not in everything:
                raise ValueError(f"einsum: output index {c!r} of {spec!r} is in no operand")
    return inputs, output


def _letters(piece, spec):
    letters = piece.replace(ELLIPSIS, "", 1)
    bad = [c for c in letters if not c.isalpha()]
    if bad or piece.count(ELLIPSIS) > 1:
        raise ValueError(f"einsum: cannot read {piece!r} in {spec!r}: indices are letters, "
                         "with at most one '...' per operand")
    return letters


def _ellipsis_labels(length):
    """The labels of `length` ellipsis axes, numbered from the right (so they broadcast)."""
    return [f"...{n}" for n in range(length - 1, -1, -1)]


def _expand(piece, ellipsis_length):
    before, found, after = piece.partition(ELLIPSIS)
    middle = _ellipsis_labels(ellipsis_length) if found else []
    return list(before) + middle + list(after)


def _label_sizes(spec, inputs, tensors):
    """The size of each label; a letter must have one size, an ellipsis axis broadcasts."""
    sizes, first = {}, {}
    for k, (labels, tensor) in enumerate(zip(inputs, tensors)):
        for label, n in zip(labels, tensor.shape):
            if label not in sizes:
                sizes[label], first[label] = n, k
            elif n != sizes[label]:
                if label.startswith(ELLIPSIS) and 1 in (n, sizes[label]):
                    sizes[label] = max(n, sizes[label])
                    continue
                what = "the '...' axes" if label.startswith(ELLIPSIS) else f"index {label!r}"
                raise ValueError(f"einsum: {what} of {spec!r} has size {sizes[label]} in "
                                 f"operand {first[label]} ({describe(tensors[first[label]])}) "
                                 f"but {n} in operand {k} ({describe(tensor)})")
    return sizes


# --- composing --------------------------------------------------------------------------------

def _sum_out(t, labels, keep):
    """t summed over its labels not in `keep`, and the labels left."""
    axes = tuple(i for i, label in enumerate(labels) if label not in keep)
    if not axes:
        return t, labels
    return _shape.sum(t, axes), [label for label in labels if label in keep]


def _permuted(t, labels, order):
    """t with its axes in the order of `order` (no node when they already are)."""
    axes = [labels.index(label) for label in order]
    if axes == list(range(len(axes))):
        return t
    return _shape.transpose(t, tuple(axes))


def _laid_out(t, labels, groups, sizes):
    """t transposed to the label groups' order, broadcast where an ellipsis axis has size 1
    against a larger one, and reshaped to one axis per group (an empty group: size 1)."""
    order = [label for group in groups for label in group]
    t = _permuted(t, labels, order)
    full = tuple(sizes[label] for label in order)
    if t.shape != full:
        t = _shape.broadcast_to(t, full)
    return _shape.reshape(t, tuple(math.prod(sizes[label] for label in group)
                                   for group in groups))


def _combine(a, a_labels, b, b_labels, needed, sizes):
    """The product of two terms, summed over the labels they share that are not `needed`
    (by the output or a later operand): (tensor, its labels)."""
    a, a_labels = _sum_out(a, a_labels, needed | set(b_labels))
    b, b_labels = _sum_out(b, b_labels, needed | set(a_labels))
    shared = [label for label in a_labels if label in b_labels]
    batch = [label for label in shared if label in needed]
    contracted = [label for label in shared if label not in needed]
    rows = [label for label in a_labels if label not in shared]
    columns = [label for label in b_labels if label not in shared]
    labels = batch + rows + columns
    shape = tuple(sizes[label] for label in labels)
    if contracted:
        # (batch, rows, contracted) @ (batch, contracted, columns): one matmul.
        lead = [batch] if batch else []
        left = _laid_out(a, a_labels, lead + [rows, contracted], sizes)
        right = _laid_out(b, b_labels, lead + [contracted, columns], sizes)
        return _shape.reshape(_linalg.matmul(left, right), shape), labels
    # Nothing to sum over: (batch, rows, 1...) * (batch, 1..., columns), broadcast.
    left = _laid_out(a, a_labels, [[label] for label in batch + rows] + [[]] * len(columns),
                     sizes)
    right = _laid_out(b, b_labels, [[label] for label in batch] + [[]] * len(rows)
                      + [[label] for label in columns], sizes)
    return _elementwise.mul(left, right), labels
