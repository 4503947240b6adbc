"""`python -m lstm train` flags over the preset (--lr, --batch-size, --hidden-size, --layers,
--dropout, --seed): they reach the model, are printed and saved in the summary and the
checkpoint; a bad one names the subcommand's help; nothing is written before the flags, the
checkpoint to resume and the corpus are checked; --seed repeats a run exactly; a resume with
other settings is refused with the flags that would continue it."""
import json

import numpy as np
import pytest

from lstm.__main__ import main
from lstm.checkpoint import load_checkpoint, save_checkpoint
from tests.corpora import words

# Small enough for a test (a few batches, one epoch), with every flag away from the preset's.
FLAGS = ["--hidden-size", "6", "--layers", "2", "--dropout", "0.3", "--batch-size", "4",
         "--lr", "2.5", "--epochs", "1", "--no-progress"]


@pytest.fixture
def corpus(corpus_dir):
    return corpus_dir(train=words(600) + "\n", valid="w1 w2 w3 w4\n" * 100,
                      test="w4 w5 w6 w0\n" * 100)


def train(corpus, out, *flags):
    return main(["train", "--data-dir", str(corpus), "--out", str(out), *flags])


def test_flags_reach_the_model_are_printed_and_saved(corpus, tmp_path, capsys):
    assert train(corpus, tmp_path / "run", *FLAGS, "--seed", "7") == 0
    printed = capsys.readouterr().out
    assert ("settings: preset small with --epochs 1 --lr 2.5 --batch-size 4 --hidden-size 6 "
            "--layers 2 --dropout 0.3 --seed 7: embed_size 100, hidden_size 6, num_layers 2, "
            "dropout 0.3") in printed
    chosen = dict(hidden_size=6, num_layers=2, dropout=0.3, batch_size=4, lr=2.5, seed=7)
    arrays, meta = load_checkpoint(tmp_path / "run" / "last.npz")
    assert {k: meta["preset"][k] for k in chosen} == chosen
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert {k: summary["settings"][k] for k in chosen} == chosen
    assert summary["flags"]["--lr"] == 2.5 and summary["flags"]["--seed"] == 7
    # Two layers of 6 units (4 gates of 6): the second reads the first's 6 features.
    assert arrays["param/rnn.layers.1.cell.Wx"].shape == (6, 24)
    assert arrays["param/rnn.layers.1.cell.Wh"].shape == (6, 24)
    assert "param/rnn.layers.2.cell.Wx" not in arrays
    assert "training: 4 batches of 4 x 35 per epoch" in printed


def test_hidden_size_of_a_tied_preset_sizes_the_embedding_too(corpus, tmp_path):
    assert train(corpus, tmp_path / "run", "--preset", "medium", *FLAGS) == 0
    _, meta = load_checkpoint(tmp_path / "run" / "last.npz")
    assert meta["preset"]["tie_weights"] is True
    assert meta["preset"]["embed_size"] == meta["preset"]["hidden_size"] == 6


def _run_record(out):
    arrays, meta = load_checkpoint(out / "last.npz")
    summary = json.loads((out / "summary.json").read_text())
    history = [(h["train_ppl"], h["valid_ppl"]) for h in summary["history"]]
    return arrays, history, summary["test_ppl"]


def test_the_same_seed_repeats_a_run_exactly_and_another_changes_it(corpus, tmp_path, capsys):
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        assert train(corpus, tmp_path / name, *FLAGS, "--seed", seed) == 0
    (a, history_a, test_a), (b, history_b, test_b), (c, history_c, _) = (
        _run_record(tmp_path / name) for name in "abc")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert history_a == history_b and test_a == test_b
    assert history_c != history_a
    assert not np.array_equal(a["param/embed.W"], c["param/embed.W"])


