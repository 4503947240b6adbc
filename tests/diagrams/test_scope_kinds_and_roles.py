"""Scopes say what they are (tg.time_step, kind=tg.LAYER) and tensors what part they play
(tg.STATE, tg.CELL_STATE): the explorer reads those, never the names."""
import numpy as np
import pytest

import tinygraph as tg
from tinygraph.examples import lstm_cell, lstm_unrolled


def _lstm(steps, step_scope, roles=True, seed=0):
    """An LSTM over `steps` steps built from examples.lstm_cell, step k in step_scope(k);
    roles=False takes the roles off every tensor (the names h_k, c_k stay)."""
    rng = np.random.default_rng(seed)
    H = 3
    Wx = tg.Parameter(rng.standard_normal((2, 4 * H)), name="Wx")
    Wh = tg.Parameter(rng.standard_normal((H, 4 * H)) * 0.5, name="Wh")
    b = tg.Parameter(np.zeros(4 * H), name="b")
    h = tg.tensor(np.zeros((2, H)), name="h0")
    c = tg.tensor(np.zeros((2, H)), name="c0")
    h.role, c.role = tg.STATE, tg.CELL_STATE
    made = [h, c]
    for k in range(1, steps + 1):
        x = tg.tensor(rng.standard_normal((2, 2)), name=f"x{k}", requires_grad=True)
        with step_scope(k):
            h, c = lstm_cell(x, h, c, Wx, Wh, b)
            h.name, c.name = f"h{k}", f"c{k}"
        made += [h, c]
    if not roles:
        for t in made:
            t.role = None
    loss = h.sum()
    loss.name = "L"
    return loss


def _named_step(k):
    return tg.scope(f"step {k}", kind=tg.TIME_STEP, index=k)


def _variant(loss, name="simplified"):
    return tg.explore(loss).data["variants"][name]


# --- scope kinds on nodes -------------------------------------------------------------------

def test_scope_kinds_are_recorded_on_forward_and_backward_nodes():
    x = tg.tensor(np.ones(3), name="x", requires_grad=True)
    with tg.scope("encoder"), tg.scope("layer1", kind=tg.LAYER), tg.time_step(3):
        y = tg.tanh(x)
    (gx,) = tg.grad(y.sum(), [x], create_graph=True)
    assert y.node.scope == ("encoder", "layer1", "t=3")          # names, as before
    assert y.node.scope_kinds == (None, "layer", "time step")
    assert y.node.scope[-1].index == 3 and y.node.scope[1].index is None
    backward = [n for n in tg.nodes([gx]) if n.is_backward and n.forward_node is y.node]
    assert backward and all(n.scope_kinds == (None, "layer", "time step") for n in backward)


def test_a_time_step_can_have_any_name_and_a_bad_kind_is_refused():
    x = tg.tensor(np.ones(2), name="x")
    with tg.time_step(7, name="step seven"):
        y = x * 2
    assert y.node.scope == ("step seven",) and y.node.scope[0].index == 7
    with pytest.raises(ValueError, match="unknown kind 'epoch'"):
        with tg.scope("e1", kind="epoch"):
            pass
    with pytest.raises(ValueError, match="needs an int index"):
        with tg.scope("t=1", kind=tg.TIME_STEP):
            pass
    with pytest.raises(ValueError, match="needs an int index"):
        with tg.scope("layer1", kind=tg.LAYER, index=1):
            pass


# --- the explorer reads kinds, not names ------------------------------------------------------

def test_steps_named_otherwise_get_the_time_strip_with_the_same_norms():
    book = _variant(_lstm(3, tg.time_step))["time_steps"]
    named = _variant(_lstm(3, _named_step))["time_steps"]
    assert [s["step"] for s in named] == [1, 2, 3]
    assert [s["scope"] for s in named] == [["step 1"], ["step 2"], ["step 3"]]
    for ours, theirs in zip(named, book):
        assert ours["h"] == pytest.approx(theirs["h"]) and ours["h"] > 0
        assert ours["c"] == pytest.approx(theirs["c"]) and ours["c"] > 0
        assert ours["c_highway"] == pytest.approx(theirs["c_highway"])


def test_steps_named_otherwise_get_subscripts():
    nodes = _variant(_lstm(3, _named_step))["nodes"]
    displays = {n["display"] for n in nodes if n.get("display")}
    assert {"f₁", "f₂", "f₃", "A₂", "tanh_c₃"} <= displays


