"""Map view speed and memory, against pyqtgraph's ScatterPlotItem in the same run (issue 4).

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_view.py [--quick]

Offscreen, plot canvas 1600x1000 for both (MapView's toolbar and legend hidden), 10 class colours. A *frame* is one pan (or zoom)
of the view range followed by a full repaint of the canvas (``canvas.grab()``), measured the
same way for both. Medians of several frames. The MapView at 10M draws a level-of-detail frame
while panning (every k-th point, weight k) and refines in a worker thread; the refine's render
time is reported too. ScatterPlotItem at 10M is skipped (minutes per frame).

Prints as its last line: ``1M points: <ms> ms/frame pan, ScatterPlotItem <ms> ms/frame``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402

W, H = 1600, 1000
K = 10


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def make_data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(K, 2)) * 6
    spread = rng.uniform(0.4, 1.5, K)
    lab = rng.integers(0, K, n)
    xy = centres[lab] + rng.normal(size=(n, 2)).astype(np.float32) * spread[lab, None]
    return xy.astype(np.float32), lab


def frames(canvas, vb, kind: str, reps: int, app) -> list[float]:
    out = []
    for i in range(reps):
        t0 = time.perf_counter()
        if kind == "pan":
            vr = vb.viewRect()
            d = 0.02 * vr.width() * (1 if i % 2 == 0 else -1)
            vb.translateBy(x=d)
        else:
            s = 0.97 if i % 2 == 0 else 1 / 0.97
            vb.scaleBy((s, s))
        canvas.grab()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def bench_mapview(n, reps, app, out):
    from explorer.gui.views.mapview import MapView

    xy, lab = make_data(n)
    v = MapView()
    v.show()
    v.resize(W, H)
    v.toolbar.hide()  # the offscreen screen is 1600x1000: give the whole of it to the canvas
    app.processEvents()
    t0 = time.perf_counter()
    v.set_layout(xy)
    v.set_categorical(lab, [f"class {i}" for i in range(K)])
    t_set = time.perf_counter() - t0
    v.legend.hide()
    app.processEvents()
    v.graphics.grab()
    v.points.wait_refined(10)
    res = {"set_layout_s": t_set, "canvas": (v.graphics.width(), v.graphics.height())}
    for kind in ("pan", "zoom"):
        fr = frames(v.graphics, v.vb, kind, reps, app)
        res[kind] = statistics.median(fr)
        res[kind + "_stride"] = v.render_stats.stride
    if v.render_stats.stride > 1:
        v.points.wait_refined(20)
        res["refine_ms"] = v.render_stats.ms
    out[n] = res
    return v, xy, lab


def bench_scatter(n, reps, app):
    import pyqtgraph as pg

    xy, lab = make_data(n)
    pw = pg.PlotWidget()
    pw.resize(W, H)
    pw.show()
    app.processEvents()
    colours = [pg.mkBrush(c) for c in ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                       "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#23238e")]
    brushes = np.array(colours, dtype=object)[lab]
    t0 = time.perf_counter()
    sp = pg.ScatterPlotItem(x=xy[:, 0], y=xy[:, 1], size=2, pen=None, brush=brushes)
    pw.addItem(sp)
    pw.grab()
    t_build = time.perf_counter() - t0
    vb = pw.getViewBox()
    res = {"build_s": t_build}
    for kind in ("pan", "zoom"):
        res[kind] = statistics.median(frames(pw, vb, kind, reps, app))
    pw.close()
    pw.deleteLater()
    app.processEvents()
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="skip 10M points")
    args = ap.parse_args()

    from PySide6 import QtWidgets

    from explorer.gui.views import pointraster

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    t0 = time.perf_counter()
    pointraster.warm_up()
    print(f"numba kernels ready in {time.perf_counter() - t0:.1f} s (compiled or loaded from cache)")

    mv: dict = {}
    # -- memory at 1M (first, before anything big)
    rss0 = rss_mb()
    v, xy, lab = bench_mapview(1_000_000, 9, app, mv)
    rss1 = rss_mb()
    idx = v._index
    held = sum(a.nbytes for a in (v._coords, v._xy, idx.x, idx.y, idx.perm, idx.inv, idx.start,
                                  v._codes_pal, v._entry_of_point, v._cidx_sorted, v.points._img))
    print(f"memory at 1M points on screen: RSS +{rss1 - rss0:.0f} MB (data generation included: "
          f"{xy.nbytes / 2**20:.0f} MB coords + {lab.nbytes / 2**20:.0f} MB labels); "
          f"arrays the view holds: {held / 2**20:.0f} MB")

    # -- recolour 1M: switch the colour-by column, then one repaint
    rng = np.random.default_rng(1)
    cols = [rng.integers(0, K, len(lab)), lab, rng.integers(0, 7, len(lab))]
    setter, total = [], []
    for i in range(7):
        c = cols[i % len(cols)]
        t0 = time.perf_counter()
        v.set_categorical(c, [f"c{j}" for j in range(int(c.max()) + 1)])
        t1 = time.perf_counter()
        v.graphics.grab()
        t2 = time.perf_counter()
        setter.append((t1 - t0) * 1e3)
        total.append((t2 - t0) * 1e3)
    vals = xy[:, 0] * xy[:, 1]
    cont = []
    for i in range(5):
        t0 = time.perf_counter()
        v.set_continuous(vals if i % 2 == 0 else xy[:, 0], "viridis")
        v.graphics.grab()
        cont.append((time.perf_counter() - t0) * 1e3)
    print(f"recolour 1M (categorical column switch): {statistics.median(setter):.1f} ms setter, "
          f"{statistics.median(total):.1f} ms setter + repaint; continuous column + repaint "
          f"{statistics.median(cont):.1f} ms")

    # -- hover pick at 1M
    v.set_categorical(lab)
    v.reset_view()
    v.graphics.grab()
    qs = rng.uniform([50, 50], [W - 50, H - 50], size=(300, 2))
    pick = []
    for qx, qy in qs:
        t0 = time.perf_counter()
        v.pick(qx, qy)
        pick.append((time.perf_counter() - t0) * 1e3)
    print(f"hover pick at 1M: median {statistics.median(pick):.3f} ms, max {max(pick):.2f} ms "
          f"(300 random positions)")
    v.close()
    v.deleteLater()
    del v
    app.processEvents()

    sp: dict = {}
    bench_mapview(100_000, 9, app, mv)
    sp[100_000] = bench_scatter(100_000, 5, app)
    sp[1_000_000] = bench_scatter(1_000_000, 3, app)
    if not args.quick:
        bench_mapview(10_000_000, 5, app, mv)

    print()
    print(f"frame = pan/zoom of the range + full repaint of a {W}x{H} canvas, median ms")
    print(f"{'N':>10} {'MapView pan':>12} {'zoom':>8} {'LOD k':>6} {'Scatter pan':>12} {'zoom':>8} "
          f"{'pan ratio':>10}")
    for n in sorted(mv):
        m = mv[n]
        s = sp.get(n)
        sp_pan = f"{s['pan']:.1f}" if s else "skipped"
        sp_zoom = f"{s['zoom']:.1f}" if s else "-"
        ratio = f"{s['pan'] / m['pan']:.1f}x" if s else "-"
        print(f"{n:>10,} {m['pan']:>12.1f} {m['zoom']:>8.1f} {m['pan_stride']:>6} {sp_pan:>12} "
              f"{sp_zoom:>8} {ratio:>10}")
    for n in sorted(mv):
        extra = f", full-quality refine {mv[n]['refine_ms']:.0f} ms in a worker" if "refine_ms" in mv[n] else ""
        print(f"MapView {n:,}: set_layout + set_categorical {mv[n]['set_layout_s'] * 1e3:.0f} ms{extra}")
    for n in sorted(sp):
        print(f"ScatterPlotItem {n:,}: build + first frame {sp[n]['build_s']:.2f} s")
    print(f"1M points: {mv[1_000_000]['pan']:.1f} ms/frame pan, ScatterPlotItem "
          f"{sp[1_000_000]['pan']:.1f} ms/frame")


if __name__ == "__main__":
    main()
