"""What the two command lines (`python -m tinygraph`, `python -m lstm`) share: bad input is
one readable line on stderr and a non-zero exit status, never a usage dump or a traceback."""
import argparse
import math


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with each usage error on one line (the full usage stays under --help)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def add_subparsers(self, **kwargs):
        kwargs.setdefault("parser_class", ArgumentParser)
        return super().add_subparsers(**kwargs)


def at_least(minimum):
    """An argparse type: an int no smaller than `minimum`."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    parse.__name__ = f"int >= {minimum}"
    return parse


def real(minimum, strict=False):
    """An argparse type: a finite float above `minimum` (strict) or at least `minimum`."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
        if not math.isfinite(value) or value < minimum or (strict and value == minimum):
            bound = "greater than" if strict else "at least"
            raise argparse.ArgumentTypeError(f"must be a finite number {bound} {minimum:g}, "
                                             f"got {text}")
        return value
    parse.__name__ = f"float {'>' if strict else '>='} {minimum:g}"
    return parse
