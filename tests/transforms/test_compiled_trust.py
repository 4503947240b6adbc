"""A compiled step gives eager mode's numbers or refuses (issue "trust", points 6-8): what it
closes over, the modules' flags, dtypes, detach, unused and keyword arguments, auxiliary
outputs, and buffers planned without reference counts."""
import contextlib
import sys
import warnings

import numpy as np
import pytest

import tinygraph as tg
from lstm.models import LanguageModel

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


def both(fn, params, **options):
    return tg.eager_step(fn, params, replay=False, **options), tg.compile(fn, params, **options)


def run(step, params, *inputs, **kwargs):
    for p in params:
        p.zero_grad()
    out = step(*inputs, **kwargs)
    return out, [None if p.grad is None else p.grad.data.copy() for p in params]


def assert_same(step_a, step_b, params, *inputs, **kwargs):
    (a, ga), (b, gb) = (run(s, params, *inputs, **kwargs) for s in (step_a, step_b))
    np.testing.assert_array_equal(np.asarray(a.data if isinstance(a, tg.Tensor) else a[0].data),
                                  np.asarray(b.data if isinstance(b, tg.Tensor) else b[0].data))
    for x, y in zip(ga, gb):
        np.testing.assert_array_equal(x, y)


# --- 6. what the function closes over -----------------------------------------------------------
def test_eval_after_compiling_a_lambda_turns_dropout_off():
    from tinygraph import nn
    lin = nn.Linear(8, 8, rng=np.random.default_rng(0))
    drop = nn.Dropout(0.5, rng=np.random.default_rng(1))
    x = np.random.default_rng(2).standard_normal((4, 8)).astype(np.float32)
    step = tg.compile(lambda x: tg.sum(drop(lin(x)) ** 2), lin.parameters())
    step(x)
    drop.eval()
    with tg.no_grad():
        eager = float(tg.sum(drop(lin(tg.tensor(x))) ** 2))
    assert float(step(x)) == pytest.approx(eager, rel=1e-6)     # dropout stayed on


def test_a_captured_array_changed_in_place_is_seen():
    w = tg.Parameter(np.array([1.0, 2.0]))
    scale = np.array([3.0, 4.0])
    eager, compiled = both(lambda x: tg.sum(w * x * scale), [w])
    assert_same(eager, compiled, [w], np.ones(2))
    scale[:] = 0                                # was ignored by the replay
    assert float(compiled(np.ones(2))) == 0.0
    assert_same(eager, compiled, [w], np.ones(2))


def test_a_captured_index_array_changed_in_place_is_seen():
    w = tg.Parameter(np.arange(5.0))
    index = np.array([0, 1])
    eager, compiled = both(lambda: tg.sum(w[index] * w[index]), [w])
    assert_same(eager, compiled, [w])
    index[:] = 4
    assert float(compiled()) == 32.0
    assert_same(eager, compiled, [w])


SCALE = 2.0


@contextlib.contextmanager
def scale_set_to(value):
    """The module global SCALE rebound for the block (a new object: what a guard must see)."""
    global SCALE
    SCALE = value
    try:
        yield
    finally:
        SCALE = 2.0


def test_a_rebound_global_or_closure_value_traces_again():
    w = tg.Parameter(np.array([1.0, 2.0]))
    compiled = tg.compile(lambda: tg.sum(w * SCALE), [w])
    assert float(compiled()) == 6.0
    with scale_set_to(5.0):
        assert float(compiled()) == 15.0
    factor = 1.0
    compiled = tg.compile(lambda: tg.sum(w * factor), [w])
    assert float(compiled()) == 3.0
    factor = -1.0
    assert float(compiled()) == -3.0


def test_a_big_captured_array_is_refused_with_a_way_out():
    w = tg.Parameter(np.ones(100_000))
    big = np.ones(100_000)
    compiled = tg.compile(lambda: tg.sum(w * big), [w])
    with pytest.raises(ValueError, match=r"reads an operand of mul, a numpy array of shape "
                                         r"\(100000,\).*pass it as an input.*tg.tensor"):
        compiled()
    as_tensor = tg.tensor(big)
    assert float(tg.compile(lambda: tg.sum(w * as_tensor), [w])()) == 100_000.0


