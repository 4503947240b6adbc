"""Eager steps replaying the backward pass of a graph met before (tinygraph.transforms.tape):
the gradients must be exactly those of the ordinary pass (`replay=False`), call after call,
whatever changes between calls: values, dropout draws, constants, slice positions, frozen
parameters; and the ordinary pass's refusals (a saved value changed in place, anomaly mode)
must still happen."""
import numpy as np
import pytest

import tinygraph as tg
from lstm.models import SequenceRegressor
from tinygraph.optim import SGD


def train_both(make_model, batches, lr=0.05):
    """Train two identical models, one step replaying and one not; return both runs'
    losses and final parameters, and the replaying step."""
    runs = []
    for replay in (True, False):
        model = make_model()
        opt = SGD(model.parameters(), lr=lr)
        step = tg.eager_step(model.loss, model.parameters(), replay=replay)
        losses = []
        for xs, ys in batches:
            opt.zero_grad()
            losses.append(step(xs, ys).data.copy())
            opt.step()                      # (bumps every parameter's version)
        runs.append((losses, [p.data.copy() for p in model.parameters()], step))
    return runs


def sine_batches(n, dtype, batch=2, steps=7):
    rng = np.random.default_rng(0)
    return [(rng.standard_normal((batch, steps, 1)).astype(dtype),
             rng.standard_normal((batch, steps, 1)).astype(dtype)) for _ in range(n)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_replayed_gradients_are_the_ordinary_ones_bitwise(dtype):
    # 10 calls: the program is made at the 2nd, replayed from then on, fused from its 7th.
    (replayed, params_r, step), (ordinary, params_o, _) = train_both(
        lambda: SequenceRegressor(hidden_size=6, seed=1, dtype=dtype),
        sine_batches(10, dtype))
    assert step.replayed.replays == 9
    for a, b in zip(replayed, ordinary):
        assert a.tobytes() == b.tobytes()
    for a, b in zip(params_r, params_o):
        assert a.dtype == dtype and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("own_generator", [True, False])
def test_dropout_masks_are_those_of_the_call(own_generator):
    # The backward program is given the forward values, masks included: it never draws.
    class Dropped(tg.nn.Module):
        def __init__(self):
            super().__init__()
            tg.manual_seed(5)
            self.w = tg.Parameter(np.linspace(-1, 1, 12).reshape(3, 4))
            self.drop = tg.nn.Dropout(0.5, rng=np.random.default_rng(3) if own_generator
                                      else None)

        def loss(self, x, y):
            return tg.mean((self.drop(x @ self.w) - y) ** 2)

    rng = np.random.default_rng(1)
    batches = [(rng.standard_normal((5, 3)), rng.standard_normal((5, 4))) for _ in range(6)]
    (replayed, params_r, step), (ordinary, params_o, _) = train_both(Dropped, batches)
    assert step.replayed.replays == 5
    for a, b in zip(params_r, params_o):
        assert a.tobytes() == b.tobytes()


def test_constants_of_each_call_are_read_not_baked_in():
    w = tg.Parameter(np.array([1.0, 2.0, 3.0]))
    scale = {"now": 1.0}

    def loss(x):
        return tg.sum(w * x * scale["now"]) + tg.sum(w * tg.tensor(np.full(3, scale["now"])))

    step = tg.eager_step(loss, [w])
    for k in range(5):
        scale["now"] = float(k + 1)
        x = np.full(3, float(k))
        w.grad = None
        step(x)
        np.testing.assert_array_equal(w.grad, x * (k + 1) + (k + 1))
    assert step.replayed.replays == 4


def test_a_slice_elsewhere_is_another_graph():
    w = tg.Parameter(np.arange(6.0).reshape(1, 6))

    def loss(at):
        return tg.sum(w[:, at:at + 2] ** 2)

    step = tg.eager_step(loss, [w])
    for at in (0, 0, 0, 3, 3, 1):
        w.grad = None
        step(at=at)
        expected = np.zeros((1, 6))
        expected[:, at:at + 2] = 2 * w.data[:, at:at + 2]
        np.testing.assert_array_equal(w.grad, expected)
    assert step.replayed.replays == 3        # calls 2, 3 (at 0) and 5 (at 3)


def test_freezing_a_parameter_between_calls():
    a, b = tg.Parameter(np.array([1.0, 2.0])), tg.Parameter(np.array([3.0, 4.0]))
    step = tg.eager_step(lambda: tg.sum(a * b), [a, b])
    for frozen in (False, False, False, True, True, True, False):
        b.requires_grad = not frozen
        a.grad = b.grad = None
        step()
        np.testing.assert_array_equal(a.grad, b.data)
        if frozen:
            assert b.grad is None
        else:
            np.testing.assert_array_equal(b.grad, a.data)


def test_an_unused_parameter_keeps_its_grad():
    a, unused = tg.Parameter(np.array([1.0, 2.0])), tg.Parameter(np.array([5.0]))
    unused.grad = np.array([7.0])
    step = tg.eager_step(lambda: tg.sum(a * a), [a, unused])
    for _ in range(4):
        a.grad = None
        step()
    np.testing.assert_array_equal(a.grad, 2 * a.data)
    np.testing.assert_array_equal(unused.grad, [7.0])


def test_a_value_changed_in_place_is_still_refused():
    w = tg.Parameter(np.array([1.0, 2.0]))
    change = {"now": False}

    def loss():
        out = tg.sum(tg.tanh(w))
        if change["now"]:
            w.data = w.data + 1.0          # after tanh saved w: the gradient would mix values
        return out

    step = tg.eager_step(loss, [w])
    for _ in range(3):
        step()
    assert step.replayed.replays == 2
    change["now"] = True
    with pytest.raises(RuntimeError, match="modified in place"):
        step()


def test_anomaly_mode_takes_the_ordinary_pass():
    w = tg.Parameter(np.array([1.0, 4.0]))
    step = tg.eager_step(lambda x: tg.sum(tg.sqrt(w * x)), [w])
    for _ in range(3):
        step(np.array([1.0, 1.0]))
    assert step.replayed.replays == 2
    with tg.detect_anomaly(), pytest.raises(FloatingPointError):
        step(np.array([0.0, 1.0]))           # d sqrt at 0: inf, named by anomaly mode


def test_a_gradient_penalty_inside_the_loss():
    # The tape holds a recorded backward pass (create_graph): replayed like any graph.
    rng = np.random.default_rng(2)
    batches = [(rng.standard_normal((4, 3)), rng.standard_normal((4, 2))) for _ in range(5)]

    class Penalized(tg.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = tg.Parameter(np.linspace(-1, 1, 6).reshape(3, 2))

        def loss(self, x, y):
            x = tg.tensor(x, requires_grad=True)
            out = tg.tanh(x @ self.w)
            (gx,) = tg.grad(tg.sum(out), [x], create_graph=True)
            return tg.mean((out - y) ** 2) + 0.1 * tg.sum(gx * gx)

    (replayed, params_r, step), (ordinary, params_o, _) = train_both(Penalized, batches)
    assert step.replayed.replays == 4
    for a, b in zip(params_r, params_o):
        assert a.tobytes() == b.tobytes()


def test_a_graph_that_changes_every_call_stops_being_keyed():
    w = tg.Parameter(np.array([1.0, 2.0]))
    step = tg.eager_step(lambda n: tg.sum(w ** n), [w])
    for n in range(1, 25):
        w.grad = None
        step(n=n)
        np.testing.assert_allclose(w.grad, n * w.data ** (n - 1))
    assert step.replayed.replays == 0 and step.replayed.misses >= 16


def test_a_stateful_language_model_with_dropout_and_tied_weights():
    # Truncated BPTT: each call starts from the state the previous one carried (a leaf of
    # the tape, given to the program like any value); dropout between the layers.
    from lstm.models import LanguageModel
    rng = np.random.default_rng(4)
    batches = [(rng.integers(0, 30, (3, 5)), rng.integers(0, 30, (3, 5))) for _ in range(8)]

    def make():
        return LanguageModel(30, 8, 8, num_layers=2, dropout=0.3, tie_weights=True, seed=2,
                             dtype=np.float64)      # (stateful: its layers carry the state)

    (replayed, params_r, step), (ordinary, params_o, _) = train_both(make, batches, lr=0.5)
    assert step.replayed.replays == 7
    for a, b in zip(replayed, ordinary):
        assert a.tobytes() == b.tobytes()
    for a, b in zip(params_r, params_o):
        assert a.tobytes() == b.tobytes()


def test_a_primitive_reading_a_mutable_object_is_not_replayed():
    # A custom primitive whose vjp reads a setting through an object: a program made from
    # one call could not see it change, so such a tape takes the ordinary pass.
    from tinygraph.ops.elementwise import Elementwise

    class Config:
        slope = 0.1

    class LeakyRelu(Elementwise):
        name = "leaky_relu_test"

        def __init__(self, config):
            self.config = config

        def forward(self, a):
            return np.where(a > 0, a, a * self.config.slope)

        def vjp(self, node, g, needs):
            (x,) = node.inputs
            return [g * (tg.heaviside(x) + (1 - tg.heaviside(x)) * self.config.slope)]

    x, config = np.array([-1.0, -2.0, 3.0]), Config()
    W = tg.Parameter(np.ones(3))
    step = tg.eager_step(lambda: tg.sum(tg.apply(LeakyRelu(config), x * W)), [W])
    for slope in (0.1, 0.1, 0.1, 0.5):
        config.slope = slope
        W.grad = None
        step()
        np.testing.assert_array_equal(W.grad.data, [-slope, -2 * slope, 3.0])
    assert step.replayed.replays == 0


def test_keys_of_booleans_and_of_ints_are_different_graphs():
    # (False, 1) and (0, True) are equal tuples but numpy reads them as different keys.
    for keys in ([(False, 1)] * 3 + [(0, True)], [(0, True)] * 3 + [(False, 1)]):
        W = tg.Parameter(np.arange(12.0).reshape(3, 4))
        step = tg.eager_step(lambda k: tg.sum(W[k] * 3.0), [W])
        for k in keys:
            W.grad = None
            step(k=k)
            expected = np.zeros((3, 4))
            expected[k] = 3.0
            np.testing.assert_array_equal(W.grad.data, expected)


def _trained_in(thread_count, replay):
    """Final parameters of two sine regressors trained side by side for 8 calls each, in
    `thread_count` threads (1: one after the other)."""
    import threading
    batches = sine_batches(8, np.float64)
    results = [None, None]

    def train(k):
        model = SequenceRegressor(hidden_size=5, seed=k, dtype=np.float64)
        opt = SGD(model.parameters(), lr=0.05)
        step = tg.eager_step(model.loss, model.parameters(), replay=replay)
        for xs, ys in batches:
            opt.zero_grad()
            step(xs, ys)
            opt.step()
        results[k] = [p.data.copy() for p in model.parameters()]

    if thread_count == 1:
        train(0), train(1)
    else:
        threads = [threading.Thread(target=train, args=(k,)) for k in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return results


def test_replays_in_two_threads_at_once_are_the_ordinary_pass():
    for ours, reference in zip(_trained_in(2, True), _trained_in(1, False)):
        for a, b in zip(ours, reference):
            assert a.tobytes() == b.tobytes()


def test_a_forked_child_replays_the_parents_program():
    import multiprocessing
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    xs, ys = sine_batches(1, np.float64)[0]
    model = SequenceRegressor(hidden_size=5, seed=3, dtype=np.float64)
    step = tg.eager_step(model.loss, model.parameters())
    for _ in range(3):                                # the program exists before the fork
        step(xs, ys)
    assert step.replayed.replays == 2

    def child(connection):
        for p in model.parameters():
            p.grad = None
        step(xs * 2, ys)                               # a changed input, in the child
        connection.send(([p.grad.data for p in model.parameters()], step.replayed.replays))

    parent_end, child_end = multiprocessing.get_context("fork").Pipe()
    process = multiprocessing.get_context("fork").Process(target=child, args=(child_end,))
    process.start()
    grads, replays = parent_end.recv()
    process.join()
    assert replays == 3                                # the child replayed
    reference = tg.eager_step(model.loss, model.parameters(), replay=False)
    for p in model.parameters():
        p.grad = None
    reference(xs * 2, ys)
    for g, p in zip(grads, model.parameters()):
        assert g.tobytes() == p.grad.data.tobytes()
