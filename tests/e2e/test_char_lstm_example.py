"""examples/char_lstm.py run as a user runs it: it learns (the loss falls, the held-out
accuracy beats the most-frequent-character baseline), compiled and eager take the same steps,
it reads any text file, bad input is one line on stderr; and the padding changes nothing."""
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def run_example(*args):
    return subprocess.run([sys.executable, str(ROOT / "examples" / "char_lstm.py"), *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def step_losses(stdout):
    return [float(m) for m in re.findall(r"^step +\d+  loss (\d+\.\d+)", stdout, re.M)]


@pytest.mark.slow
@pytest.mark.subprocess
def test_it_learns_and_beats_the_baseline():
    result = run_example("--steps", "150", "--print-every", "10", "--samples", "2",
                         "--start", "The ")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # print(model): the module tree with the LSTM inside and the parameter count.
    assert "(lstm): Recurrent(" in out and "LSTMCell(32, 128)" in out
    assert re.search(r"Total: [\d,]+ parameters", out)
    losses = step_losses(out)
    assert len(losses) == 16                       # steps 1, 11, ..., 141 and 150
    assert losses[0] > 3.5                         # about log(51 symbols) at the start
    assert max(losses[-3:]) < 0.6 * losses[0]
    first, last = map(float, re.search(r"training loss (\S+) -> (\S+) \(compiled, 150 steps\)",
                                       out).groups())
    assert (first, last) == (round(losses[0], 3), round(losses[-1], 3))
    accuracy, symbol, baseline = re.search(
        r"held-out next-character accuracy (\S+)% \(baseline, always (.+): (\S+)%\)", out).groups()
    assert symbol == "' '"                         # the space is the most frequent character
    assert 10 < float(baseline) < 25
    assert float(accuracy) > float(baseline) + 10
    samples = re.findall(r"^sample: (.*)$", out, re.M)
    assert len(samples) == 2 and all(s.startswith("The ") and len(s) <= 84 for s in samples)


@pytest.mark.slow
@pytest.mark.subprocess
def test_compiled_and_eager_take_the_same_steps():
    args = ("--steps", "6", "--print-every", "1", "--samples", "0")
    compiled, eager = run_example(*args), run_example(*args, "--eager")
    assert compiled.returncode == 0 and eager.returncode == 0, compiled.stderr + eager.stderr
    steps = [[line for line in r.stdout.splitlines() if line.startswith("step")]
             for r in (compiled, eager)]
    assert len(steps[0]) == 6 and steps[0] == steps[1]
    assert "(compiled, 6 steps)" in compiled.stdout and "(eager, 6 steps)" in eager.stdout
    assert "RuntimeWarning" not in compiled.stderr    # the padded widths do not thrash


@pytest.mark.slow
@pytest.mark.subprocess
def test_it_trains_on_a_text_file(tmp_path):
    lines = [f"line {k}: " + "ab" * (k % 7) + " the end" for k in range(40)]
    text = tmp_path / "lines.txt"
    text.write_text("\n".join(lines) + "\n\n")
    result = run_example("--text", str(text), "--steps", "30", "--max-chars", "12",
                         "--samples", "1", "--temperature", "0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("32 training lines, 8 held out; ")
    sample = re.search(r"^sample: (.*)$", result.stdout, re.M).group(1)
    assert len(sample) <= 80 and set(sample) <= set("".join(lines))


@pytest.mark.parametrize("args, message", [
    (("--steps", "0"), "argument --steps: must be at least 1, got 0"),
    (("--lr", "nan"), "argument --lr: must be a finite number greater than 0, got nan"),
    (("--temperature", "-1"), "argument --temperature: must be a finite number at least 0"),
    (("--warmup", "50", "--steps", "10"), "--warmup (50) must be smaller than --steps (10)"),
    (("--text", "no/such/file.txt"), "--text: cannot read no/such/file.txt"),
    (("--max-lines", "3"), "3 non-empty lines read from the embedded text; need at least "
                           "--held-out-every (5)"),
])
@pytest.mark.subprocess
def test_bad_input_is_one_line(args, message):
    result = run_example(*args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stdout == ""


def load_example():
    import importlib.util
    spec = importlib.util.spec_from_file_location("char_lstm", ROOT / "examples" / "char_lstm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_padding_changes_neither_the_loss_nor_the_accuracy():
    import numpy as np
    import tinygraph as tg
    example = load_example()
    chars = example.Characters(["hello there", "hi"])
    tg.manual_seed(0)
    model = example.CharLM(len(chars), 8, 16)
    ids, targets, mask = example.make_batch([chars.encode("hello there"), chars.encode("hi")])
    assert ids.shape == (2, 16) and mask.sum() == 12 + 3
    wider = [np.pad(a, ((0, 0), (0, 16)), constant_values=v)
             for a, v in ((ids, example.PAD), (targets, example.PAD), (mask, False))]
    assert model.loss(ids, targets).item() == pytest.approx(
        model.loss(wider[0], wider[1]).item(), rel=1e-6)
    assert example.accuracy(model, ids, targets, mask) == example.accuracy(model, *wider)
