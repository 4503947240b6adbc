"""Diagrams: DOT structure of the built-in examples (no `dot` needed), the rules of what is
drawn, determinism, and real rendering through Graphviz."""
import re
import shutil

import graphviz
import numpy as np
import pytest

import tinygraph as tg
from tinygraph.diagrams import dot as render_module
from tinygraph.examples import EXAMPLES


def dot_nodes(dot):
    """{dot id: attribute text} for every node statement."""
    return {dot_id: attrs for dot_id, attrs in re.findall(r'^\s*(\w+) \[(.*)\]$', dot, re.M)
            if dot_id not in ("graph", "node", "edge")}


def dot_edges(dot):
    return re.findall(r'^\s*(\w+) -> (\w+)(?: \[(.*)\])?$', dot, re.M)


def label(attrs):
    match = re.search(r'label=(?:"((?:[^"\\]|\\.)*)"|([^\s\]]+))', attrs)
    if not match:
        return None
    return (match.group(1) if match.group(1) is not None else match.group(2)).replace("\\n", "\n")


def count_kinds(dot):
    counts = {}
    for dot_id in dot_nodes(dot):
        kind = re.match(r"[a-z_]+", dot_id).group(0)
        counts[kind] = counts.get(kind, 0) + 1
    return counts


# --- golden structure of the built-in examples -----------------------------------------------

GOLDEN = {
    # (example, view): (node kinds, edge count, cluster names). A weight's gradient is one
    # matmul_tn node (aᵀg), not a transpose feeding a matmul: 2 fewer nodes and edges a cell.
    ("lstm_cell", "forward"): ({"f": 17, "t": 6}, 25, []),
    ("lstm_cell", "backward"): ({"b": 30, "s": 2, "g": 5, "t": 5}, 54, []),
    ("lstm_cell", "both"): ({"f": 17, "t": 6, "b": 30, "s": 2}, 79, []),
    ("rnn_cell", "forward"): ({"f": 5, "t": 5}, 9, []),
    ("rnn_cell", "backward"): ({"b": 10, "g": 1, "s": 1, "t": 4}, 16, []),
    ("lstm_unrolled", "forward"): ({"t": 8, "f": 52}, 76, ["t=1", "t=2", "t=3"]),
    ("lstm_unrolled", "backward"): ({"t": 7, "b": 84, "g": 19}, 157, ["t=1", "t=2", "t=3"]),
    ("lstm_unrolled", "both"): ({"t": 8, "f": 52, "b": 84}, 233, ["t=1", "t=2", "t=3"]),
}


@pytest.mark.parametrize("example, view", sorted(GOLDEN))
def test_golden_dot_structure(example, view):
    kinds, n_edges, clusters = GOLDEN[(example, view)]
    dot = tg.to_dot(EXAMPLES[example](), view=view)
    assert count_kinds(dot) == kinds
    assert len(dot_edges(dot)) == n_edges
    assert re.findall(r'subgraph cluster_\w+ \{\n[^\n]*label="([^"]+)"', dot) == clusters


def test_same_graph_gives_byte_identical_dot():
    for name, build in EXAMPLES.items():
        assert tg.to_dot(build(), view="both") == tg.to_dot(build(), view="both"), name


# --- what the forward view shows ---------------------------------------------------------------

def test_forward_nodes_show_op_and_tensors_show_name_shape_dtype():
    dot = tg.to_dot(EXAMPLES["lstm_cell"](), view="forward")
    labels = {label(a) for a in dot_nodes(dot).values()}
    assert "x\n(2, 3) float64" in labels
    assert "Wx\n(3, 16) float64" in labels
    assert "slice [:, :4]\nA_f (2, 4) float64" in labels
    assert "sigmoid\nf (2, 4) float64" in labels
    assert "mul\nh (2, 4) float64" in labels


def test_parameters_look_different_from_activations():
    nodes = dot_nodes(tg.to_dot(EXAMPLES["lstm_cell"](), view="forward"))
    by_label = {label(a).split("\n")[0]: a for a in nodes.values()}
    for parameter in ("Wx", "Wh", "b"):
        assert "peripheries=2" in by_label[parameter] and "shape=box" in by_label[parameter]
    for activation in ("x", "h_prev", "c_prev"):
        assert "peripheries=1" in by_label[activation] and "shape=ellipse" in by_label[activation]


