"""tinygraph.simplify: every rule, values unchanged, and the LSTM cell's backward graph in the
textbook form."""
import numpy as np
import pytest

import tinygraph as tg
from tinygraph.examples import lstm_cell_step, lstm_unrolled, rnn_cell_step
from tinygraph.core.state import recording_backward

from tests.engine.op_cases import CASES

GRAD_CASES = [case for case in CASES if case.differentiable]


def cell_gradients(**kwargs):
    """The LSTM cell's gradients w.r.t. all its inputs, seeded by symbolic ∂L/∂h, ∂L/∂c."""
    inputs, (h, c) = lstm_cell_step(**kwargs)
    rng = np.random.default_rng(7)
    seeds = [tg.tensor(rng.standard_normal(h.shape), name="∂L/∂h"),
             tg.tensor(rng.standard_normal(c.shape), name="∂L/∂c")]
    names = list(inputs)
    grads = tg.grad([h, c], [inputs[n] for n in names], grad_outputs=seeds, create_graph=True)
    return inputs, (h, c), dict(zip(names, grads))


def backward_nodes(tensors):
    return [n for n in tg.nodes(list(tensors)) if n.is_backward]


# --- values are unchanged --------------------------------------------------------------------

def assert_same_values(grads):
    result = tg.simplify(grads)
    for before, after in zip(grads, result.outputs):
        np.testing.assert_allclose(after.data, before.data, rtol=0, atol=1e-12)
    return result


def test_simplified_lstm_cell_gradients_equal_the_generated_ones():
    _, _, grads = cell_gradients(batch=3, input_size=5, hidden_size=4)
    result = assert_same_values(list(grads.values()))
    assert result.nodes_after < result.nodes_before


def test_simplified_unrolled_lstm_and_rnn_gradients_equal_the_generated_ones():
    inputs, loss = lstm_unrolled(steps=4)
    assert_same_values(tg.grad(loss, list(inputs.values()), create_graph=True))
    inputs, h = rnn_cell_step()
    assert_same_values(tg.grad(h.sum(), list(inputs.values()), create_graph=True))


@pytest.mark.parametrize("case", GRAD_CASES, ids=str)
def test_simplify_keeps_every_primitives_gradient(case):
    xs = [tg.tensor(a, requires_grad=True) for a in case.inputs(np.random.default_rng(0))]
    out = case.fn(*xs)
    seed = tg.tensor(np.random.default_rng(1).standard_normal(out.shape), name="∂L/∂y")
    grads = [g for g in tg.grad(out, xs, grad_outputs=[seed], create_graph=True,
                                allow_unused=True) if g is not None]
    assert_same_values(grads)


# --- each rule ------------------------------------------------------------------------------

def test_common_subexpressions_are_merged():
    x = tg.tensor(np.ones((2, 3)), name="x", requires_grad=True)
    W = tg.Parameter(np.ones((3, 4)), name="W")
    loss = (x @ W).sum() + (x @ W).sum()     # two matmuls: their vjps both transpose W
    grads = tg.grad(loss, [x, W], create_graph=True)
    before = [n.op for n in backward_nodes(grads)].count("transpose")
    result = tg.simplify(grads)
    assert before == 2
    assert [n.op for n in backward_nodes(result.outputs)].count("transpose") == 1
    # The two transposes of W merge, then the two products that read them (matmul, matmul_tn).
    assert result.rewrites["cse"] == 3


def test_constants_are_folded_and_multiplications_by_one_removed():
    x = tg.tensor(np.arange(6.0).reshape(2, 3), name="x", requires_grad=True)
    w = tg.tensor(np.ones(3), name="w", requires_grad=True)
    (gw,) = tg.grad((x * w).sum(), [w], create_graph=True)   # seed 1 broadcast, times x
    generated = [n.op for n in backward_nodes([gw])]
    assert "broadcast_to" in generated and "mul" in generated
    result = tg.simplify(gw)
    assert [n.op for n in backward_nodes(result.outputs)] == ["sum_to"]
    assert result.outputs[0].node.inputs[0] is x
    assert result.rewrites == {"constant_folding": 2, "identities": 1}