BAD_FLAGS = [
    (["--lr", "0"], "--lr must be > 0, got 0.0"),
    (["--lr", "-1"], "--lr must be > 0, got -1.0"),
    (["--lr", "nan"], "--lr must be > 0, got nan"),
    (["--lr", "inf"], "--lr must be > 0, got inf"),
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--hidden-size", "-3"], "--hidden-size must be at least 1, got -3"),
    (["--layers", "0"], "--layers must be at least 1, got 0"),
    (["--dropout", "1"], "--dropout must be at least 0 and below 1, got 1.0"),
    (["--dropout", "-0.1"], "--dropout must be at least 0 and below 1, got -0.1"),
    (["--seed", "-1"], "--seed must be at least 0, got -1"),
    (["--epochs", "0"], "--epochs must be at least 1, got 0"),
]


@pytest.mark.parametrize("flags, message", BAD_FLAGS, ids=[" ".join(f) for f, _ in BAD_FLAGS])
def test_a_bad_flag_is_one_line_naming_the_subcommand_help(flags, message, corpus, tmp_path,
                                                           capsys):
    assert train(corpus, tmp_path / "run", *flags) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: lstm train: {message}; see python -m lstm train --help"
    assert not (tmp_path / "run").exists()


def test_a_flag_that_is_not_a_number_is_refused_by_the_parser(corpus, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        train(corpus, tmp_path / "run", "--layers", "two")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --layers: invalid int value: 'two' (see python -m lstm train --help)" in err
    assert not (tmp_path / "run").exists()


def test_nothing_is_written_before_the_data_is_checked(corpus, corpus_dir, tmp_path, capsys):
    # A corpus too short for the batch size fails when the trainer checks its splits, after
    # the corpus loaded: the output folder must still not exist.
    assert train(corpus, tmp_path / "run", "--batch-size", "500", "--no-progress") == 1
    assert "too short for batches of 500" in capsys.readouterr().err
    assert train(tmp_path / "nowhere", tmp_path / "run") == 1
    assert "data directory not found" in capsys.readouterr().err
    assert train(corpus, tmp_path / "run", "--resume", str(tmp_path / "none.npz")) == 1
    assert "checkpoint not found" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_resume_with_other_flags_is_refused_naming_the_flags_to_give(corpus, tmp_path,
                                                                      capsys):
    out = tmp_path / "run"
    assert train(corpus, out, *FLAGS, "--seed", "3") == 0
    written = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    status = train(corpus, out, *FLAGS, "--seed", "4", "--lr", "0.1", "--epochs", "2",
                   "--resume", str(out / "last.npz"))
    assert status == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"error: lstm train: {out / 'last.npz'} was made with other settings "
                   "(--lr 2.5 there, 0.1 here; --seed 3 there, 4 here); to continue it give "
                   "the same flags (--lr 2.5 --seed 3), or train afresh into another --out; "
                   "only --epochs may change on resume")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == written    # nothing touched
    # With the flags it was made with (and more epochs) it continues.
    assert train(corpus, out, *FLAGS, "--seed", "3", "--epochs", "2",
                 "--resume", str(out / "last.npz")) == 0
    printed = capsys.readouterr().out
    assert "resumed from" in printed and "epoch 2: valid perplexity" in printed


def test_a_resume_of_another_preset_names_its_settings(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(corpus, out, *FLAGS) == 0
    capsys.readouterr()
    assert train(corpus, out, "--preset", "medium", *FLAGS,
                 "--resume", str(out / "last.npz")) == 1
    err = capsys.readouterr().err
    assert "embed_size 100 there, 6 here; tie_weights False there, True here" in err
    assert "give the preset it was made with (embed_size, tie_weights differ)" in err


def test_a_resume_of_a_seq2seq_checkpoint_is_refused(corpus, tmp_path, capsys):
    other = save_checkpoint(tmp_path / "s2s.npz", {}, {"kind": "seq2seq", "settings": {}})
    assert train(corpus, tmp_path / "run", "--resume", str(other)) == 1
    assert "is not a checkpoint of lstm train" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
