"""Training survives faults and nothing is lost: non-finite values stop a run with the last good
checkpoint kept, a checkpoint killed mid-write leaves the previous one loadable, a resume after
SIGKILL is bitwise exact, long unrolls differentiate in bounded memory, stateful training keeps
memory flat, and the numerically delicate ops hold at extreme inputs."""
import gc
import os
import pathlib
import random
import signal
import subprocess
import sys
import time
import tracemalloc
import warnings

import numpy as np
import pytest

import tinygraph as tg
from lstm.cells import LSTMCell
from lstm.checkpoint import load_checkpoint
from lstm.models import LanguageModel
from tinygraph.optim import SGD, clip_grad_norm
from tests.corpora import long_corpus

ROOT = pathlib.Path(__file__).resolve().parents[2]


# --- extreme inputs ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_tanh_log_softmax_are_exact_at_magnitude_1e4(dtype):
    x = tg.tensor(np.array([-1e4, 0.0, 1e4], dtype), requires_grad=True)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        s, th = tg.sigmoid(x), tg.tanh(x)
        ls = tg.log_softmax(tg.reshape(x, (1, 3)), axis=1)
        ce = tg.cross_entropy(tg.reshape(x, (1, 3)), np.array([0]))
        (tg.sum(s) + tg.sum(th) + tg.sum(ls) + ce).backward()
    np.testing.assert_array_equal(s.data, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(th.data, [-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(ls.data, [[-2e4, -1e4, 0.0]])
    assert float(ce.data) == 2e4
    # d sigmoid and d tanh vanish exactly in saturation (0.25 and 1 at 0); softmax is exactly
    # [0, 0, 1], so sum(log_softmax) gives 1 - 3 softmax and cross-entropy softmax - onehot.
    np.testing.assert_array_equal(x.grad.data, [0.0, 2.25, -1.0])
    assert s.dtype == th.dtype == ls.dtype == dtype


# --- faults during training ----------------------------------------------------------------

@pytest.mark.filterwarnings("ignore::RuntimeWarning")     # the injected Inf, in numpy
def test_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path,
                                                                           fault_trainer):
    run = fault_trainer("run")
    real_step = run.train_step

    def faulty_step(inputs, targets):
        if run.position == 5:           # a fault: one weight becomes infinite
            run.model.parameters()[1].data[0, 0] = np.inf
        return real_step(inputs, targets)

    run.train_step = faulty_step
    with pytest.raises(FloatingPointError, match="the loss became (nan|inf)"):
        run.run(2, progress=False, checkpoint_every=2)
    arrays, meta = load_checkpoint(tmp_path / "run" / "last.npz")
    assert meta["position"] == 4
    assert all(np.isfinite(a).all() for a in arrays.values())
    resumed = fault_trainer("run")
    resumed.resume(tmp_path / "run" / "last.npz")      # the good checkpoint still loads


def kill_on_line(script, line, delay=0.0):
    """Run `python -c script` and SIGKILL it `delay` seconds after it prints `line`."""
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    try:
        for printed in child.stdout:
            if printed.split() == line.split():
                time.sleep(delay)
                child.send_signal(signal.SIGKILL)
                break
        child.wait(timeout=60)
    finally:
        child.kill()
    assert child.returncode == -signal.SIGKILL, f"the child ended before printing {line!r}"


CHILD_SAVING = """
import sys, time
sys.path.insert(0, {root!r})
import lstm.train as train
from lstm.data import Corpus
from lstm.train import Preset, Trainer

real_save = train.save_checkpoint
def announced_save(path, arrays, meta):
    print("writing", meta["position"], flush=True)
    return real_save(path, arrays, meta)
train.save_checkpoint = announced_save
preset = Preset(embed_size=512, hidden_size=512, batch_size=2, steps=5, lr=0.1, epochs=50,
                eval_batch_size=2)      # about 8 MB: a write takes long enough to be hit
trainer = Trainer(Corpus({corpus!r}), preset, {out!r}, log=lambda *a: None)
trainer.run(50, progress=False, checkpoint_every=1)
"""


@pytest.mark.slow
@pytest.mark.subprocess
def test_sigkill_while_writing_a_checkpoint_leaves_the_previous_one_loadable(tmp_path):
    corpus = long_corpus(tmp_path / "corpus", count=3000)
    out = tmp_path / "run"
    script = CHILD_SAVING.format(root=str(ROOT), corpus=str(corpus), out=str(out))
    rng = random.Random(0)
    killed_mid_write = 0
    for attempt in range(6):
        target = 3 + attempt
        # Somewhere inside the write that the child announces:
        kill_on_line(script, f"writing {target}", delay=rng.uniform(0.0, 0.005))
        arrays, meta = load_checkpoint(out / "last.npz")       # digest checked too
        assert meta["position"] in (target - 1, target)
        killed_mid_write += meta["position"] == target - 1
    # The kills must really have landed inside writes, or this test proves nothing.
    assert killed_mid_write >= 2
    # The next write clears what the killed writers left behind.
    (out / "last.npz.killed.tmp").write_bytes(b"half a checkpoint")
    arrays, meta = load_checkpoint(out / "last.npz")
    from lstm.checkpoint import save_checkpoint
    save_checkpoint(out / "last.npz", arrays, {k: v for k, v in meta.items()
                                               if k not in ("format", "digest")})
    assert not list(out.glob("last.npz*.tmp"))


CHILD_TRAINING = """
import sys
sys.path.insert(0, {root!r})
from tests.corpora import fault_trainer
run = fault_trainer({tmp!r}, "killed", dtype="float64")
real_step = run.train_step
def announced_step(inputs, targets):
    loss = real_step(inputs, targets)
    print("step", run.epoch * len(run.batches) + run.position + 1, flush=True)
    return loss
run.train_step = announced_step
run.run(2, progress=False, checkpoint_every=3)
"""


@pytest.mark.slow
@pytest.mark.subprocess
def test_resume_after_sigkill_is_bitwise_identical_in_float64(tmp_path, fault_trainer):
    straight = fault_trainer("straight", dtype="float64")
    straight.run(2, progress=False, checkpoint_every=3)
    total = 2 * len(straight.batches)

    script = CHILD_TRAINING.format(root=str(ROOT), tmp=str(tmp_path))
    kill_on_line(script, f"step {total // 2 + 1}")

    resumed = fault_trainer("killed", dtype="float64")
    resumed.resume(tmp_path / "killed" / "last.npz")
    assert 0 < resumed.epoch * len(resumed.batches) + resumed.position <= total // 2 + 1
    resumed.run(2, progress=False, checkpoint_every=3)
    for (name, a), (_, b) in zip(straight.model.named_parameters(),
                                 resumed.model.named_parameters()):
        assert a.dtype == np.float64
        np.testing.assert_array_equal(b.data, a.data, err_msg=name)
    assert [h["valid_ppl"] for h in resumed.history] == [h["valid_ppl"] for h in straight.history]


# --- scale and memory -----------------------------------------------------------------------

@pytest.mark.slow
def test_a_10000_step_unrolled_lstm_differentiates_in_bounded_memory():
    """160,000 nodes: no recursion limit is hit, and the whole graph with every saved value
    stays under 250 MB (about 12 KB per time step for batch 1, 4 units)."""
    rng = np.random.default_rng(0)
    cell = LSTMCell(3, 4, rng=rng, dtype=np.float64)
    xs = tg.tensor(rng.standard_normal((1, 10_000, 3)))
    tracemalloc.start()
    try:
        projected = cell.project(xs)
        state = cell.zero_state(1)
        for t in range(10_000):
            state = cell.step(projected[:, t, :], state)
        tg.sum(state[0]).backward()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 250 * 2**20, f"peak {peak / 2**20:.0f} MB"
    for p in cell.parameters():
        assert p.grad is not None and np.isfinite(p.grad.data).all()
        assert np.abs(p.grad.data).max() > 0


@pytest.mark.slow
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_1000_stateful_steps_keep_memory_flat(compiled):
    """Truncated BPTT must drop each step's graph: memory after step 1000 is within 256 KB of
    memory after step 100 (a graph kept alive across truncation would add ~100 KB a step)."""
    model = LanguageModel(30, 8, 8, dropout=0.2, seed=0)
    opt = SGD(model.parameters(), lr=0.5)
    step_fn = (tg.compile if compiled else tg.eager_step)(model.loss, model.parameters())
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 30, (1000, 2, 3))

    def step(k):
        opt.zero_grad()
        step_fn(ids[k], ids[k] * 7 % 30)
        clip_grad_norm(opt.params, 0.25)
        opt.step()

    tracemalloc.start()
    try:
        for k in range(1000):
            step(k)
            if k == 99:
                gc.collect()
                after_100 = tracemalloc.get_traced_memory()[0]
        gc.collect()
        after_1000 = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after_1000 - after_100 < 256 * 1024, (after_100, after_1000)


# --- detect_anomaly ---------------------------------------------------------------------------

def test_detect_anomaly_names_the_forward_op_of_a_recorded_backward_node():
    x = tg.tensor([0.0, 4.0], name="x", requires_grad=True)
    y = tg.sum(x ** 0.5)            # d/dx x**0.5 = 0.5 x**-0.5: Inf at 0
    with tg.detect_anomaly():
        with pytest.raises(FloatingPointError, match="op 'pow' in the backward pass of 'pow'"):
            tg.grad(y, x, create_graph=True)


def test_detect_anomaly_is_off_outside_the_context_and_checks_compiled_replays():
    x = tg.tensor([0.0, 4.0], requires_grad=True)
    with np.errstate(divide="ignore"):
        g = tg.grad(tg.sum(x ** 0.5), x)             # no context: IEEE values, no error
    assert np.isinf(g.data[0])
    w = tg.Parameter(np.array([1.0, 1.0]))
    step = tg.compile(lambda v: tg.sum(tg.log(v * w)), [w])
    step(np.array([1.0, 2.0]))                       # traced with finite values
    with tg.detect_anomaly(), np.errstate(divide="ignore"):
        with pytest.raises(FloatingPointError, match="op 'log' in the forward pass produced Inf"):
            step(np.array([0.0, 2.0]))               # replayed: the same check per step
    with np.errstate(divide="ignore", invalid="ignore"):
        step(np.array([0.0, 2.0]))                   # and off again afterwards


def test_checkpoints_of_the_previous_format_without_a_digest_still_load(tmp_path):
    import json
    path = tmp_path / "old.npz"
    meta = {"format": "tinygraph-checkpoint-1", "epoch": 1}
    with open(path, "wb") as f:
        np.savez(f, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
                 **{"array/param/w": np.ones(3)})
    arrays, loaded = load_checkpoint(path)
    np.testing.assert_array_equal(arrays["param/w"], np.ones(3))
    assert loaded["epoch"] == 1
