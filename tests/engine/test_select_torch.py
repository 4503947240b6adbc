"""The selecting ops (comparisons, where, maximum/minimum, clip, max/min, argmax/argmin,
logsumexp) against PyTorch on the same numbers: values, and gradients in float64; ties and
infinities where PyTorch has a rule for them; compiled steps equal to eager with inputs that
change between calls (a comparison or argmax baked into the trace would not follow them);
bad arguments named. Skipped without torch where torch is needed (the `torch` fixture)."""
import operator

import numpy as np
import pytest

import tinygraph as tg

INF = float("inf")


def value_and_grads(fn, *arrays):
    """(value, [gradient of sum(fn) for each array]) in tinygraph."""
    xs = [tg.Parameter(np.asarray(a, dtype=np.float64)) for a in arrays]
    out = fn(*xs)
    grads = tg.grad(tg.sum(out), xs, allow_unused=True)
    return out.data, [None if g is None else g.data for g in grads]


def torch_value_and_grads(torch, fn, *arrays):
    xs = [torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True) for a in arrays]
    out = fn(*xs)
    out.sum().backward()
    return out.detach().numpy(), [x.grad.numpy() if x.grad is not None else None for x in xs]


def assert_same(ours, theirs):
    (value, grads), (t_value, t_grads) = ours, theirs
    assert value.shape == t_value.shape
    np.testing.assert_allclose(value, t_value, rtol=1e-12, atol=1e-300)
    for g, t_g in zip(grads, t_grads):
        np.testing.assert_allclose(0 if g is None else g, 0 if t_g is None else t_g,
                                   rtol=1e-12, atol=1e-300)


def with_ties(seed=0):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(4,))
    a[1] = b                                   # a whole row ties with b
    a[2, 0] = b[0]
    return a, b


# --- comparisons ------------------------------------------------------------------------------

OPERATORS = [(operator.gt, "greater"), (operator.ge, "greater_equal"), (operator.lt, "less"),
             (operator.le, "less_equal"), (operator.eq, "equal"), (operator.ne, "not_equal")]


@pytest.mark.parametrize("op, name", OPERATORS, ids=[n for _, n in OPERATORS])
def test_comparisons_are_elementwise_booleans_as_in_torch(torch, op, name):
    a, b = with_ties()
    x, y = tg.tensor(a, requires_grad=True), tg.tensor(b)
    expected = op(torch.tensor(a), torch.tensor(b)).numpy()
    for got in (op(x, y), getattr(tg, name)(x, y), op(x, b), op(a, y)):
        assert isinstance(got, tg.Tensor) and got.dtype == np.bool_
        assert not got.requires_grad and got.node.op == "compare"
        np.testing.assert_array_equal(got.data, expected)
    np.testing.assert_array_equal(op(x, 0.5).data, op(torch.tensor(a), 0.5).numpy())
    np.testing.assert_array_equal(op(0.5, x).data, op(0.5, torch.tensor(a)).numpy())


def test_logical_and_or_not_of_masks_as_torch(torch):
    a, b = with_ties()
    x, y = tg.tensor(a), tg.tensor(b)
    ta, tb = torch.tensor(a), torch.tensor(b)
    pairs = [((x > 0) & (y < 0.5), (ta > 0) & (tb < 0.5)),
             ((x > 0) | (y < 0.5), (ta > 0) | (tb < 0.5)),
             (~(x > 0), ~(ta > 0)),
             ((b > 0.5) & (x > 0), (tb > 0.5) & (ta > 0))]          # a numpy mask first
    for ours, theirs in pairs:
        assert ours.dtype == np.bool_ and not ours.requires_grad
        np.testing.assert_array_equal(ours.data, theirs.numpy())
    with pytest.raises(TypeError, match="logical_and: needs boolean masks"):
        (x > 0) & x


