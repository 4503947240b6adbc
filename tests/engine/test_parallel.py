"""Work split over tinygraph's two workers (tinygraph.ops.parallel): the split results equal
the whole ones, and a Step hands the cores from BLAS to the workers only while it runs."""
import numpy as np
import pytest

import tinygraph as tg
from tinygraph.core.state import changed, current
from tinygraph.ops import parallel
from tinygraph.ops.elementwise import Add, Mul, SPLIT_ELEMENTS
from tinygraph.ops.linalg import MatMul, MatMulTN

threadpoolctl = pytest.importorskip("threadpoolctl")


def blas_threads():
    return [p["num_threads"] for p in threadpoolctl.threadpool_info()
            if p["user_api"] == "blas"]


@pytest.mark.parametrize("m,k,n", [(600, 70, 500),     # split by rows
                                   (20, 650, 2600)])   # few rows: split by columns
def test_split_products_equal_whole_ones(m, k, n):
    assert 2 * m * k * n >= parallel.MIN_FLOPS
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    with changed(split_products=True):
        split = MatMul().forward(a, b)
        split_tn = MatMulTN().forward(np.ascontiguousarray(a.T), b)
    np.testing.assert_allclose(split, a @ b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(split_tn, a @ b, rtol=1e-12, atol=1e-12)


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
        seen.append((blas_threads(), current().split_products))
        return tg.sum(tg.matmul(x, w))

    for make in (tg.value_and_grad, tg.compile):
        seen.clear()
        make(loss, [w])(np.ones((2, 3)))
        assert seen and all(threads == [1] * len(before) and split for threads, split in seen)
        assert blas_threads() == before and not current().split_products


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
