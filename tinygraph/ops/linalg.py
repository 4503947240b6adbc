"""Linear algebra: matmul, and matmul_tn (aᵀ·g, the weight gradient of a matmul).

`MatMul.vjp` gives the right operand's gradient as one `matmul_tn` node. It is a primitive
of its own because the accumulator can join a weight's gradient over its uses: the T terms
a_tᵀ g_t of a weight used once per time step become one product [a_1..a_T]ᵀ [g_1..g_T], a
well-shaped matmul per sequence instead of T small ones and T weight-sized additions.
"""
import math

from ..backend import xp
from ..core.primitive import Primitive, apply
from ..core.tensor import describe
from .operands import pair
from .parallel import MIN_FLOPS, matmul_2d_into
from .elementwise import unbroadcast
from . import shape as _shape


def _swap_last(t):
    """t with its last two axes swapped. Applied unchecked: the axes are a permutation by
    construction (the checked transpose() costs 3.4 us against 0.9, once per time step)."""
    axes = list(range(t.ndim))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return apply(_shape.Transpose(tuple(axes)), t)


def _product_shape(a_shape, b_shape):
    if len(a_shape) == len(b_shape) == 2:      # no batch axes (numpy's broadcast_shapes: 1 us)
        return (a_shape[0], b_shape[1])
    batch = xp.broadcast_shapes(a_shape[:-2], b_shape[:-2])
    return tuple(batch) + (a_shape[-2], b_shape[-1])


def _small_2d(a, b):
    """True for a 2-D (m, k) @ (k, n) product too small to split: one plain BLAS call, with
    no buffer of our own (a batch-1 step's products cost 2.2 us so, 4.9 us through
    matmul_2d_into)."""
    return a.ndim == 2 and b.ndim == 2 and 2 * a.size * b.shape[1] < MIN_FLOPS


class MatMul(Primitive):
    name = "matmul"
    formula = "{0} · {1}"
    rules = ("{gy} · {x1}ᵀ", "{x0}ᵀ · {gy}")

    def forward(self, a, b):
        if _small_2d(a, b):
            return xp.matmul(a, b)
        if b.ndim == 2 and a.ndim >= 2:
            out = xp.empty(a.shape[:-1] + b.shape[1:], xp.result_type(a.dtype, b.dtype))
            return self.forward_into(out, a, b)
        return xp.matmul(a, b)

    def forward_into(self, out, a, b):
        if b.ndim == 2 and a.ndim >= 2 and out.flags.c_contiguous:
            # (..., n, k) @ (k, m) is one (N, k) @ (k, m) product: numpy would otherwise run
            # one small BLAS call per leading index, 1.5x slower for a (20, 35, 650) input.
            rows = math.prod(a.shape[:-1])
            matmul_2d_into(out.reshape(rows, b.shape[1]), a.reshape(rows, a.shape[-1]), b)
        else:
            xp.matmul(a, b, out=out)
        return out

    def spec(self, a, b):
        return _product_shape(a.shape, b.shape), a.dtype

    def flops(self, node):
        return _product_flops(node, transposed=False)

    def pending_gradient(self, node, k):
        # The right operand's gradient is a lazy aᵀg term (joined with the other steps' into
        # one product when the weight's gradient is complete): it holds a and g.
        return (node.inputs[0], node.output) if k == 1 else None

    def vjp(self, node, g, needs):
        # Applied unchecked: the node's operands are at least 2-D (matmul() promotes vectors)
        # and g has the output's shape, so the products are valid by construction.
        a, b = node.inputs
        return [unbroadcast(apply(MatMul(), g, _swap_last(b)), a.shape) if needs[0] else None,
                _right_gradient(a, g, b) if needs[1] else None]


def _right_gradient(a, g, b):
    """d/db of a @ b, i.e. aᵀ g summed over batch dimensions.

    A 2-D weight applied to a batch of rows (..., k) gets its gradient as one 2-D product of
    the flattened rows, not as a batched product followed by a sum over the batch (measured
    10x slower for the input projection of a whole sequence).
    """
    if b.ndim == 2 and a.ndim > 2:
        rows = math.prod(a.shape[:-1])
        a = _shape.reshape(a, (rows, a.shape[-1]))
        g = _shape.reshape(g, (rows, g.shape[-1]))
    return unbroadcast(apply(MatMulTN(), a, g), b.shape)


