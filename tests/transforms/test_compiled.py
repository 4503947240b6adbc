"""Compiled mode: a traced step replayed as an array program agrees with eager mode."""
import numpy as np
import pytest

import tinygraph as tg
from tinygraph.core.node import Node
from tinygraph.optim import SGD, clip_grad_norm
from lstm.models import LanguageModel, SequenceRegressor
from tests.engine.op_cases import CASES

VOCAB = 50


def lm(dtype=np.float32, dropout=0.5):
    model = LanguageModel(VOCAB, 12, 12, num_layers=2, dropout=dropout, tie_weights=True,
                          seed=3, dtype=dtype)
    return model, SGD(model.parameters(), lr=1.0)


def batches(n, shape=(3, 6), seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, VOCAB, shape), rng.integers(0, VOCAB, shape)) for _ in range(n)]


def make_step(model, compiled):
    """The one step contract: eager and compiled steps are called the same way."""
    if compiled:
        return tg.compile(model.loss, model.parameters())
    return tg.eager_step(model.loss, model.parameters(), replay=False)   # the reference


def train_step(step, opt, ids, targets):
    opt.zero_grad()
    loss = step(ids, targets)
    clip_grad_norm(opt.params, 0.25)
    opt.step()
    return float(loss.data)


def max_difference(a, b):
    return max(float(np.abs(p.data - q.data).max()) for p, q in
               zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("dtype, tolerance", [(np.float32, 1e-6), (np.float64, 1e-12)])
def test_language_model_compiled_matches_eager(dtype, tolerance):
    """Dropout masks, tied weights, two layers and the carried state all replay exactly."""
    eager, eager_opt = lm(dtype)
    compiled, compiled_opt = lm(dtype)
    step, eager_step = make_step(compiled, True), make_step(eager, False)
    for ids, targets in batches(6):
        loss_e = train_step(eager_step, eager_opt, ids, targets)
        loss_c = train_step(step, compiled_opt, ids, targets)
        assert loss_c == pytest.approx(loss_e, rel=tolerance, abs=tolerance)
        assert max_difference(eager, compiled) < tolerance
    assert len(step.programs) == 1
    for e, c in zip(eager.rnn.layers, compiled.rnn.layers):
        for s_e, s_c in zip(e.state, c.state):
            np.testing.assert_allclose(s_c.data, s_e.data, atol=tolerance)


def test_replay_builds_no_graph():
    model, opt = lm()
    step = tg.compile(model.loss, model.parameters())
    (ids, targets), (ids2, targets2) = batches(2)
    train_step(step, opt, ids, targets)             # traces
    before = next(Node._serials)
    train_step(step, opt, ids2, targets2)           # replays
    assert next(Node._serials) == before + 1


def test_reset_state_retraces_and_stays_exact():
    eager, eager_opt = lm()
    compiled, compiled_opt = lm()
    step, eager_step = make_step(compiled, True), make_step(eager, False)
    data = batches(5)
    for k, (ids, targets) in enumerate(data):
        if k == 3:
            eager.reset_state()
            compiled.reset_state()
        train_step(eager_step, eager_opt, ids, targets)
        train_step(step, compiled_opt, ids, targets)
    assert max_difference(eager, compiled) < 1e-6


def test_new_input_shape_gets_its_own_program():
    eager, eager_opt = lm(dropout=0.0)
    compiled, compiled_opt = lm(dropout=0.0)
    step, eager_step = make_step(compiled, True), make_step(eager, False)
    for ids, targets in batches(2) + batches(2, shape=(3, 4), seed=1):
        train_step(eager_step, eager_opt, ids, targets)
        train_step(step, compiled_opt, ids, targets)
    assert len(step.programs) == 2
    assert max_difference(eager, compiled) < 1e-6


def test_sequence_regressor_with_float_inputs():
    rng = np.random.default_rng(0)
    eager = SequenceRegressor(hidden_size=8, seed=1, dtype=np.float64)
    compiled = SequenceRegressor(hidden_size=8, seed=1, dtype=np.float64)
    step, eager_step = make_step(compiled, True), make_step(eager, False)
    for _ in range(4):
        xs, ys = rng.standard_normal((2, 7, 1)), rng.standard_normal((2, 7, 1))
        eager.zero_grad()
        compiled.zero_grad()
        loss_e, loss_c = eager_step(xs, ys), step(xs, ys)
        assert float(loss_c.data) == pytest.approx(float(loss_e.data), rel=1e-12)
        for p, q in zip(eager.parameters(), compiled.parameters()):
            np.testing.assert_allclose(q.grad.data, p.grad.data, rtol=1e-10, atol=1e-12)


def test_gradients_accumulate_like_backward_and_are_owned():
    w = tg.Parameter(np.array([1.0, 2.0, 3.0]))
    step = tg.compile(lambda x: tg.sum(w * x), [w])
    step(np.array([1.0, 1.0, 1.0]))
    step(np.array([2.0, 0.0, 1.0]))                  # replayed; added to .grad
    np.testing.assert_array_equal(w.grad.data, [3.0, 1.0, 2.0])
    w.zero_grad()
    x = np.array([5.0, 6.0, 7.0])
    step(x)                                          # the gradient is x itself...
    w.grad.data *= 0                                 # ...scaling it in place must not touch x
    np.testing.assert_array_equal(x, [5.0, 6.0, 7.0])


def test_input_read_as_python_values_is_an_error():
    w = tg.Parameter(np.ones(3))
    step = tg.compile(lambda x: tg.sum(w * np.asarray(x.data)), [w])
    with pytest.raises(ValueError, match="must use its inputs as Tensors"):
        step(np.ones(3))


def test_bad_inputs_are_named():
    w = tg.Parameter(np.ones(3))
    step = tg.compile(lambda x: tg.sum(w * x), [w])
    with pytest.raises(TypeError, match="input 0 has dtype <U1"):
        step(np.array(["a", "b", "c"]))
    with pytest.raises(ValueError, match="scalar loss"):
        tg.compile(lambda x: w * x, [w])(np.ones(3))
    with pytest.raises(TypeError, match="require grad"):
        tg.compile(lambda x: tg.sum(x), [tg.tensor(np.ones(3))])


def test_eval_mode_gets_its_own_program_without_dropout():
    model, _ = lm()
    step = tg.compile(model.loss, model.parameters())
    (ids, targets), = batches(1)
    step(ids, targets)
    model.eval()
    model.reset_state()
    loss_compiled = float(step(ids, targets).data)
    model.reset_state()
    with tg.no_grad():
        loss_eager = float(model.loss(ids, targets).data)
    assert len(step.programs) == 2
    assert loss_compiled == pytest.approx(loss_eager, rel=1e-6)


@pytest.mark.slow     # a training run
def test_compiled_training_run_matches_eager_across_validation_and_resume(tmp_path,
                                                                           tiny_trainer):
    """Two epochs with validation between them (which swaps the carried state out and back)
    and a resume from the first epoch's checkpoint: compiled equals eager."""
    eager = tiny_trainer("eager", compiled=False)
    eager.run(2, progress=False, checkpoint_every=0)
    compiled = tiny_trainer("compiled", compiled=True)
    compiled.run(1, progress=False, checkpoint_every=0)
    resumed = tiny_trainer("compiled", compiled=True)
    resumed.resume(tmp_path / "compiled" / "last.npz")
    resumed.run(2, progress=False, checkpoint_every=0)
    for (name, a), (_, b) in zip(eager.model.named_parameters(),
                                 resumed.model.named_parameters()):
        np.testing.assert_allclose(b.data, a.data, atol=1e-6, err_msg=name)
    assert [h["valid_ppl"] for h in resumed.history] == pytest.approx(
        [h["valid_ppl"] for h in eager.history], rel=1e-6)
    assert len(compiled.step.programs) == 1


# --- cases found in review: each was a silent difference from eager mode -------------------

def two_chunk_layer(cell):
    from lstm.cells import CELLS
    from lstm.recurrent import Recurrent
    layer = Recurrent(CELLS[cell](2, 3, rng=np.random.default_rng(0), dtype=np.float64),
                      stateful=True)

    def loss(a, b):
        h1, _ = layer(a)
        h2, _ = layer(b)            # starts from the state the first call ended in
        return tg.sum(h1 * h1) + tg.sum(h2 * h2)
    return layer, loss


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_stateful_layer_called_twice_in_one_step(cell):
    eager_layer, eager_loss = two_chunk_layer(cell)
    layer, loss = two_chunk_layer(cell)
    step = tg.compile(loss, layer.cell.parameters())
    rng = np.random.default_rng(1)
    for _ in range(4):
        a, b = rng.standard_normal((2, 4, 2)), rng.standard_normal((2, 4, 2))
        expected = float(eager_loss(tg.tensor(a), tg.tensor(b)).data)
        assert float(step(a, b).data) == pytest.approx(expected, rel=1e-12)
    assert len(step.programs) == 1


def test_a_stateful_layer_given_its_state_still_records_the_final_state():
    from lstm.cells import CELLS
    from lstm.recurrent import Recurrent
    layers = [Recurrent(CELLS["rnn"](2, 3, rng=np.random.default_rng(0), dtype=np.float64),
                        stateful=True) for _ in range(2)]
    step = tg.compile(lambda x, h0: tg.sum(layers[1](x, state=h0)[0]),
                      layers[1].cell.parameters())
    rng = np.random.default_rng(1)
    for _ in range(3):
        x, h0 = rng.standard_normal((2, 4, 2)), rng.standard_normal((2, 3))
        layers[0](tg.tensor(x), state=tg.tensor(h0))
        step(x, h0)
    np.testing.assert_allclose(layers[1].state.data, layers[0].state.data, rtol=1e-12)


def test_unused_parameter_keeps_no_gradient_like_backward():
    used, unused = tg.Parameter(np.ones(2)), tg.Parameter(np.ones(2))
    step = tg.compile(lambda x: tg.sum(used * x), [used, unused])
    step(np.ones(2))
    step(np.ones(2))
    assert unused.grad is None and used.grad is not None


def test_gradients_never_share_memory_with_what_the_program_keeps():
    w = tg.Parameter(np.array([1.0, 2.0, 3.0]))
    scale = tg.tensor(np.array([1.0, 10.0, 100.0]))
    step = tg.compile(lambda x: tg.sum(w * scale) + tg.sum(x * x), [w])
    for _ in range(3):                       # trace, then replays
        w.zero_grad()
        step(np.zeros(3))
        w.grad.data *= 0.5                   # in place, as a hand-written clip might
    np.testing.assert_array_equal(scale.data, [1.0, 10.0, 100.0])


def test_nested_compiled_steps_are_refused():
    w = tg.Parameter(np.ones(2))
    inner = tg.compile(lambda x: tg.sum(w * x), [w])
    outer = tg.compile(lambda x: inner(x) * 2.0, [w])
    with pytest.raises(RuntimeError, match="while another compiled step is being traced"):
        outer(np.ones(2))


def test_detach_of_an_input_or_an_intermediate_is_replayed_as_eager_runs_it():
    w = tg.Parameter(np.array([0.5, -1.0]))

    def f(x):
        h = tg.tanh(w * x)
        return tg.sum(w * x.detach()) + tg.sum(h.detach() * h)

    compiled = tg.compile(f, [w])
    for x in (tg.tensor(np.ones(2)), tg.tensor([2.0, 3.0])):   # new values: nothing frozen
        w.zero_grad()
        loss = tg.eager_step(f, [w])(x)
        expected = w.grad.data.copy()
        w.zero_grad()
        assert float(compiled(x)) == float(loss)
        np.testing.assert_array_equal(w.grad.data, expected)


def test_tracing_under_no_grad_still_records():
    w = tg.Parameter(np.array([3.0, 4.0]))
    step = tg.compile(lambda: tg.sum(w * w), [w])
    with tg.no_grad():
        step()
    w.zero_grad()
    assert float(step().data) == 25.0
    np.testing.assert_array_equal(w.grad.data, [6.0, 8.0])


def test_ids_are_checked_on_every_replay():
    model, _ = lm(dropout=0.0)
    step = tg.compile(model.loss, model.parameters())
    (ids, targets), = batches(1)
    step(ids, targets)
    bad = ids.copy()
    bad[0, 0] = -1
    with pytest.raises(ValueError, match="Embedding: id -1 is outside the 50 rows"):
        step(bad, targets)
    bad_targets = targets.copy()
    bad_targets[0, 0] = VOCAB
    with pytest.raises(ValueError, match="cross_entropy: target 50 is outside the 50 classes"):
        step(ids, bad_targets)


@pytest.mark.parametrize("compiled", [False, True])
def test_both_steps_keep_one_contract(compiled):
    """Same call, same effect: the loss returned, gradients added into .grad (an unused
    parameter's .grad left alone), the same errors."""
    w = tg.Parameter(np.array([1.0, 2.0, 3.0]))
    unused = tg.Parameter(np.ones(2))
    unused.grad = tg.tensor(np.array([7.0, 7.0]))
    make = tg.compile if compiled else tg.eager_step
    step = make(lambda x: tg.sum(w * w * x), [w, unused])
    loss = step(np.array([1.0, 1.0, 2.0]))
    assert isinstance(loss, tg.Tensor) and loss.node is None and float(loss.data) == 23.0
    step(np.array([1.0, 1.0, 2.0]))
    np.testing.assert_array_equal(w.grad.data, [4.0, 8.0, 24.0])
    np.testing.assert_array_equal(unused.grad.data, [7.0, 7.0])
    with pytest.raises(ValueError, match="scalar loss"):
        make(lambda x: w * x, [w])(np.ones(3))
    with pytest.raises(TypeError, match="require grad"):
        make(lambda x: tg.sum(x), [tg.tensor(np.ones(2))])


def test_a_gradient_taken_inside_the_function_is_part_of_the_program():
    """tg.grad inside a compiled function: recorded into the program, not frozen at its
    trace-time value; backward() there is refused (the step makes the gradients itself)."""
    W = tg.Parameter(np.array([1.0, 2.0, 3.0]), name="W")

    def loss_fn(x):
        (g,) = tg.grad((W * W * x).sum(), [W])        # 2 W x, a value: no gradient through it
        return (W * x).sum() + (g * g).sum()

    for make in (tg.eager_step, tg.compile):
        W.zero_grad()
        step = make(loss_fn, [W])
        assert [float(step(np.full(3, float(k))).data) for k in (1, 2)] == [62.0, 236.0]
        np.testing.assert_array_equal(W.grad.data, [3.0, 3.0, 3.0])
    with pytest.raises(RuntimeError, match="compiled step traces"):
        tg.compile(lambda x: (W * x).sum().backward(), [W])(np.ones(3))


@pytest.mark.parametrize("case", [c for c in CASES if c.differentiable], ids=str)
def test_every_op_compiles_to_the_eager_gradient(case):
    """Each primitive's forward and vjp run on abstract tensors in a trace: a vjp that read
    values (.data), or a wrong spec of a backward node, fails here."""
    rng = np.random.default_rng(11)
    params = [tg.Parameter(a) for a in case.inputs(rng)]
    out = case.apply(params)
    v = tg.tensor(rng.standard_normal(out.shape))     # a fixed direction: sum(v * out)

    def loss():
        return (case.apply(params) * v).sum()

    tg.eager_step(loss, params)()
    eager = [p.grad for p in params]
    for p in params:
        p.zero_grad()
    compiled_loss = tg.compile(loss, params)()
    assert float(compiled_loss.data) == pytest.approx(float(loss().data), rel=1e-12)
    for p, g in zip(params, eager):
        np.testing.assert_allclose(p.grad.data, g.data, rtol=1e-10, atol=1e-12)


@pytest.mark.slow     # six steps of a language model with big intermediates
def test_replays_reuse_big_buffers_without_growing_or_sharing_them():
    """Big intermediates are written into buffers planned at trace time: a fixed number, and
    never one the caller holds (a gradient kept from an earlier call stays as it was)."""
    rng = np.random.default_rng(0)
    model = LanguageModel(300, 128, 128, seed=0, dtype=np.float64)
    step = tg.compile(model.loss, model.parameters())
    eager = LanguageModel(300, 128, 128, seed=0, dtype=np.float64)
    eager_step = tg.eager_step(eager.loss, eager.parameters(), replay=False)
    kept = []
    for k in range(6):
        ids = rng.integers(0, 300, (8, 40))
        model.zero_grad(), eager.zero_grad()
        loss, loss_e = step(ids, ids), eager_step(ids, ids)
        assert float(loss.data) == pytest.approx(float(loss_e.data), rel=1e-12)
        kept.append(([p.grad.data for p in model.parameters()],
                     [p.grad.data.copy() for p in model.parameters()]))
        for p, q in zip(model.parameters(), eager.parameters()):
            np.testing.assert_allclose(p.grad.data, q.grad.data, rtol=1e-10, atol=1e-12)
    for held, values in kept:          # what the caller holds is never written again
        for a, b in zip(held, values):
            np.testing.assert_array_equal(a, b)
    program = next(iter(step.programs.values()))
    planned = [p for p in program.plan if p is not None]
    assert len(planned) > len(program.buffers) > 0          # buffers are shared by steps
    assert all(b is not None for b in program.buffers)


def test_a_transposed_intermediate_is_never_reused_as_a_buffer():
    """An F-ordered array (a transposed intermediate) freed early must not become the output
    buffer of a later matmul: reshaping it would copy, and the result would be lost."""
    rng = np.random.default_rng(0)
    N, T, H, K = 16, 32, 64, 48
    A = tg.Parameter(rng.standard_normal((H, T, N)) * 0.1)
    W = tg.Parameter(rng.standard_normal((K, H)) * 0.1)

    def f(x):
        s = tg.sum(tg.neg(tg.transpose(A, (2, 1, 0))))   # a fresh F-ordered (N, T, H) array
        y = tg.matmul(x, W)                              # (N, T, H), written into a buffer
        return tg.sum(y * y) + s

    step, eager = tg.compile(f, [A, W]), tg.eager_step(f, [A, W], replay=False)
    for _ in range(3):
        x = rng.standard_normal((N, T, K))
        A.zero_grad(), W.zero_grad()
        loss = float(step(x).data)
        grads = [A.grad.data.copy(), W.grad.data.copy()]
        A.zero_grad(), W.zero_grad()
        assert loss == pytest.approx(float(eager(x).data), rel=1e-12)
        for g, p in zip(grads, (A, W)):
            np.testing.assert_allclose(g, p.grad.data, rtol=1e-10, atol=1e-12)


def test_numpy_error_settings_reach_the_row_block_threads():
    x = tg.tensor(np.full((600, 500), np.inf))
    with np.errstate(all="raise"):
        with pytest.raises(FloatingPointError):
            tg.log_softmax(x)


def test_cross_entropy_gradient_runs_fused_without_a_class_sized_scatter():
    """Compiled, the gradient of cross-entropy through log-softmax is one log_softmax_grad_at
    pass (LogSoftmaxGrad.fuse): no (rows, classes) array of zeros with the ids filled in.
    Its values are checked against eager mode by the language-model tests above."""
    rng = np.random.default_rng(0)
    W = tg.Parameter(rng.standard_normal((6, 50)))
    x, targets = rng.standard_normal((4, 3, 6)), rng.integers(0, 50, (4, 3))
    step = tg.compile(lambda x, t: tg.cross_entropy(tg.matmul(x, W), t), [W])
    W.zero_grad()
    loss = float(step(x, targets).data)
    fused = W.grad.data.copy()
    ops = [forward.__self__.name for forward, _, _ in next(iter(step.programs.values())).steps]
    assert "log_softmax_grad_at" in ops and "log_softmax_grad" not in ops
    assert "index_grad" not in ops
    W.zero_grad()
    eager_loss = tg.eager_step(lambda x, t: tg.cross_entropy(tg.matmul(x, W), t), [W])
    assert float(eager_loss(x, targets).data) == pytest.approx(loss, rel=1e-13)
    np.testing.assert_allclose(fused, W.grad.data, rtol=1e-12, atol=1e-14)


def test_a_fused_node_is_a_backward_node_named_for_its_forward_op():
    rng = np.random.default_rng(1)
    W = tg.Parameter(rng.standard_normal((6, 50)))
    step = tg.compile(lambda x, t: tg.cross_entropy(tg.matmul(x, W), t), [W])
    step(rng.standard_normal((4, 6)), rng.integers(0, 50, 4))
    program = next(iter(step.programs.values()))
    (k,) = [k for k, (f, _, _) in enumerate(program.steps)
            if f.__self__.name == "log_softmax_grad_at"]
    assert "backward" in program.wheres[k] and "log_softmax" in program.wheres[k]