def test_constants_are_written_into_labels_and_none_never_shows():
    x = tg.tensor(np.ones(3), name="x", requires_grad=True)
    y = (1.0 - tg.tanh(x) * 0.5).sum()
    dot = tg.to_dot(y, view="both")
    labels = [label(a) for a in dot_nodes(dot).values()]
    assert any(l.startswith("sub(1, ·)") for l in labels)
    assert any(l.startswith("mul(·, 0.5)") for l in labels)
    assert all(l and "None" not in l for l in labels)
    assert count_kinds(dot)["t"] == 1          # only x: no node for any constant
    assert 'label=""' not in dot


# --- what the backward view shows -----------------------------------------------------------

def test_backward_nodes_are_labelled_with_their_gradient_and_paired_by_hue():
    dot = tg.to_dot(EXAMPLES["lstm_cell"](), view="both")
    nodes = dot_nodes(dot)
    labels = {dot_id: label(a) for dot_id, a in nodes.items()}
    for name in ("x", "h_prev", "c_prev", "Wx", "Wh", "b", "A", "f", "g", "i", "o", "c"):
        assert any(l.startswith(f"∂L/∂{name}\n") for l in labels.values()), name
    backward = [a for d, a in nodes.items() if d.startswith("b")]
    assert len(backward) == 30 and all("bold" in a for a in backward)
    forward_fills = {re.search(r'fillcolor="([^"]+)"', a).group(1)
                     for d, a in nodes.items() if d.startswith("f")}
    backward_fills = {re.search(r'fillcolor="([^"]+)"', a).group(1) for a in backward}
    # The cell's roles use the whole palette: every tint forward, every tone and Σ's backward.
    assert forward_fills == {tint for tint, _ in render_module.HUES}
    assert backward_fills == {tone for _, tone in render_module.HUES} | {render_module.SUM_FILL}
    # Colours mean roles: a gradient takes the hue of the value it is the gradient of (∂L/∂A_f
    # that of the slice A_f), a vjp's intermediate that of its forward op (1 − f: sigmoid f).
    def tint_of(first_line):
        d = next(d for d, l in labels.items() if l.split("\n")[1].startswith(first_line + " ("))
        return [t for t, _ in render_module.HUES].index(
            re.search(r'fillcolor="([^"]+)"', nodes[d]).group(1))

    for forward, backward in (("A_f", "∂L/∂A_f\n"), ("f", "1 − f\n"), ("c", "part of ∂L/∂c\n")):
        d = next(d for d, l in labels.items() if l.startswith(backward))
        assert f'fillcolor="{render_module.HUES[tint_of(forward)][1]}"' in nodes[d], backward
    assert tint_of("A_f") != tint_of("f")


def test_fan_in_sum_edges_name_their_uses():
    dot = tg.to_dot(EXAMPLES["lstm_cell"](), view="backward")
    labels = {dot_id: label(a) for dot_id, a in dot_nodes(dot).items()}
    ds = next(d for d, l in labels.items() if l.startswith("∂L/∂c\nΣ"))
    incoming = [attrs for tail, head, attrs in dot_edges(dot) if head == ds]
    assert sorted(label(a) for a in incoming) == ["from the output", "via tanh → tanh_c"]
    concat = next(d for d, l in labels.items() if l.startswith("∂L/∂A\nconcat"))
    incoming = [label(a) for tail, head, a in dot_edges(dot) if head == concat]
    assert sorted(incoming) == ["via A_f", "via A_g", "via A_i", "via A_o"]


def sum_edge_labels(dot, name):
    """The sorted labels of the edges into the one Σ node of ∂L/∂name."""
    labels = {d: label(a) for d, a in dot_nodes(dot).items()}
    sums = [d for d, l in labels.items() if l.startswith(f"∂L/∂{name}\nΣ")]
    assert len(sums) == 1
    return sorted(label(a) for _, head, a in dot_edges(dot) if head == sums[0])