def test_equality_against_what_is_no_number_falls_back_to_identity():
    x = tg.tensor([1.0, 2.0])
    assert (x == None) is False and (x != None) is True       # noqa: E711 (the point)
    assert (x == "x") is False
    # Hashing stays by identity: tensors as dict keys and in sets.
    y = tg.tensor([1.0, 2.0])
    assert len({x, y}) == 2 and {x: 1, y: 2}[y] == 2


# --- where ------------------------------------------------------------------------------------

def test_where_matches_torch_with_broadcasting(torch):
    a, b = with_ties()
    cond = a > 0.1
    ours = value_and_grads(lambda x, y: tg.where(cond, x, y), a, b)
    theirs = torch_value_and_grads(torch, lambda x, y: torch.where(torch.tensor(cond), x, y),
                                   a, b)
    assert_same(ours, theirs)


def test_where_gives_finite_gradients_beside_an_infinite_unselected_branch(torch):
    """The masks cond·a + (1 − cond)·b would be NaN in value and gradient where b is inf and
    not selected; where selects, in tinygraph as in PyTorch."""
    cond = np.array([True, False, True])
    a, b = np.array([1.0, 2.0, 3.0]), np.array([INF, 1.0, -INF])
    ours = value_and_grads(lambda x, y: tg.where(cond, x, y), a, b)
    theirs = torch_value_and_grads(torch, lambda x, y: torch.where(torch.tensor(cond), x, y),
                                   a, b)
    assert_same(ours, theirs)
    np.testing.assert_array_equal(ours[0], [1.0, 1.0, 3.0])
    np.testing.assert_array_equal(ours[1][1], [0.0, 1.0, 0.0])
    with np.errstate(invalid="ignore"):         # inf · 0
        masked, _ = value_and_grads(lambda x, y: x * cond + y * (1.0 - cond), a, b)
    assert np.isnan(masked[0])                  # what where avoids


def test_where_passes_nan_through_an_unselected_branch_whose_own_gradient_is_infinite(torch):
    """where(x > 0, log(x), x) at x = 0: log's gradient 0/0 is NaN although where gives it 0,
    in PyTorch too (the known pitfall; select the input first: log(where(x > 0, x, 1)))."""
    a = np.array([0.0, 2.0])
    with np.errstate(divide="ignore", invalid="ignore"):      # log(0), 0/0: the point
        ours = value_and_grads(lambda x: tg.where(x > 0, tg.log(x), x), a)
    theirs = torch_value_and_grads(torch, lambda x: torch.where(x > 0, torch.log(x), x), a)
    assert np.isnan(ours[1][0][0]) and np.isnan(theirs[1][0][0])
    np.testing.assert_allclose(ours[1][0][1], theirs[1][0][1])


# --- maximum, minimum, clip -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_and_minimum_split_ties_as_torch(torch, name):
    a, b = with_ties()
    ours = value_and_grads(getattr(tg, name), a, b)
    theirs = torch_value_and_grads(torch, getattr(torch, name), a, b)
    assert_same(ours, theirs)
    assert 0.5 in ours[1][0]                   # a tie got half


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_and_minimum_of_infinities_and_nan_as_torch(torch, name):
    a = np.array([INF, -INF, INF, np.nan, 1e308])
    b = np.array([INF, -INF, 1.0, 1.0, 1e308])
    ours = value_and_grads(getattr(tg, name), a, b)
    theirs = torch_value_and_grads(torch, getattr(torch, name), a, b)
    np.testing.assert_array_equal(ours[0], theirs[0])


def test_clip_matches_torch_clamp_at_and_beyond_the_bounds(torch):
    a = np.array([-1.0, 0.0, 0.5, 1.0, 2.0])            # exactly at both bounds too
    ours = value_and_grads(lambda x: tg.clip(x, 0.0, 1.0), a)
    theirs = torch_value_and_grads(torch, lambda x: torch.clamp(x, 0.0, 1.0), a)
    assert_same(ours, theirs)
    np.testing.assert_array_equal(ours[1][0], [0, 1, 1, 1, 0])
    for kwargs in (dict(min=0.0), dict(max=1.0)):
        assert_same(value_and_grads(lambda x: tg.clip(x, **kwargs), a),
                    torch_value_and_grads(torch, lambda x: torch.clamp(x, **kwargs), a))
    np.testing.assert_array_equal(tg.tensor(a).clip(max=0.5).data, np.clip(a, None, 0.5))


