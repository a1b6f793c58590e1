"""Entry point of the PyInstaller bundle (see embedding-explorer.spec).

Started with no arguments (double-clicked, or from the application menu) the bundle opens the
bundled sample data, as ``embedding-explorer --demo`` does; with arguments it behaves exactly
like the ``embedding-explorer`` command.
"""

import multiprocessing
import os
import sys
import time


def _main() -> int:
    multiprocessing.freeze_support()  # DataLoader workers re-execute the frozen binary
    if os.environ.get("EMBEDDING_EXPLORER_TIMING"):
        # packaging/smoke_test.sh subtracts its own launch time from this to time the start-up
        print(f"launcher started at epoch {time.time():.3f}", file=sys.stderr, flush=True)
        # explorer.gui.app starts its start-up clock when imported (it imports only the standard
        # library at module level): import it now so "first window after X s" counts from here
        import explorer.gui.app  # noqa: F401
    argv = sys.argv[1:]
    # macOS passes -psn_0_NNN when started from Finder; it is not one of ours.
    argv = [a for a in argv if not a.startswith("-psn_")]
    if os.environ.get("EMBEDDING_EXPLORER_SELFTEST"):
        return _selftest()
    from explorer.cli import main

    return main(argv or ["--demo"])


def _selftest() -> int:
    """Print where the frozen app finds its bundled files (packaging/smoke_test.sh checks that
    they lie inside the bundle and exist) and exit."""
    import json

    import explorer
    from explorer.core.resources import assets_dir, sample_data_dir

    a, s = assets_dir(), sample_data_dir()
    print(json.dumps({
        "version": explorer.__version__, "frozen": bool(getattr(sys, "frozen", False)),
        "bundle": getattr(sys, "_MEIPASS", None), "assets": str(a), "sample_data": str(s),
        "assets_ok": (a / "style_light.qss").is_file(),
        "sample_data_files": sum(1 for p in s.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
