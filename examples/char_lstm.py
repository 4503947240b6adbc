"""Character-level language model: an LSTM reads lines of text one character at a time and
learns to predict the next one; then it writes a few lines of its own.

    python examples/char_lstm.py                  # embedded proverbs, a few seconds
    python examples/char_lstm.py --eager          # the same steps without tg.compile
    python examples/char_lstm.py --text ../shared/data/ptb/ptb.train.txt --max-lines 3000

Written as a PyTorch user would write it: a Module (Embedding -> LSTM -> Linear), lines of
different lengths bucketed by length and padded (the padded targets ignored by cross_entropy),
AdamW with a cosine schedule and warm-up, gradient clipping, a compiled step, held-out
accuracy with argmax and ==, and sampling with a temperature. It prints the loss as it falls,
the held-out accuracy next to the most-frequent-character baseline, and sampled lines.

An example, not a trainer: there is no checkpoint and no resume (`python -m lstm train` has
both).
"""
import math
import pathlib

import numpy as np

import tinygraph as tg
from tinygraph.arguments import ArgumentParser, at_least, real
from tinygraph.data import Batches, pad
from tinygraph.nn import Embedding, Linear, Module
from tinygraph.optim import AdamW, CosineLR, clip_grad_norm
from lstm import LSTMCell, Recurrent

# Proverbs: public domain, short, of many lengths (so the batches need padding).
PROVERBS = """\
A stitch in time saves nine.
Actions speak louder than words.
All that glitters is not gold.
A bird in the hand is worth two in the bush.
Where there is a will, there is a way.
The early bird catches the worm.
Look before you leap.
Practice makes perfect.
Too many cooks spoil the broth.
Rome was not built in a day.
Every cloud has a silver lining.
Fortune favours the bold.
Honesty is the best policy.
Better late than never.
Beggars cannot be choosers.
Birds of a feather flock together.
Do not count your chickens before they hatch.
Do not put all your eggs in one basket.
Two heads are better than one.
The pen is mightier than the sword.
When in Rome, do as the Romans do.
Absence makes the heart grow fonder.
A penny saved is a penny earned.
A picture is worth a thousand words.
An apple a day keeps the doctor away.
Great minds think alike.
Haste makes waste.
If it is not broken, do not fix it.
Knowledge is power.
Laughter is the best medicine.
Necessity is the mother of invention.
No man is an island.
Still waters run deep.
The best things in life are free.
There is no place like home.
Time and tide wait for no man.
You cannot judge a book by its cover.
A watched pot never boils.
All good things must come to an end.
Easy come, easy go.
Half a loaf is better than none.
He who laughs last laughs best.
It is better to give than to receive.
Make hay while the sun shines.
Many hands make light work.
Out of sight, out of mind.
The squeaky wheel gets the grease.
There is no time like the present.
Where there is smoke, there is fire.
You can lead a horse to water, but you cannot make it drink.
A friend in need is a friend indeed.
A rolling stone gathers no moss.
All is well that ends well.
Curiosity killed the cat.
Discretion is the better part of valour.
Give credit where credit is due.
Hope for the best, but prepare for the worst.
It takes two to tango.
Let sleeping dogs lie.
Slow and steady wins the race.
The grass is always greener on the other side.
The proof of the pudding is in the eating.
What goes up must come down.
When the cat is away, the mice will play.
"""

PAD, BOS, EOS = 0, 1, 2          # ids of padding, start of line, end of line
SPECIALS = ["<pad>", "<s>", "\n"]
PAD_TO = 16                      # pad widths to a multiple of this: few shapes to compile


# --- data ------------------------------------------------------------------------------------

class Characters:
    """The character vocabulary of some lines: id <-> character, specials first."""

    def __init__(self, lines):
        self.symbols = SPECIALS + sorted(set("".join(lines)))
        self.ids = {ch: k for k, ch in enumerate(self.symbols)}

    def __len__(self):
        return len(self.symbols)

    def encode(self, line):
        return [self.ids[ch] for ch in line if ch in self.ids]

    def decode(self, ids):
        return "".join(self.symbols[k] for k in ids if k >= len(SPECIALS))


