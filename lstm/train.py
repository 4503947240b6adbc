"""Training and evaluating language models: presets, the trainer loop, perplexity."""
import dataclasses
import json
import math
import pathlib
import time

import numpy as np

import tinygraph as tg
from tinygraph.nn import Dropout, rng_state_array
from tinygraph.optim import SGD, DecayOnPlateau

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .data import BPTTBatches, Corpus, Vocabulary
from .loop import Interrupted, TrainingLoop, optimizer_step  # noqa: F401 (Interrupted: the CLI's)
from .models import LanguageModel


@dataclasses.dataclass
class Preset:
    """The settings of a training run: model sizes, batching, optimisation and epochs.

    The two presets in `PRESETS` follow the book: *small* (embedding and one LSTM layer of
    100, batch 20 x 35 steps, SGD lr 20, clipping 0.25, 4 epochs) and *medium* (650 units, 2
    layers, dropout 0.5, tied weights, 40 epochs).
    """

    embed_size: int
    hidden_size: int
    num_layers: int = 1
    dropout: float = 0.0
    tie_weights: bool = False
    batch_size: int = 20
    steps: int = 35
    lr: float = 20.0
    clip: float = 0.25
    epochs: int = 4
    seed: int = 1
    eval_batch_size: int = 10     # the book evaluates with batches of 10 x 35
    dtype: str = "float32"        # or "float64", e.g. to check that a resume is bitwise exact


#: The presets by name, "small" and "medium" (see `Preset`), as `python -m lstm train
#: --preset` uses them.
#:
#: :meta hide-value:
PRESETS = {
    "small": Preset(embed_size=100, hidden_size=100),
    "medium": Preset(embed_size=650, hidden_size=650, num_layers=2, dropout=0.5,
                     tie_weights=True, epochs=40),
}


def build_model(preset, vocab_size):
    """The `LanguageModel` a preset describes, for a vocabulary of `vocab_size` words."""
    if preset.dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {preset.dtype!r}")
    return LanguageModel(vocab_size, preset.embed_size, preset.hidden_size, preset.num_layers,
                         preset.dropout, preset.tie_weights, seed=preset.seed,
                         dtype=np.dtype(preset.dtype))


def perplexity(model, ids, batch_size=10, steps=35):
    """exp(mean cross-entropy) over the whole corpus, state carried, no dropout, no graph."""
    batches = BPTTBatches(ids, batch_size, steps)
    model.eval()
    model.reset_state()
    total = 0.0
    with tg.no_grad():
        for inputs, targets in batches:
            total += float(model.loss(inputs, targets).data)
    model.train()
    model.reset_state()
    return math.exp(total / len(batches))


