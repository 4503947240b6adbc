"""Fused elementwise kernels in compiled programs (tinygraph.transforms.fuse): a run of
elementwise steps computed by generated loops must give exactly what the ops it replaces
give (values and gradients, float32 and float64, bitwise), with numba, run as plain Python
(the same kernel code, no compiler), and without fusion (the fallback: op by op)."""
import numpy as np
import pytest

import tinygraph as tg
from tinygraph.transforms import fuse
from tinygraph.transforms.codegen import FUSE_AFTER, Generated
from lstm.cells import LSTMCell

def plain_python(function):
    """A 'compiler' that runs the kernel as Python: the kernel code checked without numba."""
    return function


def numba_jit():
    pytest.importorskip("numba")
    return fuse.numba_jit()


JITS = {"numba": numba_jit, "python": lambda: plain_python, "unfused": lambda: None}
# numba compiles each kernel (about 0.1 s): those cases are slow, the others quick.
JIT_CASES = [pytest.param("numba", marks=pytest.mark.slow), "python", "unfused"]


def generated_with(step, jit):
    """Make the step's program run its generated function, built with `jit`."""
    program = step.latest
    program._generated = Generated(program, program.kept, jit=jit, fuse_after=0)
    program.checked = True
    return program._generated


def run_both(fn, params, calls, jit, has_aux=False):
    """(compiled results, eager results) of fn over the calls' inputs: the loss (and aux)
    and the gradients, per call. The first compiled call traces; the rest run `jit`'s code."""
    compiled = tg.compile(fn, params, has_aux=has_aux)
    eager = tg.eager_step(fn, params, has_aux=has_aux, replay=False)
    results = []
    for step in (compiled, eager):
        out = []
        for k, args in enumerate(calls):
            for p in params:
                p.grad = None
            with np.errstate(all="ignore"):
                value = step(*args)
            if step is compiled and k == 0:
                generated_with(step, jit)
            values = value if isinstance(value, tuple) else (value,)
            out.append(([np.array(v.data if isinstance(v, tg.Tensor) else v) for v in values],
                        [None if p.grad is None else p.grad.data.copy() for p in params]))
        results.append(out)
    return results


def assert_same(compiled, eager):
    for (values, grads), (values_e, grads_e) in zip(compiled, eager):
        for v, v_e in zip(values, values_e):
            assert v.dtype == v_e.dtype
            np.testing.assert_array_equal(v, v_e)       # bitwise, NaN where NaN
        for g, g_e in zip(grads, grads_e):
            assert g.dtype == g_e.dtype
            np.testing.assert_array_equal(g, g_e)


def lstm_step(dtype, hidden=5, batch=3):
    cell = LSTMCell(4, hidden, rng=np.random.default_rng(0), dtype=dtype)
    params = cell.parameters()

    def loss(x, h, c):
        h2, c2 = cell(x, (h, c))
        return tg.sum(h2 * h2) + tg.sum(c2)

    rng = np.random.default_rng(1)
    calls = [tuple(rng.standard_normal(shape).astype(dtype) * 3
                   for shape in [(batch, 4), (batch, hidden), (batch, hidden)])
             for _ in range(3)]
    return loss, params, calls


