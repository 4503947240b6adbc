"""grad / backward / no_grad / nodes: the engine's behaviour beyond single ops."""
import gc
import sys

import numpy as np
import pytest

import tinygraph as tg


def rand(*shape, seed=0, name=None, dtype=np.float64):
    data = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    return tg.tensor(data, name=name, requires_grad=True)


# --- grad --------------------------------------------------------------------------------

def test_grad_returns_tensors_matching_inputs():
    x, w = rand(2, 3, name="x"), rand(3, name="w", seed=1)
    gx, gw = tg.grad((x * w).sum(), [x, w])
    assert isinstance(gx, tg.Tensor) and gx.shape == (2, 3) and gw.shape == (3,)
    np.testing.assert_allclose(gx.data, np.broadcast_to(w.data, (2, 3)))
    np.testing.assert_allclose(gw.data, x.data.sum(0))
    assert gx.node is None and not gx.requires_grad  # plain values without create_graph


def test_grad_of_a_single_input_returns_a_tensor_not_a_list():
    x = rand(3)
    g = tg.grad((x * x).sum(), x)
    assert isinstance(g, tg.Tensor)
    np.testing.assert_allclose(g.data, 2 * x.data)


def test_grad_with_respect_to_an_intermediate_tensor():
    x = rand(3)
    y = tg.exp(x)
    gy, gx = tg.grad((y * y).sum(), [y, x])
    np.testing.assert_allclose(gy.data, 2 * y.data)
    np.testing.assert_allclose(gx.data, 2 * y.data * y.data)


def test_create_graph_gives_backward_nodes_linked_to_their_forward_node():
    x = rand(2, 3, name="x")
    y = tg.tanh(x)
    (g,) = tg.grad(y.sum(), [x], create_graph=True)
    assert g.requires_grad and g.node is not None
    backward_nodes = [n for n in tg.nodes([g]) if n.is_backward]
    assert backward_nodes, "create_graph must record the vjp"
    assert {n.forward_node.op for n in backward_nodes} == {"sum", "tanh"}
    assert all(n.role == "vjp" for n in backward_nodes)
    forward_nodes = [n for n in tg.nodes([y]) if not n.is_backward]
    assert [n.op for n in forward_nodes] == ["tanh"]


def test_fan_in_is_an_explicit_add_node_naming_the_uses():
    x = rand(3, name="x")
    a, b = tg.exp(x), tg.tanh(x)
    (g,) = tg.grad((a + b).sum(), [x], create_graph=True)
    assert g.node.op == "add" and g.node.role == "accumulate"
    assert sorted(n.op for n in g.node.grad_sources) == ["exp", "tanh"]
    np.testing.assert_allclose(g.data, np.exp(x.data) + 1 - np.tanh(x.data) ** 2)


def test_hessian_vector_product_matches_finite_differences():
    x = rand(4, name="x")
    v = np.random.default_rng(9).standard_normal(4)

    def f(t):
        return (tg.sigmoid(t) * t ** 3).sum() + tg.log_softmax(t).sum() * t[0]

    (g,) = tg.grad(f(x), [x], create_graph=True)
    (hv,) = tg.grad((g * v).sum(), [x])
    eps = 1e-5

    def gradient_at(point):
        t = tg.tensor(point, requires_grad=True)
        return tg.grad(f(t), [t])[0].data

    numeric = (gradient_at(x.data + eps * v) - gradient_at(x.data - eps * v)) / (2 * eps)
    np.testing.assert_allclose(hv.data, numeric, rtol=1e-6, atol=1e-8)


def test_grad_outputs_seed_a_non_scalar_output():
    x = rand(2, 2)
    seed = np.array([[1.0, 0.0], [2.0, 3.0]])
    (g,) = tg.grad(x * 3.0, [x], grad_outputs=[seed])
    np.testing.assert_allclose(g.data, 3 * seed)


