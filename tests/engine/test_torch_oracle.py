"""PyTorch autograd as an oracle: random op compositions, a Hessian-vector product and
repeated backward calls must agree with it to 1e-10 in float64. Skipped without torch (the
`torch` fixture of tests/conftest.py imports it and marks each test that uses it)."""
import numpy as np
import pytest

import tinygraph as tg

ROWS, COLS = 3, 4
TARGETS = np.array([1, 3, 0])

# Each step maps (values, params) to one new (ROWS, COLS) value; `m` is the math module of the
# framework (tinygraph or torch) so one lambda serves both.
UNARY = {
    "tanh": lambda m, x: m.tanh(x),
    "sigmoid": lambda m, x: m.sigmoid(x),
    "relu": lambda m, x: m.relu(x),
    "square": lambda m, x: x ** 2 * 0.5,
    "neg": lambda m, x: -x,
    "log1p_sq": lambda m, x: m.log(x * x + 1.0),
    "gauss": lambda m, x: m.exp(-(x * x)),
    "log_softmax": lambda m, x: m.log_softmax(x),
    "center": lambda m, x: x - m.mean(x, 0, True),
    "scale_rows": lambda m, x: x * m.sum(x, 1, True),
    "rotate": lambda m, x: m.concat([x[:, 2:], x[:, :2]], 1),
    "transpose_back": lambda m, x: m.reshape(m.transpose(x), (ROWS, COLS)),
    "gather_rows": lambda m, x: x[np.array([2, 0, 0])],
    "sum_to_row": lambda m, x: m.broadcast_to(m.sum_to(x, (1, COLS)), (ROWS, COLS)),
}
BINARY = {
    "add": lambda m, x, y: x + y,
    "sub": lambda m, x, y: x - y,
    "mul": lambda m, x, y: x * y,
    "safe_div": lambda m, x, y: x / (y * y + 1.0),
    "matmul_w": lambda m, x, y, w: x @ w,
}


def torch_math(torch):
    """The tinygraph function names, on torch tensors."""
    class TorchMath:
        tanh, sigmoid, relu = torch.tanh, torch.sigmoid, torch.relu
        exp, log = torch.exp, torch.log
        transpose, reshape = staticmethod(lambda x: x.T), staticmethod(torch.reshape)
        log_softmax = staticmethod(lambda x: torch.log_softmax(x, -1))
        mean = staticmethod(lambda x, a, k: x.mean(a, keepdim=k))
        sum = staticmethod(lambda x, a=None, k=False: x.sum() if a is None
                           else x.sum(a, keepdim=k))
        concat = staticmethod(lambda xs, a: torch.cat(xs, a))
        sum_to = staticmethod(lambda x, shape: x.sum(0, keepdim=True))
        broadcast_to = staticmethod(lambda x, shape: x.expand(shape))

        @staticmethod
        def cross_entropy(x, t):
            return torch.nn.functional.cross_entropy(x, torch.as_tensor(t))
    return TorchMath


def random_program(seed, length=8):
    rng = np.random.default_rng(seed)
    steps = []
    for _ in range(length):
        if rng.random() < 0.5:
            steps.append(("unary", rng.choice(sorted(UNARY)), int(rng.integers(0, 99))))
        else:
            steps.append(("binary", rng.choice(sorted(BINARY)), int(rng.integers(0, 99)),
                          int(rng.integers(0, 99))))
    return steps


def run_program(m, steps, inputs, w, readout):
    values = list(inputs)
    for step in steps:
        if step[0] == "unary":
            values.append(UNARY[step[1]](m, values[step[2] % len(values)]))
        else:
            x, y = values[step[2] % len(values)], values[step[3] % len(values)]
            fn = BINARY[step[1]]
            values.append(fn(m, x, y, w) if step[1] == "matmul_w" else fn(m, x, y))
    return (m.sum(values[-1] * readout) + m.cross_entropy(values[-2], TARGETS)
            + m.sum(values[-3] ** 2))


def arrays_for(seed):
    rng = np.random.default_rng(1000 + seed)
    return ([rng.standard_normal((ROWS, COLS)) for _ in range(3)],
            rng.standard_normal((COLS, COLS)), rng.standard_normal((ROWS, COLS)))


