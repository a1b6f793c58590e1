"""Cross-filter brushing at 1M points (issue 19): one brush update, end to end, under 50 ms?

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_crossfilter.py [--n 1000000] [--reps 15]

Offscreen. A map of N points (10 classes, 1600x1000 canvas) and the Charts panel with three
charts (two numeric histograms, one category column of 20 values) share one selection, wired
as the window wires them (brush -> map filter). One *brush update* is a drag step on the first
histogram that moves the brush by one bar (so the mask changes every time), through
``ChartView.drag``: the crossfilter update (only the rows of the bars that entered or left the
brush are visited, crossfilter.js's way; the full pass over all rows is timed too), the three
charts' bars, the map's greying (``MapView.set_filter``) and a full repaint of the map canvas
(``canvas.grab()``, the rasteriser at full resolution). A second chart carries a brush
throughout, so each update ANDs two brushes. Medians of ``--reps`` updates; the parts are timed
separately too.

Peer in the same run: the same mask and crossed counts with plain numpy (``keep[bin_index]``
per chart, then ``np.bincount`` of the passing rows per chart), the design one would write
first.

The machine's 2 cores are shared with other work: the load average is printed, and the CPU
time the process spent per update (all its threads) next to the wall time, which under
contention is the larger by the share of the cores the process did not get.

Prints as its last line: ``1M points, 3 charts: <ms> ms per brush update, <ms> ms CPU
(crossfilter <ms>, numpy peer <ms>)``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's explorer

import numpy as np  # noqa: E402

W, H = 1600, 1000


class _Dataset:
    def __init__(self, cols):
        self._cols = cols
        self.metadata = cols

    def columns(self):
        return dict(self._cols)

    def __len__(self):
        return len(next(iter(self._cols.values())))


class _Session:
    """What the Charts panel binds to: a dataset's columns and the shared selection."""

    def __init__(self, ds):
        from explorer.core.events import Signal
        from explorer.app.selection import Selection

        self.dataset = ds
        self.dataset_changed, self.columns_changed = Signal(), Signal()
        self.selection = Selection(len(ds))