def test_input_reached_only_through_a_step_gets_zero_gradient():
    x = rand(3)
    (g,) = tg.grad(tg.heaviside(x).sum(), [x])
    np.testing.assert_array_equal(g.data, np.zeros(3))


def test_unused_input_is_an_error_unless_allowed():
    x, unused = rand(3, name="x"), rand(3, name="unused")
    with pytest.raises(ValueError, match="'unused'.*not part of the graph"):
        tg.grad(x.sum(), [x, unused])
    gx, gu = tg.grad(x.sum(), [x, unused], allow_unused=True)
    assert gu is None and gx is not None


@pytest.mark.parametrize("make_call, error, message", [
    (lambda x: tg.grad(x * 2.0, [x]), ValueError, "not a scalar"),
    (lambda x: (x * 2.0).backward(), ValueError, "not a scalar"),
    (lambda x: tg.grad(x.sum(), [tg.tensor(np.arange(3))]), TypeError, "dtype int"),
    (lambda x: tg.grad(x.sum(), [tg.tensor([1.0, 2.0])]), ValueError, "does not require grad"),
    (lambda x: tg.grad(x.sum(), [x.data]), TypeError, "expected Tensors"),
    (lambda x: tg.grad(x * 2.0, [x], grad_outputs=[np.ones(4)]), ValueError, "seed of shape"),
    (lambda x: tg.grad(x * 2.0, [x], grad_outputs=[np.ones(3, dtype=np.float32)]), TypeError,
     "seed dtype"),
    (lambda x: tg.tensor([1.0]).sum().backward(), ValueError, "does not require grad"),
])
def test_grad_and_backward_errors(make_call, error, message):
    x = rand(3, name="x")
    with pytest.raises(error, match=message):
        make_call(x)


# --- backward ----------------------------------------------------------------------------

def test_backward_accumulates_into_leaves_only():
    x = rand(3, name="x")
    y = x * 2.0
    (y * y).sum().backward()
    np.testing.assert_allclose(x.grad.data, 8 * x.data)
    assert y.grad is None


def test_repeated_backward_accumulates():
    x = rand(3)
    loss = (x ** 2).sum()
    loss.backward(retain_graph=True)
    loss.backward(retain_graph=True)
    np.testing.assert_allclose(x.grad.data, 4 * x.data)
    x.zero_grad()
    loss.backward()
    np.testing.assert_allclose(x.grad.data, 2 * x.data)


def test_backward_with_create_graph_allows_differentiating_the_grad():
    x = rand(3)
    (x ** 3).sum().backward(create_graph=True)
    (gg,) = tg.grad(x.grad.sum(), [x])
    np.testing.assert_allclose(gg.data, 6 * x.data)


def test_leaf_grads_do_not_share_memory():
    a, b = rand(3, seed=1), rand(3, seed=2)
    (a + b).sum().backward()   # add's vjp hands the same gradient to both inputs
    a.grad.data *= 10
    np.testing.assert_array_equal(b.grad.data, np.ones(3))


# --- no_grad -----------------------------------------------------------------------------

def test_no_grad_records_nothing():
    x = rand(3)
    with tg.no_grad():
        y = tg.tanh(x) * 2.0
        assert not tg.is_grad_enabled()
        with tg.enable_grad():
            z = x * 1.0
    assert tg.is_grad_enabled()
    assert y.node is None and not y.requires_grad
    assert z.node is not None and z.requires_grad


def test_no_grad_as_decorator():
    @tg.no_grad()
    def evaluate(t):
        return t * 2.0

    assert evaluate(rand(2)).node is None
    assert tg.is_grad_enabled()


# --- nodes -------------------------------------------------------------------------------

