"""Forward mode by transposition (tinygraph.transforms.forward_mode): tg.jvp against central
finite differences and the adjoint identity <Jv, u> = <v, Jᵀu> on every differentiable
primitive of the op table, against torch.func.jvp on an LSTM cell and a 2-layer language
model (float64), inside a compiled step; tg.hessian against PyTorch's and finite
differences; and the errors a wrong call gets."""
import contextlib

import numpy as np
import pytest

import tinygraph as tg
from lstm.cells import lstm_gates
from lstm.models import LanguageModel
from tests.engine.op_cases import CASES

GRAD_CASES = [case for case in CASES if case.differentiable]


def _floating(a):
    return np.issubdtype(np.asarray(a).dtype, np.floating)


@pytest.mark.parametrize("case", GRAD_CASES, ids=str)
def test_jvp_of_every_primitive_matches_finite_differences(case):
    rng = np.random.default_rng(11)
    arrays = case.inputs(rng)
    tangents = [rng.standard_normal(np.shape(a)) if _floating(a) else None for a in arrays]
    out, tangent = tg.jvp(case.fn, arrays, tangents)
    np.testing.assert_allclose(out.data, case.expected(arrays), rtol=1e-12, atol=1e-12)

    eps = 1e-6
    moved = lambda sign: case.expected([a if v is None else a + sign * eps * v
                                        for a, v in zip(arrays, tangents)])
    central = (moved(1) - moved(-1)) / (2 * eps)
    np.testing.assert_allclose(tangent.data, central, rtol=1e-5, atol=1e-6)

    # The adjoint identity, against the reverse pass: <J v, u> = <v, Jᵀ u>.
    u = rng.standard_normal(np.shape(out.data))
    xs = [tg.tensor(a, requires_grad=v is not None) for a, v in zip(arrays, tangents)]
    moving = [x for x, v in zip(xs, tangents) if v is not None]
    vjps = tg.grad(case.fn(*xs), moving, grad_outputs=[u], allow_unused=True)
    backward = sum(np.sum(g.data * v) for g, v in
                   zip(vjps, [v for v in tangents if v is not None]) if g is not None)
    assert np.sum(tangent.data * u) == pytest.approx(backward, rel=1e-10, abs=1e-12)


def _cell(m, x, h, c, Wx, Wh, b):
    """An LSTM step, tinygraph's lstm_gates on the fused affine; m is tg or a torch twin."""
    A = x @ Wx + h @ Wh + b
    if m is tg:
        return lstm_gates(A, c)
    H = c.shape[-1]
    f, g = m.sigmoid(A[:, :H]), m.tanh(A[:, H:2 * H])
    i, o = m.sigmoid(A[:, 2 * H:3 * H]), m.sigmoid(A[:, 3 * H:])
    c = f * c + g * i
    return o * m.tanh(c), c


def test_jvp_of_an_lstm_cell_matches_torch(torch):
    rng = np.random.default_rng(3)
    N, D, H = 2, 3, 4
    shapes = [(N, D), (N, H), (N, H), (D, 4 * H), (H, 4 * H), (4 * H,)]
    primals = [rng.standard_normal(s) for s in shapes]
    tangents = [rng.standard_normal(s) for s in shapes]
    (h, c), (dh, dc) = tg.jvp(lambda *xs: _cell(tg, *xs), primals, tangents)
    (th, tc), (tdh, tdc) = torch.func.jvp(lambda *xs: _cell(torch, *xs),
                                          tuple(map(torch.tensor, primals)),
                                          tuple(map(torch.tensor, tangents)))
    for ours, theirs in [(h, th), (c, tc), (dh, tdh), (dc, tdc)]:
        np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-12, atol=1e-14)