def test_changing_shapes_warn_once_naming_the_input():
    w = tg.Parameter(np.ones((3, 2)))
    compiled = tg.compile(lambda x: tg.sum(x @ w), [w])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for n in range(1, 13):
            compiled(np.ones((n, 3)))
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1
    assert "traced 9 times in 9 calls" in messages[0]
    assert "input 0 has shape (9, 3) (float64), traced before with (8, 3)" in messages[0]


def test_fixed_shapes_with_a_reset_per_epoch_do_not_warn():
    model = LanguageModel(30, 4, 4, seed=0)
    step = tg.compile(model.loss, model.parameters())
    ids = np.zeros((2, 3), dtype=np.int64)
    for epoch in range(12):
        model.reset_state()
        for _ in range(5):
            step(ids, ids)                     # pytestmark: a RuntimeWarning fails the test


# --- 7. one rule for eager and compiled ----------------------------------------------------------
def test_a_float64_array_into_a_float32_model_is_cast_in_both_modes():
    W = tg.Parameter(np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2))
    eager, compiled = both(lambda x: tg.sum(tg.tanh(x @ W)), [W])
    x = np.random.default_rng(0).standard_normal((4, 3))         # float64
    assert_same(eager, compiled, [W], x)
    assert compiled(x).dtype == np.float32 and W.grad.dtype == np.float32


def test_a_float64_tensor_into_a_float32_model_is_refused_in_both_modes():
    W = tg.Parameter(np.ones((3, 2), np.float32))
    for step in both(lambda x: tg.sum(x @ W), [W]):
        with pytest.raises(TypeError, match="matmul: operands have different dtypes"):
            step(tg.tensor(np.ones((4, 3))))


def test_an_unused_argument_is_accepted_in_both_modes():
    w = tg.Parameter(np.array([1.0, 2.0]))
    eager, compiled = both(lambda x, unused: tg.sum(w * x), [w])
    assert_same(eager, compiled, [w], np.ones(2), np.zeros(7))


def test_keyword_arguments_are_passed_in_both_modes():
    w = tg.Parameter(np.array([1.0, 2.0]))

    def f(x, *, weight, power=2):
        return tg.sum((w * x) ** power * weight)

    eager, compiled = both(f, [w])
    assert_same(eager, compiled, [w], np.ones(2), weight=np.array([1.0, 3.0]))
    assert_same(eager, compiled, [w], np.ones(2), weight=np.array([1.0, 3.0]), power=3)
    assert float(compiled(np.ones(2), weight=np.array([0.0, 1.0]))) == 4.0   # read afresh


def test_has_aux_returns_loss_and_aux_in_both_modes():
    w = tg.Parameter(np.array([1.0, -2.0]))

    def f(x):
        y = w * x
        return tg.sum(y * y), {"y": y, "parts": (tg.sum(y), None)}

    results = []
    for step in both(f, [w], has_aux=True):
        loss, aux = step(np.array([3.0, 1.0]))
        results.append((float(loss), aux["y"].data.copy(), float(aux["parts"][0]),
                        aux["parts"][1], aux["y"].requires_grad))
    assert results[0][0] == results[1][0] == 13.0
    np.testing.assert_array_equal(results[0][1], results[1][1])
    assert results[0][2:] == results[1][2:] == (1.0, None, False)


def test_a_non_tensor_aux_is_refused_in_both_modes():
    w = tg.Parameter(np.array([1.0]))
    for step in both(lambda: (tg.sum(w), 0.5), [w], has_aux=True):
        with pytest.raises(TypeError, match="aux must hold Tensors"):
            step()


# --- 8. buffers planned at trace time ------------------------------------------------------------
def test_held_gradients_are_never_overwritten_whatever_reference_counts_say(monkeypatch):
    """CPython 3.14 reports lower reference counts; a buffer pool that trusted them would
    hand out an array the caller still holds. Counting two less must change nothing."""
    real = sys.getrefcount
    monkeypatch.setattr(sys, "getrefcount", lambda a: real(a) - 2)
    rng = np.random.default_rng(0)
    model = LanguageModel(300, 64, 64, seed=0, dtype=np.float64)
    step = tg.compile(model.loss, model.parameters())
    held = []
    for _ in range(4):
        ids = rng.integers(0, 300, (8, 20))
        model.zero_grad()
        loss = step(ids, ids)
        held.append((loss, loss.data.copy(), [(p.grad.data, p.grad.data.copy())
                                               for p in model.parameters()]))
    for loss, value, grads in held:
        np.testing.assert_array_equal(loss.data, value)
        for array, copy in grads:
            np.testing.assert_array_equal(array, copy)