def test_a_scope_named_like_a_time_step_without_the_kind_is_not_one():
    variant = _variant(_lstm(3, lambda k: tg.scope(f"t={k}")))
    assert variant["time_steps"] == []
    displays = {n["display"] for n in variant["nodes"] if n.get("display")}
    assert {"f", "A", "tanh_c"} <= displays and not {"f₁", "f₂", "A₂"} & displays


@pytest.mark.slow
def test_steps_named_otherwise_fold():
    (group,) = _variant(_lstm(12, _named_step))["fold"]
    assert group["steps"] == list(range(2, 12))
    assert group["scopes"][:2] == ["step 2", "step 3"] and group["total"] == 12
    (book,) = _variant(_lstm(12, tg.time_step))["fold"]
    assert group["nodes"] == book["nodes"]


@pytest.mark.slow
def test_layers_keep_their_steps_apart_when_folding():
    def layered(k):
        return _Both(tg.scope("layer1", kind=tg.LAYER), _named_step(k))
    (group,) = _variant(_lstm(12, layered))["fold"]
    assert group["parent"] == ["layer1"] and group["scopes"][0] == "layer1/step 2"


class _Both:
    def __init__(self, outer, inner):
        self.outer, self.inner = outer, inner

    def __enter__(self):
        self.outer.__enter__()
        self.inner.__enter__()

    def __exit__(self, *exc):
        self.inner.__exit__(*exc)
        return self.outer.__exit__(*exc)


# --- roles ----------------------------------------------------------------------------------

def test_a_tensor_named_c_without_the_cell_state_role_is_not_the_highway():
    for variant in ("simplified", "generated"):
        marked = _variant(_lstm(3, tg.time_step), variant)["nodes"]
        bare = _variant(_lstm(3, tg.time_step, roles=False), variant)["nodes"]
        assert sum(1 for n in marked if n.get("highway")) >= 3
        assert not any(n.get("highway") for n in bare)
        assert not any("the book's ds" in (n["role"] or "") for n in bare)


def test_without_roles_the_time_strip_has_no_state_norms():
    steps = _variant(_lstm(3, tg.time_step, roles=False))["time_steps"]
    assert steps == []      # no state made in any step: nothing to show per step


def test_a_state_role_on_another_tensor_is_what_the_strip_shows():
    rng = np.random.default_rng(2)
    W = tg.Parameter(rng.standard_normal((3, 3)), name="W")
    s = tg.tensor(rng.standard_normal((2, 3)), name="s0")
    for k in (1, 2):
        with tg.time_step(k):
            s = tg.tanh(s @ W)
            s.name, s.role = f"s{k}", tg.STATE        # not named h
    (variant) = _variant(s.sum())
    steps = variant["time_steps"]
    assert [t["step"] for t in steps] == [1, 2]
    assert all(t["h"] > 0 and "c" not in t for t in steps)
    forward = {n["id"]: n["name"] for n in variant["nodes"]}
    assert [forward[t["h_forward"]] for t in steps] == ["s1", "s2"]


def test_roles_survive_simplification():
    _, loss = lstm_unrolled(steps=2)
    c_states = [t for t in _forward_tensors(loss) if t.role == tg.CELL_STATE]
    assert [t.name for t in c_states] == ["c0", "c1", "c2"]
    c_states = c_states[1:]          # c0 is a constant zero state
    grads = tg.grad(loss, c_states, create_graph=True)
    for g in grads:
        g.role = tg.CELL_STATE
    simplified = tg.simplify(grads)
    assert simplified.nodes_after < simplified.nodes_before        # it did rewrite
    assert [g.role for g in simplified.outputs] == [tg.CELL_STATE] * 2
    kept = [t for t in _forward_tensors(*simplified.outputs) if t.role == tg.CELL_STATE]
    assert {t.name for t in kept} >= {"c1", "c2"}       # the forward states keep theirs too


def _forward_tensors(*outputs):
    seen = {}
    for node in tg.nodes(list(outputs)):
        for t in (*node.inputs, node.output):
            if t is not None and not (t.node is not None and t.node.is_backward):
                seen.setdefault(id(t), t)
    return sorted(seen.values(), key=lambda t: (t.name or ""))
