"""LSTMCell and GRUCell against PyTorch's, weights mapped between gate orders, float64."""
import numpy as np
import pytest

import tinygraph as tg
from lstm.cells import GRUCell, LSTMCell

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")


def to_torch_rows(fused, order):
    """Our fused (D, kH) columns -> torch's (kH, D) rows, gate blocks reordered."""
    blocks = np.split(fused, len(order), axis=-1)
    return np.concatenate([blocks[k] for k in order], axis=-1).T


def compare(ours, theirs, atol=1e-10):
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=atol)


def test_lstm_cell_matches_torch():
    cell = LSTMCell(5, 4, dtype=np.float64, rng=np.random.default_rng(0))
    cell.b.data = np.random.default_rng(1).standard_normal(16)
    ref = torch.nn.LSTMCell(5, 4, dtype=torch.float64)
    order = [2, 0, 1, 3]           # ours f, g, i, o -> torch i, f, g, o
    with torch.no_grad():
        ref.weight_ih.copy_(torch.tensor(to_torch_rows(cell.Wx.data, order)))
        ref.weight_hh.copy_(torch.tensor(to_torch_rows(cell.Wh.data, order)))
        ref.bias_ih.copy_(torch.tensor(to_torch_rows(cell.b.data[None], order)[:, 0]))
        ref.bias_hh.zero_()
    rng = np.random.default_rng(2)
    x, h0, c0 = (rng.standard_normal(s) for s in ((3, 5), (3, 4), (3, 4)))
    xs = [tg.tensor(a, requires_grad=True) for a in (x, h0, c0)]
    ts = [torch.tensor(a, requires_grad=True) for a in (x, h0, c0)]
    h, c = cell(xs[0], (xs[1], xs[2]))
    h_t, c_t = ref(ts[0], (ts[1], ts[2]))
    compare(h.data, h_t.detach().numpy())
    compare(c.data, c_t.detach().numpy())
    weights = rng.standard_normal((2, 3, 4))
    ((h * weights[0]).sum() + (c * weights[1]).sum()).backward()
    ((h_t * torch.tensor(weights[0])).sum() + (c_t * torch.tensor(weights[1])).sum()).backward()
    for ours, theirs in zip(xs, ts):
        compare(ours.grad.data, theirs.grad.numpy())
    compare(to_torch_rows(cell.Wx.grad.data, order), ref.weight_ih.grad.numpy())
    compare(to_torch_rows(cell.Wh.grad.data, order), ref.weight_hh.grad.numpy())
    compare(to_torch_rows(cell.b.grad.data[None], order)[:, 0], ref.bias_ih.grad.numpy())


def test_gru_cell_matches_torch():
    cell = GRUCell(5, 4, dtype=np.float64, rng=np.random.default_rng(0))
    rng = np.random.default_rng(1)
    cell.b.data, cell.bh.data = rng.standard_normal(12), rng.standard_normal(12)
    ref = torch.nn.GRUCell(5, 4, dtype=torch.float64)
    order = [0, 1, 2]              # same gate order r, z, n
    with torch.no_grad():
        ref.weight_ih.copy_(torch.tensor(cell.Wx.data.T))
        ref.weight_hh.copy_(torch.tensor(cell.Wh.data.T))
        ref.bias_ih.copy_(torch.tensor(cell.b.data))
        ref.bias_hh.copy_(torch.tensor(cell.bh.data))
    x, h0 = rng.standard_normal((3, 5)), rng.standard_normal((3, 4))
    xs = [tg.tensor(a, requires_grad=True) for a in (x, h0)]
    ts = [torch.tensor(a, requires_grad=True) for a in (x, h0)]
    h = cell(xs[0], xs[1])
    h_t = ref(ts[0], ts[1])
    compare(h.data, h_t.detach().numpy())
    w = rng.standard_normal((3, 4))
    (h * w).sum().backward()
    (h_t * torch.tensor(w)).sum().backward()
    for ours, theirs in zip(xs, ts):
        compare(ours.grad.data, theirs.grad.numpy())
    compare(to_torch_rows(cell.Wx.grad.data, order), ref.weight_ih.grad.numpy())
    compare(to_torch_rows(cell.Wh.grad.data, order), ref.weight_hh.grad.numpy())
    compare(cell.b.grad.data, ref.bias_ih.grad.numpy())
    compare(cell.bh.grad.data, ref.bias_hh.grad.numpy())
