"""Command line: ``embedding-explorer`` opens the GUI; subcommands run headless.

Each subcommand lives in ``explorer/commands/<name>.py`` with ``add_parser(subparsers)`` and
``run(args) -> int``. Errors the user can act on (:class:`~explorer.errors.ExplorerError`) print
one line on stderr and exit with code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

from explorer import __version__
from explorer.errors import Cancelled, ExplorerError

SUBCOMMANDS = ("formats", "embed", "project", "neighbors", "diagnose", "compare", "timeline",
               "finetune", "warmup")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="embedding-explorer",
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "_run", None) is not None:
            return int(args._run(args) or 0)
        from explorer.desktop import window_problem

        problem = window_problem()  # before Qt starts: Qt would abort with its own text
        if problem:
            raise ExplorerError(problem)
        from explorer.gui.app import run_app

        return int(run_app(args) or 0)
    except Cancelled:
        print("embedding-explorer: cancelled.", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("embedding-explorer: interrupted.", file=sys.stderr)
        return 130
    except ExplorerError as exc:
        print(f"embedding-explorer: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
