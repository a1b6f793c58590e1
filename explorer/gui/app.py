"""Start the application: ``embedding-explorer`` (and ``--demo``, ``--screenshot FILE.png``)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

T0 = time.perf_counter()


def make_app(argv=None):
    from PySide6 import QtGui, QtWidgets

    from explorer.core.resources import assets_dir, setup_numba_cache

    from explorer.gui.settings import settings as _settings

    cache = str(_settings().value("cache_dir", "") or "")
    if cache and not os.environ.get("EMBEDDING_EXPLORER_CACHE"):
        os.environ["EMBEDDING_EXPLORER_CACHE"] = cache
    setup_numba_cache()
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(argv or sys.argv[:1])
    app.setStyle("Fusion")
    app.setApplicationName("Embedding Explorer")
    app.setOrganizationName("embedding-explorer")
    app.setDesktopFileName("embedding-explorer")
    icon = QtGui.QIcon()
    for png in sorted((assets_dir() / "icons" / "app").glob("icon_*.png")):
        icon.addFile(str(png))
    if not icon.isNull():
        app.setWindowIcon(icon)
    from explorer.gui.settings import apply_theme, settings

    apply_theme(app, str(settings().value("theme", "light")))
    return app


def run_app(args) -> int:
    from PySide6 import QtCore

    app = make_app()
    from explorer.gui.mainwindow import MainWindow

    win = MainWindow(workspace=getattr(args, "workspace", None))
    win.show()
    first_window_s = time.perf_counter() - T0
    if os.environ.get("EMBEDDING_EXPLORER_TIMING"):
        print(f"first window after {first_window_s:.2f} s", file=sys.stderr)
    if getattr(args, "demo", False):
        win.open_demo()
    if getattr(args, "data", None):
        win.open_dataset(args.data)
    for enc in getattr(args, "encoder", None) or []:
        win.open_encoder(enc)
    if not getattr(args, "screenshot", None) and not getattr(args, "demo", False):
        # compile UMAP's numba kernels in the background so the first map is quick (TRAPS #2)
        QtCore.QTimer.singleShot(1500, win, win.warmup)
    if getattr(args, "screenshot", None):
        out = Path(args.screenshot)
        QtCore.QTimer.singleShot(0, lambda: _screenshot_and_quit(app, win, out))
    return app.exec()


def _screenshot_and_quit(app, win, out: Path) -> None:
    win.wait_until_idle(timeout_s=float(os.environ.get("EMBEDDING_EXPLORER_SCREENSHOT_TIMEOUT", "900")))
    app.processEvents()
    ok = win.grab().save(str(out))
    print(f"{'wrote' if ok else 'could not write'} {out}", file=sys.stderr)
    app.exit(0 if ok else 1)
