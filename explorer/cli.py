"""Command line: ``embedding-explorer`` opens the GUI; subcommands run headless.

Each subcommand lives in ``explorer/commands/<name>.py`` with ``add_parser(subparsers)`` and
``run(args) -> int``. Errors the user can act on (:class:`~explorer.core.errors.ExplorerError`, a bad
argument, a file that cannot be read or written, a full disk, too little memory) print one line
on stderr and exit with code 2, never a traceback. Anything else is a bug: one line saying so and
exit code 1; ``EXPLORER_DEBUG=1`` shows the traceback instead. Warnings of ours
(:class:`~explorer.core.errors.ExplorerWarning`) print one line each; other libraries' warnings are
hidden unless ``EXPLORER_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
import warnings
from typing import Optional, Sequence

from explorer import __version__
from explorer.commands._args import ArgumentParser, one_line
from explorer.core.errors import Cancelled, ExplorerError, ExplorerWarning

PROG = "embedding-explorer"

SUBCOMMANDS = ("formats", "embed", "project", "neighbors", "diagnose", "compare", "truncation",
               "compatibility", "layers", "timeline", "finetune", "warmup", "clusters")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="See what your embedding space looks like. Without a subcommand, opens the app.")
    parser.add_argument("--version", action="version", version=f"embedding-explorer {__version__}")
    parser.add_argument("--demo", action="store_true", help="open the bundled sample data with its checkpoints")
    parser.add_argument("--screenshot", metavar="FILE.png",
                        help="render the main window to FILE.png once everything requested has loaded, then exit")
    parser.add_argument("--workspace", help="workspace file (.h5) to open in the app")
    parser.add_argument("--data", help="dataset to open in the app")
    parser.add_argument("--encoder", action="append", default=[], help="encoder to open in the app (repeatable)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            mod = importlib.import_module(f"explorer.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"explorer.commands.{name}":
                continue
            raise
        p = mod.add_parser(sub)
        p.set_defaults(_run=mod.run)
    return parser


def debug() -> bool:
    """``EXPLORER_DEBUG`` set to anything but empty/0: tracebacks and every warning."""
    return os.environ.get("EXPLORER_DEBUG", "") not in ("", "0")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    if issubclass(category, ExplorerWarning) or debug():
        print(f"{PROG}: warning: {one_line(message)}", file=sys.stderr)


def os_error_sentence(exc: OSError) -> str:
    """One sentence for an operating-system error the user can act on."""
    where = exc.filename if exc.filename is not None else "a file"
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1), errno.EFBIG):
        return f"Disk full while writing {where}; free some space and run again."
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{where}: permission denied (read-only place?); choose a writable location."
    if exc.errno == errno.EISDIR:
        return f"{where} is a folder; give a file name."
    if exc.errno == errno.ENOENT:
        return f"{where}: no such file or folder."
    return f"{where}: {exc.strerror or exc.__class__.__name__}."


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit code (0 ok, 2 a problem the user can act on,
    1 an internal error, 130 cancelled)."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a bad argument (one line already printed)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    with warnings.catch_warnings():
        if not debug():
            warnings.simplefilter("ignore")
        warnings.simplefilter("always", ExplorerWarning)
        warnings.showwarning = _show_warning
        try:
            if getattr(args, "_run", None) is not None:
                return int(args._run(args) or 0)
            from explorer.core.desktop import window_problem

            problem = window_problem()  # before Qt starts: Qt would abort with its own text
            if problem:
                raise ExplorerError(problem)
            from explorer.gui.app import run_app

            return int(run_app(args) or 0)
        except Cancelled:
            print(f"{PROG}: cancelled.", file=sys.stderr)
            return 130
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted.", file=sys.stderr)
            return 130
        except ExplorerError as exc:
            print(f"{PROG}: error: {one_line(exc)}", file=sys.stderr)
            return 2
        except MemoryError:
            if debug():
                raise
            print(f"{PROG}: error: not enough memory for this input; try fewer rows or smaller options.",
                  file=sys.stderr)
            return 2
        except Exception as exc:
            if debug():
                raise
            if isinstance(exc, OSError) and exc.filename is not None:
                print(f"{PROG}: error: {one_line(os_error_sentence(exc))}", file=sys.stderr)
                return 2
            first = one_line(str(exc))[:200]
            print(f"{PROG}: internal error: {exc.__class__.__name__}" + (f": {first}" if first else "")
                  + "; this is a bug, please report it (EXPLORER_DEBUG=1 shows the traceback).", file=sys.stderr)
            return 1


if __name__ == "__main__":
    raise SystemExit(main())
