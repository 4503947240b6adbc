"""The picture (tinygraph.diagrams.picture) on its own: plain data, no Graphviz."""
import ast
import dataclasses
import json
import pathlib
from collections import Counter

import numpy as np

import tinygraph as tg
from tinygraph.diagrams import picture
from tinygraph.examples import EXAMPLES, rnn_cell_step

PACKAGE = pathlib.Path(picture.__file__).parents[1]


def imported_modules(path):
    """The modules a tinygraph source file imports, relative imports spelled out in full."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else ()
            module = ".".join(base + ((node.module,) if node.module else ()))
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def source_of(module):
    """The file of a tinygraph module, or None (a name imported from a module, or not ours)."""
    path = PACKAGE.parent.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if module.startswith("tinygraph") and candidate.is_file():
            return candidate
    return None


def test_the_picture_needs_neither_graphviz_nor_the_dot_emitter():
    # Everything picture.py imports, transitively within tinygraph (importing the package
    # itself loads dot.py, so sys.modules cannot tell).
    seen, todo = set(), [pathlib.Path(picture.__file__)]
    while todo:
        path = todo.pop()
        for module in imported_modules(path):
            if module in seen:
                continue
            seen.add(module)
            if (source := source_of(module)) is not None:
                todo.append(source)
    assert "tinygraph.backend" in seen                      # the walk does follow imports
    assert not {m for m in seen if m.split(".")[0] == "graphviz"}
    assert "tinygraph.diagrams.dot" not in seen


def test_lstm_cell_picture_counts_each_kind_of_box():
    model = picture.build(EXAMPLES["lstm_cell"]())
    assert Counter(n.kind for n in model.nodes) == {
        "op": 17, "tensor": 3, "parameter": 3, "seed": 2, "backward": 28, "sum": 2}
    assert model.simplified == (36, 30) and model.backward_count == 30
    assert set(n.kind for n in model.nodes) <= set(picture.KINDS)
    assert [n.id for n in model.nodes] == list(range(len(model.nodes)))


def test_forward_view_has_no_backward_nodes():
    model = picture.build(EXAMPLES["lstm_cell"](), view="forward")
    assert Counter(n.kind for n in model.nodes) == {"op": 17, "tensor": 3, "parameter": 3}
    assert model.simplified is None


def test_every_backward_op_is_paired_with_the_forward_op_whose_vjp_made_it():
    model = picture.build(EXAMPLES["lstm_cell"]())
    ops = {n.step: n for n in model.nodes if n.kind == "op"}
    backward = [n for n in model.nodes if n.kind == "backward"]
    assert backward and all(n.step in ops for n in backward)
    # ∂L/∂A_f comes from the vjp of f = sigmoid(A_f).
    d_af = next(n for n in backward if n.grad_of == "A_f")
    assert ops[d_af.step].lines == ["sigmoid", "f (2, 4) float64"]


def test_a_sum_lists_one_use_per_incoming_edge():
    for simplify in (True, False):
        model = picture.build(EXAMPLES["lstm_cell"](), simplify=simplify)
        kind = {n.id: n.kind for n in model.nodes}
        into_sums = [e for e in model.edges if kind[e.head] == "sum"]
        assert into_sums and all(e.use is not None for e in into_sums)
        assert all(e.use is None for e in model.edges if kind[e.head] != "sum")
        d_a = next(n for n in model.nodes if n.kind == "sum" and n.grad_of == "A")
        assert sorted(e.use for e in into_sums if e.head == d_a.id) == [
            "via A_f", "via A_g", "via A_i", "via A_o"]


def test_a_seed_passed_as_grad_outputs_is_a_seed_whatever_its_name():
    x = tg.tensor(np.array([0.5, -1.0, 2.0]), name="x", requires_grad=True)
    y = tg.tanh(x)
    upstream = tg.tensor(np.ones(3), name="from_the_loss")
    model = picture.build(y, grad_outputs=[upstream])
    (seed,) = [n for n in model.nodes if n.kind == "seed"]
    assert seed.lines[0] == "upstream from_the_loss"
    assert {e.kind for e in model.edges if e.tail == seed.id} == {"gradient"}


def test_a_tensor_named_like_a_gradient_is_not_a_seed():
    w = tg.tensor(np.array([1.5, 0.3, -0.7]), name="w", requires_grad=True)
    v = tg.tensor(np.array([2.0, 1.0, 3.0]), name="∂L/∂foo")
    model = picture.build((v * w).sum())
    (named,) = [n for n in model.nodes if n.lines[0] == "∂L/∂foo"]
    assert named.kind == "tensor"
    assert not [n for n in model.nodes if n.kind == "seed"]
    assert {e.kind for e in model.edges if e.tail == named.id} == {"data", "saved"}


def test_the_seed_of_gradients_made_elsewhere_is_found_by_structure():
    x = tg.tensor(np.ones((2, 3)), name="x", requires_grad=True)
    W = tg.Parameter(np.ones((3, 4)), name="W")
    upstream = tg.tensor(np.ones((2, 4)), name="g_from_above")   # any name
    (gW,) = tg.grad(tg.tanh(x @ W), [W], grad_outputs=[upstream], create_graph=True)
    model = picture.build(gW, view="backward")
    (seed,) = [n for n in model.nodes if n.kind == "seed"]
    assert seed.lines[0] == "upstream g_from_above"
    # x is read by the forward matmul too: a forward value, not a seed.
    assert [n.kind for n in model.nodes if n.lines[0] == "x"] == ["tensor"]


def test_gradient_norms_only_when_asked_for():
    plain = picture.build(EXAMPLES["rnn_cell"]())
    assert plain.grad_norms is None and all(n.grad_norm is None for n in plain.nodes)
    inputs, h = rnn_cell_step()
    normed = picture.build(h, grad_norms=True)
    assert all(n.grad_norm is not None for n in normed.nodes if n.kind in ("op", "parameter"))
    # A leaf shows the norm of its gradient under a seed of ones, the colour scale lists it.
    seed = tg.tensor(np.ones(h.shape))
    leaves = {n.lines[0]: n for n in normed.nodes if n.kind in ("tensor", "parameter")}
    assert sorted(leaves) == sorted(inputs)
    for name, g in zip(inputs, tg.grad(h, list(inputs.values()), grad_outputs=[seed])):
        expected = np.linalg.norm(g.data)
        assert expected > 0
        np.testing.assert_allclose(leaves[name].grad_norm, expected, rtol=1e-12)
        assert leaves[name].grad_norm in normed.grad_norms


def test_the_picture_is_json_ready():
    model = picture.build(EXAMPLES["lstm_unrolled"](), grad_norms=True)
    data = json.loads(json.dumps(dataclasses.asdict(model)))
    assert len(data["nodes"]) == len(model.nodes) and data["scopes"]
    # Every scope listed holds a node, and every node's scope is listed.
    assert {tuple(n["scope"]) for n in data["nodes"]} - {()} == {tuple(s) for s in data["scopes"]}


def test_the_attention_step_shows_the_softmax_gradient_and_every_encoder_states_gradient():
    model = picture.build(EXAMPLES["attention_step"](), view="backward")
    by_grad = {}
    for n in model.nodes:
        if n.kind in ("backward", "sum") and n.grad_of:
            by_grad.setdefault(n.grad_of, []).append(n)
    # The softmax over time: one fused log_softmax_grad node gives ∂L/∂scores.
    assert any("log_softmax_grad axis=2" in " ".join(n.lines) for n in by_grad["scores"])
    # hs is used as the values (context) and as the keys (scores): its gradient is a sum of
    # both uses, and each encoder state hs1..hs3 gets its part.
    (total,) = [n for n in by_grad["hs"] if n.kind == "sum"]
    assert sorted(n.kind for n in by_grad["hs"]) == ["backward", "backward", "sum"]  # 2 parts
    kind = {n.id: n.kind for n in model.nodes}
    uses = sorted(e.use for e in model.edges if e.head == total.id)
    assert len(uses) == 2 and all("[attention]" in u for u in uses)
    assert {"hs1", "hs2", "hs3"} <= set(by_grad)
    assert all(kind[n.id] == "backward" for t in ("hs1", "hs2", "hs3") for n in by_grad[t])


def test_a_vjps_intermediate_tensors_are_named_for_what_they_are():
    """tanh's vjp multiplies by 1 − y² and sigmoid's by 1 − y: the diagram says so, after
    simplification too, and a compound name's gradient reads ∂L/∂(1 − z)."""
    import numpy as np
    from lstm.cells import GRUCell
    model = picture.build(EXAMPLES["lstm_cell"](), view="backward")
    labels = {line for n in model.nodes for line in n.lines}
    assert {"tanh_c²", "1 − tanh_c²", "1 − o", "1 − f"} <= labels
    cell = GRUCell(3, 4, dtype=np.float64, rng=np.random.default_rng(0))
    x = tg.tensor(np.ones((2, 3)), name="x", requires_grad=True)
    h = tg.tensor(np.ones((2, 4)), name="h_prev", requires_grad=True)
    gru = picture.build(cell(x, h), view="backward")
    assert "∂L/∂(1 − z)" in {line for n in gru.nodes for line in n.lines}
