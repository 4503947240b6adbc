"""tg.checkpoint and Recurrent(checkpoint_every=k): the gradients (first and second order)
are those of the plain graph, dropout inside a segment is recomputed with the same masks,
a weight changed in place is refused, the recorded graph keeps only the segments, and what is
not supported says so."""
import numpy as np
import pytest

import tinygraph as tg
from lstm.cells import GRUCell, LSTMCell
from lstm.recurrent import Recurrent

rng = np.random.default_rng(0)
W = tg.Parameter(rng.standard_normal((4, 4)) / 2, name="W")
X0 = rng.standard_normal((2, 4))


def segment(h):
    for _ in range(3):
        h = tg.tanh(h @ W)
    return h


def chain(checkpointed):
    h = tg.tensor(X0)
    for _ in range(4):
        h = tg.checkpoint(segment, h) if checkpointed else segment(h)
    return tg.sum(h * h)


def test_gradients_are_those_of_the_plain_graph():
    (ours,) = tg.grad(chain(True), [W])
    (plain,) = tg.grad(chain(False), [W])
    np.testing.assert_allclose(ours.data, plain.data, rtol=1e-12, atol=1e-14)


def test_second_order_through_checkpoints():
    def gradient_norm(checkpointed):
        (g,) = tg.grad(chain(checkpointed), [W], create_graph=True)
        return tg.grad(tg.sum(g * g), [W])[0].data
    np.testing.assert_allclose(gradient_norm(True), gradient_norm(False), rtol=1e-10)


def test_the_recorded_graph_keeps_only_the_segments():
    ops = [n.op for n in tg.nodes([chain(True)])]
    assert ops.count("checkpoint") == 4 and "tanh" not in ops and "matmul" not in ops


def test_the_backward_graph_marks_the_recomputation():
    (g,) = tg.grad(chain(True), [W], create_graph=True)
    roles = {n.role for n in tg.nodes([g]) if n.is_backward}
    assert "recompute" in roles
    recomputed = [n for n in tg.nodes([g]) if n.role == "recompute"]
    assert {n.op for n in recomputed} == {"matmul", "tanh"}
    assert all(n.forward_node.op == "checkpoint" for n in recomputed)


@pytest.mark.parametrize("cell", [LSTMCell, GRUCell])
@pytest.mark.parametrize("every", [1, 3, 10, 25])
def test_recurrent_checkpoint_every_gives_the_same_gradients(cell, every):
    xs = np.random.default_rng(1).standard_normal((3, 10, 2))

    def run(k):
        model = cell(2, 5, rng=np.random.default_rng(2), dtype=np.float64)
        layer = Recurrent(model, checkpoint_every=k)
        hs, final = layer(xs)
        last = final[1] if isinstance(final, tuple) else final
        loss = tg.sum(hs * hs) + tg.sum(last * 0.5)
        return float(loss.data), [g.data for g in tg.grad(loss, model.parameters())]

    (value, grads), (plain_value, plain) = run(every), run(None)
    assert value == pytest.approx(plain_value, rel=1e-14)
    for a, b in zip(grads, plain):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_a_stateful_layer_carries_the_state_across_calls():
    xs = np.random.default_rng(3).standard_normal((2, 7, 2))
    runs = []
    for k in (None, 2):
        cell = LSTMCell(2, 3, rng=np.random.default_rng(4), dtype=np.float64)
        layer = Recurrent(cell, stateful=True, checkpoint_every=k)
        grads = []
        for _ in range(3):
            hs, _ = layer(xs)
            grads.append(tg.grad(tg.sum(hs ** 2), [cell.Wh])[0].data)
        runs.append(grads)
    for a, b in zip(*runs):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_dropout_inside_a_segment_is_recomputed_with_its_masks():
    def run(checkpointed):
        drop = tg.nn.Dropout(0.5, rng=np.random.default_rng(5))

        def noisy(h):
            return tg.tanh(drop(h) @ W)
        h = tg.tensor(X0)
        for _ in range(3):
            h = tg.checkpoint(noisy, h) if checkpointed else noisy(h)
        return tg.grad(tg.sum(h), [W])[0].data
    np.testing.assert_allclose(run(True), run(False), rtol=1e-12)


def test_a_weight_changed_before_the_backward_pass_is_refused():
    V = tg.Parameter(np.eye(3), name="V")
    out = tg.checkpoint(lambda x: tg.tanh(x @ V), np.ones((1, 3)))
    V.data = V.data * 2
    with pytest.raises(RuntimeError, match="modified in place"):
        tg.grad(tg.sum(out), [V])


