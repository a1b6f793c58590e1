#!/usr/bin/env python
"""Render the Analyse menu's screenshots offscreen from the bundled demo, in the window as it
opens on a 1280x800 screen (the smallest the app is laid out for):

    python scripts/make_analysis_screenshots.py [--out assets/screenshots] [--screen 1280x800]

Writes layers.png (layer sweep of the healthy model), truncation.png (all three sample models),
compatibility.png (healthy as the old model, dimcollapsed as the new one) and anchors.png (the
map with 60 anchors starred; the comparison opened in the tab beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "assets" / "screenshots"))
    ap.add_argument("--screen", default="1280x800", metavar="WxH")
    ap.add_argument("--only", nargs="*", default=None, help="some of: layers truncation compatibility anchors")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("XDG_CONFIG_HOME", tempfile.mkdtemp())
    w, h = (int(v) for v in args.screen.lower().split("x"))
    cfg = Path(tempfile.mkdtemp()) / "screen.json"
    cfg.write_text(json.dumps({"screens": [{"name": "s", "x": 0, "y": 0, "width": w, "height": h,
                                            "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": 1}]}))
    os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={cfg}"
    only = set(args.only or ("layers", "truncation", "compatibility", "anchors"))

    from explorer.gui import analysis_actions as analysis
    from explorer.gui.app import make_app
    from explorer.gui.mainwindow import MainWindow

    app = make_app()
    win = MainWindow(workspace=str(Path(tempfile.mkdtemp()) / "demo.h5"))
    win.show()
    win.open_demo()
    assert win.wait_until_idle(1800), "the demo did not finish"
    ids = list(win.session.models)
    healthy = next(i for i in ids if i.startswith("healthy"))
    dimcollapsed = next(i for i in ids if i.startswith("dimcollapsed"))

    def shot(name: str) -> None:
        assert win.wait_until_idle(1800), f"{name}: the jobs did not finish"
        app.processEvents()
        win.grab().save(str(out / f"{name}.png"))
        print("wrote", out / f"{name}.png", f"({win.width()}x{win.height()})")

    if "anchors" in only:
        win.selection.clear(source=None)
        analysis.compare_with_anchors(win, [healthy, dimcollapsed, next(i for i in ids if i.startswith("collapsed"))],
                                             k=60)
        win.wait_until_idle(1800)
        win.center_tabs.setCurrentIndex(0)  # the map with the anchors starred; the table is in its tab
        shot("anchors")
    if "layers" in only:
        analysis.open_layer_sweep(win, healthy)
        shot("layers")
    if "truncation" in only:
        analysis.open_truncation(win, ids)
        shot("truncation")
    if "compatibility" in only:
        analysis.open_compatibility(win, healthy, dimcollapsed)
        shot("compatibility")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
