"""Training a Seq2seq model on a task of lstm.tasks: Adam with clipping, exact-match accuracy
on held-out questions after every epoch, pickle-free checkpoints to resume from."""
import dataclasses
import pathlib
import time

import numpy as np

import tinygraph as tg
from tinygraph.data import Batches
from tinygraph.optim import Adam

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .loop import TrainingLoop, optimizer_step
from .seq2seq import Seq2seq, padding_mask
from .tasks import START, TASKS


@dataclasses.dataclass(frozen=True)
class Seq2seqSettings:
    """A run's settings. The defaults are the book's: embedding 16, hidden 128 (256 with
    attention), batch 128, Adam lr 0.001, gradients clipped to norm 5, 50,000 examples of
    which 5,000 are held out; 25 epochs for addition, 10 for dates."""

    task: str = "addition"
    reverse: bool = False
    peeky: bool = False
    attention: bool = False
    embed_size: int = 16
    hidden_size: int = 128
    batch_size: int = 128
    lr: float = 0.001
    clip: float = 5.0
    epochs: int = 25
    examples: int = 50_000
    held_out: int = 5_000
    seed: int = 0

    def check(self):
        """The settings themselves, once each is checked (ValueError naming a bad one)."""
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        for name in ("embed_size", "hidden_size", "batch_size", "epochs", "examples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.held_out < self.examples:
            raise ValueError(f"held_out must be between 1 and examples - 1, got {self.held_out}")
        if self.examples - self.held_out < self.batch_size:
            raise ValueError(f"{self.examples - self.held_out} training examples are fewer "
                             f"than one batch of {self.batch_size}")
        return self


def build_seq2seq(settings, chars):
    """The untrained Seq2seq model the settings describe, over the characters `chars`."""
    return Seq2seq(len(chars), settings.embed_size, settings.hidden_size, settings.peeky,
                   settings.attention, seed=settings.seed)


def default_settings(task, **changes):
    """The book's settings for `task`, with `changes`."""
    base = {"dates": dict(hidden_size=256, epochs=10)}.get(task, {})
    return Seq2seqSettings(task=task, **{**base, **changes}).check()


class Seq2seqTrainer:
    """Makes the task's examples, splits off the held-out ones, and trains a Seq2seq model on
    the rest with a compiled step (eager with compiled=False); checkpoints go to out_dir."""

    def __init__(self, settings, out_dir, log=print, compiled=True):
        self.settings, self.log = settings.check(), log
        self.out_dir = pathlib.Path(out_dir)
        task = TASKS[settings.task](settings.examples)
        self.task = task
        self.train_set, self.test_set = task.split(settings.held_out)
        self.start_id = task.char_to_id[START]
        self.model = build_seq2seq(settings, task.chars)
        self.optimizer = Adam(self.model.parameters(), settings.lr)
        make_step = tg.compile if compiled else tg.eager_step
        self.step = make_step(self.model.loss, self.model.parameters())
        self.epoch, self.position, self.history = 0, 0, []
        # Full batches only, each epoch's order a function of (seed, epoch): see batch().
        self.order = Batches(len(self.train_set), settings.batch_size, seed=settings.seed)
        self.batches = len(self.order)

    # --- data ---------------------------------------------------------------------------------
    def inputs(self, subset, rows):
        """(questions, answers, mask) of `rows` of a split, questions reversed if set."""
        questions = subset.questions[rows]
        if self.settings.reverse:
            questions = questions[:, ::-1].copy()
        mask = padding_mask(subset.lengths[rows], questions.shape[1], self.settings.reverse)
        return questions, subset.answers[rows], mask

    def batch(self, epoch, position):
        """The position-th batch of epoch `epoch`: its shuffle is a function of the seed and
        the epoch, so a resumed run reads the same batches."""
        return self.inputs(self.train_set, self.order.indices(epoch, position))

    # --- evaluation ---------------------------------------------------------------------------
    def predict(self, subset, rows):
        """(greedy answers as strings, attention weights or None) for `rows` of a split."""
        questions, answers, mask = self.inputs(subset, rows)
        ids, weights = self.model.generate(questions, self.start_id, answers.shape[1] - 1,
                                           mask if self.settings.attention else None)
        return [self.task.decode(row) for row in ids], weights

    def accuracy(self, subset=None, chunk=1000):
        """Exact-match accuracy of greedy decoding on `subset` (default: the held-out)."""
        subset = subset or self.test_set
        right = 0
        self.model.eval()
        for start in range(0, len(subset), chunk):
            rows = np.arange(start, min(start + chunk, len(subset)))
            predicted, _ = self.predict(subset, rows)
            right += sum(p == self.task.decode(a) for p, a in
                         zip(predicted, subset.answers[rows]))
        self.model.train()
        return right / len(subset)

    def examples(self, count=3):
        """[(question, expected, predicted)] for the first `count` held-out questions."""
        rows = np.arange(count)
        self.model.eval()
        predicted, _ = self.predict(self.test_set, rows)
        self.model.train()
        return [(self.task.decode(self.test_set.questions[r]),
                 self.task.decode(self.test_set.answers[r]), p) for r, p in zip(rows, predicted)]

    def attention_examples(self, count=3):
        """[(question, predicted answer, weights)] for the first `count` held-out questions,
        weights (answer characters, question characters) in reading order."""
        rows = np.arange(count)
        self.model.eval()
        predicted, weights = self.predict(self.test_set, rows)
        self.model.train()
        if weights is None:
            raise ValueError("attention_examples: the model has no attention")
        examples = []
        for k, row in enumerate(rows):
            question = self.task.decode(self.test_set.questions[row])
            w = weights[k][:, ::-1] if self.settings.reverse else weights[k]
            examples.append((question, predicted[k], w[:len(predicted[k]), :len(question)]))
        return examples

    # --- checkpoints --------------------------------------------------------------------------
    def save(self, name):
        """Write checkpoint `name` into the output folder: the parameters, Adam's moments,
        the settings, the characters and where the run is."""
        arrays = {"param/" + k: v for k, v in self.model.state_dict().items()}
        optimizer = self.optimizer.state_dict()
        arrays.update({"optim/" + k: v for k, v in optimizer.items() if k not in ("lr", "t")})
        meta = {"kind": "seq2seq", "settings": dataclasses.asdict(self.settings),
                "epoch": self.epoch, "position": self.position, "history": self.history,
                "adam_t": optimizer["t"], "lr": optimizer["lr"], "chars": self.task.chars}
        return save_checkpoint(self.out_dir / name, arrays, meta)

    def resume(self, path):
        """Continue from the checkpoint at `path`; CheckpointError if it was made with other
        settings (only the number of epochs may differ)."""
        arrays, meta = load_checkpoint(path)
        if meta.get("kind") != "seq2seq":
            raise CheckpointError(f"{path} is not a seq2seq checkpoint")
        if meta.get("settings", {}) | {"epochs": 0} != dataclasses.asdict(self.settings) | {
                "epochs": 0}:
            saved = meta.get("settings", {})
            differ = sorted(k for k, v in dataclasses.asdict(self.settings).items()
                            if k != "epochs" and saved.get(k) != v)
            raise CheckpointError(f"{path} was made with other settings "
                                  f"({', '.join(differ)} differ)")
        try:
            self.model.load_state_dict({k[6:]: v for k, v in arrays.items()
                                        if k.startswith("param/")})
            optimizer = {k[6:]: v for k, v in arrays.items() if k.startswith("optim/")}
            self.optimizer.load_state_dict({**optimizer, "lr": meta["lr"], "t": meta["adam_t"]})
            self.epoch, self.position = int(meta["epoch"]), int(meta["position"])
            self.history = list(meta["history"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path} does not fit this model: {e}") from None
        self.log(f"resumed from {path}: epoch {self.epoch + 1}, batch {self.position}")

    # --- the loop (lstm.loop.TrainingLoop) ---------------------------------------------------
    def train_step(self, questions, answers, mask):
        """One Adam step with clipping on a batch; returns the loss."""
        inputs = (questions, answers, mask) if self.settings.attention else (questions, answers)
        return optimizer_step(self.optimizer, lambda: self.step(*inputs), self.settings.clip)

    def run(self, epochs=None, progress=True, checkpoint_every=100, interrupted=None):
        """Train up to `epochs` (default: the settings'); returns the history, one entry per
        epoch with its held-out accuracy. Ctrl-C saves last.npz and raises Interrupted;
        `interrupted`, a function, replaces Ctrl-C as the signal to stop."""
        loop = TrainingLoop(
            batches=self.batches, save=self.save, log=self.log, end_epoch=self._end_epoch,
            train_batch=lambda epoch, position: self.train_step(*self.batch(epoch, position)),
            bar_text=lambda losses, seconds: f"loss {np.mean(losses[-50:]):.3f}")
        loop.run(self, self.settings.epochs if epochs is None else epochs, progress,
                 checkpoint_every, interrupted)
        return self.history

    def _end_epoch(self, losses, started):
        """Held-out accuracy into the history and the log."""
        accuracy = self.accuracy()
        self.history.append({"epoch": self.epoch, "loss": float(np.mean(losses))
                             if losses else None, "accuracy": accuracy,
                             "seconds": time.perf_counter() - started})
        self.log(f"epoch {self.epoch}: held-out accuracy {accuracy:.2%}")


def load_seq2seq(path):
    """(model, characters) of a seq2seq training checkpoint."""
    arrays, meta = load_checkpoint(path)
    if meta.get("kind") != "seq2seq":
        raise CheckpointError(f"{path} is not a seq2seq checkpoint")
    try:
        settings = Seq2seqSettings(**meta["settings"])
        chars = list(meta["chars"])
    except (KeyError, TypeError) as e:
        raise CheckpointError(f"{path} lacks its settings ({e!r})") from None
    model = build_seq2seq(settings, chars)
    try:
        model.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("param/")})
    except ValueError as e:
        raise CheckpointError(f"{path} does not fit its own settings: {e}") from None
    return model, chars
