"""Seq2seq and attention (lstm.seq2seq), their tasks (lstm.tasks) and their training."""
import datetime

import numpy as np
import pytest

import tinygraph as tg
from tinygraph.optim import Adam
from lstm import tasks
from lstm.__main__ import main
from lstm.checkpoint import CheckpointError
from lstm.seq2seq import Seq2seq, padding_mask
from lstm.attention import MASKED, attention as attend
from lstm.seq2seq_train import Seq2seqTrainer, default_settings


# --- data ------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [tasks.addition, tasks.dates])
def test_a_task_is_the_same_for_a_seed_and_its_questions_are_distinct(make):
    a, b, c = make(300, seed=5), make(300, seed=5), make(300, seed=6)
    np.testing.assert_array_equal(a.questions, b.questions)
    np.testing.assert_array_equal(a.answers, b.answers)
    assert not np.array_equal(a.questions, c.questions)
    questions = [a.decode(q) for q in a.questions]
    assert len(set(questions)) == len(questions)
    train, test = a.split(50)
    assert len(train) == 250 and len(test) == 50
    assert not {a.decode(q) for q in train.questions} & {a.decode(q) for q in test.questions}


def test_addition_answers_are_the_sums():
    task = tasks.addition(500, seed=1)
    for q, ans in zip(task.questions, task.answers):
        left, right = task.decode(q).split("+")
        assert 1 <= len(left) <= 3 and 1 <= len(right) <= 3
        assert task.decode(ans) == str(int(left) + int(right))
        assert task.chars[ans[0]] == tasks.START
    assert task.questions.shape[1] == 7 and task.answers.shape[1] == 5       # "999+999", "_1998"


def test_every_date_format_names_the_same_day():
    day = datetime.date(1994, 9, 27)
    forms = tasks._formats(day)
    assert "September 27, 1994" in forms and "27 Sep 1994" in forms and "9/27/94" in forms
    assert "TUESDAY, SEPTEMBER 27, 1994" in forms
    parse = ["%B %d, %Y", "%d %b %Y", "%m/%d/%y", "%A, %B %d, %Y", "%A, %B %d, %Y", "%d %B %Y",
             "%b %d, %Y", "%b %d %Y", "%d.%m.%Y", "%m/%d/%Y", "%a %d %b %Y", "%Y %B %d"]
    for text, fmt in zip(forms, parse):
        assert datetime.datetime.strptime(text.title() if text.isupper() else text,
                                          fmt).date() == day, text
    task = tasks.dates(200, seed=3)
    for ans in task.answers:
        datetime.date.fromisoformat(task.decode(ans))


# --- the model -------------------------------------------------------------------------------

def _set(model, dotted, value):
    *path, name = dotted.split(".")
    owner = model
    for part in path:
        owner = owner[int(part)] if part.isdigit() else getattr(owner, part)
    setattr(owner, name, value)


VARIANTS = {"plain": {}, "peeky": dict(peeky=True), "attention": dict(attention=True)}


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_seq2seq_gradients_match_finite_differences(variant):
    """Every parameter's gradient, through the decoder into the encoder, against gradcheck."""
    rng = np.random.default_rng(0)
    model = Seq2seq(6, embed_size=3, hidden_size=4, seed=1, dtype=np.float64,
                    **VARIANTS[variant])
    names = [n for n, _ in model.named_parameters()]
    questions, answers = rng.integers(0, 6, (2, 4)), rng.integers(0, 6, (2, 4))
    mask = padding_mask([4, 2], 4)

    def loss(*weights):
        for name, w in zip(names, weights):
            _set(model, name, w)
        return model.loss(questions, answers, mask if variant == "attention" else None)

    tg.gradcheck(loss, [p.data.copy() for p in model.parameters()])


def test_padded_positions_get_zero_attention_and_zero_gradient():
    rng = np.random.default_rng(2)
    enc = tg.tensor(rng.standard_normal((2, 5, 3)), requires_grad=True)
    dec = tg.tensor(rng.standard_normal((2, 4, 3)), requires_grad=True)
    mask = padding_mask([5, 3], 5)
    context, weights = attend(dec, enc, mask)
    (context * tg.tensor(rng.standard_normal(context.shape))).sum().backward()
    assert np.all(weights.data[1, :, 3:] == 0) and np.all(weights.data[0] > 0)
    np.testing.assert_allclose(weights.data.sum(axis=2), 1, rtol=1e-12)
    assert np.all(enc.grad.data[1, 3:] == 0) and np.all(enc.grad.data[1, :3] != 0)
    reversed_mask = padding_mask([3], 5, reverse=True)
    np.testing.assert_array_equal(reversed_mask[0], [MASKED, MASKED, 0, 0, 0])