def test_jvp_of_a_two_layer_language_model_matches_torch(torch):
    import lstm
    model = LanguageModel(20, 6, 5, num_layers=2, seed=0, dtype=np.float64)
    twin = lstm.to_torch(model)
    ids = np.random.default_rng(5).integers(0, 20, (3, 4))
    names = [n for n, _ in twin.named_parameters()]
    generator = torch.Generator().manual_seed(0)
    directions = {n: torch.randn(p.shape, generator=generator, dtype=torch.float64)
                  for n, p in twin.named_parameters()}

    def torch_logits(*params):
        return torch.func.functional_call(twin, dict(zip(names, params)),
                                          (torch.as_tensor(ids), None))[0]

    logits, tangent = torch.func.jvp(torch_logits, tuple(twin.parameters()),
                                     tuple(directions[n] for n in names))
    # The same direction in tinygraph's layout (gate order, transposes, joined biases): the
    # bridge's mapping is linear, so a twin holding the direction maps it.
    with torch.no_grad():
        for n, p in twin.named_parameters():
            p.copy_(directions[n])
    direction = lstm.from_torch(twin, dtype=np.float64) if _takes_dtype(lstm.from_torch) \
        else lstm.from_torch(twin)

    def our_logits(*params):
        model.reset_state()
        with bound(model, params):
            return model(ids)

    out, ours = tg.jvp(our_logits, model.parameters(),
                       [p.data.astype(np.float64) for p in direction.parameters()])
    np.testing.assert_allclose(out.data, logits.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.data, tangent.detach().numpy(), rtol=0, atol=1e-12)


@contextlib.contextmanager
def bound(model, tensors):
    """The model computing with `tensors` in place of its parameters (in named_parameters'
    order), as torch.func.functional_call: jvp moves only fn's arguments."""
    names = [name for name, _ in model.named_parameters()]
    owners = []
    for name in names:
        *path, attribute = name.split(".")
        owner = model
        for part in path:
            owner = owner[int(part)] if part.isdigit() else getattr(owner, part)
        owners.append((owner, attribute, getattr(owner, attribute)))
    try:
        for (owner, attribute, _), t in zip(owners, tensors):
            setattr(owner, attribute, t)
        yield
    finally:
        for owner, attribute, original in owners:
            setattr(owner, attribute, original)


def _takes_dtype(fn):
    import inspect
    return "dtype" in inspect.signature(fn).parameters


def test_jvp_of_a_language_model_loss_matches_finite_differences():
    model = LanguageModel(20, 6, 5, num_layers=2, seed=1, dtype=np.float64)
    rng = np.random.default_rng(6)
    ids, targets = rng.integers(0, 20, (3, 4)), rng.integers(0, 20, (3, 4))
    directions = [rng.standard_normal(p.shape) for p in model.parameters()]

    def loss(*params):
        model.reset_state()
        with bound(model, params):
            return model.loss(ids, targets)

    _, tangent = tg.jvp(loss, model.parameters(), directions)
    originals = [p.data.copy() for p in model.parameters()]
    eps, values = 1e-6, []
    for sign in (1, -1):
        for p, a, v in zip(model.parameters(), originals, directions):
            p.data = a + sign * eps * v
        values.append(float(loss().data))
    for p, a in zip(model.parameters(), originals):
        p.data = a
    assert float(tangent.data) == pytest.approx((values[0] - values[1]) / (2 * eps), rel=1e-6)


def test_a_jvp_inside_a_loss_eager_and_compiled():
    # create_graph=True records the tangent: a loss made of it trains, compiled as eager.
    rng = np.random.default_rng(7)
    W = tg.Parameter(rng.standard_normal((3, 3)))
    x, v = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))

    def loss(x, v):
        _, dy = tg.jvp(lambda x: tg.tanh(x @ W), (x,), (v,), create_graph=True)
        return tg.sum(dy * dy)

    eager = tg.eager_step(loss, [W], replay=False)
    compiled = tg.compile(loss, [W])
    for step in (eager, compiled, compiled):
        W.grad = None
        value = step(x, v)
        grads = W.grad.data.copy()
        if step is eager:
            expected_value, expected = value.data, grads
        np.testing.assert_allclose(value.data, expected_value, rtol=1e-12)
        np.testing.assert_allclose(grads, expected, rtol=1e-12)
    # ... and the gradient itself against finite differences of the loss in W.
    eps, e = 1e-6, np.zeros((3, 3))
    e[1, 2] = 1
    W.data = W.data + eps * e
    up = float(loss(x, v).data)
    W.data = W.data - 2 * eps * e
    down = float(loss(x, v).data)
    assert expected[1, 2] == pytest.approx((up - down) / (2 * eps), rel=1e-6)


