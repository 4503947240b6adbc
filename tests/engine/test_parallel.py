"""Work split over tinygraph's workers (tinygraph.ops.parallel): the split results equal the
whole ones, a Step hands the cores from BLAS to the workers only while it runs (and leaves a
caller's own BLAS limit alone), TINYGRAPH_THREADS sets the workers, and a forked child runs
steps as its parent does."""
import ast
import functools
import multiprocessing
import os
import pickle
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import pytest

import tinygraph as tg
from tinygraph.ops import parallel
from tinygraph.ops.elementwise import Add, Mul, SPLIT_ELEMENTS
from tinygraph.ops.linalg import MatMul, MatMulTN

threadpoolctl = pytest.importorskip("threadpoolctl")


@pytest.fixture(autouse=True)
def default_threads(monkeypatch):
    """Each test starts from the default (TINYGRAPH_THREADS unset) whatever the shell says."""
    monkeypatch.delenv("TINYGRAPH_THREADS", raising=False)


def blas_threads():
    return [p["num_threads"] for p in threadpoolctl.threadpool_info()
            if p["user_api"] == "blas"]


@pytest.mark.parametrize("m,k,n", [(600, 70, 500),     # split by rows
                                   (20, 650, 2600)])   # few rows: split by columns
def test_split_products_equal_whole_ones(m, k, n):
    assert 2 * m * k * n >= parallel.MIN_FLOPS
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    with parallel.split_products():
        split = MatMul().forward(a, b)
        split_tn = MatMulTN().forward(np.ascontiguousarray(a.T), b)
    np.testing.assert_allclose(split, a @ b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(split_tn, a @ b, rtol=1e-12, atol=1e-12)


@pytest.mark.slow     # arrays of SPLIT_ELEMENTS, so that the ufunc is split
def test_split_ufunc_passes_broadcast_operands_whole():
    rng = np.random.default_rng(1)
    rows = SPLIT_ELEMENTS // 100 + 7
    a, row, col = (rng.standard_normal((rows, 100)), rng.standard_normal(100),
                   rng.standard_normal((rows, 1)))
    out = np.empty_like(a)
    np.testing.assert_array_equal(Add().forward_into(out, a, row), a + row)
    np.testing.assert_array_equal(Mul().forward_into(out, col, a), col * a)
    np.testing.assert_array_equal(Mul().forward_into(out, a, 2.0), a * 2.0)


def test_a_step_gives_blas_one_thread_while_it_runs_and_restores_it():
    if max(blas_threads(), default=1) < 2:
        pytest.skip("BLAS runs one thread here anyway")
    before = blas_threads()
    seen = []
    w = tg.Parameter(np.ones((3, 3)))

    def loss(x):
        seen.append((blas_threads(), parallel.splitting()))
        return tg.sum(tg.matmul(x, w))

    for make in (tg.eager_step, tg.compile):
        seen.clear()
        make(loss, [w])(np.ones((2, 3)))
        assert seen and all(threads == [1] * len(before) and split for threads, split in seen)
        assert blas_threads() == before and not parallel.splitting()


def test_steps_overlapping_in_two_threads_leave_blas_as_it_was():
    """A step in the main thread, and one in another thread that enters before the first
    leaves and leaves after it: BLAS keeps one thread until the last step leaves, then has
    its own count again (the second step must not take the first's limit for the original).
    threadpoolctl lets one thread at a time control OpenBLAS, so the main thread does."""
    import threading
    if max(blas_threads(), default=1) < 2:
        pytest.skip("BLAS runs one thread here anyway")
    before = blas_threads()
    b_in, main_out = threading.Event(), threading.Event()

    def other_step():
        with parallel.cores_to_workers():
            b_in.set()
            main_out.wait(5)

    other = threading.Thread(target=other_step)
    with parallel.cores_to_workers():
        other.start()
        b_in.wait(5)
    still_inside = blas_threads()          # the other step is still running
    main_out.set()
    other.join(10)
    assert still_inside == [1] * len(before)
    assert blas_threads() == before


# --- how many workers: the cores this process may run on, or TINYGRAPH_THREADS -------------

def test_workers_are_the_cores_this_process_may_run_on(monkeypatch):
    if hasattr(os, "sched_getaffinity"):
        assert parallel.workers() == len(os.sched_getaffinity(0))
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
        assert parallel.workers() == 8
        monkeypatch.delattr(os, "sched_getaffinity")
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert parallel.workers() == 6


def test_tinygraph_threads_caps_the_workers(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setenv("TINYGRAPH_THREADS", "3")
    assert parallel.workers() == 3
    monkeypatch.setenv("TINYGRAPH_THREADS", "16")
    assert parallel.workers() == 8


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_tinygraph_threads_is_a_clear_error(monkeypatch, value):
    monkeypatch.setenv("TINYGRAPH_THREADS", value)
    with pytest.raises(ValueError, match="TINYGRAPH_THREADS"):
        parallel.workers()


def test_tinygraph_threads_1_splits_nothing_and_leaves_blas_alone(monkeypatch):
    monkeypatch.setenv("TINYGRAPH_THREADS", "1")
    threads = set()
    parallel.for_blocks(lambda a, b: threads.add(threading.get_ident()), 100)
    assert threads == {threading.get_ident()}
    before, seen = blas_threads(), []
    w = tg.Parameter(np.ones((3, 3), np.float32))

    def loss(x):
        seen.append((blas_threads(), parallel.splitting()))
        return tg.sum(tg.matmul(x, w))

    tg.eager_step(loss, [w])(np.ones((2, 3), np.float32))
    assert seen == [(before, False)]


# --- a caller's own BLAS limit ---------------------------------------------------------------

def test_a_step_leaves_a_callers_blas_limit_alone():
    """Inside the caller's threadpool_limits(k) the step neither sets BLAS to one thread nor
    restores it to BLAS's own count when it leaves (k is one more than that: 3 threads on the
    2-core project machine, which OpenBLAS accepts)."""
    if parallel.workers() < 2 or not blas_threads():
        pytest.skip("tinygraph leaves BLAS alone here anyway")
    before, seen = blas_threads(), []
    w = tg.Parameter(np.ones((3, 3), np.float32))

    def loss(x):
        seen.append((blas_threads(), parallel.splitting()))
        return tg.sum(tg.matmul(x, w))

    step = tg.eager_step(loss, [w])
    step(np.ones((2, 3), np.float32))           # tinygraph has seen BLAS's own count
    seen.clear()
    k = max(before) + 1
    with threadpoolctl.threadpool_limits(limits=k, user_api="blas"):
        step(np.ones((2, 3), np.float32))
        after = blas_threads()
    assert seen == [([k] * len(before), False)]     # and the products go whole to BLAS
    assert after == [k] * len(before)
    assert blas_threads() == before


def test_a_users_limit_in_another_thread_works_after_a_step():
    """threadpoolctl lets one thread at a time change OpenBLAS's thread count: a step must not
    keep that role for the thread it ran in."""
    if parallel.workers() < 2 or max(blas_threads(), default=1) < 2:
        pytest.skip("tinygraph leaves BLAS alone here anyway")
    w = tg.Parameter(np.ones((3, 3), np.float32))
    tg.eager_step(lambda x: tg.sum(tg.matmul(x, w)), [w])(np.ones((2, 3), np.float32))
    seen = []

    def limited():
        with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
            seen.append(blas_threads())

    other = threading.Thread(target=limited)
    other.start()
    other.join(10)
    assert seen == [[1] * len(blas_threads())]


# --- fork: a child process runs steps as its parent does, never hangs ------------------------

CHILD_TIMEOUT = 60


def in_forked_child(fn):
    """fn() run in an os.fork() child; its result, sent back through a pipe. The test fails,
    never hangs, when the child raises or has not finished in CHILD_TIMEOUT seconds (then it
    is killed)."""
    read, write = os.pipe()
    with warnings.catch_warnings():     # Python 3.12+ warns about forking with threads running
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:                        # the child
        try:
            os.close(read)
            try:
                message = pickle.dumps((True, fn()))
            except BaseException:
                message = pickle.dumps((False, traceback.format_exc()))
            with os.fdopen(write, "wb") as pipe:
                pipe.write(message)
        finally:
            os._exit(0)
    os.close(write)
    data, deadline, done = b"", time.monotonic() + CHILD_TIMEOUT, False
    try:
        while not done:
            if select.select([read], [], [], 0.1)[0]:
                chunk = os.read(read, 1 << 20)
                data += chunk
                done = not chunk        # end of file: the child has written all and closed
            if time.monotonic() > deadline and not done:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail(f"the forked child did not finish in {CHILD_TIMEOUT} s (hung)")
    finally:
        os.close(read)
    while os.waitpid(pid, os.WNOHANG)[0] == 0:
        time.sleep(0.01)
    ok, result = pickle.loads(data)
    assert ok, "the forked child raised:\n" + result
    return result


def big_step(kind):
    """One step whose products are big enough to be split over the pool: (loss, w's grad)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((512, 1024), dtype=np.float32)
    w = tg.Parameter(rng.standard_normal((1024, 1024), dtype=np.float32) / 32)
    make = {"eager": tg.eager_step, "compiled": tg.compile}[kind]
    loss = make(lambda x: tg.sum(tg.tanh(tg.matmul(x, w))), [w])(x)
    return loss.data, w.grad.data


def assert_same(got, expected):
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.subprocess
@pytest.mark.parametrize("kind", ["eager", "compiled"])
def test_a_forked_child_runs_a_step_after_the_parent_ran_one(kind):
    expected = big_step(kind)             # the parent's pool now exists (with its thread)
    assert_same(in_forked_child(functools.partial(big_step, kind)), expected)


@pytest.mark.subprocess
def test_a_forked_child_runs_a_step_when_forked_while_the_lock_was_held():
    expected = big_step("eager")
    held, release = threading.Event(), threading.Event()

    def hold():
        with parallel._lock:
            held.set()
            release.wait(CHILD_TIMEOUT + 10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    try:
        got = in_forked_child(functools.partial(big_step, "eager"))
    finally:
        release.set()
        holder.join(10)
    assert_same(got, expected)


@pytest.mark.subprocess
def test_a_fork_context_multiprocessing_pool_runs_steps():
    expected = big_step("eager")
    with warnings.catch_warnings():     # Python 3.12+ warns about forking with threads running
        warnings.simplefilter("ignore", DeprecationWarning)
        pool = multiprocessing.get_context("fork").Pool(2)
    with pool:
        results = [pool.apply_async(big_step, ("eager",)) for _ in range(2)]
        got = [r.get(timeout=CHILD_TIMEOUT) for r in results]
    for g in got:
        assert_same(g, expected)


NESTED = """
import threading
from tinygraph.ops import parallel
covered = []
def outer(a, b):
    inner = []
    parallel.for_blocks(lambda i, j: inner.append((i, j)), 10)
    covered.append(sorted(inner))
parallel.for_blocks(outer, 10)
print(covered)
"""


@pytest.mark.subprocess
def test_for_blocks_called_in_a_worker_runs_inline():
    """A block that calls for_blocks again: in a pool worker the inner call runs whole (the
    worker waiting for a block queued behind itself would wait forever). A fresh process, so
    that a hang cannot hold up the pool of the tests that follow."""
    env = {k: v for k, v in os.environ.items() if k != "TINYGRAPH_THREADS"}
    try:
        result = subprocess.run([sys.executable, "-c", NESTED], capture_output=True, text=True,
                                timeout=CHILD_TIMEOUT, env=env,
                                cwd=Path(__file__).resolve().parents[2])
    except subprocess.TimeoutExpired:
        pytest.fail(f"nested for_blocks did not finish in {CHILD_TIMEOUT} s (deadlock)")
    assert result.returncode == 0, result.stderr
    covered = ast.literal_eval(result.stdout)
    assert all(blocks and blocks[0][0] == 0 and blocks[-1][1] == 10 for blocks in covered)


@pytest.mark.subprocess
def test_a_child_forked_while_another_thread_was_inside_a_step_refuses_never_hangs():
    """The step's own lock (one call at a time) must not stay held in a child forked while
    another thread of the parent was inside the step; what that thread was updating may be
    half done, so the child's call is a clear error (it hung before), and a step object the
    other thread was not inside runs."""
    w = tg.Parameter(np.ones((64, 64)))
    step = tg.eager_step(lambda x: tg.sum(tg.tanh(x @ w)), [w])
    x = np.ones((8, 64))
    inside, release = threading.Event(), threading.Event()

    def slow_loss(x):
        inside.set()
        release.wait(CHILD_TIMEOUT + 10)
        return tg.sum(tg.tanh(x @ w))

    blocked = tg.eager_step(slow_loss, [w])
    blocked._lock = step._lock              # the same lock: held by the other thread
    holder = threading.Thread(target=blocked, args=(x,))
    holder.start()
    assert inside.wait(10)
    other = tg.eager_step(lambda x: tg.sum(tg.tanh(x @ w)), [w])

    def in_child():
        try:
            step(x)
            return "ran"
        except RuntimeError as e:
            return str(e), float(other(x))
    try:
        got = in_forked_child(in_child)
    finally:
        release.set()
        holder.join(10)
    assert "forked while another thread was inside a call of this EagerStep" in got[0]
    assert got[1] == float(other(x))
