"""The gradient accumulator: joins and in-place sums on the fast path, written once and run
by every path (fast, recorded, anomaly mode, compiled traces)."""
import numpy as np
import pytest

import tinygraph as tg
from tinygraph.ops.indexing import SliceGrad
from tinygraph.ops.linalg import MatMulTN


def count_forwards(monkeypatch, cls):
    calls = []
    original = cls.forward

    def counted(self, *arrays):
        calls.append(tuple(a.shape for a in arrays))
        return original(self, *arrays)
    monkeypatch.setattr(cls, "forward", counted)
    return calls


def unrolled(T=5, seed=0):
    rng = np.random.default_rng(seed)
    W = tg.Parameter(rng.standard_normal((4, 4)) / 2, name="W")
    h = tg.tensor(rng.standard_normal((3, 4)), name="h0", requires_grad=True)
    for _ in range(T):
        h = tg.tanh(h @ W)
    return W, h0_of(h), h.sum()


def h0_of(h):
    return next(t for t in tg.leaves([h]) if t.name == "h0")


def test_a_weight_used_at_every_step_gets_one_joined_matmul_on_the_fast_path(monkeypatch):
    W, h0, loss = unrolled(T=5)
    recorded_W, recorded_h0 = tg.grad(loss, [W, h0], create_graph=True)
    calls = count_forwards(monkeypatch, MatMulTN)
    fast_W, fast_h0 = tg.grad(loss, [W, h0])
    # One product of the stacked factors: (15, 4)ᵀ (15, 4), not five (3, 4)ᵀ (3, 4).
    assert calls == [((15, 4), (15, 4))]
    np.testing.assert_allclose(fast_W.data, recorded_W.data, rtol=1e-12)
    np.testing.assert_allclose(fast_h0.data, recorded_h0.data, rtol=1e-12)


def test_the_recorded_pass_keeps_one_term_per_use_for_reading():
    W, _, loss = unrolled(T=5)
    (g,) = tg.grad(loss, [W], create_graph=True)
    terms = [n for n in tg.nodes([g]) if n.op == "matmul_tn"]
    assert len(terms) == 5


def test_slice_gradients_on_the_fast_path_share_one_buffer(monkeypatch):
    x = tg.tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
    loss = (x[:, :1] * 2.0).sum() + (x[:, 1:3] * 3.0).sum() + (x[:, 2:] * 4.0).sum()
    calls = count_forwards(monkeypatch, SliceGrad)
    (g,) = tg.grad(loss, [x])
    # Overlapping pieces (no concat): the first makes the sum's one buffer (zeros, its piece
    # added), the other two are added into it by SliceGrad.add_into.
    assert len(calls) == 1
    np.testing.assert_array_equal(g.data, np.array([[2.0, 3.0, 7.0, 4.0]] * 3))


def test_anomaly_mode_runs_the_same_joins_and_names_the_forward_op(monkeypatch):
    x = tg.tensor(np.full((2, 2), 1e200), name="x")
    W = tg.tensor(np.full((2, 2), 1e-200), name="W", requires_grad=True)
    loss = ((x @ W) * 1e200).sum()
    with np.errstate(all="ignore"), tg.detect_anomaly():
        with pytest.raises(FloatingPointError,
                           match=r"'matmul_tn' in the backward pass of 'matmul'"):
            loss.backward()


def test_a_compiled_trace_computes_no_value(monkeypatch):
    rng = np.random.default_rng(1)
    W = tg.Parameter(rng.standard_normal((4, 4)) / 2, name="W")

    def loss_fn(x):
        h = x
        for _ in range(3):
            h = tg.tanh(h @ W)
        return h.sum()

    step = tg.compile(loss_fn, [W])
    calls = count_forwards(monkeypatch, tg.ops.elementwise.Tanh)
    step(rng.standard_normal((2, 4)))          # trace (shapes only) + replay
    # (Elementwise.spec finds the result dtype by a forward on 0-d ones: not a value.)
    first = [shapes for shapes in calls if shapes != ((),)]
    assert len(first) == 3                     # each tanh once in the first call, none in the trace
    calls.clear()
    step(rng.standard_normal((2, 4)))          # a later replay: the generated function, which
    assert calls == []                         # calls np.tanh itself, once per tanh
    assert step.latest.generated().source.count("# tanh") == 3


def test_joined_terms_of_a_recorded_pass_are_backward_nodes():
    """A join made while recording (a compiled trace) is part of the backward graph, so the
    rewriter rebuilds it and the program runs no stale copy of the terms it replaced."""
    from tinygraph.core.autodiff import gradient_graph
    W, _, loss = unrolled(T=4)
    forward = {id(n) for n in tg.nodes([loss])}
    (g,) = gradient_graph(loss, [W])
    made = [n for n in tg.nodes([g]) if id(n) not in forward]
    assert any(n.op == "matmul_tn" and n.inputs[0].shape == (12, 4) for n in made)  # joined
    assert all(n.is_backward for n in made)
    assert tg.nodes([g])[-1].grad_of is W


class _SameTermTwice(tg.Primitive):
    """a @ b, whose vjp hands one and the same aᵀg term to both inputs (a test double: no
    built-in primitive does this, but the accumulator must not rely on that)."""

    name = "same_term_twice"

    def forward(self, a, b):
        return a @ b

    def spec(self, a, b):
        return (a.shape[0], b.shape[1]), a.dtype

    def vjp(self, node, g, needs):
        a, _ = node.inputs
        shared = tg.matmul_tn(a, g)
        return [shared, shared]


def test_one_lazy_term_handed_to_two_tensors_is_not_added_into_twice():
    rng = np.random.default_rng(3)
    a = tg.tensor(rng.standard_normal((3, 3)), requires_grad=True)
    b = tg.tensor(rng.standard_normal((3, 3)), requires_grad=True)
    loss = (tg.apply(_SameTermTwice(), a, b) + tg.apply(_SameTermTwice(), b, b)).sum()
    fast = tg.grad(loss, [a, b], retain_graph=True)
    recorded = tg.grad(loss, [a, b], create_graph=True)
    for f, r in zip(fast, recorded):
        np.testing.assert_allclose(f.data, r.data, rtol=1e-12)


def test_anomaly_in_a_joined_weight_gradient_names_the_sum():
    x = tg.tensor(np.full((2, 2), 1e200), name="x")
    W = tg.tensor(np.full((2, 2), 1e-200), name="W", requires_grad=True)
    loss = ((x @ W) * 1e200).sum() + ((x @ W) * 1e200).sum()    # W used twice: joined
    with np.errstate(all="ignore"), tg.detect_anomaly():
        with pytest.raises(FloatingPointError, match=r"'matmul_tn' in the backward pass, "
                                                     r"summing the gradients of 'W'"):
            loss.backward()