def test_hessian_matches_torch_and_finite_differences(torch):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3))
    A = rng.standard_normal((3, 3))

    def f(m, x):
        a = torch.tensor(A) if m is torch else A
        return m.sum(m.tanh(x @ a) ** 3) * m.sum(m.sigmoid(x))

    H = tg.hessian(lambda x: f(tg, x), x)
    assert H.shape == (2, 3, 2, 3)
    theirs = torch.autograd.functional.hessian(lambda x: f(torch, x), torch.tensor(x))
    np.testing.assert_allclose(H.data, theirs.numpy(), rtol=1e-10, atol=1e-12)
    # One entry by finite differences of the gradient.
    def gradient(x):
        t = tg.tensor(x, requires_grad=True)
        return tg.grad(f(tg, t), [t])[0].data
    eps, e = 1e-6, np.zeros_like(x)
    e[1, 0] = 1
    column = (gradient(x + eps * e) - gradient(x - eps * e)) / (2 * eps)
    np.testing.assert_allclose(H.data[:, :, 1, 0], column, rtol=1e-6, atol=1e-8)


def test_hessian_of_a_linear_function_is_zero():
    H = tg.hessian(lambda x: tg.sum(x * 3.0), np.ones(3))
    np.testing.assert_array_equal(H.data, np.zeros((3, 3)))


def test_an_output_that_does_not_move_has_a_zero_tangent():
    out, (a, b) = tg.jvp(lambda x, y: (x * 2.0, y + 1.0), (np.ones(2), np.ones(3)),
                         (np.ones(2), None))
    np.testing.assert_array_equal(a.data, [2.0, 2.0])
    np.testing.assert_array_equal(b.data, np.zeros(3))


@pytest.mark.parametrize("call, message", [
    (lambda: tg.jvp(tg.tanh, np.ones(2), (np.ones(2),)), "tuple or list"),
    (lambda: tg.jvp(tg.tanh, (np.ones(2),), ()), "1 primals but 0 tangents"),
    (lambda: tg.jvp(tg.tanh, (np.ones(2),), (np.ones(3),)), r"tangent 0 has shape \(3,\)"),
    (lambda: tg.jvp(lambda i: i, (np.arange(3),), (np.ones(3),)), "only floating-point"),
    (lambda: tg.jvp(lambda x: 3, (np.ones(2),), (np.ones(2),)), "must return a Tensor"),
    (lambda: tg.hessian(tg.tanh, np.ones(2)), "scalar"),
])
def test_wrong_calls_are_named(call, message):
    with pytest.raises((TypeError, ValueError), match=message):
        call()


def test_the_tangent_graph_is_forward_mode_drawn_as_forward_ops():
    rng = np.random.default_rng(9)
    x = tg.tensor(rng.standard_normal((1, 3)), name="x")
    W = tg.tensor(rng.standard_normal((3, 2)), name="W")

    def f(x):
        y = tg.sigmoid(x @ W)
        y.name = "y"
        return y

    _, dy = tg.jvp(f, (x,), (rng.standard_normal((1, 3)),), create_graph=True)
    assert dy.name == "dy"
    graph = tg.nodes([dy])
    assert not any(node.is_backward for node in graph)        # plain ops, drawable as such
    tangent = [node for node in graph if "tangent" in node.scope]
    # dy = (dx · W) ⊙ (1 − y) ⊙ y: the tangent's matmul reads dx and W itself (Wᵀᵀ = W).
    assert sorted(node.op for node in tangent) == ["matmul", "mul", "mul", "sub"]
    product = next(node for node in tangent if node.op == "matmul")
    assert [t.name for t in product.inputs] == ["dx", "W"]
    leaves = {t.name for node in graph for t in node.inputs
              if t._node is None and not t.constant}
    assert leaves == {"x", "W", "dx"}                       # no stand-in cotangent left
    dot = tg.to_dot([dy], view="forward")
    assert "tangent" in dot and "dx" in dot and "∂L" not in dot


