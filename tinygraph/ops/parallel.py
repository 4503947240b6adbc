"""Work split over a small thread pool: the big elementwise passes and matrix products of a
training step.

numpy releases the GIL inside its ufuncs and BLAS calls, so two threads can work on two
blocks of one array at once (the output layer's log-softmax over (700, 10000) logits, say).

Inside a training step (`cores_to_workers`, which tinygraph's Steps enter) BLAS runs one
thread per call, and the big products are split over the pool instead. Two reasons,
measured: OpenBLAS's own threads keep spinning for a while after each product, so a
row-block pass right after one got half a core (log-softmax 3.7 ms alone, 6.2 ms after a
product); and a (20, 650) @ (650, 2600) product, split in two column blocks, runs about 1.2x
faster than OpenBLAS's own two threads (191 against 154 GFLOP/s, measured alone on the
project machine; inside a medium step 159-173 against 138-151).

How many workers: one per core this process may run on (its CPU affinity), or fewer by the
environment variable TINYGRAPH_THREADS, read each time it is used:

    unset (or empty)        one worker per core
    TINYGRAPH_THREADS=1     tinygraph splits no work over threads and leaves BLAS's thread
                            count alone (BLAS threads its products as it would outside)
    TINYGRAPH_THREADS=N     at most N workers

A caller's own BLAS limit is theirs: inside `threadpoolctl.threadpool_limits(k)` a step leaves
BLAS's thread count alone (k in the step and after it) and hands its products whole to BLAS.

The pool is created on first use and holds no state of the computation. BLAS's thread count
is process-wide, so steps running at once in several threads share one limit (counted).
A forked child (os.fork, multiprocessing's "fork") starts its own pool and lock.
"""
import concurrent.futures
import contextlib
import contextvars
import os
import threading

from ..backend import xp

MIN_ELEMENTS = 1 << 18          # below this, one thread: the hand-off costs more than it saves
MIN_FLOPS = 1 << 24             # a product below this runs whole (a (20, 100) @ (100, 400) one
                                # split in two ran 3x slower)
_pool = None                    # the ThreadPoolExecutor, made on first use
_blas = None                    # (threadpoolctl controller or None, BLAS's own thread counts)
_limited = False                # tinygraph set BLAS to one thread and has not given it back
_steps = []                     # the thread id of each step inside cores_to_workers now
_lock = threading.Lock()        # guards the four above
# True in a pool worker running a block: a for_blocks called there runs whole, since a worker
# waiting for blocks queued behind the one it runs could wait forever.
_in_worker = contextvars.ContextVar("tinygraph_in_worker", default=False)
# Inside a step (cores_to_workers): big products are split over the workers. Context-local,
# this module's own (the core's state does not know about threading).
_SPLIT = contextvars.ContextVar("tinygraph_split_products", default=False)


def _after_fork_in_child():
    """The child has only the thread that forked: the inherited pool's thread is gone (a
    block sent to it would never run), the lock may have been held by another thread at the
    fork, and the steps of other threads are not running here. BLAS, if limited, gets its
    threads back when the next step here leaves."""
    global _pool, _lock
    _pool, _lock = None, threading.Lock()
    _steps[:] = [t for t in _steps if t == threading.get_ident()]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def workers():
    """The threads tinygraph splits work over: the cores this process may run on, at most
    TINYGRAPH_THREADS (see module)."""
    cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
             else os.cpu_count() or 1)
    value = os.environ.get("TINYGRAPH_THREADS", "").strip()
    if not value:
        return cores
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if limit < 1:
        raise ValueError(f"TINYGRAPH_THREADS={value!r}: expected a whole number of threads, "
                         "1 or more (1: no threads of tinygraph's own)")
    return min(limit, cores)


