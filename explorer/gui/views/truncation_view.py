"""Truncation curve (Matryoshka representations, Kusupati et al. 2022): RankMe, k-NN and
linear-probe accuracy of the first m dimensions, m = 8, 16, 32, ... D, one curve per model.

    view = TruncationView(runner)
    view.start({"healthy": Z1, "collapsed": Z2}, labels)   # a job this view owns
    view.set_result({"healthy": rows, ...})               # rows of truncation_curve

A Matryoshka-trained model keeps its accuracy at small m; an ordinary one needs all of D.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from explorer.gui.views.analysis_plots import COLOURS, JobView, fill_table, fmt, plots_over_table, styled_plot
from explorer.core.jobs import Progress

PLOTS = (  # (plot key, title, [(metric key, line style)], scale)
    ("rankme", "RankMe of the first m dimensions", [("rankme", QtCore.Qt.PenStyle.SolidLine)], 1.0),
    ("accuracy", "accuracy %: — k-NN, - - - linear probe",
     [("knn_accuracy", QtCore.Qt.PenStyle.SolidLine), ("linear_probe_accuracy", QtCore.Qt.PenStyle.DashLine)], 100.0),
)
SYMBOLS = ("o", "s", "t", "d", "star", "p", "h", "+")
MIN_HEIGHT = 280  # plots + table: below this the tab scrolls
SYMBOL_CHAR = {"o": "●", "s": "■", "t": "▼", "d": "◆", "star": "★", "p": "⬟", "h": "⬢", "+": "+"}


def truncation_job(models: dict, labels=None, seed: int = 0, device=None):
    """Job -> {model: rows}: :func:`~explorer.metrics.representations.truncation_curve` of each
    model's vectors in turn (progress over all of them)."""
    from explorer.metrics.representations import truncation_curve

    out = {}
    names = list(models)
    for i, name in enumerate(names):
        gen = truncation_curve(models[name], labels, seed=seed, device=device)
        while True:
            try:
                p = next(gen)
            except StopIteration as stop:
                out[name] = stop.value
                break
            frac = (i + (p.fraction or 0.0)) / len(names)
            yield Progress(frac, 1.0, f"{name}: {p.message}")
    yield Progress(1.0, 1.0, "done")
    return out


class TruncationView(JobView):
    result_ready = QtCore.Signal(object)

    def __init__(self, runner=None, parent=None) -> None:
        super().__init__(runner, parent)
        self.result: Optional[dict] = None
        self.curves: dict = {}  # (model, metric key) -> PlotDataItem (x = m, log2 axis)
        self.plots: dict = {}
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        self.title = QtWidgets.QLabel("")
        self.title.setWordWrap(True)
        lay.addWidget(self.title)
        lay.addWidget(self.status)
        self.legend = QtWidgets.QLabel("")  # the models' colours, above the plots (never over the data)
        self.legend.setWordWrap(True)
        lay.addWidget(self.legend)
        split, self.graphics, self.table = plots_over_table(200, 400, MIN_HEIGHT)
        lay.addWidget(split, 1)
        note = QtWidgets.QLabel("A model trained for truncation (Matryoshka) keeps its accuracy at small m; "
                                "an ordinary one needs all of its dimensions.")
        note.setWordWrap(True)
        note.setStyleSheet("color: #555")
        lay.addWidget(note)

    def start(self, models: dict, labels=None, dataset_name: str = "", device=None, note: str = "") -> None:
        n = len(next(iter(models.values()))) if models else 0
        self.title.setText(f"<b>Truncation curve</b> of {', '.join(models)}"
                           + (f" on {dataset_name}" if dataset_name else "") + f" ({n:,} items)"
                           + (f" — {note}" if note else ""))
        self.run("Truncation curve of " + ", ".join(models), lambda: truncation_job(models, labels, device=device),
                 self.set_result, exclusive=f"truncation:{id(self)}")

    def set_result(self, res: dict) -> None:
        self.result = res
        self.graphics.clear()
        self.curves, self.plots = {}, {}
        shown = [(pk, t, series, scale) for pk, t, series, scale in PLOTS
                 if any(r[k] is not None for k, _st in series for rows in res.values() for r in rows)]
        dims = sorted({r["dims"] for rows in res.values() for r in rows})
        ticks = [(float(np.log2(m)), str(m)) for m in dims]
        self.legend.setText("   ".join(
            f"<span style='color:{COLOURS[i % len(COLOURS)]}'>{SYMBOL_CHAR[SYMBOLS[i % len(SYMBOLS)]]} {name}</span>"
            for i, name in enumerate(res)))
        first = None
        for col, (pkey, title, series, scale) in enumerate(shown):
            p = styled_plot(self.graphics, 0, col, title)
            for key, style in series:
                for i, (name, rows) in enumerate(res.items()):
                    x = np.log2([r["dims"] for r in rows])
                    y = np.asarray([np.nan if r[key] is None else r[key] * scale for r in rows])
                    c = COLOURS[i % len(COLOURS)]
                    self.curves[(name, key)] = p.plot(x, y, pen=pg.mkPen(c, width=2, style=style),
                                                      symbol=SYMBOLS[i % len(SYMBOLS)], symbolSize=8, symbolBrush=c,
                                                      symbolPen=pg.mkPen("w"), name=f"{name}: {key}")
            p.getAxis("bottom").setTicks([ticks, []])
            p.setLabel("bottom", "first m dimensions")
            if first is None:
                first = p
            else:
                p.setXLink(first)
            self.plots[pkey] = p
        headers = ["model", "m", "RankMe", "k-NN acc.", "probe acc."]
        cells = [[name, str(r["dims"]), fmt(r["rankme"], "{:.1f}"), fmt(r["knn_accuracy"], "{:.1%}"),
                  fmt(r["linear_probe_accuracy"], "{:.1%}")] for name, rows in res.items() for r in rows]
        fill_table(self.table, headers, cells)
        self.result_ready.emit(res)
