"""tg.manual_seed and the default generator: layers given no rng draw from it in turn, so a
seeded script builds the same model and draws the same dropout masks; an explicit rng wins;
draws from several threads never repeat a number; a forked child does not repeat the
parent's draws."""
import os
import threading

import numpy as np
import pytest

import tinygraph as tg
from tinygraph import nn


@pytest.fixture(autouse=True)
def kept_default_generator():
    """Each test seeds the default generator: put it back as it was for the other tests."""
    state = tg.default_generator().bit_generator.state
    yield
    tg.default_generator().bit_generator.state = state


class Net(nn.Module):
    def __init__(self):
        self.embed = nn.Embedding(7, 4)
        self.hidden = nn.Linear(4, 5)
        self.drop = nn.Dropout(0.5)
        self.out = nn.Linear(5, 3)

    def forward(self, ids):
        return self.out(self.drop(tg.tanh(self.hidden(self.embed(ids)))))


IDS = np.array([[1, 2, 3], [4, 5, 6]])


def test_seeding_builds_the_same_model_and_draws_the_same_masks():
    tg.manual_seed(0)
    a = Net()
    out_a = [a(IDS).data for _ in range(3)]          # three masks, in turn
    tg.manual_seed(0)
    b = Net()
    out_b = [b(IDS).data for _ in range(3)]
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert np.array_equal(p.data, q.data), name
    for x, y in zip(out_a, out_b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(out_a[0], out_a[1])       # a fresh mask per call


def test_another_seed_gives_other_weights():
    tg.manual_seed(0)
    w0 = nn.Linear(3, 2).W.data.copy()
    tg.manual_seed(1)
    assert not np.array_equal(nn.Linear(3, 2).W.data, w0)


def test_successive_layers_draw_in_turn():
    tg.manual_seed(0)
    first, second = nn.Linear(3, 2), nn.Linear(3, 2)
    assert not np.array_equal(first.W.data, second.W.data)
    # ... exactly the next numbers of the seeded generator (scaled by 1/sqrt(3))
    expected = np.random.default_rng(0).standard_normal((2, 3, 2)) / np.sqrt(3)
    np.testing.assert_allclose(first.W.data, expected[0], rtol=1e-6)
    np.testing.assert_allclose(second.W.data, expected[1], rtol=1e-6)


def test_an_explicit_rng_wins_and_leaves_the_default_generator_alone():
    tg.manual_seed(0)
    before = tg.default_generator().bit_generator.state
    a = nn.Linear(3, 2, rng=np.random.default_rng(5))
    e = nn.Embedding(4, 2, rng=np.random.default_rng(5))
    assert tg.default_generator().bit_generator.state == before
    expected = np.random.default_rng(5).standard_normal((3, 2)) / np.sqrt(3)
    np.testing.assert_allclose(a.W.data, expected, rtol=1e-6)
    assert not np.array_equal(e.W.data, nn.Embedding(4, 2).W.data)


def test_dropout_masks_repeat_after_reseeding_without_rebuilding():
    drop = nn.Dropout(0.5)
    x = tg.tensor(np.ones((4, 6)))
    tg.manual_seed(3)
    first = drop(x).data
    second = drop(x).data
    tg.manual_seed(3)
    np.testing.assert_array_equal(drop(x).data, first)
    np.testing.assert_array_equal(drop(x).data, second)
    assert set(np.unique(first)) == {0.0, 2.0}
    # the mask is the generator's next draw: kept where uniform >= p
    tg.manual_seed(3)
    keep = np.random.default_rng(3).random((4, 6)) >= 0.5
    np.testing.assert_array_equal(drop(x).data, keep * 2.0)


def test_a_dropout_with_its_own_rng_ignores_the_seed_and_keeps_its_state():
    x = tg.tensor(np.ones((4, 6)))
    own = nn.Dropout(0.5, rng=np.random.default_rng(9))
    tg.manual_seed(0)
    a = own(x).data
    tg.manual_seed(0)
    assert not np.array_equal(own(x).data, a)     # its own generator moved on
    assert set(own.extra_state()) == {"rng"}
    assert nn.Dropout(0.5).extra_state() == {}    # the default generator is no module's state


def test_a_compiled_step_draws_its_masks_from_the_reseeded_generator():
    tg.manual_seed(0)
    net = Net()
    loss = lambda ids: tg.sum(net(ids))
    eager, compiled = tg.eager_step(loss, net.parameters()), \
        tg.compile(loss, net.parameters())
    values = {}
    for name, step in (("eager", eager), ("compiled", compiled)):
        tg.manual_seed(7)
        values[name] = [step(IDS).item() for _ in range(3)]
    assert values["compiled"] == pytest.approx(values["eager"], rel=1e-6)
    assert len(set(values["eager"])) == 3        # a fresh mask per call


def test_manual_seed_refuses_what_is_not_a_non_negative_integer():
    for bad in (-1, 1.5, "0", None, True):
        with pytest.raises(ValueError, match="non-negative integer"):
            tg.manual_seed(bad)
    assert tg.manual_seed(np.int64(4)) is tg.default_generator()


def test_draws_from_several_threads_are_the_sequence_shared_out():
    """Each draw is atomic: the numbers the threads get, together, are the first numbers of
    the seeded sequence, none repeated (a torn state would repeat or skip some)."""
    tg.manual_seed(11)
    got, barrier = [[] for _ in range(4)], threading.Barrier(4)

    def draw(k):
        barrier.wait()
        for _ in range(2000):
            got[k].append(tg.default_generator().random())

    threads = [threading.Thread(target=draw, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    drawn = sorted(x for g in got for x in g)
    assert drawn == sorted(np.random.default_rng(11).random(8000).tolist())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_repeat_the_parents_draws():
    tg.manual_seed(0)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                                  # the child: its next draw, to the parent
        try:
            os.write(write, nn.Linear(3, 2).W.data.tobytes())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        child = np.frombuffer(pipe.read(), dtype=np.float32).reshape(3, 2)
    os.waitpid(pid, 0)
    parent = nn.Linear(3, 2).W.data
    assert child.shape == parent.shape and not np.array_equal(child, parent)
    # the parent itself went on from its seed as if no fork had happened
    np.testing.assert_allclose(parent, np.random.default_rng(0).standard_normal((3, 2))
                               / np.sqrt(3), rtol=1e-6)
