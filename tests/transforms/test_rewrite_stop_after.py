"""simplify(..., stop_after=k): the graph k rewrites into the log, for replaying it; and
Simplified.stands_for, which finds a generated tensor's stand-in in the result."""
import numpy as np
import pytest

import tinygraph as tg
from tinygraph.examples import lstm_unrolled
from tinygraph.transforms.rewrite import simplify


def unrolled_gradients(steps=3):
    _, loss = lstm_unrolled(steps=steps)
    wrt = tg.leaves([loss])
    return tg.grad(loss, wrt, create_graph=True)


def backward_count(tensors):
    return sum(1 for n in tg.nodes(list(tensors)) if n.is_backward)


def test_stop_after_does_the_first_k_rewrites_of_the_log_and_no_more():
    grads = unrolled_gradients()
    whole = simplify(grads)
    assert len(whole.log) >= 5, [str(r) for r in whole.log]
    counts = []
    for k in range(len(whole.log) + 1):
        part = simplify(grads, stop_after=k)
        assert [str(r) for r in part.log] == [str(r) for r in whole.log[:k]]
        assert sum(part.rewrites.values()) == k
        for before, after in zip(grads, part.outputs):     # every frame computes the same
            np.testing.assert_allclose(after.data, before.data, rtol=0, atol=1e-12)
        counts.append(backward_count(part.outputs))
    assert counts[0] == backward_count(grads)              # nothing done: as generated
    assert counts[-1] == whole.nodes_after                 # all done: the simplified graph
    # Every rewrite of this graph removes nodes: each step has fewer than the one before.
    assert all(a > b for a, b in zip(counts, counts[1:])), counts


def test_stop_after_zero_copies_the_graph_node_for_node():
    grads = unrolled_gradients(steps=2)
    part = simplify(grads, stop_after=0)
    before = [n.op for n in tg.nodes(grads) if n.is_backward]
    after = [n.op for n in tg.nodes(part.outputs) if n.is_backward]
    assert part.log == [] and after == before
    rebuilt = {id(n) for n in tg.nodes(part.outputs) if n.is_backward}
    assert not rebuilt & {id(n) for n in tg.nodes(grads) if n.is_backward}   # new nodes


def test_stands_for_finds_each_generated_tensor_in_the_result():
    grads = unrolled_gradients(steps=2)
    part = simplify(grads, stop_after=3)
    generated = [n for n in tg.nodes(grads) if n.is_backward]
    result = {id(n) for n in tg.nodes(part.outputs)}
    for node in generated:
        stand_in = part.stands_for(node.output)
        assert stand_in is not node.output
        np.testing.assert_allclose(stand_in.data, node.output.data, rtol=0, atol=1e-12)
    # The outputs' stand-ins are the outputs of the result.
    assert [part.stands_for(g) for g in grads] == part.outputs
    assert all(part.stands_for(g)._node is None or id(part.stands_for(g)._node) in result
               for g in grads)
    # A tensor that was not rebuilt (a forward one, a leaf) stands for itself.
    leaf = tg.leaves(grads)[0]
    assert part.stands_for(leaf) is leaf


@pytest.mark.parametrize("k", [-1, 10_000])
def test_stop_after_out_of_range_means_none_or_all(k):
    grads = unrolled_gradients(steps=2)
    whole = simplify(grads)
    part = simplify(grads, stop_after=k)
    assert len(part.log) == (0 if k < 0 else len(whole.log))
