"""Row blocks over a small thread pool, for the big elementwise passes of a step.

numpy releases the GIL inside its ufuncs, so the rows of a large array can be worked on by
two threads at once (the output layer's log-softmax over (700, 10000) logits, say). Only
array code runs here (a primitive's forward); the pool is created on first use and holds no
state of the computation.
"""
import concurrent.futures
import contextvars
import os

MIN_ELEMENTS = 1 << 18          # below this, one thread: the hand-off costs more than it saves
_pool = []


def workers():
    return min(2, os.cpu_count() or 1)


def for_row_blocks(fn, rows, elements):
    """Call fn(start, stop) over row blocks covering range(rows), in parallel when the array
    (`elements` in all) is large enough to gain from it; returns when all are done."""
    n = workers()
    if n < 2 or elements < MIN_ELEMENTS or rows < 2:
        fn(0, rows)
        return
    if not _pool:
        _pool.append(concurrent.futures.ThreadPoolExecutor(n, thread_name_prefix="tinygraph"))
    bounds = [rows * k // n for k in range(n + 1)]
    # Each block runs in a copy of the caller's context: numpy's errstate (and tinygraph's
    # state) is context-local, and a worker thread would otherwise start from the defaults.
    futures = [_pool[0].submit(contextvars.copy_context().run, fn, a, b)
               for a, b in zip(bounds, bounds[1:]) if b > a]
    for f in futures:
        f.result()              # re-raises a worker's exception here