class Trainer:
    """SGD with global-norm clipping over truncated-BPTT batches; validation perplexity each
    epoch divides the learning rate by 4 when it does not improve; the best model is kept."""

    def __init__(self, corpus, preset, out_dir, log=print, compiled=False):
        self.corpus, self.preset, self.log = corpus, preset, log
        self.out_dir = pathlib.Path(out_dir)
        self.model = build_model(preset, len(corpus.vocab))
        self.optimizer = SGD(self.model.parameters(), preset.lr)
        # One step contract: loss = step(inputs, targets), gradients in .grad; compiled, each
        # step replays one traced forward + backward (see tinygraph.transforms.compile).
        make_step = tg.compile if compiled else tg.eager_step
        self.step = make_step(self.model.loss, self.model.parameters())
        self.schedule = DecayOnPlateau(self.optimizer, factor=0.25)
        # Every split is checked now, not after an epoch of training.
        for split, batch_size, option in (("train", preset.batch_size, "batch_size"),
                                          ("valid", preset.eval_batch_size, "eval_batch_size"),
                                          ("test", preset.eval_batch_size, "eval_batch_size")):
            try:
                batches = BPTTBatches(corpus.ids[split], batch_size, preset.steps)
            except ValueError as e:
                raise ValueError(f"{split} split: {e} ({option}={batch_size})") from None
            if split == "train":
                self.batches = batches
        self.epoch, self.position, self.history = 0, 0, []
        self.epoch_loss = [0.0, 0]          # sum and count of this epoch's training losses

    # --- checkpoints -------------------------------------------------------------------------
    def _meta(self):
        return {"preset": dataclasses.asdict(self.preset), "epoch": self.epoch,
                "position": self.position, "lr": self.optimizer.lr,
                "best": self.schedule.best, "history": self.history,
                "epoch_loss": self.epoch_loss,
                "vocab": self.corpus.vocab.fingerprint(), "vocab_size": len(self.corpus.vocab),
                # The words themselves, so that generation needs no corpus.
                "words": self.corpus.vocab.id_to_word}

    def save(self, name):
        """Write a checkpoint `name` (e.g. "last.npz") into the output folder: the model's
        state_dict (parameters as param/<name>, carried state and dropout generators as
        state/<name>), the optimizer and schedule state and the position."""
        params = {name for name, _ in self.model.named_parameters()}
        arrays = {("param/" if k in params else "state/") + k: v
                  for k, v in self.model.state_dict().items()}
        return save_checkpoint(self.out_dir / name, arrays, self._meta())

    def resume(self, path):
        """Continue from the checkpoint at `path`; CheckpointError if it was made for
        another vocabulary or other settings (only the number of epochs may differ)."""
        arrays, meta = load_checkpoint(path)
        if meta.get("vocab") != self.corpus.vocab.fingerprint():
            raise CheckpointError(f"{path} was trained on another vocabulary")
        differ = settings_differences(meta, self.preset)
        if differ:
            values = "; ".join(f"{k} {saved!r} there, {now!r} here"
                               for k, (saved, now) in differ.items())
            raise CheckpointError(f"{path} was made with other settings ({', '.join(differ)} "
                                  f"differ: {values}); only the number of epochs may change "
                                  "on resume")
        try:
            self.model.load_state_dict(_model_state(self.model, arrays, meta))
        except ValueError as e:
            raise CheckpointError(f"{path} does not fit this model: {e}") from None
        try:
            self.epoch, self.position = int(meta["epoch"]), int(meta["position"])
            self.optimizer.lr, self.schedule.best = float(meta["lr"]), float(meta["best"])
            self.history, self.epoch_loss = list(meta["history"]), list(meta["epoch_loss"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path} lacks or garbles training state ({e!r})") from None
        self.log(f"resumed from {path}: epoch {self.epoch + 1}, batch {self.position}")

    # --- the loop (lstm.loop.TrainingLoop) ---------------------------------------------------
    def train_step(self, inputs, targets):
        """One SGD step with clipping on a batch; returns the loss. A non-finite loss is a
        FloatingPointError."""
        return optimizer_step(self.optimizer, lambda: self.step(inputs, targets),
                              self.preset.clip)

    def run(self, epochs, progress=True, checkpoint_every=200, interrupted=None):
        """Train up to `epochs`; returns the history. Ctrl-C (SIGINT) finishes the current
        step, saves last.npz and raises Interrupted, so no work is lost; `interrupted`, a
        function, replaces Ctrl-C as the signal to stop (e.g. in tests)."""
        loop = TrainingLoop(batches=len(self.batches), train_batch=self._train_batch,
                            end_epoch=self._end_epoch, save=self.save, log=self.log,
                            bar_text=self._bar_text, checkpoint_note=self._checkpoint_note)
        loop.run(self, epochs, progress, checkpoint_every, interrupted)
        return self.history

    def _train_batch(self, epoch, position):
        # As in the book, reading goes on across epochs (the time index is global) and the
        # recurrent state is carried over the epoch boundary.
        loss = self.train_step(*self.batches.batch(epoch * len(self.batches) + position))
        self.epoch_loss = [self.epoch_loss[0] + loss, self.epoch_loss[1] + 1]
        return loss

    def _recent(self, losses, seconds):
        """(mean of the last 50 losses, tokens per second) of this session's epoch."""
        tokens = len(losses) * self.preset.batch_size * self.preset.steps
        return float(np.mean(losses[-50:])), tokens / seconds

    def _bar_text(self, losses, seconds):
        recent, rate = self._recent(losses, seconds)
        return (f"loss {recent:.3f} ppl {math.exp(recent):.1f} {rate:,.0f} tok/s "
                f"lr {self.optimizer.lr:g}")

    def _checkpoint_note(self, losses, seconds):
        recent, rate = self._recent(losses, seconds)
        return f"loss {recent:.3f} (ppl {math.exp(recent):.1f}), {rate:,.0f} tok/s"

    def _end_epoch(self, losses, started):
        """Validation perplexity, the learning-rate schedule, the history; best.npz if better."""
        training_state = self.model.extra_states()   # validation resets carried state
        valid = self.perplexity("valid")
        self.model.load_extra_states(training_state)
        improved = self.schedule.step(valid)
        total, count = self.epoch_loss
        self.epoch_loss = [0.0, 0]
        self.history.append({"epoch": self.epoch, "train_ppl": math.exp(total / count)
                             if count else None, "valid_ppl": valid,
                             "lr": self.optimizer.lr, "seconds": time.perf_counter() - started})
        self.log(f"epoch {self.epoch}: valid perplexity {valid:.2f}"
                 + ("" if improved else f" (no improvement: lr -> {self.optimizer.lr:g})"))
        if improved:
            self.save("best.npz")

    def test(self):
        """Test perplexity of the best checkpoint."""
        best = self.out_dir / "best.npz"
        if best.exists():
            arrays, meta = load_checkpoint(best)
            self.model.load_state_dict(_model_state(self.model, arrays, meta))
        return self.perplexity("test")

    def perplexity(self, split):
        """Perplexity of the current model on "train", "valid" or "test"."""
        return perplexity(self.model, self.corpus.ids[split], self.preset.eval_batch_size,
                          self.preset.steps)


def settings_differences(meta, preset):
    """{setting: (the checkpoint's value, the preset's)} for each setting of the checkpoint
    metadata `meta` that differs from `preset`. Everything but the number of epochs must
    match to resume: a run may be extended, not changed."""
    saved = dict(meta.get("preset") or {})
    saved.setdefault("dtype", "float32")     # checkpoints older than the dtype setting
    wanted = dataclasses.asdict(preset)
    return {k: (saved.get(k), v) for k, v in wanted.items()
            if k != "epochs" and saved.get(k) != v}


def load_language_model(path, data_dir=None):
    """(model, vocabulary) of a training checkpoint, ready to evaluate or generate with.

    The vocabulary is the one the checkpoint carries; checkpoints written before they carried
    it need the corpus folder they were trained on (`data_dir`)."""
    arrays, meta = load_checkpoint(path)
    try:
        settings = dict(meta["preset"])
        settings.setdefault("dtype", "float32")
        preset, vocab_size = Preset(**settings), int(meta["vocab_size"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path} is not a language-model training checkpoint "
                              f"(no model settings: {e!r})") from None
    if meta.get("words") is not None:
        vocab = Vocabulary(meta["words"])
    elif data_dir is not None:
        vocab = Corpus(data_dir).vocab
    else:
        raise CheckpointError(f"{path} carries no vocabulary (it was written by an older "
                              "version); give the corpus folder it was trained on (--data-dir)")
    if vocab.fingerprint() != meta.get("vocab") or len(vocab) != vocab_size:
        raise CheckpointError(f"{path} was trained on another vocabulary than "
                              f"{'the one it carries' if meta.get('words') else data_dir}")
    model = build_model(preset, vocab_size)
    try:
        model.load_state_dict(_model_state(model, arrays, meta))
    except ValueError as e:
        raise CheckpointError(f"{path} does not fit its own settings: {e}") from None
    return model, vocab


def _model_state(model, arrays, meta):
    """The model's state_dict in a checkpoint. Checkpoints written before modules held their
    own state stored layer k's carried state as state/k/j and the dropout generators, in
    module order, in the metadata: those are translated to the modules' names."""
    state = {k[len("param/"):]: v for k, v in arrays.items() if k.startswith("param/")}
    old_layers = {}
    for key, value in arrays.items():
        if not key.startswith("state/"):
            continue
        name = key[len("state/"):]
        parts = name.split("/")
        if len(parts) == 2 and all(p.isdigit() for p in parts):      # old: state/k/j
            old_layers[(int(parts[0]), int(parts[1]))] = value
        else:
            state[name] = value
    for (k, j), value in old_layers.items():
        state[f"rnn.layers.{k}.state.{j}"] = value
    dropouts = [name for name, m in model.named_modules() if isinstance(m, Dropout)]
    for name, rng_state in zip(dropouts, meta.get("rng") or []):   # old: generators in order
        rng = np.random.default_rng()
        rng.bit_generator.state = rng_state
        state[f"{name}.rng"] = rng_state_array(rng)
    return state


def write_summary(out_dir, summary):
    """Write `summary` as `summary.json` into `out_dir`; returns its path."""
    path = pathlib.Path(out_dir) / "summary.json"
    path.write_text(json.dumps(summary, indent=2))
    return path
