#!/usr/bin/env python
"""Render the README's screenshots offscreen from the bundled demo.

    QT_QPA_PLATFORM=offscreen python scripts/make_screenshots.py [--out assets/screenshots]
    python scripts/make_screenshots.py --screen 1280x800   # the window as it opens on that screen
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "assets" / "screenshots"))
    ap.add_argument("--screen", metavar="WxH", help="an offscreen screen of this size; the window sizes itself "
                    "to it and only main_window_WxH.png and compare_WxH.png are written")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("XDG_CONFIG_HOME", tempfile.mkdtemp())
    if args.screen:
        import json

        w, h = (int(v) for v in args.screen.lower().split("x"))
        cfg = Path(tempfile.mkdtemp()) / "screen.json"
        cfg.write_text(json.dumps({"screens": [{"name": "s", "x": 0, "y": 0, "width": w, "height": h,
                                                "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": 1}]}))
        os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={cfg}"
        return _at_screen(out, args.screen)
    from explorer.gui.app import make_app
    from explorer.gui.mainwindow import MainWindow

    app = make_app()
    win = MainWindow(workspace=str(Path(tempfile.mkdtemp()) / "demo.h5"))
    win.resize(1500, 950)
    win.show()
    win.open_demo()
    assert win.wait_until_idle(900), "the demo did not finish"
    app.processEvents()
    win.grab().save(str(out / "main_window.png"))

    win.tabs.setCurrentWidget(win.diagpanel)
    app.processEvents()
    win.grab().save(str(out / "diagnostics.png"))

    # clusters named by their majority digit, with the density contours (View menu)
    win.tabs.setCurrentWidget(win.inspector)
    jobs_dock = win.jobs_panel.parentWidget()
    jobs_dock.hide()
    win.resize(1200, 750)
    win.find_clusters()
    win.wait_until_idle(300)
    win.contours_action.setChecked(True)
    app.processEvents()
    win.grab().save(str(out / "clusters.png"))
    win.contours_action.setChecked(False)
    jobs_dock.show()

    ids = list(win.session.models)
    healthy = next(i for i in ids if i.startswith("healthy"))
    other = next(i for i in ids if i.startswith("dimcollapsed"))
    win.resize(1900, 1000)
    win.compare_models([healthy, other])
    win.wait_until_idle(600)
    app.processEvents()
    win.grab().save(str(out / "compare_window.png"))

    # a checkpoint timeline of the sample run, then a short SIGReg fine-tune of the collapsed model
    from explorer.finetune import FinetuneParams
    from explorer.gui.views.finetune_panel import start_finetune
    from explorer.core.resources import sample_data_dir

    win.resize(1500, 950)
    tv = win.open_timeline(str(sample_data_dir() / "checkpoints" / "run"), probe_size=400)
    win.wait_until_idle(900)
    app.processEvents()
    tv.grab().save(str(out / "timeline.png"))
    collapsed = next(i for i in ids if i.startswith("collapsed"))
    panel = start_finetune(win, collapsed, FinetuneParams(objective="sigreg", epochs=6),
                           Path(tempfile.mkdtemp()) / "collapsed_sigreg.pt")
    win.wait_until_idle(900)
    app.processEvents()
    panel.resize(1400, 620)
    panel.grab().save(str(out / "finetune.png"))
    print("wrote", ", ".join(p.name for p in sorted(out.glob("*.png"))))
    return 0


def _at_screen(out: Path, tag: str) -> int:
    from explorer.gui.app import make_app
    from explorer.gui.mainwindow import MainWindow

    app = make_app()
    win = MainWindow(workspace=str(Path(tempfile.mkdtemp()) / "demo.h5"))  # sizes itself to the screen
    win.show()
    win.open_demo()
    assert win.wait_until_idle(900), "the demo did not finish"
    app.processEvents()
    win.grab().save(str(out / f"main_window_{tag}.png"))
    ids = list(win.session.models)
    healthy = next(i for i in ids if i.startswith("healthy"))
    other = next(i for i in ids if i.startswith("dimcollapsed"))
    win.compare_models([healthy, other])
    win.wait_until_idle(600)
    app.processEvents()
    win.grab().save(str(out / f"compare_{tag}.png"))
    print(f"wrote main_window_{tag}.png and compare_{tag}.png at {win.width()}x{win.height()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