def numpy_peer(cf, reps):
    """Mask and crossed counts with plain numpy, for the same brushes."""
    names = list(cf.charts)
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        passes = {c: cf.keep(c)[cf.charts[c].index] for c in names if cf.keep(c) is not None}
        mask = np.logical_and.reduce(list(passes.values())) if passes else None
        for c in names:
            others = [p for k, p in passes.items() if k != c]
            m = np.logical_and.reduce(others) if others else None
            idx = cf.charts[c].index
            np.bincount(idx if m is None else idx[m], minlength=cf.charts[c].n_bars)
        out.append((time.perf_counter() - t0) * 1e3)
        assert mask is not None
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=15)
    args = ap.parse_args()
    from PySide6 import QtCore

    from explorer.gui.app import make_app
    from explorer.gui.views.charts_panel import ChartsPanel
    from explorer.gui.views.mapview import MapView

    app = make_app()
    n = args.n
    rng = np.random.default_rng(0)
    lab = rng.integers(0, 10, n)
    centres = rng.normal(size=(10, 2)) * 6
    xy = (centres[lab] + rng.normal(size=(n, 2))).astype(np.float32)
    cols = {"score": rng.normal(size=n) + lab * 0.3, "size": rng.gamma(2.0, 1.0, n),
            "group": np.array([f"g{i:02d}" for i in range(20)], dtype=object)[rng.integers(0, 20, n)]}
    sess = _Session(_Dataset(cols))

    v = MapView()
    v.show()
    v.resize(W, H)
    v.toolbar.hide()
    v.set_layout(xy)
    v.set_categorical(lab, [f"class {i}" for i in range(10)])
    v.legend.hide()
    v.bind_selection(sess.selection)
    panel = ChartsPanel()
    panel.resize(1200, 260)
    panel.show()
    t0 = time.perf_counter()
    panel.bind(sess)
    charts = [panel.add_chart(c) for c in cols]
    t_bin = time.perf_counter() - t0
    panel.brush_changed.connect(v.set_filter)
    app.processEvents()
    canvas = v.graphics
    canvas.grab()
    v.points.wait_refined(10)

    cf = panel.crossfilter
    cf.set_keep("group", [f"g{i:02d}" for i in range(0, 20, 2)])  # a second brush, held
    first = charts[0]
    e = first.binning.edges
    mid = len(e) // 2
    load0 = os.getloadavg()[0]
    totals, cpu, parts = [], [], {"crossfilter": [], "full pass": [], "bars": [], "set_filter": [], "repaint": []}
    for r in range(args.reps + 2):
        lo, hi = e[mid - 4 + (r % 2)], e[mid + 3 + (r % 2)]  # move the brush by one bar
        t0, c0 = time.perf_counter(), time.process_time()
        first.drag(QtCore.QPointF(lo + 1e-9, 0), QtCore.QPointF(hi - 1e-9, 0), False)
        canvas.grab()
        dt, dc = (time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3
        assert v.filter_mask is not None
        if r >= 2:  # the first two warm the kernels and caches
            totals.append(dt)
            cpu.append(dc)
            # the parts, each timed on its own, for the next step of the same drag
            nxt = first.binning.bars_in_range(e[mid - 4 + ((r + 1) % 2)] + 1e-9, e[mid + 3 + ((r + 1) % 2)] - 1e-9)
            t1 = time.perf_counter()
            with cf.changed.blocked():
                cf.set_keep("score", nxt)
            mask = cf.mask()
            for c in cols:
                cf.counts(c)
            parts["crossfilter"].append((time.perf_counter() - t1) * 1e3)
            cf._live = None  # the full pass (a new brush, or a changed search)
            t1 = time.perf_counter()
            cf._result = None
            cf.mask()
            parts["full pass"].append((time.perf_counter() - t1) * 1e3)
            t1 = time.perf_counter()
            for ch in charts:
                ch.refresh(sess.selection.indices)
            parts["bars"].append((time.perf_counter() - t1) * 1e3)
            t1 = time.perf_counter()
            v.set_filter(mask)
            parts["set_filter"].append((time.perf_counter() - t1) * 1e3)
            t1 = time.perf_counter()
            canvas.grab()
            parts["repaint"].append((time.perf_counter() - t1) * 1e3)
            with cf.changed.blocked():  # back to this step's brush, so the drag goes on alternating
                cf.set_keep("score", first.binning.bars_in_range(lo + 1e-9, hi - 1e-9))
            v.set_filter(cf.mask())
    peer = numpy_peer(cf, args.reps)
    grey = int((~v.filter_mask).sum())
    med = statistics.median
    print(f"N = {n:,}, charts: {', '.join(f'{c} ({cf.charts[c].kind}, {cf.charts[c].n_bars} bars)' for c in cols)}")
    print(f"binning the three columns once: {t_bin:.2f} s; canvas {canvas.width()}x{canvas.height()}; "
          f"{grey:,} points greyed at the last update; render mode {v.render_stats.mode}")
    print(f"load average {load0:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared with other work)")
    print(f"brush update end to end: median {med(totals):.1f} ms wall (min {min(totals):.1f}, max {max(totals):.1f}) "
          f"over {len(totals)}; CPU time of this process {med(cpu):.1f} ms (all its threads)")
    for k, xs in parts.items():
        print(f"  {k:12s} median {med(xs):6.1f} ms")
    print(f"  numpy peer (mask + crossed counts) median {med(peer):.1f} ms")
    print(f"{n / 1e6:g}M points, 3 charts: {med(totals):.1f} ms per brush update, {med(cpu):.1f} ms CPU "
          f"(crossfilter {med(parts['crossfilter']):.1f}, numpy peer {med(peer):.1f})")


if __name__ == "__main__":
    main()