@pytest.mark.torch
@pytest.mark.slow
def test_an_attention_decoder_step_matches_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    N, Tq, H = 3, 6, 5
    enc, dec = rng.standard_normal((N, Tq, H)), rng.standard_normal((N, 1, H))
    W = rng.standard_normal((2 * H, 4))
    mask = padding_mask([6, 4, 2], Tq, dtype=np.float64)
    weight_of_out = rng.standard_normal((N, 1, 4))

    enc_t, dec_t, W_t = (tg.tensor(a, requires_grad=True) for a in (enc, dec, W))
    context, weights = attend(dec_t, enc_t, mask)
    out = tg.tanh(tg.concat([context, dec_t], axis=2) @ W_t)
    (out * tg.tensor(weight_of_out)).sum().backward()

    e, d, w = (torch.tensor(a, requires_grad=True) for a in (enc, dec, W))
    scores = d @ e.transpose(1, 2) + torch.tensor(mask)[:, None, :]
    a = torch.softmax(scores, dim=2)
    o = torch.tanh(torch.cat([a @ e, d], dim=2) @ w)
    (o * torch.tensor(weight_of_out)).sum().backward()
    np.testing.assert_allclose(weights.data, a.detach().numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(out.data, o.detach().numpy(), rtol=0, atol=1e-10)
    for mine, theirs in ((enc_t, e), (dec_t, d), (W_t, w)):
        np.testing.assert_allclose(mine.grad.data, theirs.grad.numpy(), rtol=0, atol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_a_tiny_seq2seq_learns_a_handful_of_pairs(variant):
    task = tasks.addition(8, seed=4)
    model = Seq2seq(len(task.chars), 8, 32, seed=0, **VARIANTS[variant])
    mask = padding_mask(task.lengths, task.questions.shape[1])
    opt = Adam(model.parameters(), 0.02)
    step = tg.compile(model.loss, model.parameters())
    for _ in range(150):
        opt.zero_grad()
        if variant == "attention":
            step(task.questions, task.answers, mask)
        else:
            step(task.questions, task.answers)
        opt.step()
    ids, _ = model.generate(task.questions, task.char_to_id[tasks.START], 4,
                            mask if variant == "attention" else None)
    assert [task.decode(r) for r in ids] == [task.decode(a) for a in task.answers]


# --- training, checkpoints, the command -------------------------------------------------------

SMALL = dict(examples=700, held_out=100, batch_size=50, hidden_size=16, epochs=2)


@pytest.mark.slow
@pytest.mark.parametrize("options", [dict(reverse=True, peeky=True), dict(attention=True)])
def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path, options):
    straight = Seq2seqTrainer(default_settings("addition", **SMALL, **options), tmp_path / "a",
                              log=lambda *a: None)
    straight.run(progress=False)
    first = Seq2seqTrainer(default_settings("addition", **SMALL, **options), tmp_path / "b",
                           log=lambda *a: None)
    first.run(1, progress=False)
    resumed = Seq2seqTrainer(default_settings("addition", **SMALL, **options), tmp_path / "c",
                             log=lambda *a: None)
    resumed.resume(tmp_path / "b" / "last.npz")
    resumed.run(progress=False)
    for (name, p), q in zip(straight.model.named_parameters(), resumed.model.parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
    assert [h["accuracy"] for h in resumed.history] == [h["accuracy"] for h in straight.history]
    other = Seq2seqTrainer(default_settings("addition", **{**SMALL, "hidden_size": 8}),
                           tmp_path / "d", log=lambda *a: None)
    with pytest.raises(CheckpointError, match="hidden_size"):
        other.resume(tmp_path / "b" / "last.npz")


@pytest.mark.slow
def test_the_command_trains_reports_and_draws_attention(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["seq2seq", "--task", "dates", "--attention", "--examples", "400",
                 "--held-out", "100", "--batch-size", "50", "--hidden-size", "16",
                 "--epochs", "1", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "epoch 1: held-out accuracy" in printed and "expected" in printed
    assert (out / "attention.png").stat().st_size > 10_000 and (out / "last.npz").exists()


@pytest.mark.parametrize("argv, message", [
    (["--held-out", "0"], "held_out must be between"),
    (["--epochs", "0"], "epochs must be at least 1"),
    (["--examples", "100", "--held-out", "50"], "fewer than one batch"),
])
def test_bad_settings_are_one_line_errors(tmp_path, capsys, argv, message):
    assert main(["seq2seq", "--out", str(tmp_path / "x"), *argv]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_a_mask_of_the_wrong_shape_is_refused_and_a_narrow_dtype_stays_finite():
    q, s = tg.tensor(np.ones((2, 1, 3))), tg.tensor(np.ones((2, 4, 3)))
    for bad in (np.zeros((2, 1)), np.zeros(4), np.zeros((4, 2))):
        with pytest.raises(ValueError, match=r"attention: the mask has shape .* \(2, 4\)"):
            attend(q, s, bad)
    half = padding_mask([1], 3, dtype=np.float16)
    assert np.all(np.isfinite(half)) and half[0, 1] < -1e4