def test_clip_with_tensor_bounds_and_crossed_bounds_as_torch(torch):
    rng = np.random.default_rng(1)
    x, low, high = rng.normal(size=6), rng.normal(size=6) - 0.5, rng.normal(size=6) + 0.5
    low[0] = x[0]                                        # at the bound
    ours = value_and_grads(tg.clip, x, low, high)
    theirs = torch_value_and_grads(torch, torch.clamp, x, low, high)
    assert_same(ours, theirs)
    # min > max gives max, as torch.clamp and np.clip do
    np.testing.assert_array_equal(tg.clip(tg.tensor([0.5, 3.0]), 2.0, 1.0).data, [1.0, 1.0])


# --- max, min, argmax, argmin -----------------------------------------------------------------

@pytest.mark.parametrize("axis, keepdims", [(None, False), (1, False), (0, True), ((0, 2), False),
                                             (-1, True)])
@pytest.mark.parametrize("name", ["max", "min"])
def test_max_and_min_match_amax_and_amin_with_ties(torch, name, axis, keepdims):
    x = np.round(np.random.default_rng(2).normal(size=(3, 4, 2)))    # many ties
    ours = value_and_grads(lambda t: getattr(tg, name)(t, axis=axis, keepdims=keepdims), x)
    dim = tuple(range(3)) if axis is None else axis
    theirs = torch_value_and_grads(
        torch, lambda t: getattr(torch, "a" + name)(t, dim=dim, keepdim=keepdims), x)
    assert_same(ours, theirs)
    method = getattr(tg.tensor(x), name)(axis=axis, keepdims=keepdims)
    np.testing.assert_array_equal(method.data, ours[0])


@pytest.mark.parametrize("axis, keepdims", [(None, False), (1, False), (0, True), (-1, False)])
@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_argmax_and_argmin_match_torch_and_take_the_first_tie(torch, name, axis, keepdims):
    x = np.round(np.random.default_rng(3).normal(size=(4, 5)))
    got = getattr(tg, name)(tg.tensor(x, requires_grad=True), axis, keepdims)
    expected = getattr(torch, name)(torch.tensor(x), dim=axis, keepdim=keepdims).numpy() \
        if axis is not None or not keepdims else getattr(np, name)(x, keepdims=True)
    assert got.dtype.kind == "i" and not got.requires_grad and got.node.op == name
    np.testing.assert_array_equal(got.data, expected)
    np.testing.assert_array_equal(getattr(tg.tensor(x), name)(axis, keepdims).data, expected)


# --- logsumexp --------------------------------------------------------------------------------

@pytest.mark.parametrize("axis, keepdims", [(None, False), (1, False), (0, True), ((0, 1), True)])
def test_logsumexp_matches_torch(torch, axis, keepdims):
    x = np.random.default_rng(4).normal(size=(3, 4)) * 3
    dim = (0, 1) if axis is None else axis
    assert_same(value_and_grads(lambda t: tg.logsumexp(t, axis, keepdims), x),
                torch_value_and_grads(torch, lambda t: torch.logsumexp(t, dim, keepdims), x))


def test_logsumexp_of_huge_and_infinite_inputs_as_torch(torch):
    x = np.array([[1e4, 1e4, 0.0], [-1e4, -2e4, -1e4]])
    with np.errstate(over="raise"):
        ours = value_and_grads(lambda t: tg.logsumexp(t, 1), x)
    assert_same(ours, torch_value_and_grads(torch, lambda t: torch.logsumexp(t, 1), x))
    np.testing.assert_allclose(ours[0], [1e4 + np.log(2), -1e4 + np.log(2)])
    for row in ([-INF, -INF], [INF, 1.0]):
        x = np.array(row)
        with np.errstate(divide="ignore", invalid="ignore"):  # log(0), inf/inf as in torch
            ours = value_and_grads(lambda t: tg.logsumexp(t, 0), x)
        theirs = torch_value_and_grads(torch, lambda t: torch.logsumexp(t, 0), x)
        np.testing.assert_array_equal(ours[0], theirs[0])
        np.testing.assert_array_equal(ours[1][0], theirs[1][0])     # NaN where torch's is


