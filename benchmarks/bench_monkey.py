"""The long random walk: an afternoon's worth of user actions through the real window,
offscreen, with the invariants of tests/gui/monkey.py checked after every step.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_monkey.py --steps 500 --seed 0 [--umap]

Prints the number of steps, the actions taken and the time per step (median)."""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "gui"))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--umap", action="store_true", help="let the walk switch to UMAP maps too (slower)")
    ap.add_argument("--skip", default="", help="comma-separated action names to leave out (e.g. save_and_reopen)")
    a = ap.parse_args()
    os.environ.setdefault("XDG_CONFIG_HOME", tempfile.mkdtemp(prefix="ee-monkey-config-"))
    from monkey import Walk

    from explorer.gui.app import make_app
    from explorer.gui.mainwindow import MainWindow

    make_app()
    folder = Path(tempfile.mkdtemp(prefix="ee-monkey-"))
    w = MainWindow(workspace=str(folder / "ws.h5"))
    w.method_combo.setCurrentText("pca")
    w.projection.method = "pca"
    w.show()
    walk = Walk(w, folder, seed=a.seed, skip=tuple(filter(None, a.skip.split(","))))
    walk.umap = a.umap
    times = []
    for i in range(a.steps):
        t0 = time.perf_counter()
        walk.step()
        times.append(time.perf_counter() - t0)
    walk.close()
    times.sort()
    print(f"{a.steps} steps, seed {a.seed}: invariants held after every step; "
          f"median {times[len(times) // 2] * 1000:.0f} ms/step, max {times[-1]:.1f} s")
    print("actions:", dict(collections.Counter(walk.log)))
    print("final: dataset", w.session.dataset and w.session.dataset.name, "models", list(w.session.models))
    w.runner.cancel_all()
    w.runner.wait(10000)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
