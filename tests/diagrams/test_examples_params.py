"""The built-in examples' parameters in Python (issue 21): each example declares them with
their defaults in its signature, the defaults give the graphs of before, the values change
the graph as they say (steps, forget_bias), and bad values raise a ValueError naming the
parameter. The command line's side is in tests/e2e/test_render_cli.py."""
import inspect
import math
import pathlib
import re
import shutil

import numpy as np
import pytest

import tinygraph as tg
from tinygraph import examples
from tinygraph.examples import EXAMPLES, ExampleParameterError, parameters

ALL = {"steps", "batch", "input_size", "hidden_size", "seed", "forget_bias"}


def test_each_example_declares_its_parameters_with_defaults_in_its_signature():
    assert parameters("lstm_unrolled") == {"steps": 3, "batch": 2, "input_size": 3,
                                           "hidden_size": 4, "seed": 0, "forget_bias": 0.0}
    assert parameters("attention_step") == parameters("lstm_unrolled")
    assert parameters("lstm_cell") == {"batch": 2, "input_size": 3, "hidden_size": 4,
                                       "seed": 0, "forget_bias": 0.0}
    assert parameters("rnn_cell") == {"batch": 2, "input_size": 3, "hidden_size": 4, "seed": 0}
    for name, example in EXAMPLES.items():
        signature = inspect.signature(example)
        assert {n: signature.parameters[n].default for n in parameters(name)} == \
            parameters(name)
        assert set(parameters(name)) <= ALL, name
    with pytest.raises(ValueError, match="unknown example 'nosuch'"):
        parameters("nosuch")


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_the_defaults_give_the_same_graph_as_no_arguments(name):
    """Today's graphs are the defaults' graphs (forget_bias 0 leaves the bias as drawn)."""
    assert tg.to_dot(EXAMPLES[name](**parameters(name)), view="both") == \
        tg.to_dot(EXAMPLES[name](), view="both")


def test_steps_20_unrolls_20_time_step_scopes():
    inputs, loss = examples.lstm_unrolled(steps=20)
    scopes = {node.scope for node in tg.nodes(loss)}
    assert scopes == {(f"t={k}",) for k in range(1, 21)} | {()}     # () : L = sum(h20)
    assert [n for n in inputs if n.startswith("x")] == [f"x{k}" for k in range(1, 21)]
    dot = tg.to_dot(EXAMPLES["lstm_unrolled"](steps=20), view="forward")
    assert re.findall(r'label="(t=\d+)"', dot) == [f"t={k}" for k in range(1, 21)]


def test_attention_step_attends_over_steps_encoder_states():
    inputs, _ = examples.attention_step(steps=7)
    assert [n for n in inputs if n.startswith("hs")] == [f"hs{k}" for k in range(1, 8)]


def named(outputs, scope):
    return {node.output.name: node.output.data for node in tg.nodes(outputs)
            if node.scope == scope and node.output.name}


@pytest.mark.parametrize("forget_bias", [1.0, -2.5])
def test_forget_bias_shifts_the_f_slice_of_the_bias_and_the_f_pre_activations(forget_bias):
    H = 5
    (plain, loss0), (biased, loss1) = (
        examples.lstm_unrolled(hidden_size=H, forget_bias=fb) for fb in (0.0, forget_bias))
    np.testing.assert_allclose(biased["b"].data[:H] - plain["b"].data[:H], forget_bias)
    np.testing.assert_array_equal(biased["b"].data[H:], plain["b"].data[H:])
    for name in ("Wx", "Wh", "x1", "x2", "x3"):
        np.testing.assert_array_equal(biased[name].data, plain[name].data)
    # At t=1 (h0 = c0 = 0) and t=2 (h1 does not depend on f1, since c0 = 0) the pre-activation
    # A differs exactly in its f slice, by forget_bias.
    for scope in [("t=1",), ("t=2",)]:
        a, b = named(loss0, scope), named(loss1, scope)
        np.testing.assert_allclose(b["A_f"] - a["A_f"], forget_bias, atol=1e-12)
        for gate in ("A_g", "A_i", "A_o"):
            np.testing.assert_allclose(b[gate], a[gate], atol=1e-12)
        np.testing.assert_allclose(b["f"], 1 / (1 + np.exp(-(a["A_f"] + forget_bias))))


@pytest.mark.parametrize("name", ["lstm_cell", "attention_step"])
def test_the_other_lstm_examples_take_a_forget_bias_too(name):
    builder = {"lstm_cell": examples.lstm_cell_step,
               "attention_step": examples.attention_step}[name]
    (plain, _), (biased, _) = builder(), builder(forget_bias=1)
    np.testing.assert_allclose(biased["b"].data - plain["b"].data, [1.0] * 4 + [0.0] * 12)


def test_forget_bias_keeps_float32():
    inputs, loss = examples.lstm_unrolled(forget_bias=1.0, dtype=np.float32)
    assert inputs["b"].dtype == np.float32 and loss.dtype == np.float32


BAD = [
    ("steps", 0), ("steps", -3), ("steps", 2.5), ("steps", True), ("steps", "20"),
    ("batch", 0), ("input_size", 0), ("hidden_size", 0), ("hidden_size", None),
    ("seed", -1), ("seed", 1.5),
    ("forget_bias", math.nan), ("forget_bias", math.inf), ("forget_bias", "1"),
    ("forget_bias", None),
]


@pytest.mark.parametrize("name", sorted(EXAMPLES))
@pytest.mark.parametrize("parameter, value", BAD)
def test_bad_values_raise_a_value_error_naming_the_parameter(name, parameter, value):
    if parameter not in parameters(name):
        with pytest.raises(TypeError, match=parameter):
            EXAMPLES[name](**{parameter: value})
        return
    with pytest.raises(ValueError, match=rf"^{parameter} must be .*, got ") as raised:
        EXAMPLES[name](**{parameter: value})
    assert isinstance(raised.value, ExampleParameterError)
    assert raised.value.parameter == parameter


def test_numpy_integers_and_ints_for_forget_bias_are_accepted():
    inputs, _ = examples.lstm_unrolled(steps=np.int64(4), forget_bias=1)
    assert "x4" in inputs


def varied(name):
    """Non-default values for every parameter of an example."""
    values = dict(steps=5, batch=1, input_size=2, hidden_size=3, seed=7, forget_bias=1.0)
    return {p: values[p] for p in parameters(name)}


@pytest.mark.parametrize("view", ["forward", "backward", "both"])
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_example_draws_with_other_parameters(name, view):
    dot = tg.to_dot(EXAMPLES[name](**varied(name)), view=view)
    assert dot.startswith("digraph")
    assert tg.to_dot(EXAMPLES[name](**varied(name)), view=view) == dot     # deterministic


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' is not installed")
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_example_renders_to_svg_with_other_parameters(name, tmp_path):
    path = tg.save(EXAMPLES[name](**varied(name)), tmp_path / f"{name}.svg", view="both")
    assert "<svg" in pathlib.Path(path).read_text()
