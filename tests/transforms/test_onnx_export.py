"""tg.export_onnx: forward and generated backward graphs run in ONNX Runtime and agree with
tinygraph to 1e-5 in float32. A test that exports takes the `onnx` fixture and one that runs
the export the `run` fixture (tests/conftest.py: skipped without them, marked onnx)."""
import numpy as np
import pytest

import tinygraph as tg
from tinygraph.examples import attention_step, lstm_cell, lstm_unrolled
from tinygraph.nn import Dropout, Embedding
from lstm.models import LanguageModel


@pytest.fixture
def run(onnx, onnxruntime):
    """run(model, feeds) -> {output name: array}, in ONNX Runtime on the CPU."""
    def run(model, feeds):
        session = onnxruntime.InferenceSession(model.SerializeToString(),
                                               providers=["CPUExecutionProvider"])
        return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    return run


def cell_graph(batch, seed=0):
    rng = np.random.default_rng(seed)
    leaf = lambda name, *shape, **kw: tg.tensor(rng.standard_normal(shape).astype(np.float32),
                                                 name=name, requires_grad=True)
    x, h0, c0 = leaf("x", batch, 3), leaf("h_prev", batch, 4), leaf("c_prev", batch, 4)
    Wx, Wh, b = leaf("Wx", 3, 16), leaf("Wh", 4, 16), leaf("b", 16)
    v = tg.tensor(rng.standard_normal((batch, 4)).astype(np.float32), name="v")
    h, c = lstm_cell(x, h0, c0, Wx, Wh, b)
    grads = tg.grad([h, c], [x, h0, c0, Wx, Wh, b], grad_outputs=[v, v], create_graph=True)
    return [x, h0, c0, v], [h, c] + list(grads)


def test_the_lstm_cell_and_its_gradient_graph_run_in_onnx_runtime(run):
    inputs, outputs = cell_graph(2)
    model = tg.export_onnx(outputs, inputs)
    names = [o.name for o in model.graph.output]
    assert names[:2] == ["h", "c"] and "∂L/∂Wx" in names and "∂L/∂x" in names
    got = run(model, {t.name: t.data for t in inputs})
    for name, t in zip(names, outputs):
        np.testing.assert_allclose(got[name], t.data, rtol=1e-5, atol=1e-5, err_msg=name)


def test_a_dynamic_batch_runs_another_batch_size(onnx, run):
    inputs, outputs = cell_graph(2)
    model = tg.export_onnx(outputs, inputs, dynamic_batch=True)
    # A batch of 5 through the exported weights, and tinygraph's answer for it.
    inputs5, _ = cell_graph(5, seed=1)
    x5, h5, c5, v5 = inputs5
    Wx, Wh, b = (init for init in model.graph.initializer if init.name in ("Wx", "Wh", "b"))
    arrays = {i.name: onnx.numpy_helper.to_array(i) for i in (Wx, Wh, b)}
    params = [tg.tensor(arrays[n], name=n, requires_grad=True) for n in ("Wx", "Wh", "b")]
    h, c = lstm_cell(x5, h5, c5, *params)
    grads = tg.grad([h, c], [x5, h5, c5, *params], grad_outputs=[v5, v5])
    got = run(model, {t.name: t.data for t in inputs5})
    names = [o.name for o in model.graph.output]
    for name, t in zip(names, [h, c, *grads]):
        assert got[name].shape == t.shape
        np.testing.assert_allclose(got[name], t.data, rtol=1e-5, atol=1e-5, err_msg=name)


def test_the_unrolled_lstm_and_its_gradients(run):
    inputs, loss = lstm_unrolled(dtype=np.float32)
    params = list(inputs.values())
    grads = tg.grad(loss, params, create_graph=True)
    model = tg.export_onnx([loss, *grads], [])
    got = run(model, {})
    for name, t in zip([o.name for o in model.graph.output], [loss, *grads]):
        np.testing.assert_allclose(got[name], t.data, rtol=1e-5, atol=1e-5, err_msg=name)


@pytest.mark.slow
def test_a_language_model_step_with_cross_entropy(run):
    rng = np.random.default_rng(1)
    model = LanguageModel(50, 8, 8, num_layers=2, seed=0)
    model.eval()
    ids, targets = (tg.tensor(rng.integers(0, 50, (3, 5)), name=n) for n in ("ids", "targets"))
    loss = model.loss(ids, targets)
    params = model.parameters()
    grads = tg.grad(loss, params, create_graph=True)
    exported = tg.export_onnx([loss, *grads], [ids, targets])
    got = run(exported, {"ids": ids.data, "targets": targets.data})
    names = [o.name for o in exported.graph.output]
    assert "∂L/∂embed.W" in names
    for name, t in zip(names, [loss, *grads]):
        np.testing.assert_allclose(got[name], t.data, rtol=1e-5, atol=1e-5, err_msg=name)


def test_a_primitive_without_a_mapping_is_named(onnx, tmp_path):
    x = tg.tensor(np.ones((2, 3), np.float32), name="x", requires_grad=True)
    y = Dropout(0.5, rng=np.random.default_rng(0))(x)
    with pytest.raises(ValueError, match="no ONNX mapping for primitive 'dropout_mask'.*eval"):
        tg.export_onnx([y], [x], tmp_path / "d.onnx")