def test_fan_in_of_a_tensor_used_by_two_time_steps_is_one_labelled_sum():
    dot = tg.to_dot(EXAMPLES["lstm_unrolled"](), view="backward")
    # The scope is named when it differs from the sum's own.
    assert sum_edge_labels(dot, "c1") == ["via mul → f₂⊙c1 [t=2]", "via tanh → tanh_c₁"]


def test_saved_forward_values_are_dashed_edges():
    dot = tg.to_dot(EXAMPLES["lstm_cell"](), view="both")
    labels = {dot_id: label(a) for dot_id, a in dot_nodes(dot).items()}
    dc_prev = next(d for d, l in labels.items() if l.startswith("∂L/∂c_prev\n"))
    incoming = {labels[t].split("\n")[0]: a for t, h, a in dot_edges(dot) if h == dc_prev}
    assert "style=dashed" in incoming["sigmoid"]              # f, saved from the forward
    assert "style=dashed" not in incoming["∂L/∂c"]            # ds, the gradient flow


def test_backward_view_draws_saved_values_as_ghosts():
    dot = tg.to_dot(EXAMPLES["lstm_cell"](), view="backward")
    ghosts = {label(a).split("\n")[0] for d, a in dot_nodes(dot).items() if d.startswith("g")}
    assert ghosts == {"f", "g", "i", "o", "tanh_c"}


def test_simplify_option_and_node_count_caption():
    outputs = EXAMPLES["lstm_cell"]()
    simplified = tg.to_dot(outputs, view="backward")
    generated = tg.to_dot(outputs, view="backward", simplify=False)
    assert "backward graph simplified: 36 → 30 nodes" in simplified
    assert "backward graph as generated: 36 nodes" in generated
    assert "slice_grad" in generated and "slice_grad" not in simplified


def test_rendering_gradients_made_with_create_graph_draws_them_as_they_are():
    x = tg.tensor(np.ones(3), name="x", requires_grad=True)
    (g,) = tg.grad((x ** 3).sum(), [x], create_graph=True)
    dot = tg.to_dot(g, view="backward", simplify=False)
    assert "pow ** 2" in dot and "∂L/∂x" in dot


# --- clusters, collapsing and gradient norms --------------------------------------------------

def test_scopes_become_clusters_and_collapse_to_boxes():
    outputs = EXAMPLES["lstm_unrolled"]()
    dot = tg.to_dot(outputs, view="both", collapse=["t=1", "t=2"])
    assert 'label="t=3"' in dot
    boxes = {d: label(a) for d, a in dot_nodes(dot).items() if d.startswith("collapsed_")}
    assert sorted(l.split("\n")[0] for l in boxes.values()) == ["t=1", "t=2"]
    assert all("forward ops" in l and "backward ops" in l for l in boxes.values())
    assert any(h in boxes for _, h, _ in dot_edges(dot))
    dot_all = tg.to_dot(outputs, view="forward", collapse=True)
    assert "subgraph cluster_t" not in dot_all and len([d for d in dot_nodes(dot_all)
                                                         if d.startswith("collapsed_")]) == 3
    with pytest.raises(ValueError, match="unknown scope"):
        tg.to_dot(outputs, collapse=["t=9"])


def test_nested_scopes_nest_clusters():
    x = tg.tensor(np.ones(2), name="x", requires_grad=True)
    with tg.scope("layer1"):
        with tg.scope("t=1"):
            y = tg.tanh(x)
    dot = tg.to_dot(y.sum(), view="forward")
    assert re.search(r'subgraph cluster_layer1 \{.*subgraph cluster_layer1_tx3dx1 \{', dot, re.S)
    boxed = tg.to_dot(y.sum(), view="forward", collapse="t=1")   # a nested scope, by name
    assert "subgraph cluster_layer1 {" in boxed and "collapsed_layer1_tx3dx1" in boxed