@pytest.mark.parametrize("build", [
    lambda x: x + np.zeros(3), lambda x: np.zeros(3) + x, lambda x: x - 0.0,
    lambda x: x * 1.0, lambda x: 1.0 * x, lambda x: x / 1.0, lambda x: x ** 1, lambda x: -(-x),
    lambda x: tg.reshape(x, (3,)),
])
def test_identities_inside_a_backward_graph_are_removed(build):
    x = tg.tensor(np.arange(3.0), name="x", requires_grad=True)
    with recording_backward(None, "vjp"):
        y = build(tg.exp(x))
    result = tg.simplify(y)
    assert result.outputs[0].node.op == "exp"


def test_identity_that_broadcasts_is_kept():
    x = tg.tensor(np.arange(3.0), name="x", requires_grad=True)
    with recording_backward(None, "vjp"):
        y = tg.exp(x) * np.ones((2, 3))        # not an identity: the shape changes
    assert tg.simplify(y).outputs[0].shape == (2, 3)


def test_multiplication_by_zero_is_kept_because_inf_times_zero_is_nan():
    x = tg.tensor(np.array([0.0, 1.0]), requires_grad=True)
    with np.errstate(all="ignore"):          # log(0) and 0 * inf on purpose
        (g,) = tg.grad(tg.log(x * 0.0 + np.array([0.0, 1.0])).sum(), [x], create_graph=True)
        (simplified,) = tg.simplify([g]).outputs
    np.testing.assert_array_equal(np.isnan(simplified.data), np.isnan(g.data))


def test_a_node_shared_by_time_steps_moves_to_their_common_scope():
    from tinygraph.examples import lstm_unrolled
    inputs, loss = lstm_unrolled(steps=3)
    grads = tg.grad(loss, list(inputs.values()), create_graph=True)
    result = tg.simplify(grads)
    transposes = [n for n in backward_nodes(result.outputs)
                  if n.op == "transpose" and n.inputs[0] is inputs["Wh"]]
    assert len(transposes) == 1 and transposes[0].scope == ()


def test_slice_gradients_that_tile_become_one_concat_in_order():
    x = tg.tensor(np.arange(12.0).reshape(2, 6), name="x", requires_grad=True)
    parts = [x[:, 4:], x[:, :2], x[:, 2:4]]           # used out of order on purpose
    # Squares, so the slice gradients depend on x and are not folded away as constants.
    loss = sum((p * p * (k + 1.0)).sum() for k, p in enumerate(parts))
    (g,) = tg.grad(loss, [x], create_graph=True)
    result = tg.simplify(g)
    ops = [n.op for n in backward_nodes(result.outputs)]
    assert ops.count("concat") == 1 and "slice_grad" not in ops
    concat = result.outputs[0].node
    assert [src.attrs["key"][1] for src in concat.grad_sources] == [
        slice(None, 2), slice(2, 4), slice(4, None)]
    np.testing.assert_array_equal(result.outputs[0].data, g.data)


def test_slice_gradients_with_a_gap_are_left_alone():
    x = tg.tensor(np.arange(12.0).reshape(2, 6), requires_grad=True)
    (g,) = tg.grad((x[:, :2] ** 2).sum() + (x[:, 3:] ** 2).sum(), [x], create_graph=True)
    ops = [n.op for n in backward_nodes(tg.simplify(g).outputs)]
    assert "concat" not in ops and ops.count("slice_grad") == 2


def test_integer_indexed_slices_that_tile_become_one_concat():
    """x[:, t] for every t (one slice per time step) joins like ranges do, axis restored."""
    x = tg.tensor(np.arange(24.0).reshape(2, 3, 4), requires_grad=True)
    steps = {t: x[:, t] for t in (2, 0, 1)}          # one slice per step, out of order
    loss = sum((p * p * (t + 1.0)).sum() for t, p in steps.items())
    (g,) = tg.grad(loss, [x], create_graph=True)
    result = tg.simplify(g)
    ops = [n.op for n in backward_nodes(result.outputs)]
    assert ops.count("concat") == 1 and "slice_grad" not in ops
    np.testing.assert_array_equal(result.outputs[0].data, g.data)