def test_logsumexp_is_stable_inside_a_second_derivative():
    x = np.random.default_rng(5).normal(size=(2, 3))
    assert tg.gradcheck(lambda t: tg.logsumexp(t, 1), [x])
    t = tg.tensor(x, requires_grad=True)
    (g,) = tg.grad(tg.sum(tg.logsumexp(t, 1)), [t], create_graph=True)
    (gg,) = tg.grad(tg.sum(g * g), [t])
    softmax = np.exp(x - np.log(np.exp(x).sum(1, keepdims=True)))
    # d/dx Σ s² = 2 s ⊙ (s − Σ s²) per row, s = softmax(x)
    expected = 2 * softmax * (softmax - (softmax ** 2).sum(1, keepdims=True))
    np.testing.assert_allclose(gg.data, expected, rtol=1e-10)


# --- compiled == eager, with inputs that change -----------------------------------------------

def selecting_loss(w):
    def loss(x, y):
        h = tg.matmul(x, w)
        chosen = tg.where(h > y, h, tg.minimum(h, y * 2.0))
        picked = tg.max(chosen, axis=1) + tg.min(chosen, axis=0).sum()
        ids = tg.argmax(h, 1)                   # recomputed per call: an index into w's rows
        return (tg.logsumexp(h, 1).sum() + picked.sum() + tg.clip(h, -0.5, 0.5).sum()
                + tg.sum(h[tg.tensor(np.arange(h.shape[0])), ids])
                + tg.sum(tg.where(h == tg.max(h, axis=1, keepdims=True), h, 0.0)))
    return loss


def test_a_compiled_step_with_selecting_ops_equals_eager_as_inputs_change():
    rng = np.random.default_rng(6)
    w = tg.Parameter(rng.normal(size=(3, 4)))
    loss = selecting_loss(w)
    step = tg.compile(loss, [w])
    for call in range(4):                        # the first traces, the others replay
        x, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 4))
        w.zero_grad()
        compiled = float(step(x, y))
        compiled_grad = w.grad.data.copy()
        eager = loss(tg.tensor(x), tg.tensor(y))
        (eager_grad,) = tg.grad(eager, [w])
        assert compiled == pytest.approx(float(eager.data), rel=1e-12)
        np.testing.assert_allclose(compiled_grad, eager_grad.data, rtol=1e-12, atol=1e-14)


def test_comparisons_and_argmax_are_recorded_in_the_compiled_program():
    w = tg.Parameter(np.ones(4))
    step = tg.compile(lambda x: tg.sum(tg.where(x > 0, w, 0.0)) + tg.sum(
        tg.where(tg.argmax(x) == 2, w, 0.0)) + tg.sum(tg.where((x > 0) & ~(x > 1.5), w, 0.0)),
        [w])
    # 2 positive, argmax 2, 1 in (0, 1.5]; then 3 positive, argmax 3, 2 in (0, 1.5]
    assert float(step(np.array([1.0, -1.0, 2.0, -2.0]))) == 7.0
    assert float(step(np.array([1.0, 1.0, -1.0, 3.0]))) == 5.0


# --- bad arguments ----------------------------------------------------------------------------