def test_a_forward_that_disagrees_with_its_spec_is_named():
    class Wrong(tg.Primitive):
        name = "wrong"

        def forward(self, a):
            return a[:1]

        def spec(self, a):
            return a.shape, a.dtype

        def vjp(self, node, g, needs):
            return (g,)

    w = tg.Parameter(np.ones(3))
    with pytest.raises(TypeError, match=r"primitive 'wrong' computed a float64 array of shape "
                                        r"\(1,\), but its spec\(\) said float64 of shape \(3,\)"):
        tg.compile(lambda: tg.sum(tg.apply(Wrong(), w)), [w])()


# --- found by a review -------------------------------------------------------------------------
def test_a_forward_into_that_returns_another_array_is_refused():
    class Clip(tg.Primitive):
        name = "clip_hi"

        def forward(self, a):
            return a

        def forward_into(self, out, a):
            return a                           # not `out`: its buffer would be reused early

        def spec(self, a):
            return a.shape, a.dtype

        def vjp(self, node, g, needs):
            return (g,)

    w = tg.Parameter(np.ones((200, 200)))
    step = tg.compile(lambda: tg.sum(tg.apply(Clip(), w * 2.0) * 3.0), [w])
    with pytest.raises(TypeError, match="'clip_hi''s forward_into returned another array"):
        step()


def test_where_numpy_would_compute_another_dtype_a_trace_refuses():
    """Eager mode computes on the arrays it is given with numpy; a trace cannot always follow
    numpy's promotion, and refuses where it would differ (it gave other numbers before)."""
    w = tg.Parameter(np.array([1.0, 1.0]))
    a = np.array([1e8 + 1.5, 3.25])
    b = np.array([1e8, 3.0], np.float32)
    eager, compiled = both(lambda a, b: tg.sum((a - b) * w), [w])
    assert float(eager(a, b)) == 1.75 and float(eager(b, a)) == -1.75
    for args in ((a, b), (b, a)):
        with pytest.raises(TypeError, match="two inputs given as numpy arrays of different "
                                            "dtypes"):
            compiled(*args)
    # Integer ids meeting a float32 constant: numpy's float64, in both modes (the trace
    # promotes as numpy does; it refused before whole-number tensors were promoted).
    ids = np.array([1, 2])
    scaled = both(lambda ids: tg.sum(w * (ids * np.float32(0.1) - 1e8)), [w])
    assert float(scaled[1](ids)) == float(scaled[0](ids)) == -199999999.7
    mean = np.array([0.25, 0.5])                       # float64, closed over
    with pytest.raises(TypeError, match="numpy \\(float64\\), tinygraph's rule gives float32"):
        tg.compile(lambda x: tg.sum(w * (x - mean)), [w])(np.ones(2, np.float32))
    assert float(tg.compile(lambda x: tg.sum(w * (x * 0.5)), [w])(np.ones(2))) == 1.0


def test_comparing_a_traced_input_is_recomputed_at_every_call():
    """`y == 1` is an elementwise comparison recorded in the program (not a value the trace
    saw): another y selects other elements."""
    w = tg.Parameter(np.array([1.0, 2.0, 4.0]))
    step = tg.compile(lambda y: tg.sum(tg.where(y == 1, w, 0.0)), [w])
    for y, expected in (([0, 1, 2], 2.0), ([1, 1, 0], 3.0), ([2, 0, 1], 4.0)):
        assert float(step(np.array(y))) == expected


def helper_scale():
    return SCALE


