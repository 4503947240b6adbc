"""What the explorer says of each backward node (issue: the explorer speaks the book's
language): a rule written with the drawn names of what the node reads, a one-line role, the
vjp that made it, time-step subscripts, colours by role, merged names, the highway."""
import re

import numpy as np
import pytest

import tinygraph as tg
from tinygraph.examples import EXAMPLES, lstm_unrolled

BACKWARD = ("backward", "sum")


@pytest.fixture(scope="module")
def unrolled():
    _, loss = lstm_unrolled(steps=3, forget_bias=1.0)
    return tg.explore(loss).data["variants"]


def node(variant, first_line):
    return next(n for n in variant["nodes"] if n["lines"][0] == first_line)


def drawn_name(n):
    """How a node is labelled in the picture: a forward value by its name (a ghost in the
    backward view), a seed by its gradient's name, any other node by its first line."""
    if n["kind"] in ("op", "tensor", "parameter", "ghost"):
        return n["display"]
    return n["lines"][0]


@pytest.mark.parametrize("name", ["simplified", "generated"])
def test_every_backward_node_has_a_rule_and_a_role(unrolled, name):
    nodes = [n for n in unrolled[name]["nodes"] if n["kind"] in BACKWARD]
    assert nodes and all(n["rule"] and n["role"] for n in nodes)
    # The vjp that made it, with its forward equation, for every node a vjp made.
    assert all(n["vjp"].startswith("vjp of ") for n in nodes if n["kind"] == "backward")


@pytest.mark.parametrize("name", ["simplified", "generated"])
def test_rules_name_what_the_node_reads_as_it_is_drawn(unrolled, name):
    """Each operand of a rule is a node this one reads (an edge into it), named as drawn; no
    generated name (mul₁, matmul₂) of a value that is not on screen."""
    variant = unrolled[name]
    for n in (n for n in variant["nodes"] if n["kind"] in BACKWARD):
        reads = {e["tail"] for e in variant["edges"] if e["head"] == n["id"]}
        for operand in n["operands"]:
            assert operand["name"] in n["rule"] or n["kind"] == "sum", (n["rule"], operand)
            if "id" in operand:
                assert operand["id"] in reads
                assert operand["name"] == drawn_name(variant["nodes"][operand["id"]])
        assert not re.search(r"∂L/∂(mul|matmul|add)[₀-₉]", n["rule"]), n["rule"]


def test_the_books_rules_read_as_the_book_writes_them(unrolled):
    rules = {n["rule"] for n in unrolled["simplified"]["nodes"] if n["rule"]}
    assert "part of ∂L/∂c2 = ∂L/∂c3 ⊙ f₃" in rules          # dc_prev = ds ⊙ f
    assert "∂L/∂i₃ = ∂L/∂c3 ⊙ g₃" in rules                   # di = ds ⊙ g
    assert "∂L/∂h2 = ∂L/∂A₃ · Whᵀ" in rules                  # dh_prev = dA · Whᵀ
    assert "∂L/∂A₃ = [∂L/∂A_f₃ | ∂L/∂A_g₃ | ∂L/∂A_i₃ | ∂L/∂A_o₃]" in rules   # gates re-joined
    whole = node(unrolled["simplified"], "∂L/∂c2")
    assert whole["rule"].startswith("∂L/∂c2 = (via tanh → tanh_c₂) + (via mul → f₃⊙c2 [t=3])")


def test_the_vjp_is_named_with_its_forward_equation(unrolled):
    share = node(unrolled["simplified"], "part of ∂L/∂c2")
    assert share["vjp"] == "vjp of mul in c3 = f₃⊙c2 + g₃⊙i₃"
    assert share["vjp_rule"] == "part of ∂L/∂c2 = ∂L/∂(f₃⊙c2) ⊙ f₃"
    factor = node(unrolled["simplified"], "∂L/∂f₃ ⊙ f₃")
    assert factor["role"] == "a factor on the way to ∂L/∂A_f₃"
    assert factor["vjp"] == "vjp of sigmoid in f₃ = σ(A_f₃)"


