"""A compiled program's generated function (tinygraph.transforms.codegen): from the second
replay on it runs instead of the checking loop, and must compute exactly what the loop and
eager mode compute, name the op that failed, and leave anomaly mode its checks."""
import numpy as np
import pytest

import tinygraph as tg
from lstm.models import LanguageModel
from tinygraph.transforms.codegen import Generated


def lm_and_batches(seed=0, batches=4):
    model = LanguageModel(30, 8, 16, num_layers=2, dropout=0.0, seed=seed, dtype=np.float64)
    rng = np.random.default_rng(seed)
    data = [(rng.integers(0, 30, (3, 5)), rng.integers(0, 30, (3, 5))) for _ in range(batches)]
    return model, data


def losses_and_grads(step, model, data):
    model.reset_state()
    out = []
    for ids, targets in data:
        model.zero_grad()
        loss = float(step(ids, targets))
        out.append((loss, [p.grad.data.copy() for p in model.parameters()]))
    return out


def test_generated_replays_equal_the_checking_loop_and_eager_mode_bitwise():
    model, data = lm_and_batches()
    compiled = tg.compile(model.loss, model.parameters())
    eager = tg.eager_step(model.loss, model.parameters(), replay=False)
    ours = losses_and_grads(compiled, model, data)        # 1st: the loop, then generated
    assert compiled.traces == 1 and "def run(values, views):" in compiled.source()
    reference = losses_and_grads(eager, model, data)
    for (loss, grads), (loss_e, grads_e) in zip(ours, reference):
        assert loss == loss_e
        for g, g_e in zip(grads, grads_e):
            np.testing.assert_array_equal(g, g_e)


def test_the_source_has_a_line_per_instruction_and_frees_values_after_their_last_read():
    w = tg.Parameter(np.ones((300, 300)))
    step = tg.compile(lambda x: tg.sum(tg.tanh(x @ w) * 2.0 + 1.0), [w])
    step(np.ones((300, 300)))
    step(np.ones((300, 300)))
    # unfused (where numba is installed, runs of elementwise ops are one kernel call each:
    # tests/transforms/test_fusion.py)
    source = Generated(step.latest, step.latest.kept, jit=None).source
    listing = step.program()
    ops = [line.rsplit("# ", 1)[1] for line in source.splitlines() if "  # " in line]
    assert ops == [ins.op.split("[")[0] for ins in listing.instructions]
    assert "out=views[" in source            # a big elementwise result into its planned buffer
    assert "\n    del v" in source


def test_an_error_in_a_generated_replay_names_the_op():
    model, data = lm_and_batches(batches=2)
    step = tg.compile(model.loss, model.parameters())
    for ids, targets in data:                                # the loop, then generated
        step(ids, targets)
    bad = data[0][0].copy()
    bad[0, 0] = 99                                           # not below the 30 words
    with pytest.raises(ValueError, match="compiled step: op ids_in_range failed on the given "
                                         "inputs: .*99"):
        step(bad, data[0][1])


def test_anomaly_mode_checks_every_result_after_the_function_was_generated():
    w = tg.Parameter(np.array([1.0, 2.0]))
    step = tg.compile(lambda x: tg.sum(tg.log(x * w)), [w])
    for _ in range(3):
        step(np.array([1.0, 1.0]))
    assert step.latest._generated is not None
    with tg.detect_anomaly(), pytest.raises(FloatingPointError, match="log"):
        step(np.array([-1.0, 1.0]))