def test_a_transpose_of_a_transpose_simplifies_to_its_input():
    W = tg.tensor(np.ones((2, 3)), name="W")
    x = tg.tensor(np.ones((4, 3)), name="x", requires_grad=True)
    (g,) = tg.grad(tg.sum(x @ tg.transpose(W)), [x], create_graph=True)
    simplified = tg.simplify([g])
    assert simplified.rewrites["identities"] >= 1
    assert "transpose" not in [n.op for n in tg.nodes(simplified.outputs) if n.is_backward]
    np.testing.assert_array_equal(simplified.outputs[0].data, g.data)


def test_mode_costs_count_each_modes_nodes_and_flops():
    n = 6
    W = np.random.default_rng(10).standard_normal((n, n))
    costs = tg.mode_costs(lambda x: tg.sum(tg.tanh(x @ W)), np.linspace(-1, 1, n))
    (nodes_f, flops_f), (nodes_r, flops_r) = costs.forward, costs.reverse
    per_jvp = sum("tangent" in node.scope for node in tg.nodes([costs.tangent]))
    assert nodes_f == n * per_jvp
    assert nodes_r < nodes_f and flops_r < flops_f            # 6 inputs, 1 output
    # The jvp's product dx · W: 2 · 6 · 6 FLOPs, as Primitive.flops counts a matmul.
    product = next(node for node in tg.nodes([costs.tangent])
                   if "tangent" in node.scope and node.op == "matmul")
    assert product.prim.flops(product) == 2 * n * n
    assert "forward mode: 6 jvps" in str(costs) and "reverse mode: 1 vjp" in str(costs)
    page = tg.explore_diff(costs.tangent, costs.gradient, view=("forward", "backward"),
                           labels=("forward mode", "reverse mode"))
    assert [side["label"] for side in page.data["sides"]] == ["forward mode", "reverse mode"]


@pytest.mark.parametrize("case", GRAD_CASES, ids=str)
def test_jvp_of_every_primitive_inside_a_compiled_step(case):
    # The tangent recorded into a compiled program (create_graph=True) gives the eager jvp:
    # the step's loss is s · Σ w ⊙ (J v), with s a parameter so that there is one to train.
    rng = np.random.default_rng(12)
    arrays = case.inputs(rng)
    tangents = [rng.standard_normal(np.shape(a)) if _floating(a) else None for a in arrays]
    _, eager = tg.jvp(case.fn, arrays, tangents)
    w = rng.standard_normal(eager.shape)
    s = tg.Parameter(np.array(1.0))

    def loss(*inputs):
        xs, vs = inputs[:len(arrays)], inputs[len(arrays):]
        vs = iter(vs)
        _, t = tg.jvp(case.fn, xs, [None if v is None else next(vs) for v in tangents],
                      create_graph=True)
        return s * tg.sum(t * w)

    step = tg.compile(loss, [s])
    given = [v for v in tangents if v is not None]
    for _ in range(2):                       # the trace, then a replay
        value = float(step(*arrays, *given).data)
        assert value == pytest.approx(float(np.sum(eager.data * w)), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("requires_grad", [False, True])
def test_only_the_arguments_move_as_in_torch(requires_grad, torch):
    # The same tensor given twice is two inputs; fn reading its primal from the closure reads
    # a constant: whether the tensor requires grad or not.
    x = tg.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=requires_grad)
    e0, e1 = np.eye(3)[0], np.eye(3)[1]
    _, t = tg.jvp(lambda a, b: a * b, (x, x), (e0, e1))
    X = torch.tensor(x.data)
    _, expected = torch.func.jvp(lambda a, b: a * b, (X, X), (torch.tensor(e0), torch.tensor(e1)))
    np.testing.assert_array_equal(t.data, expected.numpy())
    _, t = tg.jvp(lambda w: tg.sum(w * x), (x,), (e0,))
    assert float(t.data) == 1.0                     # d/dw Σ w·x along e0 with x fixed: x[0]
