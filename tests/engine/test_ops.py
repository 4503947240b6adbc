"""Every primitive: values against numpy, gradients against finite differences (first and
second order), float32 kept end to end, shape-only evaluation (spec) agreeing with the forward
pass, and broadcasting shapes drawn by hypothesis. The primitives come from
tinygraph.ops.all_primitives(): one without a case in op_cases.py fails the suite."""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import tinygraph as tg
from tinygraph.ops import all_primitives
from tests.engine.op_cases import CASES

GRAD_CASES = [case for case in CASES if case.differentiable]
NO_GRAD_CASES = [case for case in CASES if not case.differentiable]


def leaves(arrays):
    return [tg.tensor(a, name=f"in{k}", requires_grad=np.issubdtype(a.dtype, np.floating))
            for k, a in enumerate(arrays)]


def primitive_names():
    """The names of the primitives tinygraph defines. Primitive subclasses defined elsewhere
    (test doubles with a deliberately broken vjp, the docs' own example primitive) are not
    tinygraph's."""
    return {cls.name for cls in all_primitives() if cls.__module__.startswith("tinygraph.")}


def test_every_primitive_class_has_a_name_of_its_own():
    """all_primitives() finds primitives by their own `name`: a new primitive class (a leaf
    of the class tree) that inherited its name would escape the op table."""
    stack, concrete = list(tg.Primitive.__subclasses__()), []
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if not cls.__subclasses__() and cls.__module__.startswith("tinygraph."):
            concrete.append(cls)
    assert [c.__name__ for c in concrete if "name" not in vars(c)] == []
    names = [c.name for c in all_primitives() if c.__module__.startswith("tinygraph.")]
    assert len(names) == len(set(names))


def test_every_primitive_has_a_case():
    covered = {case.primitive for case in CASES}
    missing = primitive_names() - covered
    assert not missing, f"no op case for {sorted(missing)}"


@pytest.mark.parametrize("case", [c for c in CASES if c.primitive in primitive_names()], ids=str)
def test_each_case_records_its_primitive(case):
    """A case counts for its primitive only if it really runs it (mean and cross_entropy are
    public functions composed of primitives: their cases test the composition)."""
    arrays = case.inputs(np.random.default_rng(0))
    out = case.apply(leaves(arrays))
    assert case.primitive in [n.op for n in tg.nodes([out])]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_spec_gives_the_shape_and_dtype_of_the_forward_result(case, dtype):
    """prim.spec(*inputs), the shape-only evaluation compiled traces run on, agrees with the
    forward pass for every node the case records."""
    arrays = case.inputs(np.random.default_rng(7), dtype=dtype)
    out = case.apply(leaves(arrays), dtype=dtype)
    for node in tg.nodes([out]):
        shape, spec_dtype = node.prim.spec(*node.inputs)
        result = node.output
        assert (tuple(shape), np.dtype(spec_dtype)) == (result.shape, result.dtype), node.op


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_forward_into_writes_what_forward_returns_into_the_array_it_was_given(case, dtype):
    """A compiled step runs prim.forward_into(out, *arrays) into a buffer of spec's shape and
    dtype instead of prim.forward(*arrays): for every node of the case whose primitive has
    it, the same values and dtype, written into `out` itself (which it returns). The buffer
    starts as NaN: a forward_into that leaves part of it unwritten shows."""
    arrays = case.inputs(np.random.default_rng(9), dtype=dtype)
    out = case.apply(leaves(arrays), dtype=dtype)
    for node in tg.nodes([out]):
        if node.prim.forward_into is None:
            continue
        inputs = [t.data for t in node.inputs]
        expected = node.prim.forward(*inputs)
        shape, spec_dtype = node.prim.spec(*node.inputs)
        buffer = np.full(shape, np.nan, spec_dtype)
        result = node.prim.forward_into(buffer, *inputs)
        assert result is buffer, node.op
        assert buffer.dtype == np.asarray(expected).dtype, node.op
        np.testing.assert_array_equal(buffer, expected, err_msg=node.op)