def test_per_step_values_carry_their_time_step(unrolled):
    names = {n["lines"][0] for n in unrolled["simplified"]["nodes"]}
    assert {"∂L/∂f₁", "∂L/∂f₂", "∂L/∂f₃", "tanh_c₂²", "1 − tanh_c₁²"} <= names
    displays = {n["display"] for n in unrolled["simplified"]["nodes"] if n["kind"] == "op"}
    assert {"f₂", "tanh_c₃", "c2", "h1"} <= displays        # states keep their own index


@pytest.mark.parametrize("name", ["simplified", "generated"])
def test_a_role_keeps_its_hue_in_every_step(unrolled, name):
    nodes = unrolled[name]["nodes"]
    hue = lambda line: {n["hue"] for n in nodes if re.fullmatch(line, n["lines"][0])}
    for gate in "fgio":
        assert len(hue(rf"∂L/∂{gate}[₁-₃]")) == 1
        assert len(hue(rf"∂L/∂A_{gate}[₁-₃]")) == 1
    assert len(hue(r"∂L/∂f[₁-₃]") | hue(r"∂L/∂g[₁-₃]") | hue(r"∂L/∂i[₁-₃]")) == 3
    forward = {n["hue"] for n in nodes if n["kind"] == "op" and re.fullmatch(r"f[₁-₃]", n["display"])}
    assert len(forward) == 1


def test_a_gradient_merged_into_a_forward_value_shows_both_names():
    # L = sum(h2) seeded with the constant 1: ∂L/∂h2 is ones, so ∂L/∂tanh_c₂ = 1 ⊙ o₂
    # simplifies to o₂ itself.
    _, loss = lstm_unrolled(steps=2)
    seed = np.ones(())          # a constant seed (the explorer's own is a named ∂L/∂L)
    ghosts = tg.explore(loss, grad_outputs=seed).data["variants"]["simplified"]["nodes"]
    o = next(n for n in ghosts if n["kind"] == "op" and n["display"] == "o₂")
    assert o["also"] == ["= ∂L/∂tanh_c₂"]
    model = tg.diagrams.picture.build(loss, "backward", True)
    ghost = next(n for n in model.nodes if n.kind == "ghost" and n.display == "o₂")
    assert ghost.lines == ["o₂", "= ∂L/∂tanh_c₂", "(2, 4)"]


def test_seeds_have_a_rule_and_a_role():
    seeds = [n for n in tg.explore(EXAMPLES["lstm_cell"]()).data["variants"]["simplified"]["nodes"]
             if n["kind"] == "seed"]
    # Named as drawn, "upstream": ∂L/∂c is also the Σ of c's two uses, which is not 1.
    assert {n["rule"] for n in seeds} == {
        "upstream ∂L/∂h = 1 in every element (the default seed)",
        "upstream ∂L/∂c = 1 in every element (the default seed)"}
    assert all(n["role"] == "the seed: where the backward pass starts" for n in seeds)


@pytest.mark.parametrize("name", ["simplified", "generated"])
def test_the_highway_is_the_f_chain_only(unrolled, name):
    nodes = unrolled[name]["nodes"]
    lit = [n for n in nodes if n.get("highway")]
    assert {n["lines"][0] for n in lit} == {"part of ∂L/∂c2", "∂L/∂c2", "part of ∂L/∂c1",
                                            "∂L/∂c1"}
    for n in lit:                      # a Σ of ∂L/∂c_t, or a share through ⊙ f
        assert n["kind"] == "sum" or re.search(r"⊙ f[₁-₃]$", n["rule"]), n["rule"]
    steps = unrolled[name]["time_steps"]
    assert steps[-1]["c_highway"] == 0.0             # ∂L/∂c3 comes through h3 only
    for s in steps[:-1]:                             # the other two: both ways, both > 0
        assert s["c_highway"] > 0 and s["c_through_h"] > 0