def test_under_no_grad_it_is_the_segment_itself():
    with tg.no_grad():
        out = tg.checkpoint(segment, tg.tensor(X0))
    assert out._node is None
    np.testing.assert_allclose(out.data, segment(tg.tensor(X0)).data)


def test_an_eager_step_with_checkpoints_takes_the_ordinary_pass():
    step = tg.eager_step(lambda: chain(True), [W])
    (expected,) = tg.grad(chain(False), [W])
    for _ in range(3):
        W.grad = None
        step()
        np.testing.assert_allclose(W.grad.data, expected.data, rtol=1e-12)
    assert step.replayed.replays == 0


def test_a_compiled_step_traces_the_segment_as_its_ops():
    step = tg.compile(lambda x: tg.sum(tg.checkpoint(segment, x)), [W])
    W.grad = None
    step(X0)
    (expected,) = tg.grad(tg.sum(segment(tg.tensor(X0))), [W])
    np.testing.assert_allclose(W.grad.data, expected.data, rtol=1e-12)
    assert "checkpoint" not in str(step.program())


def test_not_under_detect_anomaly_yet():
    with tg.detect_anomaly(), pytest.raises(RuntimeError, match="detect_anomaly"):
        tg.checkpoint(segment, tg.tensor(X0))


@pytest.mark.parametrize("fn, message", [
    (lambda h: 3.0, "must return a Tensor"),
    (lambda h: (h @ W, tg.tensor(np.ones(2, np.float32))), "one floating dtype"),
])
def test_bad_segments_are_named(fn, message):
    with pytest.raises(TypeError, match=message):
        tg.checkpoint(fn, tg.tensor(X0))


def test_checkpoint_every_must_be_a_positive_int():
    with pytest.raises(ValueError, match="checkpoint_every"):
        Recurrent(LSTMCell(2, 3), checkpoint_every=0)


def test_a_segment_reading_a_changed_python_value_is_refused():
    scale = {"now": 1.0}
    out = tg.checkpoint(lambda h: tg.tanh(h @ W) * scale["now"], tg.tensor(X0))
    scale["now"] = 2.0                  # the recomputation would differentiate another function
    with pytest.raises(RuntimeError, match="computed other values"):
        tg.grad(tg.sum(out), [W])


def test_arguments_that_are_not_arrays_reach_the_segment_as_they_are():
    def repeated(h, times, same):
        assert isinstance(times, int) and same is h_in
        for _ in range(times):
            h = tg.tanh(h @ W)
        return h
    h_in = tg.tensor(X0)
    out = tg.checkpoint(repeated, h_in, 2, h_in)      # the same tensor twice, an int between
    h_in2 = h_in
    (ours,) = tg.grad(tg.sum(out), [W])
    (plain,) = tg.grad(tg.sum(tg.tanh(tg.tanh(h_in2 @ W) @ W)), [W])
    np.testing.assert_allclose(ours.data, plain.data, rtol=1e-12)


def test_a_segment_that_gives_nan_in_both_runs_is_not_refused():
    V = tg.Parameter(np.array([[1.0, -1.0]]), name="V")
    with np.errstate(invalid="ignore"):
        out = tg.checkpoint(lambda x: tg.log(x @ V), np.ones((1, 1)))   # log(-1): NaN twice
        (g,) = tg.grad(tg.sum(out), [V])
    assert np.isfinite(g.data[0, 0]) and g.data[0, 0] == 1.0


def test_a_small_change_to_a_closed_over_array_is_refused():
    A = np.ones(3)
    x = tg.tensor(np.array([1e4, 1e-3, 1e-3]))
    V = tg.Parameter(np.ones(3), name="V")
    out = tg.checkpoint(lambda h: h * V * tg.tensor(A), x)
    A[1:] = 3.0                          # moves the output by 2e-3 of 1e4: still refused
    with pytest.raises(RuntimeError, match="computed other values"):
        tg.grad(tg.sum(out), [V])


def test_a_checkpoint_inside_a_checkpointed_segment():
    def inner(h):
        return tg.tanh(h @ W)

    def outer(h):
        return tg.checkpoint(inner, tg.checkpoint(inner, h))

    (ours,) = tg.grad(tg.sum(tg.checkpoint(outer, tg.tensor(X0))), [W])
    (plain,) = tg.grad(tg.sum(inner(inner(tg.tensor(X0)))), [W])
    np.testing.assert_allclose(ours.data, plain.data, rtol=1e-12)