def test_the_forward_into_check_reaches_every_primitive_that_has_one():
    """The primitives whose forward_into the test above compares with forward (the table
    covers every primitive, so these are all that have one today). A primitive that gains or
    loses a forward_into changes this list on purpose."""
    checked = set()
    for case in CASES:
        out = case.apply(leaves(case.inputs(np.random.default_rng(9))))
        checked |= {n.op for n in tg.nodes([out]) if n.prim.forward_into is not None}
    assert sorted(checked) == ["add", "concat", "exp", "index_grad", "log_softmax",
                               "log_softmax_grad", "log_softmax_grad_at", "matmul",
                               "matmul_tn", "mul", "sigmoid", "slice_grad", "sub", "tanh"]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_values_match_numpy(case):
    arrays = case.inputs(np.random.default_rng(1))
    out = case.apply(leaves(arrays))
    np.testing.assert_allclose(out.data, case.expected(arrays), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", GRAD_CASES, ids=str)
def test_gradients_match_finite_differences(case):
    arrays = case.inputs(np.random.default_rng(2))
    assert tg.gradcheck(case.fn, arrays)


@pytest.mark.parametrize("case", GRAD_CASES, ids=str)
def test_second_order_gradients_match_finite_differences(case):
    """The vjp is itself built from differentiable ops: differentiate the gradient again."""
    arrays = case.inputs(np.random.default_rng(3))
    v = tg.tensor(np.random.default_rng(4).standard_normal(np.shape(case.reference(*arrays))))

    def first_order(*xs):
        out = case.fn(*xs)
        grads = tg.grad(out, list(xs), grad_outputs=[v], create_graph=True)
        # Weight each gradient so that a wrong second derivative cannot cancel out.
        return [g * w for g, w in zip(grads, weights)]

    weights = [np.random.default_rng(5 + k).standard_normal(a.shape) for k, a in enumerate(arrays)]
    assert tg.gradcheck(first_order, arrays, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("case", NO_GRAD_CASES, ids=str)
def test_cases_without_gradient_checks_pass_no_gradient_back(case):
    """Why these cases skip the gradient checks (see op_cases): their vjps give no gradient."""
    arrays = case.inputs(np.random.default_rng(8))
    out = case.apply(leaves(arrays))
    (node,) = [n for n in tg.nodes([out]) if n.op == case.primitive]
    grads = node.prim.vjp(node, tg.tensor(np.ones(out.shape)), [True] * len(node.inputs))
    assert len(grads) == len(node.inputs) and all(g is None for g in grads)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_float32_in_float32_out_and_gradients(case):
    arrays = case.inputs(np.random.default_rng(6), dtype=np.float32)
    xs = leaves(arrays)
    out = case.apply(xs, dtype=np.float32)
    if case.kind == "integer":          # integer ids stay integers
        assert out.dtype == arrays[0].dtype
        return
    # A comparison's result is boolean and an argmax's an index whatever the float dtype in:
    # what numpy gives, and what where() and indexing take.
    if case.result != "float":
        assert out.dtype == {"bool": np.bool_, "index": np.intp}[case.result]
        return
    assert out.dtype == np.float32
    if not case.differentiable:
        return
    seed = tg.tensor(np.ones(out.shape, dtype=np.float32))
    grads = tg.grad(out, xs, grad_outputs=[seed], retain_graph=True)
    assert [g.dtype for g in grads] == [np.float32] * len(xs)
    # Second order stays float32 too (constants inside vjps take the operand dtype).
    grads = tg.grad(out, xs, grad_outputs=[seed], create_graph=True)
    total = grads[0].sum()
    for g in grads[1:]:
        total = total + g.sum()
    if total.requires_grad:
        assert all(g is None or g.dtype == np.float32
                   for g in tg.grad(total, xs, allow_unused=True))


@given(mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3),
       st.sampled_from(["add", "sub", "mul", "div"]), st.integers(0, 2**16))
def test_broadcasting_binary_ops(shapes, name, seed):
    fn = getattr(tg, name)
    ref = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}[name]
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shapes.input_shapes[0])
    b = rng.standard_normal(shapes.input_shapes[1])
    b = np.sign(b + (b == 0)) * (np.abs(b) + 0.5)
    out = fn(tg.tensor(a), tg.tensor(b))
    assert out.shape == shapes.result_shape
    np.testing.assert_allclose(out.data, ref(a, b), rtol=1e-12)
    tg.gradcheck(fn, [a, b])