def test_weight_gradient_over_time_steps_joins_into_one_matmul_with_speed_rules():
    """sum_t x_t^T g_t becomes [x_1..x_T]^T [g_1..g_T]; only among SPEED_RULES."""
    from tinygraph.transforms.rewrite import SPEED_RULES
    rng = np.random.default_rng(0)
    w = tg.tensor(rng.standard_normal((4, 5)), requires_grad=True)
    xs = [tg.tensor(rng.standard_normal((2, 4))) for _ in range(5)]
    loss = sum(tg.tanh(x @ w).sum() for x in xs)
    (g,) = tg.grad(loss, [w], create_graph=True)
    readable = tg.simplify(g)
    fast = tg.simplify(g, SPEED_RULES)

    def weight_matmuls(result):
        return sum(1 for n in backward_nodes(result.outputs)
                   if n.op in ("matmul", "matmul_tn") and n.output.shape == (4, 5))

    assert weight_matmuls(readable) == 5 and weight_matmuls(fast) == 1
    assert fast.rewrites["join_weight_gradients"] == 1          # five terms, one join
    np.testing.assert_allclose(fast.outputs[0].data, g.data, rtol=1e-12)


# --- the LSTM cell reads like the hand derivation ----------------------------------------

def test_simplified_lstm_cell_backward_has_the_textbook_structure():
    inputs, (h, c), grads = cell_gradients()
    result = tg.simplify(list(grads.values()))
    simplified = dict(zip(grads, result.outputs))
    bwd = backward_nodes(result.outputs)
    ops = [n.op for n in bwd]

    # One concat joining df, dg, di, do in gate order; no zero-filled slice gradients.
    assert ops.count("concat") == 1 and "slice_grad" not in ops
    concat = next(n for n in bwd if n.op == "concat")
    assert [src.output.name for src in concat.grad_sources] == ["A_f", "A_g", "A_i", "A_o"]
    assert [t.node.grad_of.name for t in concat.inputs] == ["A_f", "A_g", "A_i", "A_o"]
    assert concat.grad_of.name == "A"

    # Four matmuls: dx, dh_prev, dWx, dWh, each reading the concat; one batch sum for db.
    matmuls = [n for n in bwd if n.op in ("matmul", "matmul_tn")]
    assert sorted(n.grad_of.name for n in matmuls) == ["Wh", "Wx", "h_prev", "x"]
    assert all(any(t is concat.output for t in n.inputs) for n in matmuls)   # (identity)
    assert simplified["b"].node.op == "sum_to" and simplified["b"].node.inputs == (concat.output,)

    # The cell-state highway: dc_prev = ds * f, with ds the summed gradient of c.
    dc_prev = simplified["c_prev"].node
    assert dc_prev.op == "mul"
    ds, f = dc_prev.inputs
    assert ds.node.role == "accumulate" and ds.node.grad_of is c and f.name == "f"

    assert result.nodes_before == 36 and result.nodes_after == 30
    assert str(result).startswith("backward nodes: 36 -> 30")


def test_an_identity_transpose_is_not_joined_as_a_weight_gradient():
    from tinygraph.transforms.rewrite import SPEED_RULES
    rng = np.random.default_rng(0)
    w = tg.tensor(rng.standard_normal((3, 3)), requires_grad=True)
    xs = [tg.tensor(rng.standard_normal((3, 3))) for _ in range(3)]
    # transpose(x, (0, 1)) is x itself: x @ w's weight gradient is x^T g, not x g.
    loss = sum(tg.sum(tg.tanh(tg.matmul(tg.transpose(x, (0, 1)), w))) for x in xs)
    (g,) = tg.grad(loss, [w], create_graph=True)
    np.testing.assert_allclose(tg.simplify(g, SPEED_RULES).outputs[0].data, g.data, rtol=1e-12)


# --- the rewrite log: the way from the generated graph to the simplified one, step by step ----
def test_the_log_records_each_rewrite_in_order_with_what_it_replaced():
    from collections import Counter
    from tinygraph.examples import lstm_cell_step
    inputs, (h, c) = lstm_cell_step()
    loss = tg.sum(h * h) + tg.sum(c)
    grads = tg.grad(loss, list(inputs.values()), create_graph=True)
    generated = {id(n) for n in tg.nodes(grads) if n.is_backward}
    simplified = tg.simplify(grads)
    log = simplified.log
    assert log and Counter(r.rule for r in log) == simplified.rewrites
    for r in log:
        assert r.replaced and all(id(n) in generated for n in r.replaced)
    joins = [r for r in log if r.result._node is not None and r.result._node.op == "concat"]
    assert joins, [str(r) for r in log]
    # The textbook dA = concat(df, dg, di, do): one join replaced the sum of the four slice
    # gradients (its add nodes), and its result is in the simplified graph.
    join = joins[0]
    assert len([n for n in join.replaced if n.op == "add"]) == 3
    assert any(n is join.result._node for n in tg.nodes(simplified.outputs))
    assert "-> concat" in str(join)
