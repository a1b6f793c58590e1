"""Opening a very large workspace in the app: time to the first map and peak memory.

    python benchmarks/bench_large_workspace.py --n 10000000 --dim 768 --path /tmp/big.h5 [--keep]

1. Writes a synthetic workspace: one embeddings record of N x D float16 vectors (32 Gaussian
   clusters, unit noise rows drawn from a bank of 16k), streamed into the file by ``Workspace.put`` with an array source
   (the writer's memory is one block). Reports the time and the file size.
2. Opens it in a fresh process with the app's window (offscreen): the workspace as a dataset
   (``--data big.h5``: its vectors read out of core), the PCA map fitted on a sample and every
   point placed in one streaming pass, drawn in density mode. Reports the time from process
   start to the first map on screen and the peak resident memory (``ru_maxrss``), and the same
   without the window (the core path alone).
3. Deletes the file (unless --keep).

One run each (a 10M pass reads 15 GB); the machine's 2 cores are shared with other work.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from explorer.store import ArraySource  # noqa: E402


class Synthetic(ArraySource):
    """N x D float16 rows of 32 Gaussian clusters, made on demand (deterministic per block)."""

    BLOCK = 8192

    def __init__(self, n: int, d: int) -> None:
        super().__init__((n, d), np.float16)
        rng = np.random.default_rng(1)
        self.centres = (rng.standard_normal((32, d), dtype=np.float32) * 2.0)
        # noise rows drawn from a bank (drawing 7.7G fresh normals would take most of the run)
        self.bank = rng.standard_normal((16384, d), dtype=np.float32)

    def _block(self, b: int) -> np.ndarray:
        a = b * self.BLOCK
        m = min(self.shape[0], a + self.BLOCK) - a
        rng = np.random.default_rng(1000 + b)
        lab = rng.integers(0, 32, m)
        x = self.bank[rng.integers(0, len(self.bank), m)]
        x += self.centres[lab]
        return x.astype(np.float16)

    def read(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, self.shape[1]), np.float16)
        b = start // self.BLOCK
        while b * self.BLOCK < stop:
            blk = self._block(b)
            a = b * self.BLOCK
            lo, hi = max(start, a), min(stop, a + len(blk))
            out[lo - start:hi - start] = blk[lo - a:hi - a]
            b += 1
        return out


def generate(path: Path, n: int, d: int) -> dict:
    from explorer.store import Workspace

    if path.exists():
        path.unlink()
    t0 = time.perf_counter()
    ws = Workspace(path)
    ws.put("embeddings", "synthetic-%dx%d" % (n, d), {"vectors": Synthetic(n, d)},
           {"model": "synthetic", "n": n, "n_items": n, "dim": d, "stored_dtype": "float16",
            "stored_as": {"vectors": "float16"}, "launcher": "benchmark"})
    return {"write_s": round(time.perf_counter() - t0, 1), "file_gb": round(path.stat().st_size / 1e9, 2),
            "writer_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def open_in_app(path: str) -> dict:
    """(child process) the window, the workspace as a dataset, until the PCA map is drawn."""
    t0 = float(os.environ["BENCH_T0"])
    from PySide6 import QtWidgets

    from explorer.gui.mainwindow import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    win = MainWindow(workspace=str(Path(path).with_name("session-cache.h5")))
    win.resize(1200, 750)
    win.show()
    t_window = time.time() - t0
    win.mapview.set_render_mode("density")
    done: dict = {}

    def check() -> None:
        s = win.pipeline.session
        if s.current is None or "pca" not in s.model().layouts or done:
            return
        app.processEvents()
        img = win.mapview.grab()
        done["first_map_s"] = time.time() - t0
        done["info"] = s.model().layout_info["pca"].get("summary")
        if os.environ.get("BENCH_SHOT"):
            img.save(os.environ["BENCH_SHOT"])
        app.quit()

    from PySide6 import QtCore

    timer = QtCore.QTimer()
    timer.timeout.connect(check)
    timer.start(100)
    win.open_dataset(path)
    QtCore.QTimer.singleShot(1_800_000, app.quit)
    app.exec()
    return {"window_s": round(t_window, 1), "first_map_s": round(done.get("first_map_s", float("nan")), 1),
            "summary": done.get("info"),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def open_headless(path: str) -> dict:
    """(child process) the same without the window: dataset -> session -> PCA map."""
    t0 = float(os.environ["BENCH_T0"])
    from explorer.data import open_dataset
    from explorer.core.jobs import drain
    from explorer.app.session import Session, projection_job

    ds = open_dataset(path)
    s = Session(str(Path(path).with_name("session-cache.h5")))
    s.set_dataset(ds)
    m = s.model()
    key, Z = drain(s.embed_job(m.id))
    s.apply_embedding(m.id, key, Z)

    class St:
        n_neighbors, min_dist, metric, seed, dims = 15, 0.1, "cosine", 0, 2

    coords, info = drain(projection_job(s, m.id, "pca", St()))
    return {"first_map_s": round(time.time() - t0, 1), "summary": info["summary"],
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def child(mode: str, path: str, shot: str = "") -> dict:
    env = dict(os.environ, BENCH_T0=repr(time.time()), QT_QPA_PLATFORM="offscreen", BENCH_SHOT=shot,
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    r = subprocess.run([sys.executable, __file__, "--child", mode, "--path", path], env=env, capture_output=True,
                       text=True, timeout=3600)
    if r.returncode != 0:
        raise SystemExit(r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--path", default="/tmp/bench-large-workspace.h5")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--reuse", action="store_true", help="use the file at --path if it is there")
    ap.add_argument("--shot", default="", help="save the map view to this PNG")
    ap.add_argument("--child", choices=("app", "headless"))
    a = ap.parse_args()
    if a.child:
        print(json.dumps(open_in_app(a.path) if a.child == "app" else open_headless(a.path)))
        return
    path = Path(a.path)
    out = {"n": a.n, "dim": a.dim}
    try:
        if not (a.reuse and path.exists()):
            out["generate"] = generate(path, a.n, a.dim)
            print(json.dumps(out), flush=True)
        out["headless"] = child("headless", str(path))
        print(json.dumps(out), flush=True)
        out["app"] = child("app", str(path), a.shot)
        print(json.dumps(out), flush=True)
    finally:
        if not a.keep:
            for p in (path, path.with_name("session-cache.h5")):
                if p.exists():
                    p.unlink()


if __name__ == "__main__":
    main()