def test_globals_read_in_comprehensions_are_guarded_and_attribute_names_are_not():
    w = tg.Parameter(np.array([1.0, 2.0]))
    compiled = tg.compile(lambda: tg.sum(tg.concat([w * SCALE for _ in range(2)], axis=0)), [w])
    assert float(compiled()) == 12.0
    with scale_set_to(3.0):
        assert float(compiled()) == 18.0
    model = LanguageModel(20, 4, 4, seed=0)
    ids = np.zeros((1, 3), dtype=np.int64)

    def fn(x):
        return model.loss(x, x)                # `loss` is an attribute here, not a global
    step = tg.compile(fn, model.parameters())
    for _ in range(5):
        globals()["loss"] = float(step(ids))   # a script's global of the same name changes
    assert len(step.programs) == 1


def test_unchanged_nan_values_and_flags_switched_inside_do_not_retrace():
    w = tg.Parameter(np.array([1.0, 2.0]))
    fill = np.array([np.nan, 1.0])
    from tinygraph import nn
    drop = nn.Dropout(0.5, rng=np.random.default_rng(0))

    def fn():
        drop.eval()
        y = drop(w) * tg.sum(tg.tensor(fill[1:]))
        drop.train()
        return tg.sum(y)
    step = tg.compile(fn, [w])
    for _ in range(5):
        step()
    assert len(step.programs) == 1


def test_a_big_global_array_is_refused():
    w = tg.Parameter(np.ones(10))
    step = tg.compile(lambda: tg.sum(w * BIG.mean(axis=0)), [w])
    with pytest.raises(ValueError, match="reads the global 'BIG', a numpy array of shape"):
        step()


BIG = np.ones((2000, 10))


def test_module_attributes_are_guarded():
    from tinygraph import nn
    rng = np.random.default_rng(0)
    lin = nn.Linear(3, 2, rng=rng)
    drop = nn.Dropout(0.5, rng=np.random.default_rng(1))
    x = np.ones((4, 3))

    def fn(x):
        return tg.sum(drop(lin(x)))
    eager, compiled = both(fn, lin.parameters())
    drop.eval()
    assert float(compiled(x)) == float(eager(x))
    drop.train()
    drop.p = 0.0                               # was kept as traced
    assert float(compiled(x)) == float(eager(x))
    lin.W = tg.Parameter(np.zeros((3, 2), np.float32))   # replaced: read afresh
    assert float(compiled(x)) == float(eager(x)) == float(np.sum(lin.b.data) * 4)


def test_module_attributes_the_loss_does_not_read_and_ones_it_sets_are_fine():
    class Remembering(LanguageModel):
        def loss(self, ids, targets):
            self.last_loss = super().loss(ids, targets)      # set by the function itself
            return self.last_loss

    model = Remembering(30, 4, 4, seed=0)
    model.unigram = np.ones(30_000)                  # big, never read by the loss
    ids = np.zeros((1, 3), dtype=np.int64)
    step = tg.compile(model.loss, model.parameters())
    for _ in range(4):
        step(ids, ids)
        with tg.no_grad():
            model.loss(ids, ids)                     # an eager call between steps sets it too
    assert step.traces == 1


def test_a_replaced_parameter_of_a_cell_used_through_its_methods_traces_again():
    model = LanguageModel(30, 4, 4, seed=0)
    ids = np.arange(3).reshape(1, 3)
    eager, compiled = (make(lambda x: model.loss(x, x), model.parameters())
                       for make in (tg.eager_step, tg.compile))
    cell = model.rnn.layers[0].cell
    model.reset_state()
    compiled(ids)
    cell.b = tg.Parameter(np.full_like(cell.b.data, 3.0))
    model.reset_state()
    after = float(compiled(ids))
    model.reset_state()
    assert after == pytest.approx(float(eager(ids)), rel=1e-6)


OFFSET = 0.0


class _Shifted(LanguageModel):
    def loss(self, ids, targets):
        return super().loss(ids, targets) + OFFSET


def test_a_global_read_by_a_compiled_method_is_guarded():
    global OFFSET
    model = _Shifted(30, 4, 4, seed=0)
    ids = np.zeros((1, 3), dtype=np.int64)
    step = tg.compile(model.loss, model.parameters())
    model.reset_state()
    before = float(step(ids, ids))
    OFFSET = 5.0
    try:
        model.reset_state()
        assert float(step(ids, ids)) == pytest.approx(before + 5.0)
    finally:
        OFFSET = 0.0
