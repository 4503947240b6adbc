"""Folded time steps (tinygraph/diagrams/folding.py): which steps fold, and that the drawn cell's
node i stands for node i of step k, checked on the values the page would show."""
import base64

import numpy as np
import pytest

import tinygraph as tg
from tinygraph.diagrams.folding import FOLD_MORE_THAN, fold_steps
from tinygraph.examples import lstm_unrolled


def unrolled_rnn(steps, odd_step=None, outer=None):
    """A tanh RNN over `steps` steps, scope t=k per step (inside `outer` when given); step
    `odd_step` does one op more. Returns (loss, the h_k tensors, the x_k leaves)."""
    rng = np.random.default_rng(0)
    Wx = tg.Parameter(rng.standard_normal((3, 4)), name="Wx")
    Wh = tg.Parameter(rng.standard_normal((4, 4)) * 0.5, name="Wh")
    xs = [tg.tensor(rng.standard_normal((2, 3)), name=f"x{k}", requires_grad=True)
          for k in range(1, steps + 1)]
    h = tg.tensor(np.zeros((2, 4)), name="h0")
    hs = []
    for k, x in enumerate(xs, start=1):
        with tg.scope(outer) if outer else _nothing(), tg.time_step(k):
            h = tg.tanh(x @ Wx + h @ Wh)
            if k == odd_step:
                h = h * 0.5
            h.name, h.role = f"h{k}", tg.STATE
        hs.append(h)
    loss = (h * h).sum()
    loss.name = "L"
    return loss, hs, xs


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def decoded(node):
    return np.frombuffer(base64.b64decode(node["value"]["f32"]), "<f4").reshape(
        node["value"]["shape"])


@pytest.fixture(scope="module")
def rnn12():
    loss, hs, xs = unrolled_rnn(12)
    return tg.explore(loss).data, hs, xs, loss


def test_identical_steps_fold_and_the_first_and_last_stay_drawn(rnn12):
    data, *_ = rnn12
    for name in ("simplified", "generated"):
        (group,) = data["variants"][name]["fold"]
        # t=1 reads the zero state h0 and t=12 receives the loss's gradient: both differ.
        assert group["steps"] == list(range(2, 12))
        assert group["scopes"] == [f"t={k}" for k in range(2, 12)]
        assert group["total"] == 12 and group["parent"] == []
        assert len({len(ids) for ids in group["nodes"]}) == 1


def test_each_drawn_node_stands_for_the_same_node_of_step_k(rnn12):
    data, hs, xs, loss = rnn12
    variant = data["variants"]["simplified"]
    nodes = variant["nodes"]
    (group,) = variant["fold"]
    drawn = group["nodes"][0]
    grads = tg.grad(loss, hs + xs)
    dh, dx = grads[:len(hs)], grads[len(hs):]
    for s, k in enumerate(group["steps"]):
        for i, (rep, node) in enumerate(zip(drawn, (nodes[j] for j in group["nodes"][s]))):
            assert (node["kind"], node["op"]) == (nodes[rep]["kind"], nodes[rep]["op"])
            assert tuple(node["scope"]) in ((f"t={k}",), ())
        by_name = {nodes[j]["name"]: nodes[j] for j in group["nodes"][s]}
        # The forward h_k, the input x_k (outside the scope: it touches step k alone), and
        # ∂L/∂h_(k-1) (made in step k, by the vjp of h_(k-1) @ Wh) hold step k's values.
        np.testing.assert_allclose(decoded(by_name[f"h{k}"]), hs[k - 1].data, rtol=1e-6)
        np.testing.assert_allclose(decoded(by_name[f"x{k}"]), xs[k - 1].data, rtol=1e-6)
        (dh_before,) = [nodes[j] for j in group["nodes"][s] if nodes[j]["grad_of"] == f"h{k - 1}"]
        np.testing.assert_allclose(decoded(dh_before), dh[k - 2].data, rtol=1e-5, atol=1e-7)
        dxk = [nodes[j] for j in group["nodes"][s] if nodes[j]["grad_of"] == f"x{k}"]
        np.testing.assert_allclose(decoded(dxk[0]), dx[k - 1].data, rtol=1e-5, atol=1e-7)
    # The positions match across steps: the node drawn as h2 is h_k at step k.
    at = next(i for i, j in enumerate(drawn) if nodes[j]["name"] == "h2")
    assert [nodes[ids[at]]["name"] for ids in group["nodes"]] == [f"h{k}" for k in range(2, 12)]


def test_shared_nodes_are_never_folded(rnn12):
    data, *_ = rnn12
    variant = data["variants"]["simplified"]
    folded = {j for ids in variant["fold"][0]["nodes"] for j in ids}
    names = {variant["nodes"][j]["name"] for j in folded}
    assert not names & {"Wx", "Wh", "L", "h0"}
    sum_dWh = [n["id"] for n in variant["nodes"] if n["lines"][0] == "∂L/∂Wh"]
    assert sum_dWh and not set(sum_dWh) & folded


def test_a_step_with_another_structure_is_left_out():
    loss, *_ = unrolled_rnn(14, odd_step=6)
    (group,) = tg.explore(loss).data["variants"]["simplified"]["fold"]
    assert 6 not in group["steps"]
    assert group["steps"] == [k for k in range(2, 14) if k != 6]


def test_irregular_or_short_runs_are_not_folded():
    # Every other step differs: no class of identical steps is long enough.
    rng = np.random.default_rng(1)
    h = tg.tensor(rng.standard_normal((2, 3)), name="h0", requires_grad=True)
    for k in range(1, 17):
        with tg.time_step(k):
            h = tg.tanh(h) if k % 2 else tg.sigmoid(h) * 2.0
    assert tg.explore(h.sum()).data["variants"]["simplified"]["fold"] == []
    # Identical steps, but no more than FOLD_MORE_THAN of them.
    loss, *_ = unrolled_rnn(FOLD_MORE_THAN + 1)        # t=2..t=8: FOLD_MORE_THAN - 1 steps
    assert tg.explore(loss).data["variants"]["simplified"]["fold"] == []
    _, loss = lstm_unrolled(steps=3)
    assert tg.explore(loss).data["variants"]["simplified"]["fold"] == []


def test_steps_inside_a_scope_fold_with_it_as_their_parent():
    loss, *_ = unrolled_rnn(12, outer="layer1")
    (group,) = tg.explore(loss).data["variants"]["simplified"]["fold"]
    assert group["parent"] == ["layer1"]
    assert group["scopes"][:2] == ["layer1/t=2", "layer1/t=3"]


def test_folding_needs_matching_edges_not_only_matching_ops():
    # Two steps with the same ops whose edges differ (one step adds its input the other way
    # round) must not be matched node for node.
    nodes = [{"id": i, "kind": "op", "op": "add", "shape": [1], "dtype": "float64",
              "scope": [f"t={i // 2 + 1}"]} for i in range(2 * 12)]
    edges = [{"tail": 2 * s, "head": 2 * s + 1, "kind": "data"} for s in range(12)]
    steps = {(f"t={k}",): k for k in range(1, 13)}
    assert len(fold_steps(nodes, edges, steps)) == 1
    edges[10] = {"tail": 21, "head": 20, "kind": "data"}          # step t=11 reversed
    (group,) = fold_steps(nodes, edges, steps)
    assert 11 not in group["steps"] and len(group["steps"]) == 11