def test_a_scalar_loss_starts_from_a_visible_seed(unrolled):
    nodes = unrolled["simplified"]["nodes"]
    (seed,) = [n for n in nodes if n["kind"] == "seed"]
    assert seed["lines"][0] == "upstream ∂L/∂L"
    assert seed["rule"] == "upstream ∂L/∂L = 1 (the default seed)"
    first = sorted((n for n in nodes if "order" in n), key=lambda n: n["order"])[:4]
    assert [n["rule"] for n in first[1:]] == ["∂L/∂h3 = broadcast_to(reshape(upstream ∂L/∂L))",
                                              "∂L/∂o₃ = ∂L/∂h3 ⊙ tanh_c₃",
                                              "∂L/∂tanh_c₃ = ∂L/∂h3 ⊙ o₃"]


def test_the_cell_states_whole_gradient_is_called_ds_as_in_the_book(unrolled):
    roles = {n["lines"][0]: n["role"] for n in unrolled["simplified"]["nodes"]}
    assert all(roles[f"∂L/∂c{t}"].endswith("(the book's ds)") for t in (1, 2, 3))
    assert "ds" not in roles["part of ∂L/∂c2"]
    cell = tg.explore(EXAMPLES["lstm_cell"]()).data["variants"]["simplified"]["nodes"]
    ds = [n["lines"][0] for n in cell if "(the book's ds)" in (n["role"] or "")]
    assert ds == ["∂L/∂c"]            # not ∂L/∂c_prev = ∂L/∂c ⊙ f, the book's dc_prev


def test_a_join_names_its_pieces_by_the_slices_of_its_own_tensor():
    # The GRU's xw and hw gradients share their first two pieces (∂L/∂a_r, ∂L/∂a_z: the add
    # passes one gradient to both), and simplification merges their identical slice
    # gradients; each join still names the slices of its own tensor.
    nodes = tg.explore(EXAMPLES["gru_cell"]()).data["variants"]["simplified"]["nodes"]
    joins = {n["lines"][0]: n for n in nodes if n["kind"] == "sum" and n["op"] == "concat"}
    assert joins["∂L/∂xw"]["lines"][2] == "[xw_r | xw_z | xw_n]"
    assert [p["label"] for p in joins["∂L/∂xw"]["pieces"]] == ["xw_r", "xw_z", "xw_n"]
    assert joins["∂L/∂hw"]["lines"][2] == "[hw_r | hw_z | hw_n]"


def test_the_seeds_of_unnamed_outputs_are_told_apart():
    x = tg.tensor(np.ones((2, 3)), name="x", requires_grad=True)
    w = tg.tensor(np.ones((3, 2)), name="w", requires_grad=True)
    nodes = tg.explore([(x @ w).sum(), (x * x).sum()]).data["variants"]["simplified"]["nodes"]
    seeds = sorted(n["lines"][0] for n in nodes if n["kind"] == "seed")
    assert seeds == ["upstream ∂L/∂sum₁", "upstream ∂L/∂sum₂"]


def test_a_gradient_differentiated_again_is_named_by_its_label():
    x = tg.tensor(np.array([1.0, 2.0]), name="x", requires_grad=True)
    w = tg.tensor(np.array([[0.5, -1.0], [2.0, 0.25]]), name="w", requires_grad=True)
    (g,) = tg.grad((x @ w).tanh().sum(), [x], create_graph=True)
    nodes = tg.explore((g * g).sum()).data["variants"]["simplified"]["nodes"]
    texts = [t for n in nodes for t in (n["lines"][0], n["rule"] or "", n["role"] or "")]
    assert not any("tensor" in t for t in texts), [t for t in texts if "tensor" in t]
    assert any(t.startswith("∂L/∂(∂L/∂x)") for t in texts)


def test_only_a_tensor_that_plays_the_cell_states_part_is_on_the_highway():
    c = tg.tensor(np.ones((2, 3)), name="c", requires_grad=True)      # named c, not a cell
    w = tg.tensor(np.full((2, 3), 0.5), name="w", requires_grad=True)
    nodes = tg.explore(((c * w).tanh() * c).sum()).data["variants"]["simplified"]["nodes"]
    assert not any(n.get("highway") or "the book's ds" in (n["role"] or "") for n in nodes)