def test_color_by_grad_norm_shows_vanishing_gradients_with_a_legend():
    outputs = EXAMPLES["lstm_unrolled"]()
    dot = tg.to_dot(outputs, view="forward", color_by="grad_norm")
    assert "cluster__legend" in dot and "‖∂L/∂·‖ (log scale)" in dot
    nodes = dot_nodes(dot)
    by_label = {label(a).split("\n")[-1].split(" ")[0]: a for a in nodes.values()}
    shade = {name: render_module.NORM_COLORS.index(
        re.search(r'fillcolor="([^"]+)"', by_label[name]).group(1)) for name in ("h1", "h3")}
    assert shade["h1"] < shade["h3"]        # further from the loss: smaller gradient, darker


# --- errors, formats and Graphviz -----------------------------------------------------------

@pytest.mark.parametrize("options, error, message", [
    (dict(view="sideways"), ValueError, "unknown view 'sideways'"),
    (dict(color_by="magnitude"), ValueError, "unknown color_by"),
])
def test_bad_options_are_clear_errors(options, error, message):
    with pytest.raises(error, match=message):
        tg.render(EXAMPLES["rnn_cell"](), **options)


def test_render_rejects_non_tensors_and_graphs_without_gradients():
    with pytest.raises(TypeError, match="outputs must be"):
        tg.render([np.ones(2)])
    y = tg.tensor(np.ones(2)) * 2.0
    with pytest.raises(ValueError, match="nothing requires grad"):
        tg.render(y, view="backward")
    assert "mul" in tg.to_dot(y, view="forward")


def test_render_returns_a_digraph_that_shows_inline_in_jupyter():
    graph = tg.render(EXAMPLES["rnn_cell"]())
    assert isinstance(graph, graphviz.Digraph)
    assert hasattr(graph, "_repr_mimebundle_")


def test_missing_dot_is_a_clear_error_but_dot_text_still_works(monkeypatch, tmp_path):
    monkeypatch.setattr(render_module.shutil, "which", lambda name: None)
    outputs = EXAMPLES["rnn_cell"]()
    with pytest.raises(tg.GraphvizNotFoundError, match="apt-get install graphviz"):
        tg.save(outputs, tmp_path / "graph.svg")
    assert tg.save(outputs, tmp_path / "graph.dot").read_text().startswith("digraph")
    assert tg.to_dot(outputs).startswith("digraph")


def test_unknown_file_format_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"\.svg, \.png, \.pdf, \.dot"):
        tg.save(EXAMPLES["rnn_cell"](), tmp_path / "graph.jpg")


needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz 'dot' is not installed (CI installs it)")


@needs_dot
def test_really_renders_svg_with_the_expected_labels(tmp_path):
    path = tg.save(EXAMPLES["lstm_cell"](), tmp_path / "cell.svg", view="both")
    svg = path.read_text(encoding="utf-8")
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    for text in ("∂L/∂A", "concat axis=1", "∂L/∂c_prev", "sigmoid", "Wx", "via A_f"):
        assert text in svg, text


@needs_dot
@pytest.mark.parametrize("fmt, magic", [("png", b"\x89PNG"), ("pdf", b"%PDF")])
def test_renders_png_and_pdf(tmp_path, fmt, magic):
    path = tg.save(EXAMPLES["rnn_cell"](), tmp_path / f"cell.{fmt}")
    assert path.read_bytes().startswith(magic)


# --- review regressions ------------------------------------------------------------------------

def test_constant_gradient_terms_are_drawn_as_summands():
    inputs, (h, c) = __import__("tinygraph.examples", fromlist=["x"]).lstm_cell_step()
    dot = tg.to_dot(h.sum() + c.sum(), view="backward")
    labels = {d: label(a) for d, a in dot_nodes(dot).items()}
    ds = next(d for d, l in labels.items() if l.startswith("∂L/∂c\nΣ"))
    incoming = sorted(label(a) for t, h_, a in dot_edges(dot) if h_ == ds)
    assert incoming == ["via sum → Σc", "via tanh → tanh_c"]   # the 1s of sum(c) are drawn too


def test_a_gradient_that_simplifies_away_still_gets_a_labelled_node():
    x = tg.tensor(np.ones(3), name="x", requires_grad=True)
    w = tg.tensor(np.full(3, 2.0), name="w", requires_grad=True)
    dot = tg.to_dot((x * w).sum(), view="backward", wrt=[x])
    assert "∂L/∂x\\n= w" in dot
    dot = tg.to_dot((x * 1.0).sum(), view="backward")
    assert "∂L/∂x\\n= 1[3]" in dot


