"""Recording state is context-local (tinygraph/core/state.py keeps it in a ContextVar): a
no_grad() or detect_anomaly() entered in one thread changes nothing in another. Each test
interleaves two threads with Events so that the other thread is inside its block while this
one computes."""
import threading

import numpy as np
import pytest

import tinygraph as tg

TIMEOUT = 10


def start(target):
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_no_grad_in_one_thread_does_not_stop_recording_in_another():
    inside, main_done = threading.Event(), threading.Event()
    seen = {}

    def thread_a():
        try:
            with tg.no_grad():
                inside.set()
                seen["woken"] = main_done.wait(TIMEOUT)   # main computes while A is inside
                y = tg.tensor(np.ones(3), requires_grad=True) * 2
                seen["a"] = (tg.is_grad_enabled(), y.requires_grad, y._node)
        except BaseException as e:     # reported below, in the main thread
            seen["error"] = e

    a = start(thread_a)
    try:
        assert inside.wait(TIMEOUT)
        x = tg.tensor(np.ones(3), requires_grad=True)
        y = x * 2
        assert tg.is_grad_enabled()
        assert y.requires_grad and y._node is not None and y._node.op == "mul"
        np.testing.assert_array_equal(tg.grad(y.sum(), x).data, [2.0, 2.0, 2.0])
    finally:
        main_done.set()
        a.join(TIMEOUT)
    assert "error" not in seen, seen.get("error")
    assert seen["woken"]
    # A's own ops, inside its no_grad, were not recorded.
    assert seen["a"] == (False, False, None)


def test_recording_in_one_thread_does_not_leak_into_a_no_grad_block_of_another():
    """The mirror image: the main thread is inside no_grad while thread A records."""
    main_inside, a_done = threading.Event(), threading.Event()
    seen = {}

    def thread_a():
        try:
            seen["woken"] = main_inside.wait(TIMEOUT)
            y = tg.tensor(np.ones(2), requires_grad=True) * 2
            seen["a"] = (tg.is_grad_enabled(), y._node is not None)
        except BaseException as e:
            seen["error"] = e
        finally:
            a_done.set()

    a = start(thread_a)
    with tg.no_grad():
        main_inside.set()
        assert a_done.wait(TIMEOUT)
        y = tg.tensor(np.ones(2), requires_grad=True) * 2
        assert not tg.is_grad_enabled() and y._node is None
    a.join(TIMEOUT)
    assert "error" not in seen, seen.get("error")
    assert seen["woken"] and seen["a"] == (True, True)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")     # numpy's, for log(-1)
def test_detect_anomaly_in_one_thread_does_not_check_another():
    inside, main_done = threading.Event(), threading.Event()
    seen = {}

    def thread_a():
        try:
            with tg.detect_anomaly():
                inside.set()
                seen["woken"] = main_done.wait(TIMEOUT)
                try:
                    tg.log(tg.tensor([-1.0], name="x"))
                except FloatingPointError as e:
                    seen["a"] = str(e)
        except BaseException as e:
            seen["error"] = e

    a = start(thread_a)
    try:
        assert inside.wait(TIMEOUT)
        with np.errstate(invalid="ignore"):
            out = tg.log(tg.tensor([-1.0], name="x"))     # no anomaly check here: NaN is fine
        assert np.isnan(out.data).all()
    finally:
        main_done.set()
        a.join(TIMEOUT)
    assert "error" not in seen, seen.get("error")
    assert seen["woken"]
    # A's own op, inside its detect_anomaly, was checked.
    assert "op 'log' in the forward pass produced NaN" in seen.get("a", "")


def test_no_grad_as_a_decorator_is_safe_in_two_threads_at_once():
    """One decorated function, entered by thread A, then by B, left by A first: each call
    has its own context manager, so neither pops the other's state."""
    a_inside, b_inside, a_left = threading.Event(), threading.Event(), threading.Event()
    seen, errors = {}, []

    @tg.no_grad()
    def evaluate(first):
        if first:
            a_inside.set()
            b_inside.wait(TIMEOUT)            # A leaves while B is still inside
        else:
            b_inside.set()
            a_left.wait(TIMEOUT)
        return tg.is_grad_enabled()

    def run(first):
        try:
            seen["A" if first else "B"] = evaluate(first)
        except Exception as e:            # reported below, in the main thread
            errors.append(e)
        finally:
            if first:
                a_left.set()

    a = start(lambda: run(True))
    assert a_inside.wait(TIMEOUT)
    b = start(lambda: run(False))
    a.join(TIMEOUT)
    b.join(TIMEOUT)
    assert errors == [] and seen == {"A": False, "B": False}
    assert tg.is_grad_enabled()