@given(st.lists(st.integers(1, 3), min_size=0, max_size=3), st.data())
def test_broadcast_to_and_sum_to_are_a_pair(shape, data):
    shape = tuple(shape)
    # A source shape that broadcasts to `shape`: drop leading axes, set some sides to 1.
    lead = data.draw(st.integers(0, len(shape)))
    source = tuple(1 if data.draw(st.booleans()) else n for n in shape[lead:])
    x = np.random.default_rng(0).standard_normal(source)
    tg.gradcheck(lambda t: tg.broadcast_to(t, shape), [x])
    big = np.random.default_rng(1).standard_normal(shape)
    summed = tg.sum_to(tg.tensor(big), source)
    assert summed.shape == source
    np.testing.assert_allclose(summed.data.sum(), big.sum())
    tg.gradcheck(lambda t: tg.sum_to(t, source), [big])


@given(st.lists(st.integers(1, 4), min_size=1, max_size=3), st.data())
def test_sum_and_mean_over_drawn_axes(shape, data):
    x = np.random.default_rng(0).standard_normal(shape)
    axes = data.draw(st.lists(st.integers(0, len(shape) - 1), unique=True, max_size=len(shape)))
    axis = tuple(axes) if axes else None
    keepdims = data.draw(st.booleans())
    np.testing.assert_allclose(tg.sum(tg.tensor(x), axis, keepdims).data,
                               x.sum(axis=axis, keepdims=keepdims))
    np.testing.assert_allclose(tg.mean(tg.tensor(x), axis, keepdims).data,
                               x.mean(axis=axis, keepdims=keepdims))
    tg.gradcheck(lambda t: tg.mean(t, axis, keepdims), [x])


def test_index_gradient_accumulates_repeated_rows():
    E = tg.tensor(np.arange(12.0).reshape(4, 3), requires_grad=True)
    ids = np.array([1, 3, 1, 1])
    E[ids].sum().backward()
    np.testing.assert_array_equal(E.grad.data[:, 0], [0, 3, 0, 1])


def test_slice_gradient_is_differentiable():
    x = tg.tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    (g,) = tg.grad((x[:, 1:3] ** 2).sum(), [x], create_graph=True)
    assert any(n.op == "slice_grad" for n in tg.nodes([g]))
    (gg,) = tg.grad((g * g).sum(), [x])
    expected = np.zeros((3, 4))
    expected[:, 1:3] = 8 * x.data[:, 1:3]
    np.testing.assert_allclose(gg.data, expected)


def test_log_softmax_is_stable_for_huge_inputs():
    x = tg.tensor(np.array([[1e4, 0.0, -1e4]]), requires_grad=True)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        out = tg.log_softmax(x)
        (g,) = tg.grad(out[:, 0].sum(), [x])
    np.testing.assert_allclose(out.data, [[0.0, -1e4, -2e4]])
    np.testing.assert_allclose(g.data, [[0.0, 0.0, 0.0]], atol=1e-300)


def test_sigmoid_is_stable_for_huge_inputs():
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        out = tg.sigmoid(tg.tensor(np.array([-1e4, 0.0, 1e4], dtype=np.float32)))
    np.testing.assert_array_equal(out.data, np.array([0.0, 0.5, 1.0], dtype=np.float32))


def test_log_softmax_matches_its_composed_twin():
    """The fused primitive agrees with log-softmax composed from exp, sum, log and sub."""
    x = np.random.default_rng(0).standard_normal((4, 6))

    def composed(t):
        shifted = t - np.max(t.data, axis=-1, keepdims=True)
        return shifted - tg.log(tg.sum(tg.exp(shifted), -1, keepdims=True))

    a, b = tg.tensor(x, requires_grad=True), tg.tensor(x, requires_grad=True)
    v = np.random.default_rng(1).standard_normal(x.shape)
    np.testing.assert_allclose(tg.log_softmax(a).data, composed(b).data, atol=1e-14)
    (ga,) = tg.grad(tg.log_softmax(a), [a], grad_outputs=[tg.tensor(v)])
    (gb,) = tg.grad(composed(b), [b], grad_outputs=[tg.tensor(v)])
    np.testing.assert_allclose(ga.data, gb.data, atol=1e-14)


def test_cross_entropy_backward_indexes_without_one_hot():
    logits = tg.tensor(np.random.default_rng(0).standard_normal((3, 1000)), requires_grad=True)
    loss = tg.cross_entropy(logits, np.array([1, 999, 5]))
    (g,) = tg.grad(loss, [logits], create_graph=True)
    assert "index" in [n.op for n in tg.nodes([loss])]
    ops = [n.op for n in tg.nodes([g])]
    assert "index_grad" in ops
    # No matmul against a class-sized identity / one-hot, no class-sized constant input.
    assert "matmul" not in ops
    for node in tg.nodes([g]):
        for t in node.inputs:
            if t.constant:
                assert t.size < 1000, f"{node.op} reads a constant of shape {t.shape}"