def both(seed, torch):
    """The same program and inputs as tinygraph and torch leaves."""
    inputs, w, readout = arrays_for(seed)
    ours = [tg.tensor(a, requires_grad=True) for a in inputs + [w]]
    theirs = [torch.tensor(a, requires_grad=True) for a in inputs + [w]]
    steps = random_program(seed)
    loss_ours = run_program(tg, steps, ours[:3], ours[3], readout)
    loss_theirs = run_program(torch_math(torch), steps, theirs[:3], theirs[3], torch.tensor(readout))
    return ours, theirs, loss_ours, loss_theirs


@pytest.mark.parametrize("seed", range(30))
def test_random_compositions_match_torch(seed, torch):
    ours, theirs, loss_ours, loss_theirs = both(seed, torch)
    np.testing.assert_allclose(loss_ours.data, loss_theirs.detach().numpy(), rtol=1e-12)
    assert_same_gradients(tg.grad(loss_ours, ours, allow_unused=True),
                          torch.autograd.grad(loss_theirs, theirs, allow_unused=True))


def assert_same_gradients(grads_ours, grads_theirs):
    """Equal to 1e-10; where torch has no gradient (unused input), ours is None or zero."""
    for g_ours, g_theirs in zip(grads_ours, grads_theirs):
        if g_theirs is None:
            assert g_ours is None or not np.any(g_ours.data)
        else:
            np.testing.assert_allclose(g_ours.data, g_theirs.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("seed", range(10))
def test_hessian_vector_products_match_torch(seed, torch):
    ours, theirs, loss_ours, loss_theirs = both(seed, torch)
    vs = [np.random.default_rng(seed + k).standard_normal(t.shape) for k, t in enumerate(ours)]
    grads_ours = tg.grad(loss_ours, ours, create_graph=True, allow_unused=True)
    grads_theirs = torch.autograd.grad(loss_theirs, theirs, create_graph=True, allow_unused=True)
    dot_ours = sum((g * v).sum() for g, v in zip(grads_ours, vs) if g is not None and g.requires_grad)
    dot_theirs = sum((g * torch.tensor(v)).sum()
                     for g, v in zip(grads_theirs, vs) if g is not None and g.requires_grad)
    if not isinstance(dot_theirs, torch.Tensor):
        pytest.skip("this program is linear in every input")
    assert_same_gradients(tg.grad(dot_ours, ours, allow_unused=True),
                          torch.autograd.grad(dot_theirs, theirs, allow_unused=True))


def test_repeated_backward_accumulates_like_torch(torch):
    ours, theirs, loss_ours, loss_theirs = both(3, torch)
    for _ in range(3):
        loss_ours.backward(retain_graph=True)
        loss_theirs.backward(retain_graph=True)
    # A second, different loss accumulates on top, as in torch.
    (ours[0] * ours[1]).sum().backward()
    (theirs[0] * theirs[1]).sum().backward()
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.data, b.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_lstm_cell_matches_torch_lstmcell(torch):
    """Our gate order f, g, i, o mapped onto torch's i, f, g, o."""
    from tinygraph.examples import lstm_cell_step

    inputs, (h, c) = lstm_cell_step(batch=3, input_size=5, hidden_size=4, seed=2)
    H = 4
    cell = torch.nn.LSTMCell(5, H, dtype=torch.float64)

    def to_torch_order(m):   # columns f, g, i, o -> rows i, f, g, o
        f, g, i, o = np.split(m, 4, axis=-1)
        return np.concatenate([i, f, g, o], axis=-1).T

    with torch.no_grad():
        cell.weight_ih.copy_(torch.tensor(to_torch_order(inputs["Wx"].data)))
        cell.weight_hh.copy_(torch.tensor(to_torch_order(inputs["Wh"].data)))
        cell.bias_ih.copy_(torch.tensor(to_torch_order(inputs["b"].data[None])[:, 0]))
        cell.bias_hh.zero_()
    x, h0, c0 = (torch.tensor(inputs[n].data, requires_grad=True) for n in ("x", "h_prev", "c_prev"))
    h_t, c_t = cell(x, (h0, c0))
    np.testing.assert_allclose(h.data, h_t.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(c.data, c_t.detach().numpy(), atol=1e-12)
    (h.sum() * 2.0 + c.sum()).backward()
    (h_t.sum() * 2 + c_t.sum()).backward()
    for name, theirs in (("x", x), ("h_prev", h0), ("c_prev", c0)):
        np.testing.assert_allclose(inputs[name].grad.data, theirs.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(to_torch_order(inputs["Wx"].grad.data), cell.weight_ih.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(to_torch_order(inputs["Wh"].grad.data), cell.weight_hh.grad.numpy(), atol=1e-10)
