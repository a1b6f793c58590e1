"""Command-line argument types every subcommand shares: numbers with a documented range,
checked by argparse before any work starts, and a parser whose errors are one line.

    p.add_argument("-k", type=int_range(1, 10_000), default=10,
                   help="neighbours per point (1-10000; default 10)")

A value outside the range (or not a number, or NaN/inf for a float) ends the command with
``embedding-explorer <cmd>: error: argument -k: ...`` on one line and exit code 2.
"""

from __future__ import annotations

import argparse
import math
from typing import Iterable, Optional

#: Largest seed: numpy, torch and Python's random all take seeds in [0, 2**32).
SEED_MAX = 2**32 - 1


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: ``<prog>: error: <message> (see <prog> --help)``, exit 2
    (argparse prints the whole usage block first)."""

    def error(self, message: str):  # noqa: D401  (argparse API)
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help).\n")


class _Range:
    """An argparse ``type``: a number in [lo, hi] (or one of ``extra``), finite for floats."""

    def __init__(self, kind: type, lo, hi, extra: Iterable = (), lo_open: bool = False,
                 hi_open: bool = False) -> None:
        self.kind, self.lo, self.hi, self.extra = kind, lo, hi, tuple(extra)
        self.lo_open, self.hi_open = lo_open, hi_open
        self.__name__ = f"{kind.__name__}_range"  # argparse names the type in some messages

    @property
    def text(self) -> str:
        """The range in words, e.g. ``1-10000``, ``> 0 and <= 10``, ``0 or 2-1000000000``."""
        if self.lo is not None and self.hi is not None and not (self.lo_open or self.hi_open):
            core = f"{self.lo:g}-{self.hi:g}" if self.kind is float else f"{self.lo}-{self.hi}"
        else:
            parts = []
            if self.lo is not None:
                parts.append(f"{'>' if self.lo_open else '>='} {self.lo:g}")
            if self.hi is not None:
                parts.append(f"{'<' if self.hi_open else '<='} {self.hi:g}")
            core = " and ".join(parts) or "any finite number"
        if self.extra:
            return " or ".join(str(e) for e in self.extra) + " or " + core
        return core

    def _parse(self, s: str):
        s = s.strip()
        if self.kind is int:
            try:
                return int(s)
            except ValueError:
                pass
            try:  # "1e3" is a whole number too
                f = float(s)
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected a whole number ({self.text}), got {s!r}") from None
            if not math.isfinite(f) or f != int(f):
                raise argparse.ArgumentTypeError(f"expected a whole number ({self.text}), got {s!r}")
            return int(f)
        try:
            v = float(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number ({self.text}), got {s!r}") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"expected a finite number ({self.text}), got {s!r}")
        return v

    def __call__(self, s: str):
        v = self._parse(s)
        if v in self.extra:
            return v
        low = self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo)
        high = self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi)
        if low or high:
            raise argparse.ArgumentTypeError(f"must be {self.text}, got {s.strip()}")
        return v

    def __repr__(self) -> str:
        return f"{self.__name__}({self.text})"


def int_range(lo: Optional[int] = None, hi: Optional[int] = None, extra: Iterable[int] = ()) -> _Range:
    """Whole numbers ``lo <= v <= hi`` (either bound may be None), or one of ``extra``."""
    return _Range(int, lo, hi, extra)


def float_range(lo: Optional[float] = None, hi: Optional[float] = None, *, lo_open: bool = False,
                hi_open: bool = False) -> _Range:
    """Finite numbers in the range (``lo_open``/``hi_open``: bound excluded); NaN and inf are
    refused."""
    return _Range(float, lo, hi, (), lo_open, hi_open)


def seed_type(allow_none: bool = False) -> _Range:
    """A random seed, 0-4294967295 (``allow_none``: -1 too, meaning no fixed seed)."""
    return int_range(0, SEED_MAX, extra=(-1,) if allow_none else ())


def numeric_actions(parser: argparse.ArgumentParser):
    """(subcommand, action) for every option of every subcommand that takes a number (for the
    test that each has a range and documents it)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                for a in sub._actions:
                    if a.type in (int, float) or isinstance(a.type, _Range):
                        yield name, a


def one_line(message: str) -> str:
    """``message`` on one line (newlines folded), for stderr."""
    return " ".join(str(message).split())
