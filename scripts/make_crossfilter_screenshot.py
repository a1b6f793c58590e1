#!/usr/bin/env python
"""Render ``assets/screenshots/crossfilter.png`` offscreen from the bundled demo: the Charts dock
with three charts of the digits' metadata, a brush on ``ink`` and one on ``label``, the map
greyed outside them, and a box selection whose counts show as orange bars.

    QT_QPA_PLATFORM=offscreen python scripts/make_crossfilter_screenshot.py [--out assets/screenshots]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "assets" / "screenshots"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("XDG_CONFIG_HOME", tempfile.mkdtemp())
    import numpy as np
    from PySide6 import QtCore

    from explorer.gui.app import make_app
    from explorer.gui.mainwindow import MainWindow

    app = make_app()
    win = MainWindow(workspace=str(Path(tempfile.mkdtemp()) / "demo.h5"))
    win.resize(1200, 820)
    win.show()
    win.method_combo.setCurrentText("pca")
    win.projection.method = "pca"
    win.open_demo()
    assert win.wait_until_idle(900), "the demo did not finish"
    win.selection.set_focus(None)
    win.findChild(type(win.charts_dock), "browser").hide()
    win.charts_dock.show()
    win.charts_dock.raise_()
    app.processEvents()
    win.resizeDocks([win.charts_dock], [310], QtCore.Qt.Vertical)
    details = win.findChild(type(win.charts_dock), "details")
    win.resizeDocks([details], [330], QtCore.Qt.Horizontal)
    for c in ("ink", "label", "stroke_width"):
        win.charts.add_chart(c)
    ink = win.charts.views["ink"]
    ink.drag(QtCore.QPointF(0.30, 0), QtCore.QPointF(0.45, 0), True)
    win.charts.crossfilter.set_keep("label", ["0", "2", "3", "5", "6", "8"])
    xy = win.mapview._xy
    x0, x1 = np.percentile(xy[:, 0], [55, 95])
    y0, y1 = np.percentile(xy[:, 1], [40, 95])
    win.mapview.select_in_rect(x0, x1, y0, y1)
    app.processEvents()
    win.resizeDocks([win.charts_dock], [310], QtCore.Qt.Vertical)
    app.processEvents()
    win.mapview.points.wait_refined(5)
    app.processEvents()
    path = out / "crossfilter.png"
    win.grab().save(str(path))
    print("wrote", path, win.charts.status.text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