def read_lines(text, max_lines, max_chars):
    """The non-empty lines of `text`, stripped, at most max_lines of them, each cut to
    max_chars characters."""
    lines = [line.strip()[:max_chars] for line in text.splitlines()]
    return [line for line in lines if line][:max_lines]


def split_held_out(lines, every):
    """(training lines, held-out lines): every `every`-th line is held out."""
    held = set(range(every - 1, len(lines), every))
    return ([line for k, line in enumerate(lines) if k not in held],
            [line for k, line in enumerate(lines) if k in held])


def make_batch(encoded):
    """Inputs <s> c1 .. cn and targets c1 .. cn \\n of some encoded lines, padded on the
    right with PAD to a multiple of PAD_TO. The padded targets are PAD, which the loss
    ignores; the mask (True at real targets) is for the accuracy."""
    inputs = [[BOS] + ids for ids in encoded]
    targets = [ids + [EOS] for ids in encoded]
    width = PAD_TO * math.ceil(max(map(len, inputs)) / PAD_TO)
    ids, mask = pad(inputs, value=PAD, dtype=np.int64, width=width)
    targets, _ = pad(targets, value=PAD, dtype=np.int64, width=width)
    return ids, targets, mask


# --- model -----------------------------------------------------------------------------------

class CharLM(Module):
    """Embedding -> one LSTM layer -> Linear to the next character's logits."""

    def __init__(self, vocab_size, embed_size, hidden_size):
        self.embed = Embedding(vocab_size, embed_size, scale=0.1)
        self.lstm = Recurrent(LSTMCell(embed_size, hidden_size, forget_bias=1.0))
        self.head = Linear(hidden_size, vocab_size, name="head")

    def forward(self, ids, state=None):
        """ids (N, T) -> (logits (N, T, vocab), final LSTM state). The padding is on the
        right, after the real characters, so it never changes their outputs."""
        hs, state = self.lstm(self.embed(ids), state)
        return self.head(hs), state

    def loss(self, ids, targets):
        logits, _ = self(ids)
        return tg.cross_entropy(logits, targets, ignore_index=PAD)


def accuracy(model, ids, targets, mask):
    """The fraction of real (unpadded) positions where the most likely next character is
    the right one."""
    with tg.no_grad():
        logits, _ = model(ids)
        correct = logits.argmax(-1) == targets
        return correct[mask].float().mean().item()


def sample(model, chars, rng, start="", temperature=0.8, max_chars=80):
    """A line written by the model after <s> and `start`, one character at a time, the LSTM
    state carried from step to step. temperature 0 takes the most likely character."""
    with tg.no_grad():
        logits, state = model(np.array([[BOS] + chars.encode(start)]))
        out = []
        for _ in range(max_chars):
            last = logits[0, -1]
            if temperature == 0:
                k = int(last.argmax().item())
            else:
                p = tg.softmax(last / temperature).numpy().astype(np.float64)
                p[:EOS] = 0.0                   # never <pad> or <s>
                k = int(rng.choice(len(p), p=p / p.sum()))
            if k == EOS:
                break
            out.append(k)
            logits, state = model(np.array([[k]]), state)
    return start + chars.decode(out)


# --- arguments -------------------------------------------------------------------------------

