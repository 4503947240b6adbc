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

The pool is created on first use and holds no state of the computation. BLAS's thread count
is process-wide, so steps running at once in several threads share one limit (counted).
"""
import concurrent.futures
import contextlib
import contextvars
import os
import threading

from ..backend import xp
from ..core.state import changed, current

MIN_ELEMENTS = 1 << 18          # below this, one thread: the hand-off costs more than it saves
MIN_FLOPS = 1 << 24             # a product below this runs whole (a (20, 100) @ (100, 400) one
                                # split in two ran 3x slower)
_pool = []
_blas = []                      # [threadpoolctl controller or None], found on first use
_holders = []                   # [the BLAS limit in force, then one entry per step inside it]
_lock = threading.Lock()        # guards the three lists above


def workers():
    return min(2, os.cpu_count() or 1)


def for_blocks(fn, n, big_enough=True):
    """Call fn(start, stop) over blocks covering range(n), in parallel when `big_enough`
    (and n > 1); returns when all are done. The caller's thread works on the last block."""
    count = workers()
    if count < 2 or not big_enough or n < 2:
        fn(0, n)
        return
    with _lock:
        if not _pool:
            _pool.append(concurrent.futures.ThreadPoolExecutor(
                count - 1, thread_name_prefix="tinygraph"))
    bounds = [n * k // count for k in range(count + 1)]
    # Each block runs in a copy of the caller's context: numpy's errstate (and tinygraph's
    # state) is context-local, and a worker thread would otherwise start from the defaults.
    futures = [_pool[0].submit(contextvars.copy_context().run, fn, a, b)
               for a, b in zip(bounds[:-2], bounds[1:-1]) if b > a]
    try:
        fn(bounds[-2], bounds[-1])
    finally:
        for f in futures:
            f.result()          # re-raises a worker's exception here


def for_row_blocks(fn, rows, elements):
    """for_blocks over `rows` rows of an array of `elements` elements in all."""
    for_blocks(fn, rows, elements >= MIN_ELEMENTS)


@contextlib.contextmanager
def cores_to_workers():
    """Within: one BLAS thread per call, and big products split over the pool (see module).
    Without threadpoolctl, or with no BLAS it can control, nothing changes. Steps running at
    once in several threads share one limit: the first to enter sets it, the last to leave
    restores BLAS's own thread count."""
    if current().split_products:            # already inside (a step calling a step)
        yield
        return
    with _lock:
        controller = _blas_controller()
        if controller is None:
            limit = None
        else:
            if not _holders:
                _take_control(controller)
                _holders.append(controller.limit(limits=1, user_api="blas"))
            _holders.append(None)
            limit = True
    if limit is None:
        yield
        return
    try:
        with changed(split_products=True):
            yield
    finally:
        with _lock:
            _holders.pop()
            if len(_holders) == 1:          # the last step left: BLAS gets its threads back
                _take_control(_blas_controller())
                _holders.pop().restore_original_limits()


def _take_control(controller):
    """threadpoolctl lets one thread at a time change OpenBLAS's (process-wide) thread count
    and ignores the others; the step entering first or leaving last may run in any thread, so
    it takes control (under _lock, which orders tinygraph's own changes)."""
    for lib in controller.lib_controllers:
        clear = getattr(type(lib), "clear_controlling_thread", None)
        if clear is not None:
            clear(force=True)


def _blas_controller():
    if not _blas:
        try:
            from threadpoolctl import ThreadpoolController
            controller = ThreadpoolController().select(user_api="blas")
            _blas.append(controller if controller.lib_controllers else None)
        except ImportError:
            _blas.append(None)
    return _blas[0]


def matmul_2d_into(out, a, b):
    """out = a @ b for 2-D a (m, k) and b (k, n); inside cores_to_workers a big product is
    split in two: by rows when m is large, else by columns."""
    m, n = out.shape
    flops = 2 * m * a.shape[1] * n
    if not current().split_products or flops < MIN_FLOPS or out.dtype.kind != "f":
        return xp.matmul(a, b, out=out)
    if m >= 256:
        for_blocks(lambda i, j: xp.matmul(a[i:j], b, out=out[i:j]), m)
    else:
        for_blocks(lambda i, j: xp.matmul(a, b[:, i:j], out=out[:, i:j]), n)
    return out


__all__ = ["for_blocks", "for_row_blocks", "cores_to_workers", "matmul_2d_into", "workers"]