@pytest.mark.parametrize("jit", JIT_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_an_lstm_cell_step_fused_equals_eager_mode_bitwise(jit, dtype):
    loss, params, calls = lstm_step(dtype)
    compiled, eager = run_both(loss, params, calls, JITS[jit]())
    assert_same(compiled, eager)


def without_fallbacks(run):
    """The generated function's lines but its `else:` branches (a group op by op, where an
    operand is not C-ordered)."""
    kept, in_else = [], False
    for line in run.splitlines():
        if line == "    else:":
            in_else = True
        elif not line.startswith("        "):
            in_else = False
        if not in_else:
            kept.append(line)
    return "\n".join(kept)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_lstm_cell_gates_are_fused_into_one_group_of_kernels(dtype):
    loss, params, calls = lstm_step(dtype)
    step = tg.compile(loss, params)
    step(*calls[0])
    generated = generated_with(step, plain_python)
    run = without_fallbacks(generated.source.split("\n\n")[0])
    fused = [line for line in run.splitlines() if "# fused:" in line]
    # the cell's forward: 3 sigmoids, a tanh, c = f*c + i*g, tanh(c), h = o*tanh(c)
    assert any(line.count("sigmoid") == 3 and "tanh" in line for line in fused), run
    # numpy computes exp and tanh between the kernels, the kernels the rest
    assert "np_exp(" in run and "np_tanh(" in run
    assert not any(line.rstrip().endswith("# sigmoid") for line in run.splitlines())


def chain(x, row, scale):
    """Elementwise ops of every kind with a scalar form, on broadcast operands."""
    a = tg.sigmoid(x * row + scale)             # row: (n,), scale: 0-d
    b = tg.tanh(x) * tg.exp(-tg.abs(x)) - x / (row * row + 2.0)
    c = tg.relu(x - scale) + tg.sqrt(tg.abs(x) + 1.0) + tg.log(tg.abs(x) + 0.5)
    d = -(x ** 2) * 0.01 + x * tg.heaviside(x) + (x * x + 1.0) ** 0.5 + 1.0 / (c ** -1)
    d = d + tg.abs(x) ** 3                     # pow 3: numpy's power, no scalar form
    return tg.sum(a * b + c * d + a / (1.0 + c))


@pytest.mark.parametrize("jit", JIT_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chains_with_broadcasting_equal_eager_mode_bitwise_with_changing_inputs(jit, dtype):
    row = tg.Parameter(np.linspace(-2, 2, 7).astype(dtype), name="row")
    scale = tg.Parameter(np.array(0.3, dtype), name="scale")
    rng = np.random.default_rng(0)
    calls = [(rng.standard_normal((4, 7)).astype(dtype) * (k + 1),) for k in range(3)]
    compiled, eager = run_both(lambda x: chain(x, row, scale), [row, scale], calls,
                               JITS[jit]())
    assert_same(compiled, eager)
    assert compiled[0][0][0] != compiled[1][0][0]          # the inputs changed


@pytest.mark.parametrize("jit", JIT_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_at_large_inputs_nan_and_inf_propagate_as_in_eager_mode(jit, dtype):
    w = tg.Parameter(np.ones(8, dtype), name="w")

    def f(x):
        y = tg.sigmoid(x * w) * tg.tanh(x * w) + tg.exp(x) * 0.0 + tg.log(tg.abs(x))
        return tg.sum(y * y), y

    special = np.array([30, -30, 100, -100, np.inf, -np.inf, np.nan, 0.0], dtype)
    calls = [(special,), (special[::-1].copy(),), (np.zeros(8, dtype) - 0.0,)]
    compiled, eager = run_both(f, [w], calls, JITS[jit](), has_aux=True)
    assert_same(compiled, eager)
    y = compiled[0][0][1]
    assert np.isnan(y[6]) and np.isnan(y[4])   # inf * 0.0 and nan propagate


def groups_of(fn, params, *args, has_aux=False):
    step = tg.compile(fn, params, has_aux=has_aux)
    step(*args)
    return step.latest, fuse.groups(step.latest, step.latest.kept)


def test_a_value_handed_out_or_read_later_is_stored_and_a_value_only_read_inside_is_not():
    w = tg.Parameter(np.full((2, 3), 0.5), name="w")

    def f(x):
        inner = tg.sigmoid(x * w)          # read only inside the chain: never stored
        handed = inner + 1.0               # handed out as aux
        later = handed * x                 # read after the sum below
        total = tg.sum(later)
        return total + tg.sum(later * 2.0), handed

    program, groups = groups_of(f, [w], np.ones((2, 3)), has_aux=True)
    ops = {program.steps[k][2]: program.steps[k][0].__self__.name for g in groups
           for k in g.members}
    stored = {s for g in groups for s in g.outputs}
    names = {s: ops[s] for s in stored}
    aux_slot = program.aux_slots[0]
    assert aux_slot in stored                           # handed out: stored
    mul_x_w = [s for s, op in ops.items() if op == "mul"][0]
    assert mul_x_w not in stored, names                 # x * w: read only inside
    assert any(op == "sigmoid" for op in ops.values())
    compiled, eager = run_both(f, [w], [(np.ones((2, 3)),), (np.arange(6.).reshape(2, 3),)],
                               plain_python, has_aux=True)
    assert_same(compiled, eager)


def test_ops_of_other_shapes_dtypes_or_without_a_scalar_form_end_a_group():
    w = tg.Parameter(np.ones((2, 3)), name="w")

    def f(x):
        y = tg.tanh(x * w) + 1.0                  # (2, 3): one group
        s = tg.sum(y, axis=1)                     # a reduction: no scalar form
        return tg.sum(s * s + 1.0)                # (2,): another group

    program, groups = groups_of(f, [w], np.ones((2, 3)))
    for g in groups:
        shapes = {program.specs[k][0] for k in g.members}
        assert shapes == {g.shape}
        assert all(program.steps[k][0].__self__.scalar is not None for k in g.members)
    assert {g.shape for g in groups} >= {(2, 3), (2,)}


@pytest.mark.slow
def test_a_kernel_never_writes_a_buffer_it_reads_through_a_transposed_view():
    # y lives in a planned buffer and z = y.T is a view of it; after z * 3 (y's last read)
    # the plan gives (z * 3) * 2 y's buffer. One kernel computes both: writing element (i, j)
    # there would overwrite z's (j, i) before it is read, so that output gets a new array.
    w = tg.Parameter(np.ones((300, 300)), name="w")

    def f(x):
        z = tg.transpose(x * w + 1.0)
        return tg.sum(z * 3.0 * 2.0)

    x = np.arange(90000.0).reshape(300, 300) / 1e4
    step = tg.compile(f, [w])
    step(x)
    listing = step.program()
    y = next(i for i in listing.instructions if i.op == "add")
    last = [i for i in listing.instructions if i.op == "mul"][-2]
    assert last.buffer == y.buffer and last.buffer is not None     # the hazard is there
    compiled, eager = run_both(f, [w], [(x,), (x * 2,), (x - 1,)], numba_jit())
    assert_same(compiled, eager)


def test_the_source_shows_the_kernels_loops():
    loss, params, calls = lstm_step(np.float32)
    step = tg.compile(loss, params)
    step(*calls[0])
    source = generated_with(step, plain_python).source
    assert "def kernel0(" in source
    assert "    for i1 in range(5):" in source                   # (batch 3, hidden 5)
    assert "# sigmoid" in source and "= in0[i0, i1]" in source
    # each kernel appears once however many groups call it
    assert source.count("def kernel0(") == 1


def test_without_a_compiler_nothing_is_fused_and_the_program_is_op_by_op():
    loss, params, calls = lstm_step(np.float64)
    step = tg.compile(loss, params)
    step(*calls[0])
    source = generated_with(step, None).source
    assert "kernel" not in source and "# sigmoid" in source
    listing = step.program()
    ops = [line.rsplit("# ", 1)[1] for line in source.splitlines() if "  # " in line]
    assert ops == [ins.op.split("[")[0] for ins in listing.instructions]


@pytest.mark.slow
def test_numba_compiles_the_kernels_once_when_a_program_has_run_often():
    numba_jit()
    loss, params, calls = lstm_step(np.float32, hidden=100, batch=1)
    step = tg.compile(loss, params)
    results = []
    for k in range(FUSE_AFTER + 3):
        for p in params:
            p.grad = None
        results.append((float(step(*calls[k % 3])), [p.grad.data.copy() for p in params]))
        generated = step.latest._generated
        if generated is None:                   # the first call: the trace's checking loop
            assert k == 0
            continue
        compiled = [generated.namespace[name] for name in generated.kernels.values()]
        ran_fused = bool(compiled) and all(len(kernel.signatures) == 1 for kernel in compiled)
        # the next FUSE_AFTER calls run op by op, then the kernels
        assert ran_fused == (k > FUSE_AFTER), k
    for k in range(3, len(results)):           # the same inputs give the same numbers
        assert results[k][0] == results[k - 3][0]
        for g, g_before in zip(results[k][1], results[k - 3][1]):
            np.testing.assert_array_equal(g, g_before)


class FakeNumbaError(Exception):
    pass


FakeNumbaError.__module__ = "numba.core.errors"      # what numba raises when it cannot type


def test_a_kernel_that_fails_to_compile_leaves_the_program_op_by_op_with_a_warning():
    def refusing_jit(function):
        def kernel(*arrays):
            raise FakeNumbaError("cannot type")
        return kernel

    loss, params, calls = lstm_step(np.float64)
    compiled = tg.compile(loss, params)
    eager = tg.eager_step(loss, params, replay=False)
    compiled(*calls[0])
    generated_with(compiled, refusing_jit)
    with pytest.warns(RuntimeWarning, match="runs op by op: FakeNumbaError: cannot type"):
        value = compiled(*calls[1])
    assert compiled.latest._generated._fused is False
    assert float(value) == float(eager(*calls[1]))


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["fortran", "transposed"])
def test_operands_numpy_would_answer_in_another_layout_run_op_by_op_and_equal_eager(layout):
    """A kernel writes C order; numpy follows a Fortran-ordered or transposed operand, and
    the row sums after it then add in another order. Through the public path, past the call
    where fusion starts, compiled must equal eager mode bitwise."""
    numba_jit()
    rng = np.random.default_rng(0)
    w = tg.Parameter(np.float32(1.5) * np.ones((), np.float32))
    if layout == "fortran":
        def loss(x):
            return tg.sum(tg.sum(-x * w, axis=1) ** 2)
        inputs = [np.asfortranarray(rng.standard_normal((64, 48)).astype(np.float32) * 10)
                  for _ in range(FUSE_AFTER + 4)]
    else:
        def loss(x):
            return tg.sum(tg.sum(-tg.transpose(x) * w, axis=1) ** 2)
        inputs = [rng.standard_normal((64, 48)).astype(np.float32) * 10
                  for _ in range(FUSE_AFTER + 4)]
    compiled, eager = tg.compile(loss, [w]), tg.eager_step(loss, [w], replay=False)
    for x in inputs:
        w.grad = None
        ours = compiled(x)
        ours_grad = w.grad.data.copy()
        w.grad = None
        theirs = eager(x)
        assert np.asarray(ours).view(np.uint32) == np.asarray(theirs).view(np.uint32)
        assert ours_grad.view(np.uint32) == w.grad.data.view(np.uint32)