def test_nodes_are_in_topological_order_and_deterministic():
    def build():
        x, w = rand(2, 3, name="x"), rand(3, 3, name="w", seed=1)
        h = tg.tanh(x @ w)
        return (h * h + h).sum()

    loss = build()
    order = tg.nodes([loss])
    position = {id(n): k for k, n in enumerate(order)}
    for node in order:
        for t in node.inputs:
            if t.node is not None:
                assert position[id(t.node)] < position[id(node)]
    assert [n.op for n in order] == ["matmul", "tanh", "mul", "add", "sum"]
    assert [n.op for n in tg.nodes([build()])] == [n.op for n in order]
    assert order[-1].outputs == (loss,)


@pytest.mark.slow
def test_a_chain_of_100000_ops_differentiates():
    x = tg.tensor(np.array([0.5]), requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    assert sys.getrecursionlimit() < 100_000
    (g,) = tg.grad(y.sum(), [x], retain_graph=True)
    assert g.data[0] == 1.0
    y.sum().backward()
    assert x.grad.data[0] == 1.0
    del y
    gc.collect()  # freeing the chain must not recurse either


# --- build-time errors -------------------------------------------------------------------

def test_matmul_shape_error_names_op_operands_and_shapes():
    x, W = rand(3, 4, name="x"), rand(5, 6, name="W")
    with pytest.raises(ValueError, match=r"matmul: .*'x' with shape \(3, 4\).*'W' with shape \(5, 6\)"):
        x @ W


def test_broadcast_error_names_op_operands_and_shapes():
    a, b = rand(3, 4, name="a"), rand(5, name="b")
    with pytest.raises(ValueError, match=r"add: .*'a' with shape \(3, 4\).*'b' with shape \(5,\)"):
        a + b


def test_concat_error_names_op_operands_and_shapes():
    a, b = rand(3, 4, name="a"), rand(2, 5, name="b")
    with pytest.raises(ValueError, match=r"concat: .*'a' with shape \(3, 4\).*'b' with shape \(2, 5\)"):
        tg.concat([a, b], axis=0)


@pytest.mark.parametrize("call, message", [
    (lambda x: x + "one", "add: operand of type str"),
    (lambda x: x @ [[1.0]], "matmul: operand of type list"),
    (lambda x: tg.exp(None), "exp: operand of type NoneType"),
    (lambda x: tg.concat(x), "concat: pass a list"),
    (lambda x: x ** x, "pow: the exponent must be a constant"),
    (lambda x: 2.0 ** x, "only a constant exponent"),
    (lambda x: tg.tensor(np.arange(3), requires_grad=True), "floating-point"),
    (lambda x: x + tg.tensor(np.ones(3, dtype=np.float32)), "different dtypes"),
    (lambda x: tg.cross_entropy(x.reshape((1, 3)), np.array([0.5])), "integer class"),
])
def test_type_errors(call, message):
    x = rand(3, name="x")
    with pytest.raises(TypeError, match=message):
        call(x)


def test_python_and_numpy_scalars_do_not_promote_float32():
    x = rand(3, dtype=np.float32)
    for y in (x * 2.0, x + np.float64(1.5), x / np.array(3.0), np.float64(2.0) - x, x ** np.float64(2)):
        assert y.dtype == np.float32


def test_cross_entropy_value_errors():
    logits = rand(2, 3, name="logits")
    with pytest.raises(ValueError, match="target 3 is outside the 3 classes"):
        tg.cross_entropy(logits, np.array([0, 3]))
    with pytest.raises(ValueError, match=r"targets of shape \(3,\)"):
        tg.cross_entropy(logits, np.array([0, 1, 2]))


def test_ndarray_on_the_left_defers_to_tensor():
    x = rand(3)
    y = np.ones(3) + x
    assert isinstance(y, tg.Tensor) and y.node.op == "add"


# --- review regressions: state, aliasing and mutation after build ------------------------

def test_no_grad_decorator_is_reentrant_and_instances_reusable():
    @tg.no_grad()
    def recurse(n):
        if n:
            recurse(n - 1)

    recurse(2)
    assert tg.is_grad_enabled()
    mode = tg.no_grad()
    with mode:
        with mode:
            pass
    assert tg.is_grad_enabled()


def test_mutating_inputs_after_building_does_not_change_the_gradient():
    x = rand(4, name="x")
    index, targets, scale = np.array([0, 1]), np.array([0, 1]), np.array(2.0)
    gathered = x[index]
    logits = tg.reshape(x, (2, 2))
    loss = gathered.sum() + tg.cross_entropy(logits, targets) + (x * scale).sum()
    (before,) = tg.grad(loss, [x], retain_graph=True)
    index[:] = 3
    targets[:] = 0
    scale[...] = 5.0
    (after,) = tg.grad(loss, [x])
    np.testing.assert_array_equal(before.data, after.data)


def test_gradients_never_alias_seeds_or_each_other():
    a, b = rand(3, seed=1), rand(3, seed=2)
    seed = np.ones(3)
    ga, gb = tg.grad(a + b, [a, b], grad_outputs=[seed])
    ga.data *= 10
    np.testing.assert_array_equal(seed, np.ones(3))
    np.testing.assert_array_equal(gb.data, np.ones(3))
    (a + b).backward(seed)
    a.grad.data[:] = 0
    np.testing.assert_array_equal(seed, np.ones(3))
    (gx,) = tg.grad(a.sum(), [a])           # a broadcast view inside: must be writable
    gx.data += 1


def test_backward_through_a_step_gives_zero_like_grad():
    x = rand(3)
    tg.heaviside(x).sum().backward()
    np.testing.assert_array_equal(x.grad.data, np.zeros(3))


@pytest.mark.parametrize("call, error, message", [
    (lambda: tg.tensor([1, 2, 3]).mean(), TypeError, "mean: .*dtype int"),
    (lambda: tg.Tensor(np.array([1, 2]), requires_grad=True), TypeError, "floating-point"),
    (lambda: tg.sum(rand(2, 2), axis=1.0), TypeError, "axis must be an int"),
    (lambda: tg.log_softmax(tg.tensor(np.ones((2, 0)))), ValueError, "no entries"),
])
def test_more_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_truth_value_and_array_conversion_follow_numpy():
    assert bool(tg.tensor(1.0)) and not bool(tg.tensor(0.0))
    with pytest.raises(ValueError, match="ambiguous"):
        bool(tg.tensor([1.0, 2.0]))
    x = tg.tensor(np.arange(3.0))
    assert np.asarray(x).dtype == np.float64 and np.asarray(x).shape == (3,)


@pytest.mark.parametrize("build", [
    # A gradient handed to both inputs of an add, one input used earlier too (the earlier
    # use's vjp runs later, adding into the shared pending gradient).
    lambda a, b, c: (a * c).sum() + (a + b)[0].sum(),
    lambda a, b, c: (b * b).sum() + (a @ (b.T + c.T)).sum(),
    lambda a, b, c: (a * a).sum() + (a + b)[np.array([1, 1, 0])].sum(),
    lambda a, b, c: (b * c).sum() + (a[:, 1:] * 2.0).sum() + ((a + b) @ c.T).sum(),
])
def test_fast_backward_equals_the_recorded_one(build):
    """The fast path (lazy terms, joins, in-place sums) must give what the recorded path
    gives."""
    rng = np.random.default_rng(0)
    xs = [tg.tensor(rng.standard_normal((2, 3)), requires_grad=True) for _ in range(3)]
    fast = tg.grad(build(*xs), xs, allow_unused=True)
    recorded = tg.grad(build(*xs), xs, create_graph=True, allow_unused=True)
    for f, r in zip(fast, recorded):
        assert (f is None) == (r is None)
        if f is not None:
            np.testing.assert_allclose(f.data, r.data, rtol=0, atol=1e-12)
    tg.gradcheck(build, [x.data for x in xs])
