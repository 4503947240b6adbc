"""tg.einsum against torch.einsum on the same numbers: values, and gradients in float64 to
1e-10 (relative); that its graph is made of the matmuls (no einsum node); what it refuses and
how it says so; a compiled step equal to eager with changing inputs. Skipped without torch
for the comparisons (the `torch` fixture of tests/conftest.py)."""
import numpy as np
import pytest

import tinygraph as tg

RTOL = 1e-10

# (spec, operand shapes): what scripts write.
SPECS = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("bij,bjk->bik", [(2, 2, 3), (2, 3, 4)]),
    ("bi,bi->b", [(3, 4), (3, 4)]),
    ("bi,bi->bi", [(3, 4), (3, 4)]),
    ("i,i->", [(5,), (5,)]),
    ("ij->ji", [(2, 3)]),
    ("ij->", [(2, 3)]),
    ("ij->j", [(2, 3)]),
    ("i,j->ij", [(2,), (3,)]),
    ("ij,jk", [(2, 3), (3, 4)]),
    ("ba", [(2, 3)]),
    ("ij,kj->ik", [(2, 3), (4, 3)]),
    ("ij,jk->ki", [(2, 3), (3, 4)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
    ("ijk,jl->kil", [(2, 3, 4), (3, 5)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("i,ij,j->", [(3,), (3, 4), (4,)]),
    ("ij,ij,ij->i", [(2, 3), (2, 3), (2, 3)]),
    ("...ij,...jk->...ik", [(1, 2, 3), (4, 3, 5)]),
    ("...ij,jk->...ik", [(2, 4, 2, 3), (3, 5)]),
    ("...i->...", [(2, 3, 4)]),
    ("i...->...", [(2, 3, 4)]),
    ("...ij->ij", [(2, 3, 4)]),
    ("b...d,bd->b...", [(2, 3, 4, 5), (2, 5)]),
    ("ij,jk->", [(2, 3), (3, 4)]),
    ("ab,cd->abcd", [(2, 3), (1, 2)]),
    ("i j , j k -> i k", [(2, 3), (3, 4)]),
]


def operands(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape) for shape in shapes]


@pytest.mark.parametrize("spec, shapes", SPECS, ids=[s for s, _ in SPECS])
def test_values_and_float64_gradients_equal_torch(torch, spec, shapes):
    arrays = operands(shapes)
    params = [tg.Parameter(a) for a in arrays]
    out = tg.einsum(spec, *params)
    weights = np.random.default_rng(1).normal(size=out.shape)   # a loss that weighs each element
    grads = tg.grad(tg.sum(tg.mul(out, weights)), params)

    t_params = [torch.tensor(a, requires_grad=True) for a in arrays]
    t_out = torch.einsum(spec, *t_params)
    (t_out * torch.tensor(weights)).sum().backward()

    assert out.shape == tuple(t_out.shape)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.data, t_out.detach().numpy(), rtol=RTOL, atol=1e-13)
    for g, t_param in zip(grads, t_params):
        np.testing.assert_allclose(g.data, t_param.grad.numpy(), rtol=RTOL, atol=1e-13)


def test_float32_stays_float32():
    a, b = (x.astype(np.float32) for x in operands([(2, 3), (3, 4)]))
    out = tg.einsum("ij,jk->ik", a, b)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.data, a @ b, rtol=1e-6)


def recorded(out):
    return [node.op for node in tg.nodes(out)]


def test_a_contraction_records_a_matmul_and_its_gradient_graph_is_the_matmuls():
    a, b = (tg.Parameter(x, name=n) for x, n in zip(operands([(2, 3), (3, 4)]), "ab"))
    out = tg.einsum("ij,jk->ik", a, b)
    assert recorded(out) == ["matmul"]            # no transposes or reshapes around it
    ours = tg.grad(tg.sum(out), [a, b], create_graph=True)
    direct = tg.grad(tg.sum(tg.matmul(a, b)), [a, b], create_graph=True)
    assert [recorded(g) for g in ours] == [recorded(g) for g in direct]


@pytest.mark.parametrize("spec, shapes, ops", [
    ("bij,bjk->bik", [(2, 2, 3), (2, 3, 4)], {"matmul"}),
    ("bi,bi->b", [(3, 4), (3, 4)], {"matmul", "reshape"}),
    ("i,j->ij", [(2,), (3,)], {"mul", "reshape"}),
    ("ij->", [(2, 3)], {"sum"}),
    ("ij->ji", [(2, 3)], {"transpose"}),
])
def test_what_other_specs_record(spec, shapes, ops):
    out = tg.einsum(spec, *[tg.Parameter(x) for x in operands(shapes)])
    assert set(recorded(out)) == ops


@pytest.mark.parametrize("spec, shapes, message", [
    ("ii->i", [(3, 3)], "index 'i' is repeated within operand 0"),
    ("ij,jk->ik", [(2, 3)], "names 2 operand(s) but 1 were given"),
    ("ij,jk->ik", [(2, 3), (4, 5)], "index 'j' of 'ij,jk->ik' has size 3 in operand 0"),
    ("ijk->i", [(2, 3)], "names 3 axes but operand 0 is"),
    ("ij->ii", [(2, 3)], "index 'i' appears twice in the output"),
    ("ij->k", [(2, 3)], "output index 'k' of 'ij->k' is in no operand"),
    ("i1->i", [(2, 3)], "indices are letters"),
    ("...i...->i", [(2, 3)], "at most one '...'"),
    ("...ijk->i", [(2, 3)], "has fewer axes than the letters"),
    ("...i,...i->...", [(2, 3), (4, 3)], "the '...' axes of"),
])
def test_refusals_say_what_is_wrong(spec, shapes, message):
    with pytest.raises(ValueError) as error:
        tg.einsum(spec, *operands(shapes))
    assert message in str(error.value)


def test_a_spec_that_is_not_a_string_is_refused():
    with pytest.raises(TypeError, match="spec must be a string"):
        tg.einsum(["ij->ji"], np.ones((2, 2)))


def test_compiled_equals_eager_with_changing_inputs():
    w = tg.Parameter(operands([(3, 4)])[0], name="w")

    def loss(x, y):
        scores = tg.einsum("bi,ij->bj", x, w)
        return tg.sum(tg.einsum("bj,bj->b", scores, y))

    step = tg.compile(loss, [w])
    eager = tg.eager_step(loss, [w])
    previous = np.zeros((3, 4))
    for seed in range(3):
        x, y = operands([(5, 3), (5, 4)], seed=10 + seed)
        w.grad = None
        compiled_value = step(x, y)
        compiled_grad = np.array(w.grad.data)
        w.grad = None
        eager_value = eager(x, y)
        np.testing.assert_allclose(compiled_value, eager_value, rtol=1e-12)
        np.testing.assert_allclose(compiled_grad, w.grad.data, rtol=1e-12)
        assert not np.allclose(compiled_grad, previous)      # the inputs did change it
        previous = compiled_grad