@pytest.mark.parametrize("call, error, message", [
    (lambda x: tg.max(x, axis=2), ValueError, "max: axis 2 is out of range for 2 dimensions"),
    (lambda x: tg.min(x, axis=(0, 0)), ValueError, "min: repeated axis"),
    (lambda x: tg.max(x[:, :0], axis=1), ValueError, "max: axis 1 of .* is empty"),
    (lambda x: tg.logsumexp(x[:0]), ValueError, "logsumexp: axis 0 of .* is empty"),
    (lambda x: tg.argmax(x, (0, 1)), TypeError, "argmax: axis must be None or one int"),
    (lambda x: tg.argmin(x[:0]), ValueError, "argmin: .* has no elements"),
    (lambda x: tg.argmax(x, -3), ValueError, "argmax: axis -3 is out of range"),
    (lambda x: tg.where(x, x, 0.0), TypeError, "where: the condition must be boolean"),
    (lambda x: tg.where(np.array([1, 0]), x, 0.0), TypeError, "where: the condition must be"),
    (lambda x: tg.where(x > 0, x, np.ones(4)), ValueError, "where: cannot broadcast"),
    (lambda x: tg.clip(x), ValueError, "clip: give min, max or both"),
    (lambda x: x > np.ones(5), ValueError, "greater: cannot broadcast"),
    (lambda x: tg.maximum(x, np.ones(4)), ValueError, "maximum: cannot broadcast"),
    (lambda x: x < "a", TypeError, "less: operand of type str"),
])
def test_bad_arguments_are_named(call, error, message):
    x = tg.tensor(np.ones((2, 3)), name="x")
    with pytest.raises(error, match=message):
        call(x)


def test_onnx_export_of_the_selecting_ops_runs_as_tinygraph(onnx, onnxruntime):
    x = tg.tensor(np.random.default_rng(7).normal(size=(3, 4)).astype(np.float32), name="x")
    outputs = [tg.where(x > 0, x, tg.clip(x, -0.3, 0.3)), tg.max(x, axis=1), tg.min(x, axis=(0, 1)),
               tg.argmax(x, 1), tg.argmin(x), tg.argmax(x, None, keepdims=True),
               x != tg.max(x, axis=0), tg.logsumexp(x, 1), x <= 0.1, x >= 0.1]
    model = tg.export_onnx(outputs, [x])
    session = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": x.data})
    for k, (ours, theirs) in enumerate(zip(outputs, got)):
        assert theirs.shape == ours.shape, k
        np.testing.assert_allclose(theirs, ours.data, rtol=1e-6, err_msg=str(k))


@pytest.mark.parametrize("name", ["max", "min"])
def test_a_positional_axis_of_max_and_min_is_refused_with_the_reason(name):
    # values, indices = x.max(1) (torch's idiom) would silently unpack two rows of values.
    x = tg.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
    for call in (lambda: getattr(tg, name)(x, 1), lambda: getattr(x, name)(1)):
        with pytest.raises(TypeError, match=f"give the axis by name.*arg{name}"):
            call()


def test_equality_with_a_list_is_elementwise():
    pred = tg.argmax(tg.tensor(np.eye(2)), axis=1)
    np.testing.assert_array_equal((pred == [0, 1]).data, [True, True])
    np.testing.assert_array_equal((pred != [1, 1]).data, [True, False])
    np.testing.assert_array_equal((pred == (0, 0)).data, [True, False])


def test_maximum_and_minimum_of_integers_as_torch(torch):
    a, b = np.array([1, 5, 3, -2]), np.array([2, 5, 1, -7])
    for name in ("maximum", "minimum"):
        ours = getattr(tg, name)(tg.tensor(a), tg.tensor(b))
        assert ours.dtype == np.int64
        np.testing.assert_array_equal(
            ours.data, getattr(torch, name)(torch.as_tensor(a), torch.as_tensor(b)).numpy())


@pytest.mark.parametrize("fn", [np.max, np.sum, np.mean, np.var])
def test_a_numpy_reduction_of_a_tensor_names_the_tinygraph_op(fn):
    with pytest.raises(TypeError, match=f"np.{fn.__name__} of a tinygraph Tensor: use "
                                        f"tg.{fn.__name__}"):
        fn(tg.tensor(np.ones((2, 2))))