def for_blocks(fn, n, big_enough=True, most=None):
    """Call fn(start, stop) over blocks covering range(n), in parallel when `big_enough`
    (and n > 1), at most one block per worker and at most `most` blocks; returns when all are
    done. The caller's thread works on the last block; in a pool worker, fn(0, n) runs whole."""
    count = (1 if not big_enough or n < 2 or _in_worker.get()
             else min(workers(), n, n if most is None else most))
    if count < 2:
        fn(0, n)
        return
    pool = _executor()
    bounds = [n * k // count for k in range(count + 1)]
    # Each block runs in a copy of the caller's context: numpy's errstate (and tinygraph's
    # state) is context-local, and a worker thread would otherwise start from the defaults.
    futures = [pool.submit(contextvars.copy_context().run, _block, fn, a, b)
               for a, b in zip(bounds[:-2], bounds[1:-1]) if b > a]
    try:
        fn(bounds[-2], bounds[-1])
    finally:
        for f in futures:
            f.result()          # re-raises a worker's exception here


def _block(fn, start, stop):
    _in_worker.set(True)        # in this block's own context copy only
    fn(start, stop)


def _executor():
    global _pool
    with _lock:
        if _pool is None:
            # Room for one thread per core but the caller's: a thread starts only when no idle
            # one can take a block, so with fewer workers fewer threads start.
            _pool = concurrent.futures.ThreadPoolExecutor(
                max(1, (os.cpu_count() or 1) - 1), thread_name_prefix="tinygraph")
        return _pool


def for_row_blocks(fn, rows, elements):
    """for_blocks over `rows` rows of an array of `elements` elements in all; no block gets
    fewer than MIN_ELEMENTS / 2 (as in the two-block split the thresholds were measured on)."""
    for_blocks(fn, rows, elements >= MIN_ELEMENTS, most=2 * elements // MIN_ELEMENTS)


@contextlib.contextmanager
def cores_to_workers():
    """Within: one BLAS thread per call, and big products split over the pool (see module).
    Nothing changes with one worker, without threadpoolctl or a BLAS it can control, or under
    a caller's own BLAS limit. Steps running at once in several threads share one limit: the
    first to enter sets it, the last to leave gives BLAS its own thread count back."""
    global _limited
    if workers() < 2:
        yield
        return
    me = threading.get_ident()
    with _lock:
        controller, own = _blas_controller()
        # BLAS's count differing from what it was at tinygraph's first look means a caller
        # set a limit (threadpool_limits): left alone, not overridden here nor restored after.
        # (A limit already in force at that first look cannot be told from BLAS's own.)
        if controller is not None and not _steps and not _limited and _counts(controller) == own:
            _set(controller, [1] * len(own))
            _limited = True
        _steps.append(me)
        # Products are split only while BLAS runs one thread: split over the workers, each
        # running a BLAS with a caller's k threads (or its own count, without threadpoolctl),
        # they would ask for workers x k threads of the cores.
        split = _limited
    try:
        token = _SPLIT.set(True) if split else None
        try:
            yield
        finally:
            if token is not None:
                _SPLIT.reset(token)
    finally:
        with _lock:
            _steps.remove(me)
            if _limited and not _steps:     # the last step left: BLAS gets its threads back
                _set(controller, own)
                _limited = False


def _blas_controller():
    """(threadpoolctl's controller of the BLAS libraries, their thread counts at this first
    look), or (None, None) without threadpoolctl or a BLAS it can control."""
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController
            controller = ThreadpoolController().select(user_api="blas")
            _blas = ((controller, _counts(controller)) if controller.lib_controllers
                     else (None, None))
        except ImportError:
            _blas = (None, None)
    return _blas


def _counts(controller):
    return [lib.num_threads for lib in controller.lib_controllers]


def _set(controller, counts):
    """Set each BLAS library's thread count. threadpoolctl lets one thread at a time change
    OpenBLAS's process-wide count: the first thread that sets it, until that thread gives the
    claim up (`with threadpool_limits` does on leaving); other threads' changes are ignored.
    So tinygraph gives its claim up at once: kept, it would make a user's threadpool_limits
    in any other thread do nothing (and a step leaving in another thread could not restore
    BLAS). A claim another thread holds is not taken from it: tinygraph's change is then
    ignored, which costs speed, never a result."""
    for lib, n in zip(controller.lib_controllers, counts):
        lib.set_num_threads(n)
        give_up = getattr(lib, "clear_controlling_thread", None)    # newer threadpoolctl
        if give_up is not None:
            give_up()           # only if this thread holds the claim


def splitting():
    """True inside a step, where big products are split over the workers."""
    return _SPLIT.get()


@contextlib.contextmanager
def split_products():
    """Split big products over the workers inside the block (what a step does, for tests)."""
    token = _SPLIT.set(True)
    try:
        yield
    finally:
        _SPLIT.reset(token)


def matmul_2d_into(out, a, b):
    """out = a @ b for 2-D a (m, k) and b (k, n); inside cores_to_workers a big product is
    split over the workers: by rows when m is large, else by columns."""
    m, n = out.shape
    flops = 2 * m * a.shape[1] * n
    if not _SPLIT.get() or flops < MIN_FLOPS or out.dtype.kind != "f":
        return xp.matmul(a, b, out=out)
    most = 2 * flops // MIN_FLOPS       # no block below MIN_FLOPS / 2, as in two blocks
    if m >= 256:
        for_blocks(lambda i, j: xp.matmul(a[i:j], b, out=out[i:j]), m, most=most)
    else:
        for_blocks(lambda i, j: xp.matmul(a, b[:, i:j], out=out[:, i:j]), n, most=most)
    return out


__all__ = ["for_blocks", "for_row_blocks", "cores_to_workers", "matmul_2d_into", "workers"]
