"""lstm.loop, the training loop the language model, seq2seq and the demo share: the optimizer
step (finiteness check, clipping), epochs and resuming mid-epoch, checkpoints, Ctrl-C."""
import ast
import pathlib
import signal
import types

import numpy as np
import pytest

import tinygraph as tg
from tinygraph.optim import SGD
from lstm.loop import Interrupted, NonFiniteLoss, TrainingLoop, interrupt_flag, optimizer_step

LSTM = pathlib.Path(__file__).resolve().parents[2] / "lstm"


# --- one optimizer step --------------------------------------------------------------------

def test_optimizer_step_clips_the_global_norm_then_updates():
    w = tg.tensor(np.array([3.0, 4.0]), requires_grad=True)
    opt = SGD([w], lr=1.0)

    def loss_with_gradients():
        loss = (w * tg.tensor(np.array([3.0, 4.0]))).sum()     # gradient (3, 4), norm 5
        loss.backward()
        return loss

    assert optimizer_step(opt, loss_with_gradients, clip=0.5) == 25.0
    # The gradient scaled to norm 0.5: (0.3, 0.4), one SGD step of lr 1.
    np.testing.assert_allclose(w.data, [2.7, 3.6], rtol=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_non_finite_loss_stops_before_the_parameters_change(bad):
    w = tg.tensor(np.array([1.0, bad]), requires_grad=True)
    opt = SGD([w], lr=1.0)

    def loss_with_gradients():
        loss = w.sum()
        loss.backward()
        return loss

    with pytest.raises(NonFiniteLoss, match=f"the loss became {bad}; training stopped$"):
        optimizer_step(opt, loss_with_gradients, clip=1.0)
    assert w.data[0] == 1.0
    assert issubclass(NonFiniteLoss, FloatingPointError)      # the CLI's one-line error


# --- the loop ------------------------------------------------------------------------------

class Recorder:
    """A run of a fake model: what the loop asked of it, in order."""

    def __init__(self, batches=4, losses=None, save=True):
        self.epoch, self.position, self.events = 0, 0, []
        self.losses = losses or {}
        self.loop = TrainingLoop(batches=batches, train_batch=self.train_batch,
                                 bar_text=lambda losses, seconds: f"{len(losses)} losses",
                                 end_epoch=self.end_epoch, save=self.save if save else None,
                                 checkpoint_note=lambda losses, seconds: f"mean {np.mean(losses)}",
                                 log=lambda line: self.events.append(("log", line)))

    def train_batch(self, epoch, position):
        self.events.append(("step", epoch, position))
        return self.losses.get((epoch, position), 1.0)

    def end_epoch(self, losses, started):
        self.events.append(("end", self.epoch, self.position, list(losses)))

    def save(self, name):
        self.events.append(("save", name, self.epoch, self.position))
        return pathlib.Path("out") / name


def test_epochs_steps_evaluation_and_checkpoints_come_in_order():
    run = Recorder(batches=3, losses={(0, 1): 2.0})
    run.loop.run(run, epochs=2, progress=False, checkpoint_every=2)
    assert run.events == [
        ("step", 0, 0), ("step", 0, 1), ("save", "last.npz", 0, 2),
        ("log", "epoch 1, batch 2/3: mean 1.5; saved out/last.npz"),
        ("step", 0, 2),
        ("end", 1, 0, [1.0, 2.0, 1.0]),          # the run has moved on when it is evaluated
        ("save", "last.npz", 1, 0),
        ("step", 1, 0), ("step", 1, 1), ("save", "last.npz", 1, 2),
        ("log", "epoch 2, batch 2/3: mean 1.0; saved out/last.npz"),
        ("step", 1, 2), ("end", 2, 0, [1.0, 1.0, 1.0]), ("save", "last.npz", 2, 0)]


def test_a_resumed_run_continues_mid_epoch_and_stops_at_the_epochs_asked_for():
    run = Recorder(batches=4)
    run.epoch, run.position = 1, 3
    run.loop.run(run, epochs=2, progress=False)
    assert [e for e in run.events if e[0] != "save"] == [("step", 1, 3), ("end", 2, 0, [1.0])]
    run.events.clear()
    run.loop.run(run, epochs=2, progress=False)      # already there: nothing to do
    assert run.events == []


def test_with_a_bar_checkpoints_are_not_logged():
    run = Recorder(batches=2)
    run.loop.run(run, epochs=1, progress=True, checkpoint_every=1)
    assert not [e for e in run.events if e[0] == "log"]
    assert [e for e in run.events if e[0] == "save"] == [
        ("save", "last.npz", 0, 1), ("save", "last.npz", 0, 2), ("save", "last.npz", 1, 0)]


def test_an_interrupt_mid_epoch_saves_where_the_run_stands_and_says_so():
    run = Recorder(batches=5)
    with pytest.raises(Interrupted, match="^saved out/last.npz at epoch 2, batch 3$") as stop:
        run.loop.run(run, epochs=3, progress=False,
                     interrupted=lambda: (run.epoch, run.position) == (1, 3))
    assert stop.value.path == pathlib.Path("out/last.npz")
    assert run.events[-2:] == [("step", 1, 2), ("save", "last.npz", 1, 3)]


def test_an_interrupt_during_the_evaluation_stops_after_the_epoch_is_saved():
    run = Recorder(batches=2)
    pressed = []
    run.end_epoch = lambda losses, started: pressed.append(True)
    run.loop.end_epoch = run.end_epoch
    with pytest.raises(Interrupted, match="^saved out/last.npz after epoch 1$"):
        run.loop.run(run, epochs=3, progress=False, interrupted=lambda: bool(pressed))
    assert run.events[-1] == ("save", "last.npz", 1, 0)


def test_a_non_finite_loss_names_the_kept_checkpoint_only_when_there_is_one():
    def diverging(epoch, position):
        raise NonFiniteLoss("the loss became nan; training stopped")
    for save, message in ((True, r"stopped \(the last good checkpoint is kept\)$"),
                          (False, "stopped$")):
        run = Recorder(batches=3, save=save)
        run.loop.train_batch = diverging
        with pytest.raises(NonFiniteLoss, match=message):
            run.loop.run(run, epochs=1, progress=False)


def test_without_checkpoints_nothing_is_saved_and_ctrl_c_is_not_caught():
    seen, before = [], signal.getsignal(signal.SIGINT)

    def train_batch(epoch, position):
        seen.append(signal.getsignal(signal.SIGINT))
        return 0.5

    loop = TrainingLoop(batches=3, train_batch=train_batch, label="demo",
                        bar_text=lambda losses, seconds: "")
    loop.run(types.SimpleNamespace(epoch=0, position=0), epochs=1, progress=False,
             checkpoint_every=1)
    assert seen == [before] * 3


def test_ctrl_c_raises_the_flag_and_a_second_one_stops_at_once():
    before = signal.getsignal(signal.SIGINT)
    with interrupt_flag() as interrupted:
        assert not interrupted()
        signal.raise_signal(signal.SIGINT)
        assert interrupted()
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def test_ctrl_c_during_training_saves_and_raises_interrupted():
    run = Recorder(batches=4)
    real = run.train_batch

    def pressing_at_batch_2(epoch, position):
        if position == 2:
            signal.raise_signal(signal.SIGINT)    # the step still finishes
        return real(epoch, position)
    run.loop.train_batch = pressing_at_batch_2
    with pytest.raises(Interrupted, match="at epoch 1, batch 3$"):
        run.loop.run(run, epochs=1, progress=False)
    assert run.events[-2:] == [("step", 0, 2), ("save", "last.npz", 0, 3)]


# --- the three trainers use it -------------------------------------------------------------

def test_no_lstm_module_imports_another_modules_private_names():
    private = []
    for path in sorted(LSTM.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                private += [f"{path.name}: {a.name}" for a in node.names
                            if a.name.startswith("_") and not a.name.startswith("__")]
    assert private == []


@pytest.mark.slow    # imports the plotting of lstm.demo
def test_the_demo_trains_through_the_loop_and_learns(monkeypatch):
    import lstm.demo as demo
    runs = []
    real_run = TrainingLoop.run

    def recording_run(loop, run, epochs, *args, **kwargs):
        runs.append((loop.label, loop.batches, loop.save, epochs))
        return real_run(loop, run, epochs, *args, **kwargs)
    monkeypatch.setattr(TrainingLoop, "run", recording_run)
    model, losses = demo.train_sine(steps=15, hidden_size=8, progress=False)
    assert runs == [("sine LSTM", 15, None, 1)]
    assert len(losses) == 15 and losses[-1] < 0.5 * losses[0]


def test_seq2seq_interrupted_mid_epoch_resumes_to_the_same_weights(tmp_path):
    from lstm.seq2seq_train import Seq2seqTrainer, default_settings
    settings = default_settings("addition", examples=300, held_out=50, batch_size=50,
                                hidden_size=8, epochs=1)
    straight = Seq2seqTrainer(settings, tmp_path / "a", log=lambda *a: None)
    straight.run(progress=False)
    first = Seq2seqTrainer(settings, tmp_path / "b", log=lambda *a: None)
    with pytest.raises(Interrupted, match="at epoch 1, batch 3$"):
        first.run(progress=False, interrupted=lambda: first.position == 3)
    resumed = Seq2seqTrainer(settings, tmp_path / "c", log=lambda *a: None)
    resumed.resume(tmp_path / "b" / "last.npz")
    assert (resumed.epoch, resumed.position) == (0, 3)
    resumed.run(progress=False)
    for (name, p), q in zip(straight.model.named_parameters(), resumed.model.parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
    assert resumed.history[0]["accuracy"] == straight.history[0]["accuracy"]