def test_gradient_outputs_keep_their_names_and_a_sum_seeded_backward_takes_any_batch(run):
    """The gradients of sum(L) over the attention step: its seed is a broadcast of 1 to the
    batch's shape, read from the first input at run time with dynamic_batch."""
    leaves, loss = attention_step(dtype=np.float32)
    inputs = [leaves[n] for n in ("x", "h_prev", "c_prev", "hs1", "hs2", "hs3")]
    params = [leaves[n] for n in ("Wx", "Wh", "b", "Wc")]
    grads = tg.grad(loss, inputs + params, create_graph=True)
    model = tg.export_onnx([loss, *grads], inputs, dynamic_batch=True)
    names = [o.name for o in model.graph.output]
    assert names == ["L"] + [f"∂L/∂{t.name}" for t in inputs + params]
    rng = np.random.default_rng(4)
    feeds = {t.name: rng.standard_normal((5,) + t.shape[1:]).astype(np.float32) for t in inputs}
    got = run(model, feeds)
    batch5 = {n: tg.tensor(a, name=n, requires_grad=True) for n, a in feeds.items()}
    again = [tg.tensor(p.data, name=p.name, requires_grad=True) for p in params]
    expected = _attention_loss_and_grads(batch5, again)
    for name, t in zip(names, expected):
        np.testing.assert_allclose(got[name], t.data, rtol=1e-4, atol=1e-5, err_msg=name)


def _attention_loss_and_grads(x, params):
    from tinygraph.examples import attention
    Wx, Wh, b, Wc = params
    h, _ = lstm_cell(x["x"], x["h_prev"], x["c_prev"], Wx, Wh, b)
    N, H = h.shape
    states = tg.concat([tg.reshape(x[f"hs{t}"], (N, 1, H)) for t in (1, 2, 3)], axis=1)
    context, _ = attention(tg.reshape(h, (N, 1, H)), states)
    out = tg.tanh(tg.concat([tg.reshape(context, (N, H)), h], axis=1) @ Wc)
    loss = out.sum()
    inputs = [x[n] for n in ("x", "h_prev", "c_prev", "hs1", "hs2", "hs3")]
    return [loss, *tg.grad(loss, inputs + list(params))]


def test_a_constant_of_the_traced_batch_size_is_warned_about(onnx):
    inputs, loss = lstm_unrolled(dtype=np.float32)
    xs = [inputs[n] for n in ("x1", "x2", "x3")]
    with pytest.warns(UserWarning) as warned:
        tg.export_onnx([loss], xs, dynamic_batch=True)
    assert sorted(str(w.message).split(":")[2].split()[0] for w in warned) == ["c0", "h0"]


def test_a_sum_over_no_axes_stays_the_identity(run):
    x = tg.tensor(np.arange(6, dtype=np.float32).reshape(2, 3), name="x")
    y = tg.sum(x, axis=()) * 2
    got = run(tg.export_onnx([y], [x]), {"x": x.data})
    np.testing.assert_array_equal(list(got.values())[0], y.data)


def test_ids_outside_their_range_fail_in_onnx_runtime_as_in_tinygraph(run):
    """ONNX's Gather reads a negative id from the end, as numpy would: without the exported
    check an id of -1 silently picks the last embedding row or class."""
    rng = np.random.default_rng(5)
    embed = Embedding(10, 4, rng=rng)
    Wout = tg.tensor(rng.standard_normal((4, 6)).astype(np.float32), name="Wout",
                     requires_grad=True)
    ids, targets = (tg.tensor(rng.integers(0, n, (2, 3)), name=name)
                    for name, n in (("ids", 10), ("targets", 6)))
    loss = tg.cross_entropy(embed(ids) @ Wout, targets)
    grads = tg.grad(loss, [embed.W, Wout], create_graph=True)
    model = tg.export_onnx([loss, *grads], [ids, targets])
    feeds = {"ids": ids.data, "targets": targets.data}
    for got, t in zip(run(model, feeds).values(), [loss, *grads]):
        np.testing.assert_allclose(got, t.data, rtol=1e-5, atol=1e-5)
    for name, size in (("ids", 10), ("targets", 6)):
        for bad in (-1, size):
            wrong = dict(feeds, **{name: feeds[name].copy()})
            wrong[name][1, 2] = bad
            # The check's own node fails (its name says why), not the Gather after it.
            with pytest.raises(Exception, match=f"ids_in_range.*outside \\[0, {size}\\)"):
                run(model, wrong)


def test_every_primitive_is_mapped_or_refused_by_name():
    """A new primitive needs an ONNX mapping or a reason it has none (REFUSED); export then
    raises a ValueError naming it and saying why."""
    from tinygraph.ops import all_primitives
    from tinygraph.transforms.onnx_export import MAPPINGS, REFUSED
    ours = [cls for cls in all_primitives() if cls.__module__.startswith("tinygraph.")]
    assert [cls.name for cls in ours if cls not in MAPPINGS and cls not in REFUSED] == []
    assert [cls.name for cls in ours if cls in MAPPINGS and cls in REFUSED] == []
    assert all(isinstance(why, str) and why for why in REFUSED.values())