def parse_args(argv=None):
    parser = ArgumentParser(prog="char_lstm.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--text", type=pathlib.Path,
                        help="a text file, one example per line (default: the embedded proverbs)")
    parser.add_argument("--max-lines", type=at_least(2), default=5000,
                        help="read at most this many non-empty lines (default 5000)")
    parser.add_argument("--max-chars", type=at_least(1), default=100,
                        help="cut longer lines to this many characters (default 100)")
    parser.add_argument("--held-out-every", type=at_least(2), default=5, metavar="K",
                        help="hold out every K-th line for the accuracy (default 5)")
    parser.add_argument("--steps", type=at_least(1), default=400)
    parser.add_argument("--batch-size", type=at_least(1), default=16)
    parser.add_argument("--embed-size", type=at_least(1), default=32)
    parser.add_argument("--hidden-size", type=at_least(1), default=128)
    parser.add_argument("--lr", type=real(0, strict=True), default=0.01)
    parser.add_argument("--weight-decay", type=real(0, strict=False), default=0.01)
    parser.add_argument("--warmup", type=at_least(0),
                        help="warm-up steps of the cosine schedule (default: a tenth of --steps)")
    parser.add_argument("--clip", type=real(0, strict=True), default=1.0,
                        help="clip the gradient norm to this (default 1.0)")
    parser.add_argument("--seed", type=at_least(0), default=0)
    parser.add_argument("--print-every", type=at_least(1), default=50)
    parser.add_argument("--samples", type=at_least(0), default=4,
                        help="lines to sample at the end (default 4)")
    parser.add_argument("--start", default="",
                        help="the text each sampled line starts with (default: none)")
    parser.add_argument("--temperature", type=real(0, strict=False), default=0.7,
                        help="sampling temperature; 0 takes the most likely character")
    parser.add_argument("--eager", action="store_true",
                        help="run each step eagerly instead of the compiled step")
    args = parser.parse_args(argv)
    if args.warmup is None:
        args.warmup = args.steps // 10
    elif args.warmup >= args.steps:
        parser.error(f"--warmup ({args.warmup}) must be smaller than --steps ({args.steps})")
    args.lines = load_lines(parser, args)
    return args


def load_lines(parser, args):
    """The lines to train on, or a one-line error naming what is wrong with the text."""
    if args.text is None:
        text = PROVERBS
    else:
        try:
            text = args.text.read_text(encoding="utf-8", errors="replace")
        except OSError as error:
            parser.error(f"--text: cannot read {args.text}: {error.strerror or error}")
    lines = read_lines(text, args.max_lines, args.max_chars)
    if len(lines) < args.held_out_every:
        source = args.text or "the embedded text"
        parser.error(f"{len(lines)} non-empty lines read from {source}; need at least "
                     f"--held-out-every ({args.held_out_every}) to hold one out")
    return lines


# --- training --------------------------------------------------------------------------------

def main(argv=None):
    args = parse_args(argv)
    tg.manual_seed(args.seed)               # the layers' initial weights and the samples

    train_lines, held_lines = split_held_out(args.lines, args.held_out_every)
    chars = Characters(train_lines)
    train = [chars.encode(line) for line in train_lines]
    held_ids, held_targets, held_mask = make_batch([chars.encode(line) for line in held_lines])
    print(f"{len(train)} training lines, {len(held_lines)} held out; {len(chars)} symbols")

    model = CharLM(len(chars), args.embed_size, args.hidden_size)
    print(model)

    opt = AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    schedule = CosineLR(opt, total_steps=args.steps, warmup_steps=args.warmup)
    step = (tg.eager_step if args.eager else tg.compile)(model.loss, model.parameters())
    # Batches of lines of similar length (little padding); each epoch's order from the seed.
    batches = Batches(len(train), min(args.batch_size, len(train)), seed=args.seed,
                      lengths=[len(ids) for ids in train], drop_last=False)

    losses = []
    for k in range(args.steps):
        epoch, position = divmod(k, len(batches))
        ids, targets, _ = make_batch([train[j] for j in batches.indices(epoch, position)])
        opt.zero_grad()
        loss = step(ids, targets).item()
        clip_grad_norm(model.parameters(), args.clip)
        lr = opt.lr                         # this step's learning rate
        opt.step()
        schedule.step()
        losses.append(loss)
        if k % args.print_every == 0 or k == args.steps - 1:
            print(f"step {k + 1:4d}  loss {loss:.4f}  lr {lr:.5f}")
    print(f"training loss {losses[0]:.3f} -> {losses[-1]:.3f} "
          f"({'eager' if args.eager else 'compiled'}, {args.steps} steps)")

    model.eval()
    held_out = accuracy(model, held_ids, held_targets, held_mask)
    counts = np.bincount(np.concatenate([ids + [EOS] for ids in train]), minlength=len(chars))
    common = int(counts.argmax())
    baseline = float((held_targets[held_mask] == common).mean())
    print(f"held-out next-character accuracy {held_out:.1%} "
          f"(baseline, always {chars.symbols[common]!r}: {baseline:.1%})")

    rng = tg.default_generator()
    for _ in range(args.samples):
        print("sample:", sample(model, chars, rng, args.start, args.temperature))


if __name__ == "__main__":
    main()
