"""Sequence-to-sequence tasks made in code (no download), as in the book's chapters 7 and 8.

- addition: "57+624" -> "681", operands of 1 to 3 digits;
- dates: a date in one of many human formats ("September 27, 1994", "27 Sep 1994",
  "9/27/94", "TUESDAY, SEPTEMBER 27, 1994", ...) -> "1994-09-27".

Characters are the tokens. A task's examples are a fixed function of (count, seed): the same
questions, in the same order, on every machine. Questions are distinct, so no held-out
question was seen in training.
"""
import dataclasses
import datetime

import numpy as np

from tinygraph.data import pad

PAD, START = " ", "_"       # padding after a string, and the decoder's first input


@dataclasses.dataclass
class Task:
    """Questions and answers as padded character-id arrays, and the characters.

    questions: (n, Q) ids; answers: (n, A + 1) ids, START first (the decoder reads
    answers[:, :-1] and is trained to predict answers[:, 1:]); lengths: (n,) characters of
    each question before its padding.
    """

    name: str
    chars: list
    questions: np.ndarray
    answers: np.ndarray
    lengths: np.ndarray

    def __len__(self):
        return len(self.questions)

    @property
    def char_to_id(self):
        """{character: id}."""
        return {c: k for k, c in enumerate(self.chars)}

    def decode(self, ids):
        """Characters of `ids`, padding stripped (the decoder's START, if first, dropped)."""
        text = "".join(self.chars[i] for i in ids)
        return text[1:].rstrip(PAD) if text.startswith(START) else text.rstrip(PAD)

    def split(self, held_out, seed=0):
        """(train, test) Tasks: `held_out` examples drawn with `seed` for the test split."""
        if not 0 < held_out < len(self):
            raise ValueError(f"held_out must be between 0 and {len(self)}, got {held_out}")
        order = np.random.default_rng(seed).permutation(len(self))
        test, train = order[:held_out], order[held_out:]
        return self._subset(np.sort(train)), self._subset(np.sort(test))

    def _subset(self, rows):
        return Task(self.name, self.chars, self.questions[rows], self.answers[rows],
                    self.lengths[rows])


def encode(pairs, name, chars=None):
    """A Task from (question, answer) strings, padded to the longest of each."""
    chars = chars or sorted({c for q, a in pairs for c in q + a} | {PAD, START})
    index = {c: k for k, c in enumerate(chars)}
    questions, _, lengths = pad([[index[c] for c in q] for q, _ in pairs], value=index[PAD],
                                dtype=np.int64, return_lengths=True)
    answers, _ = pad([[index[c] for c in START + a] for _, a in pairs], value=index[PAD],
                     dtype=np.int64)
    return Task(name, chars, questions, answers, lengths)


def _distinct(make, count, seed):
    """`count` (question, answer) pairs from make(rng), no question twice."""
    rng = np.random.default_rng(seed)
    seen, pairs = set(), []
    attempts = 0
    while len(pairs) < count:
        attempts += 1
        if attempts > 20 * count:
            raise ValueError(f"cannot make {count} distinct questions")
        question, answer = make(rng)
        if question not in seen:
            seen.add(question)
            pairs.append((question, answer))
    return pairs


def _operand(rng):
    digits = int(rng.integers(1, 4))          # 1 to 3 digits, each length equally often
    low = 0 if digits == 1 else 10 ** (digits - 1)
    return int(rng.integers(low, 10 ** digits))


def addition(count=50_000, seed=1984):
    """The addition task: "a+b" -> str(a + b), a and b of 1 to 3 digits."""
    def make(rng):
        a, b = _operand(rng), _operand(rng)
        return f"{a}+{b}", str(a + b)
    return encode(_distinct(make, count, seed), "addition",
                  chars=list("0123456789+") + [PAD, START])


MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
FIRST, LAST = datetime.date(1950, 1, 1), datetime.date(2049, 12, 31)


def _formats(d):
    """Human renderings of the date d (named months and days in English, whatever the
    locale). Two-digit years are unambiguous within FIRST..LAST: 50-99 are 19xx."""
    month, day = MONTHS[d.month - 1], DAYS[d.weekday()]
    return [
        f"{month} {d.day}, {d.year}",                       # September 27, 1994
        f"{d.day} {month[:3]} {d.year}",                    # 27 Sep 1994
        f"{d.month}/{d.day}/{d.year % 100:02d}",            # 9/27/94
        f"{day}, {month} {d.day}, {d.year}".upper(),        # TUESDAY, SEPTEMBER 27, 1994
        f"{day}, {month} {d.day}, {d.year}",                # Tuesday, September 27, 1994
        f"{d.day} {month} {d.year}",                        # 27 September 1994
        f"{month[:3]} {d.day}, {d.year}",                   # Sep 27, 1994
        f"{month[:3].lower()} {d.day} {d.year}",            # sep 27 1994
        f"{d.day:02d}.{d.month:02d}.{d.year}",              # 27.09.1994
        f"{d.month:02d}/{d.day:02d}/{d.year}",              # 09/27/1994
        f"{day[:3]} {d.day} {month[:3]} {d.year}",          # Tue 27 Sep 1994
        f"{d.year} {month} {d.day}",                        # 1994 September 27
    ]


def dates(count=50_000, seed=1994):
    """The date-format task: a date written one of _formats' ways -> "YYYY-MM-DD"."""
    span = (LAST - FIRST).days + 1

    def make(rng):
        d = FIRST + datetime.timedelta(days=int(rng.integers(span)))
        forms = _formats(d)
        return forms[int(rng.integers(len(forms)))], d.isoformat()
    return encode(_distinct(make, count, seed), "dates")


TASKS = {"addition": addition, "dates": dates}
