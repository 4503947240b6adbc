"""Training and evaluating language models: presets, the trainer loop, perplexity."""
import contextlib
import dataclasses
import json
import math
import pathlib
import signal
import threading
import time

import numpy as np
from tqdm import tqdm

import tinygraph as tg
from tinygraph.nn import Dropout, rng_state_array
from tinygraph.optim import SGD, DecayOnPlateau, clip_grad_norm

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .data import BPTTBatches, Corpus, Vocabulary
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
        make_step = tg.compile if compiled else tg.value_and_grad
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
        # Everything but the number of epochs must match: a run may be extended on resume.
        saved = {k: v for k, v in (meta.get("preset") or {}).items() if k != "epochs"}
        saved.setdefault("dtype", "float32")     # checkpoints older than the dtype setting
        wanted = {k: v for k, v in dataclasses.asdict(self.preset).items() if k != "epochs"}
        if saved != wanted:
            differ = sorted(k for k in wanted if saved.get(k) != wanted[k])
            raise CheckpointError(f"{path} was made with other settings ({', '.join(differ)} "
                                  "differ)")
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

    # --- the loop ----------------------------------------------------------------------------
    def train_step(self, inputs, targets):
        """One SGD step with clipping on a batch; returns the loss. A non-finite loss is a
        FloatingPointError."""
        self.optimizer.zero_grad()
        loss = self.step(inputs, targets)
        if not math.isfinite(float(loss.data)):
            raise FloatingPointError(f"the loss became {float(loss.data)}; training stopped "
                                     "(the last good checkpoint is kept)")
        clip_grad_norm(self.optimizer.params, self.preset.clip)
        self.optimizer.step()
        return float(loss.data)

    def run(self, epochs, progress=True, checkpoint_every=200):
        """Train up to `epochs`. Ctrl-C (SIGINT) finishes the current step, saves last.npz and
        raises Interrupted, so no work is lost."""
        with _interrupt_flag() as interrupted:
            return self._run(epochs, progress, checkpoint_every, interrupted)

    def _run(self, epochs, progress, checkpoint_every, interrupted):
        tokens_per_batch = self.preset.batch_size * self.preset.steps
        while self.epoch < epochs:
            bar = tqdm(total=len(self.batches), initial=self.position,
                       disable=None if progress else True,
                       desc=f"epoch {self.epoch + 1}/{epochs}", unit="batch", dynamic_ncols=True)
            start, losses = time.perf_counter(), []   # losses: this session's, for the bar
            while self.position < len(self.batches):
                # As in the book, reading goes on across epochs (the time index is global) and
                # the recurrent state is carried over the epoch boundary.
                index = self.epoch * len(self.batches) + self.position
                loss = self.train_step(*self.batches.batch(index))
                self.position += 1
                losses.append(loss)
                self.epoch_loss = [self.epoch_loss[0] + loss, self.epoch_loss[1] + 1]
                rate = len(losses) * tokens_per_batch / (time.perf_counter() - start)
                recent = float(np.mean(losses[-50:]))
                bar.set_postfix_str(f"loss {recent:.3f} ppl {math.exp(recent):.1f} "
                                    f"{rate:,.0f} tok/s lr {self.optimizer.lr:g}")
                bar.update(1)
                if checkpoint_every and self.position % checkpoint_every == 0:
                    path = self.save("last.npz")
                    if not progress:     # no bar: say how it goes at every checkpoint
                        self.log(f"epoch {self.epoch + 1}, batch {self.position}/"
                                 f"{len(self.batches)}: loss {recent:.3f} (ppl "
                                 f"{math.exp(recent):.1f}), {rate:,.0f} tok/s; saved {path}")
                if interrupted():
                    bar.close()
                    path = self.save("last.npz")
                    raise Interrupted(f"saved {path} at epoch {self.epoch + 1}, batch "
                                      f"{self.position}", path)
            bar.close()
            training_state = self.model.extra_states()   # validation resets carried state
            valid = self.perplexity("valid")
            self.model.load_extra_states(training_state)
            improved = self.schedule.step(valid)
            self.epoch, self.position = self.epoch + 1, 0
            total, count = self.epoch_loss
            self.epoch_loss = [0.0, 0]
            self.history.append({"epoch": self.epoch, "train_ppl": math.exp(total / count)
                                 if count else None, "valid_ppl": valid,
                                 "lr": self.optimizer.lr, "seconds": time.perf_counter() - start})
            self.log(f"epoch {self.epoch}: valid perplexity {valid:.2f}"
                     + ("" if improved else f" (no improvement: lr -> {self.optimizer.lr:g})"))
            if improved:
                self.save("best.npz")
            path = self.save("last.npz")
            if interrupted():        # pressed during validation or saving
                raise Interrupted(f"saved {path} after epoch {self.epoch}", path)
        return self.history

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


class Interrupted(Exception):
    """Training was stopped by SIGINT after saving a checkpoint to resume from (`path`)."""

    def __init__(self, message, path=None):
        super().__init__(message)
        self.path = path


@contextlib.contextmanager
def _interrupt_flag():
    """Turn SIGINT into a flag the loop checks between steps (a step is never cut in half).
    A second Ctrl-C stops at once, as usual."""
    flag = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return

    def handler(*_):
        if flag:
            raise KeyboardInterrupt
        flag.append(True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(flag)
    finally:
        signal.signal(signal.SIGINT, previous)


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
