"""Property-based: random compositions of the primitives, drawn by hypothesis, have gradients
that match central finite differences (float64), and the fast backward pass agrees with the
recorded one (create_graph=True) on every one of them."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

import tinygraph as tg
from tinygraph.transforms.rewrite import SPEED_RULES

# Smooth everywhere (no kinks, no poles), so finite differences are a fair reference.
UNARY = {
    "tanh": tg.tanh,
    "sigmoid": tg.sigmoid,
    "neg": tg.neg,
    "square": lambda a: a * a,
    "bounded exp": lambda a: tg.exp(tg.tanh(a)),
    "log(a²+1)": lambda a: tg.log(a * a + 1.0),
    "softmax rows": lambda a: tg.exp(tg.log_softmax(a, axis=-1)),
    "rotate columns": lambda a: tg.concat([a[:, 1:], a[:, :1]], axis=1),
    "reshape round trip": lambda a: tg.reshape(tg.reshape(a, (-1,)), a.shape),
    "transpose twice": lambda a: tg.transpose(tg.transpose(a)),
    "center rows": lambda a: a - tg.mean(a, axis=1, keepdims=True),
    "column sums": lambda a: tg.broadcast_to(tg.sum(a, axis=0, keepdims=True), a.shape),
    "gather rows": lambda a: a[np.arange(a.shape[0])[::-1]],
    "power 3": lambda a: a ** 3,
}
BINARY = {
    "add": tg.add,
    "sub": tg.sub,
    "mul": tg.mul,
    "div": lambda a, b: a / (b * b + 1.0),
    "a bᵀ a": lambda a, b: tg.matmul(tg.matmul(a, tg.transpose(b)), a) * 0.1,
    "row-broadcast add": lambda a, b: a + b[:1, :],
}


@st.composite
def programs(draw):
    n, m = draw(st.integers(1, 3)), draw(st.integers(2, 4))
    values = arrays(np.float64, (n, m), elements=st.floats(-2, 2))
    x, y = draw(values), draw(values)
    steps = draw(st.lists(st.one_of(
        st.tuples(st.just("unary"), st.sampled_from(sorted(UNARY))),
        st.tuples(st.just("binary"), st.sampled_from(sorted(BINARY)),
                  st.sampled_from(["x", "y", "self"]))), min_size=1, max_size=6))
    return x, y, steps


def build(steps):
    def fn(x, y):
        value = x
        for step in steps:
            if step[0] == "unary":
                value = UNARY[step[1]](value)
            else:
                other = {"x": x, "y": y, "self": value}[step[2]]
                value = BINARY[step[1]](value, other)
        return value * y + x     # both inputs always reach the output
    return fn


@pytest.mark.slow
@settings(max_examples=400)
@given(programs())
def test_random_compositions_match_finite_differences(program):
    x, y, steps = program
    assert tg.gradcheck(build(steps), [x, y], atol=1e-5, rtol=1e-4)


@pytest.mark.slow
@settings(max_examples=200)
@given(programs())
def test_fast_backward_equals_the_recorded_backward(program):
    x, y, steps = program
    a = tg.tensor(x, requires_grad=True)
    b = tg.tensor(y, requires_grad=True)
    out = tg.sum(build(steps)(a, b))
    fast = tg.grad(out, [a, b], retain_graph=True)
    recorded = tg.grad(out, [a, b], create_graph=True)
    simplified = tg.simplify(recorded).outputs
    for_speed = tg.simplify(recorded, SPEED_RULES).outputs     # what compiled programs run
    for f, r, s, q in zip(fast, recorded, simplified, for_speed):
        np.testing.assert_allclose(f.data, r.data, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(s.data, r.data, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(q.data, r.data, rtol=1e-12, atol=1e-12)