class MatMulTN(Primitive):
    """aᵀ·g over the last two axes (batch axes broadcast): a matmul with a transposed left
    operand, as one node. Terms of a gradient sum join into one product (see the module)."""

    name = "matmul_tn"
    formula = "{0}ᵀ · {1}"

    def flops(self, node):
        return _product_flops(node, transposed=True)

    rules = ("{x1} · {gy}ᵀ", "{x0} · {gy}")
    sum_term = True
    join_name = "join_weight_gradients"   # for speed only: a diagram reads better per step

    def forward(self, a, g):
        if a.ndim == g.ndim == 2:
            if 2 * a.size * g.shape[1] < MIN_FLOPS:
                return xp.matmul(a.T, g)
            out = xp.empty((a.shape[1], g.shape[1]), xp.result_type(a.dtype, g.dtype))
            return matmul_2d_into(out, a.T, g)
        return xp.matmul(xp.swapaxes(a, -1, -2), g)

    def forward_into(self, out, a, g):
        if a.ndim == g.ndim == 2:
            return matmul_2d_into(out, a.T, g)
        return xp.matmul(xp.swapaxes(a, -1, -2), g, out=out)

    def spec(self, a, g):
        return _product_shape(a.shape[:-2] + (a.shape[-1], a.shape[-2]), g.shape), a.dtype

    def vjp(self, node, grad_out, needs):
        a, g = node.inputs
        # out = aᵀ g: d/da = g · grad_outᵀ, d/dg = a · grad_out.
        return [unbroadcast(matmul(g, _swap_last(grad_out)), a.shape) if needs[0] else None,
                unbroadcast(matmul(a, grad_out), g.shape) if needs[1] else None]

    def label(self, inputs, inline):
        return "matmul (aᵀg)"

    @staticmethod
    def join(terms):
        """sum_t a_tᵀ g_t -> [a_1..a_T]ᵀ [g_1..g_T] for the 2-D terms (row blocks of earlier
        joins are flattened, so a chain of joins gives one concat, not nested ones)."""
        flat = [t for t in terms if t.ndim == 2]
        if len(flat) < 2:
            return None
        pairs = [p for t in flat for p in _row_blocks(*t._node.inputs)]
        # Unchecked (the terms were checked as they were made, and all have the weight's
        # shape): the checked concat() costs 1 us more per piece (35 us against 5.5 for 30).
        joined = apply(MatMulTN(), apply(_shape.Concat(0), *[a for a, _ in pairs]),
                       apply(_shape.Concat(0), *[g for _, g in pairs]))
        return [joined] + [t for t in terms if t.ndim != 2]


def _row_blocks(a, g):
    """[(a, g)], or the pairs of row blocks when both are concats along axis 0 with the same
    splits (an earlier join): aᵀ g is then the sum of the blocks' products."""
    an, gn = a._node, g._node
    if (an is not None and gn is not None and isinstance(an.prim, _shape.Concat)
            and isinstance(gn.prim, _shape.Concat) and an.prim.axis == gn.prim.axis == 0
            and len(an.inputs) == len(gn.inputs)
            and all(x.shape[0] == y.shape[0] for x, y in zip(an.inputs, gn.inputs))):
        return list(zip(an.inputs, gn.inputs))
    return [(a, g)]


def matmul(a, b):
    """Matrix product a @ b; batch dimensions (all but the last two) broadcast.

    A 1-D operand is treated as a row (left) or column (right) vector, as in numpy.
    """
    a, b = pair(a, b, "matmul")
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must have at least one dimension, got "
                         f"{describe(a)} and {describe(b)}; use mul for scalars")
    inner_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if a.shape[-1] != inner_b:
        raise ValueError(f"matmul: cannot multiply {describe(a)} by {describe(b)}: inner "
                         f"dimensions {a.shape[-1]} and {inner_b} differ")
    if a.ndim == 1 or b.ndim == 1:
        # Promote vectors to a row / column, multiply, and drop the added axis again.
        a2 = _shape.reshape(a, (1, a.shape[0])) if a.ndim == 1 else a
        b2 = _shape.reshape(b, (b.shape[0], 1)) if b.ndim == 1 else b
        out = matmul(a2, b2)
        shape = out.shape[:-2] + (out.shape[-2:-1] if a.ndim > 1 else ()) + (
            out.shape[-1:] if b.ndim > 1 else ())
        return _shape.reshape(out, shape)
    _check_batch(a, b, "matmul")
    return apply(MatMul(), a, b)


def matmul_tn(a, g):
    """aᵀ @ g over the last two axes: the product with the left operand transposed."""
    a, g = pair(a, g, "matmul_tn")
    if a.ndim < 2 or g.ndim < 2:
        raise ValueError(f"matmul_tn: operands need at least two dimensions, got "
                         f"{describe(a)} and {describe(g)}")
    if a.shape[-2] != g.shape[-2]:
        raise ValueError(f"matmul_tn: cannot multiply the transpose of {describe(a)} by "
                         f"{describe(g)}: inner dimensions {a.shape[-2]} and {g.shape[-2]} differ")
    _check_batch(a, g, "matmul_tn")
    return apply(MatMulTN(), a, g)


def _check_batch(a, b, op_name):
    if a.ndim <= 2 and b.ndim <= 2:
        return                  # no batch axes
    try:
        xp.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"{op_name}: batch dimensions of {describe(a)} and {describe(b)} do "
                         "not broadcast") from None


def _product_flops(node, transposed):
    """2·k per output element: a multiply and an add along the contracted axis (the left
    operand's last axis, or its second to last for aᵀg)."""
    a = node.inputs[0]
    k = a.shape[-2] if transposed else a.shape[-1]
    return 2 * k * node.output.size
