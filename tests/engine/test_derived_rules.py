"""Rules derived from the vjp (tinygraph.ops.derive) against the hand-written templates.

For every case of the op table whose primitive has a rule, the rule derived by recording the
vjp on the case's own inputs must read as the template does, or the difference is listed in
DIFFERENT with the reason the template stays hand-written. (test_rule_templates checks every
rule, derived or written, against the vjp's values.) Elementwise ops keep no template: their
`rule` is the derived text, so for them this test checks the derivation against itself on the
case's shapes, broadcasting included.
"""
import numpy as np
import pytest

import tinygraph as tg
from tinygraph.ops.derive import derived_rule
from tinygraph.ops.elementwise import Elementwise, Sigmoid, Tanh
from tests.engine.op_cases import CASES

# (case, input) -> why the derived text differs from the template. Keep the reasons true: the
# test fails when a listed pair stops differing.
WRITES_A_HELPER = "the vjp is a helper primitive, written as a call"
CONCRETE = "the derivation writes this case's key or slice; the template says it for any key"
DIFFERENT = {
    **{(case, 0): "the exponent's factor: a product ⊙ 3 where the notation writes 3·x"
       for case in ("pow:2", "pow:3", "pow:half", "pow:neg")},
    ("matmul:batched", 0): "a batched matmul transposes by axes: transpose(x, (0, 2, 1)) "
                           "where the template writes xᵀ",
    ("matmul_tn:batched", 0): "as matmul:batched",
    **{(case, 0): "a sum's gradient is reshape then broadcast_to; the notation's "
                  "broadcast() puts the summed axes back in one word"
       for case in ("sum:all", "sum:axis0", "sum:axes_keep", "sum_to")},
    ("transpose", 0): "a reversal writes as ᵀ (the op's write) where the template says "
                      "transpose(), the notation's ᵀ swapping the last two axes only",
    **{(case, 0): "the slice's gradient writes as a phrase with its key "
                  "({gy} put in zeros at [...]), the template in the notation's phrase"
       for case in ("slice:columns", "slice:mixed", "slice:ellipsis")},
    **{(case, 0): WRITES_A_HELPER + " (index_grad: a scatter-add)"
       for case in ("index:rows", "index:pairs", "index:2d")},
    **{(case, k): CONCRETE for case, n in (("concat:axis0", 2), ("concat:last", 3))
       for k in range(n)},
    **{(case, 0): WRITES_A_HELPER + " (log_softmax_grad)"
       for case in ("log_softmax", "log_softmax:axis0")},
    ("log_softmax_grad_at", 0): CONCRETE,
    ("log_softmax_grad_at", 1): WRITES_A_HELPER + " (index_grad: a scatter-add)",
    ("slice_grad", 0): CONCRETE,
    ("slice_grad:dropped_axis", 0): CONCRETE,
    ("index_grad", 0): CONCRETE,
    **{(case, k): "the vjp selects with where({x0}, {gy}, 0) (finite where {gy} is not); "
                  "the notation, which has no where, writes the mask as a product"
       for case in ("where", "where:computed_mask") for k in (1, 2)},
    **{(case, 0): "the vjp selects the ties with == and where; the notation, which has "
                  "neither, writes the tie mask as 1 − heaviside(...)"
       for case in ("max", "max:axes_keep", "min:axis")},
    ("cast", 0): "the derivation writes the cast back to this case's dtype ({gy} as "
                 "float64); the notation has no dtypes",
}


def _normalized(prim, text, x, out):
    """The derived text as the explorer would show it: the sum back to a broadcast input's
    shape is unwritten (the explorer adds sum_to itself), Σ sits on its operand."""
    if text is None:
        return None
    broadcast = isinstance(prim, Elementwise) or prim.name in ("matmul", "matmul_tn")
    if broadcast and x.shape != out.shape and text.startswith("sum_to(") and text.endswith(")"):
        text = text[len("sum_to("):-1]
    return text.replace("Σ ", "Σ")


def _pairs():
    rng = np.random.default_rng(0)
    for case in CASES:
        if not case.differentiable:
            continue
        tensors = [tg.tensor(a, requires_grad=np.issubdtype(a.dtype, np.floating))
                   for a in case.inputs(rng)]
        out = case.apply(tensors)          # (held: a node keeps its output weakly)
        for k in range(len(out._node.inputs)):
            yield case.name, k, out


PAIRS = list(_pairs())


@pytest.mark.quick
@pytest.mark.parametrize("case, k, out", PAIRS, ids=[f"{c}-{k}" for c, k, _ in PAIRS])
def test_the_rule_derived_from_the_vjp_reads_as_the_template(case, k, out):
    node = out._node
    prim, x = node.prim, node.inputs[k]
    template = prim.rule(k)
    derived = _normalized(prim, derived_rule(prim, k, [t.data for t in node.inputs]), x,
                          out)
    if (case, k) in DIFFERENT:
        assert derived != template, f"{case} input {k} now derives as written: unlist it"
    else:
        assert derived == template


@pytest.mark.quick
def test_every_listed_difference_is_a_case_and_says_why():
    names = {(c, k) for c, k, _ in PAIRS}
    for pair, why in DIFFERENT.items():
        assert pair in names and why


@pytest.mark.quick
@pytest.mark.parametrize("cls, expected", [(Sigmoid, "{gy} ⊙ {y} ⊙ (1 − {y})"),
                                           (Tanh, "{gy} ⊙ (1 − {y}²)")])
def test_elementwise_rules_come_from_the_vjp(cls, expected):
    assert cls.rules is None and cls().rule(0) == expected


@pytest.mark.quick
def test_a_vjp_written_differently_derives_a_different_rule():
    """The derivation reads the vjp, not a stored text: a sigmoid whose vjp is rewritten as
    g ⊙ (y − y²) reads so."""
    class Rewritten(Sigmoid):
        name = "sigmoid_rewritten"

        def vjp(self, node, g, needs):
            y = node.output
            return [g * (y - y * y)]

    assert Rewritten().rule(0) == "{gy} ⊙ ({y} − {y}²)"
