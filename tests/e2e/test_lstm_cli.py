"""The lstm command line in real processes: demo, train and resume, errors, the example
scripts, Ctrl-C. Moved from tests/lstm/test_lstm_package.py."""
import pytest

from tests.corpora import words

pytestmark = pytest.mark.subprocess     # every test here starts python -m lstm


def run_lstm(*args, cwd=None):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "lstm", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


@pytest.mark.slow
def test_demo_writes_diagrams_and_figures(tmp_path):
    import shutil
    result = run_lstm("demo", "--out", str(tmp_path), "--steps", "20", "--no-progress")
    assert result.returncode == 0, result.stderr
    suffix = "svg" if shutil.which("dot") else "dot"
    for name in (f"lstm_cell_forward.{suffix}", f"lstm_cell_backward.{suffix}",
                 "loss_curve.png", "vanishing_gradients.png"):
        assert (tmp_path / name).stat().st_size > 0 and name in result.stdout
    assert (tmp_path / "loss_curve.png").read_bytes().startswith(b"\x89PNG")
    assert "concat axis=1" in (tmp_path / f"lstm_cell_backward.{suffix}").read_text()


@pytest.mark.slow
def test_train_cli_runs_resumes_and_reports_test_perplexity(tmp_path, corpus_dir):
    data = corpus_dir(train=words(3000) + "\n", valid="w1 w2 w3 w4\n" * 200,
                        test="w4 w5 w6 w0\n" * 200)
    out = tmp_path / "run"
    result = run_lstm("train", "--data-dir", str(data), "--preset", "small", "--epochs", "1",
                      "--out", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "epoch 1: valid perplexity" in result.stdout and "test perplexity" in result.stdout
    assert (out / "best.npz").exists() and (out / "summary.json").exists()
    resumed = run_lstm("train", "--data-dir", str(data), "--preset", "small", "--epochs", "2",
                       "--out", str(out), "--resume", str(out / "last.npz"), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout and "epoch 2: valid perplexity" in resumed.stdout


@pytest.mark.parametrize("args, message", [
    (("train", "--data-dir", "/nonexistent/ptb"), "data directory not found"),
    (("train", "--data-dir", ".", "--epochs", "0"), "--epochs must be at least 1"),
])
def test_train_cli_errors_are_one_line(args, message, tmp_path):
    result = run_lstm(*args, cwd=tmp_path)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("script, expect", [
    ("sine_regression.py", "held-out mse"),
    ("classify_sequences.py", "held-out accuracy"),
])
@pytest.mark.slow
def test_examples_run(script, expect):
    import pathlib
    import subprocess
    import sys
    root = pathlib.Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, str(root / "examples" / script), "--steps", "30"],
                            capture_output=True, text=True, timeout=300, cwd=root)
    assert result.returncode == 0, result.stderr
    assert expect in result.stdout


@pytest.mark.slow
def test_sigint_saves_a_checkpoint_and_resume_continues(tmp_path, corpus_dir):
    import signal
    import subprocess
    import sys
    import time
    data = corpus_dir(train=words(200_000) + "\n", valid="w1 w2 w3 w4\n" * 200,
                        test="w4 w5 w6 w0\n" * 200)
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-u", "-m", "lstm", "train", "--data-dir", str(data),
                             "--out", str(out), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:          # wait until training has started, however slow the machine
        if line.startswith("training:"):
            break
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted: saved" in err
    # The whole command to continue, not just the flag.
    assert (f"to continue: python -m lstm train --data-dir {data} --out {out} --no-progress "
            f"--resume {out / 'last.npz'}") in err
    from lstm.checkpoint import load_checkpoint
    _, meta = load_checkpoint(out / "last.npz")
    assert meta["position"] > 0 or meta["epoch"] > 0


@pytest.mark.parametrize("flags, compiled", [((), True), (("--eager",), False),
                                             (("--compile",), True)])
def test_train_uses_the_compiled_step_unless_told_eager(flags, compiled, tmp_path, corpus_dir,
                                                        monkeypatch):
    import lstm.__main__ as cli
    seen = {}

    class Stop(Exception):
        pass

    def fake_trainer(*args, **kwargs):
        seen.update(kwargs)
        raise Stop
    monkeypatch.setattr(cli, "Trainer", fake_trainer)
    data = corpus_dir(train=words(300) + "\n", valid="w1 w2\n" * 50, test="w3 w4\n" * 50)
    with pytest.raises(Stop):
        cli.main(["train", "--data-dir", str(data), "--out", str(tmp_path / "run"), *flags])
    assert seen["compiled"] is compiled