def test_fan_in_over_time_steps_is_one_sum_naming_every_use():
    dot = tg.to_dot(EXAMPLES["lstm_unrolled"](), view="backward")
    assert sum_edge_labels(dot, "Wh") == ["via matmul → h0·Wh [t=1]", "via matmul → h1·Wh [t=2]",
                                          "via matmul → h2·Wh [t=3]"]


def test_color_by_grad_norm_copes_with_infinite_and_seeded_gradients():
    p = tg.tensor(np.array([0.0, 1.0]), name="p", requires_grad=True)
    with np.errstate(all="ignore"):
        dot = tg.to_dot(tg.log(p).sum(), color_by="grad_norm", view="forward")
    assert render_module.NONFINITE_FILL in dot and "inf or NaN" in dot
    v = tg.tensor(np.ones(3), name="v", requires_grad=True)
    dot = tg.to_dot(v * 2.0, grad_outputs=np.ones(3), color_by="grad_norm", view="forward")
    assert "cluster__legend" in dot


def test_every_node_colour_is_in_the_legend():
    dot = tg.to_dot(EXAMPLES["lstm_unrolled"](), view="forward", color_by="grad_norm")
    nodes = dot_nodes(dot)
    legend = {re.search(r'fillcolor="([^"]+)"', a).group(1)
              for d, a in nodes.items() if d.startswith("legend")}
    used = {re.search(r'fillcolor="([^"]+)"', a).group(1)
            for d, a in nodes.items() if d[0] in "ft"} - {render_module.LEAF_FILL}
    assert used <= legend


def test_scope_ids_are_one_to_one():
    x = tg.tensor(np.ones(2), name="x", requires_grad=True)
    with tg.scope("t=3"):
        a = tg.tanh(x)
    with tg.scope("tx3d3"):
        b = tg.exp(a)
    with tg.scope("legend"):
        c = b * 2.0
    dot = tg.to_dot(c.sum(), view="forward", color_by="grad_norm")
    clusters = re.findall(r"subgraph (cluster_\w+)", dot)
    assert len(clusters) == len(set(clusters)) == 4


@pytest.mark.parametrize("name", ["back\\slash\\", "<b>bold</b>", "quote\"d", "\\N and \\l"])
def test_names_are_drawn_literally(name, tmp_path):
    x = tg.tensor(np.ones(2), name=name, requires_grad=True)
    with tg.scope(name):
        y = tg.tanh(x)
    graph = tg.render(y.sum(), view="both", title=name)
    if shutil.which("dot"):
        svg = tg.save(y.sum(), tmp_path / "g.svg", view="both", title=name).read_text()
        assert svg.count("<svg") == 1
    assert graph.source.count("digraph") == 1


def test_leaf_outputs_and_unnamed_leaves_are_drawn_distinctly():
    s = tg.tensor(np.ones(2), requires_grad=True)
    assert count_kinds(tg.to_dot(s, view="forward")) == {"t": 1}
    a, b = tg.tensor(np.ones(2), requires_grad=True), tg.tensor(np.ones(2), requires_grad=True)
    labels = [label(x) for x in dot_nodes(tg.to_dot((a * b).sum(), view="both")).values()]
    assert any(l.startswith("tensor₁") for l in labels) and any(l.startswith("tensor₂") for l in labels)


def test_the_caption_says_only_what_the_graph_has():
    """No Σ line without a Σ node, and no 'simplified' when nothing was simplified."""
    rnn = tg.to_dot(EXAMPLES["rnn_cell"](), view="backward")
    lstm = tg.to_dot(EXAMPLES["lstm_cell"](), view="backward")
    assert "Σ: a gradient" not in rnn and "Σ: a gradient" in lstm
    # The RNN cell's generated backward graph is already as simple as the rewrites make it.
    assert "backward graph: 10 nodes (nothing to simplify)" in rnn
    assert "backward graph simplified" not in rnn
    assert "backward graph simplified: 36 → 30 nodes" in lstm