def test_pow_gradients_at_zero_are_finite():
    x = tg.tensor([0.0, 1.0], requires_grad=True)
    np.testing.assert_array_equal(tg.grad((x ** 0).sum(), x, allow_unused=True).data, [0, 0])
    (g,) = tg.grad((x ** 1).sum(), [x], create_graph=True)
    assert tg.grad(g.sum(), x, allow_unused=True) is None    # d/dx of a constant gradient
    (g,) = tg.grad((x ** 2).sum(), [x], create_graph=True)
    (gg,) = tg.grad(g.sum(), [x], create_graph=True)
    np.testing.assert_array_equal(gg.data, [2, 2])
    assert tg.grad(gg.sum(), x, allow_unused=True) is None


def test_zero_dimensional_results_are_arrays():
    s = tg.tensor(np.ones(3)).sum()
    assert type(s.data) is np.ndarray and s.shape == ()
    assert type((s * s).data) is np.ndarray


def test_negative_transpose_axes_and_method_forms():
    m = tg.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    np.testing.assert_array_equal(tg.transpose(m, (-1, -2)).data, m.data.T)
    np.testing.assert_array_equal(m.transpose(1, 0).data, m.data.T)
    np.testing.assert_array_equal(m.transpose((1, 0)).data, m.data.T)
    v = tg.tensor(np.arange(3.0))
    np.testing.assert_array_equal(v.transpose(0).data, v.data)
    with pytest.raises(ValueError, match="not a permutation"):
        tg.transpose(m, (0, 0))


def test_empty_index_list_selects_nothing():
    x = tg.tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    y = x[[]]
    assert y.shape == (0, 2)
    np.testing.assert_array_equal(tg.grad(y.sum(), x).data, np.zeros((3, 2)))


def test_pow_exponent_forms():
    x = tg.tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    assert (x ** np.array(2.0)).dtype == np.float32
    with pytest.raises(TypeError, match="constant real number"):
        x ** np.complex128(1j)


def test_matmul_of_a_batch_against_a_matrix_with_an_empty_inner_dimension():
    a = tg.tensor(np.ones((2, 3, 0)), requires_grad=True)
    b = tg.tensor(np.ones((0, 4)), requires_grad=True)
    out = a @ b
    np.testing.assert_array_equal(out.data, np.zeros((2, 3, 4)))
    ga, gb = tg.grad(tg.sum(out), [a, b])
    assert ga.shape == (2, 3, 0) and gb.shape == (0, 4)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("axis", [1, 0])
def test_log_softmax_over_row_blocks_in_threads_matches_the_composition(dtype, axis):
    """Large enough to be split over threads: the fused forward and its fused gradient agree
    with the composed ops they replace (max, exp, sum, log; exp, sum, mul, sub)."""
    rng = np.random.default_rng(0)
    x = tg.tensor((rng.standard_normal((700, 400)) * 3).astype(dtype), requires_grad=True)
    w = tg.tensor(rng.standard_normal((700, 400)).astype(dtype))
    y = tg.log_softmax(x, axis)
    shifted = x - tg.tensor(x.data.max(axis=axis, keepdims=True))
    composed = shifted - tg.log(tg.sum(tg.exp(shifted), axis, keepdims=True))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y.data, composed.data, rtol=tol, atol=tol)
    (fused,) = tg.grad((y * w).sum(), [x])
    (twin,) = tg.grad((composed * w).sum(), [x])
    assert fused.dtype == dtype
    np.testing.assert_allclose(fused.data, twin.data, rtol=10 * tol, atol=10 * tol)


def test_sigmoid_keeps_its_relative_precision_far_in_the_negative_tail():
    """σ(-20) is 2.06e-9, not 0 (½·tanh(½a) + ½ cancels there): log σ stays finite."""
    a = np.array([-80.0, -20.0, -10.0, 0.0, 10.0, 30.0])
    exact = 1 / (1 + np.exp(-a))
    for dtype in (np.float32, np.float64):
        got = tg.sigmoid(tg.tensor(a.astype(dtype))).data
        np.testing.assert_allclose(got, exact, rtol=1e-6 if dtype == np.float32 else 1e-14)
