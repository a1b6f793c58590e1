"""The window fits a 1280x800 screen: it opens at no more than 90% of the screen, can be made
that small, and opening a Compare tab (in a scroll area) never grows it. Run in a fresh
process, since the offscreen screen's size is fixed when Qt starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("PySide6")

SCRIPT = r"""
import json, os, sys, tempfile
import numpy as np
from explorer.gui.app import make_app
from explorer.gui.mainwindow import MainWindow
app = make_app()
d = tempfile.mkdtemp()
w = MainWindow(workspace=d + "/ws.h5")
w.method_combo.setCurrentText("pca"); w.projection.method = "pca"
w.show(); app.processEvents()
out = {"screen": [app.primaryScreen().availableGeometry().width(), app.primaryScreen().availableGeometry().height()],
       "first": [w.width(), w.height()], "min": [w.minimumSizeHint().width(), w.minimumSizeHint().height()]}
Z = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32)
np.save(d + "/a.npy", Z)
w.open_dataset(d + "/a.npy"); assert w.wait_until_idle(60)
w.selection.set_focus(0, source=None)  # the inspector with its neighbours must not widen the window
for _ in range(3):
    app.processEvents()
out["focused"] = [w.width(), w.height()]
w.session.add_model(None, name="B"); w.session.apply_embedding("B", "k", 2 * Z)
w.session.apply_layout("B", "pca", Z[:, :2], {})
assert w.wait_until_idle(60)
v = w.compare_models(["precomputed", "B"])
for _ in range(5):
    app.processEvents(); w.wait_until_idle(60)
out["compare"] = [w.width(), w.height()]
w._close_tab(w.tab_index(v)); app.processEvents()
out["closed"] = [w.width(), w.height()]
w.runner.cancel_all(); w.runner.wait(10000)
print("RESULT " + json.dumps(out))
"""


@pytest.mark.parametrize("screen", [(1280, 800), (1920, 1080)])
def test_window_fits_the_screen_and_compare_never_grows_it(tmp_path, screen):
    cfg = tmp_path / "screen.json"
    cfg.write_text(json.dumps({"screens": [{"name": "s", "x": 0, "y": 0, "width": screen[0], "height": screen[1],
                                            "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": 1}]}))
    env = {**os.environ, "QT_QPA_PLATFORM": f"offscreen:configfile={cfg}",
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line, r.stderr[-2000:]
    out = json.loads(line[7:])
    assert out["screen"] == list(screen)
    assert out["first"][0] <= 0.9 * screen[0] + 1 and out["first"][1] <= 0.9 * screen[1] + 1
    assert out["min"][0] <= 0.9 * screen[0] and out["min"][1] <= 0.9 * screen[1]
    assert out["focused"] == out["first"]
    assert out["compare"] == out["first"] and out["closed"] == out["first"]
