"""Layer sweep: the collapse and probe metrics of one encoder's layers against depth.

    view = LayersView(runner)
    view.start(dataset, encoder, layers, params, model_id)   # a job: one pass, forward hooks
    view.set_result(res)            # or show a finished explorer.metrics.layers.layer_sweep result
    view.layer_clicked.connect(...)  # a layer's name: the window opens that layer's map

Three x-linked plots over the layers (names on the axis): the rank (RankMe and the dimensions
for 99% of the variance, both counts of dimensions), SIGReg, and the k-NN / linear-probe
accuracy. The layers from the first one named like a projector or head are shaded: collapse
often hides there. A table below gives every number; clicking a point or double-clicking a
row opens that layer's map.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from explorer.gui.views.analysis_plots import COLOURS, JobView, fill_table, fmt, plots_over_table, styled_plot

PROJECTOR_BRUSH = (221, 132, 82, 38)
MAX_TICKS = 12  # layer names shown on the axis before every k-th is skipped
MIN_HEIGHT = 330  # plots + table: below this the tab scrolls
PLOTS = (  # (title, [(key, label, colour, symbol, scale)])
    ("rank", [("rankme", "RankMe", COLOURS[0], "o", 1.0), ("dims_99", "dims for 99% of variance", COLOURS[1], "s", 1.0)]),
    ("sigreg", [("sigreg", "SIGReg (lower: closer to Gaussian)", COLOURS[4], "t", 1.0)]),
    ("accuracy", [("knn_accuracy", "k-NN accuracy %", COLOURS[2], "o", 100.0),
                  ("linear_probe_accuracy", "linear-probe accuracy %", COLOURS[3], "d", 100.0)]),
)
SYMBOL_CHAR = {"o": "●", "s": "■", "t": "▼", "d": "◆"}


def short_names(layers) -> list:
    """The last part of each layer's name when that is unique and not a bare number, else the
    last two parts (``features.block1`` -> ``block1``, ``projector.0`` stays)."""
    def last(name: str, k: int) -> str:
        return ".".join(name.split(".")[-k:])

    out = []
    for name in layers:
        tail = last(name, 1)
        unique = sum(last(n, 1) == tail for n in layers) == 1
        out.append(tail if unique and not tail.isdigit() else last(name, 2))
    return out


class LayersView(JobView):
    layer_clicked = QtCore.Signal(str)
    result_ready = QtCore.Signal(object)

    def __init__(self, runner=None, parent=None) -> None:
        super().__init__(runner, parent)
        self.result: Optional[dict] = None
        self.model_id: Optional[str] = None
        self.curves: dict = {}  # metric key -> PlotDataItem (x = layer index)
        self.plots: dict = {}
        self.regions: list = []
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        self.title = QtWidgets.QLabel("")
        self.title.setWordWrap(True)
        lay.addWidget(self.title)
        lay.addWidget(self.status)
        split, self.graphics, self.table = plots_over_table(260, 440, MIN_HEIGHT)
        self.table.setToolTip("Double-click a layer to open its map")
        self.table.cellDoubleClicked.connect(self._row_activated)
        lay.addWidget(split, 1)
        hint = QtWidgets.QLabel("Click a point (or double-click a row) to open that layer's map. "
                                "Shaded: the projector / head.")
        hint.setStyleSheet("color: #555")
        lay.addWidget(hint)

    # ------------------------------------------------------------------ job
    def start(self, dataset, encoder, layers, params=None, model_id: Optional[str] = None,
              device: Optional[str] = None) -> None:
        """Sweep ``layers`` of ``encoder`` on ``dataset`` in a job this view owns."""
        from explorer.metrics.layers import layer_sweep

        self.model_id = model_id or encoder.name
        self.title.setText(f"<b>Layer sweep of {self.model_id}</b> on {dataset.name} ({len(dataset):,} items, "
                           f"{len(layers)} layers)")
        self.run(f"Layer sweep of {self.model_id}",
                 lambda: layer_sweep(dataset, encoder, layers, params=params, device=device),
                 self.set_result, exclusive=f"layers:{id(self)}")

    # ------------------------------------------------------------------ result
    def set_result(self, res: dict) -> None:
        self.result = res
        rows = res["layers"]
        names = [r["layer"] for r in rows]
        x = np.arange(len(rows), dtype=np.float64)
        # every other name one line lower, so neighbouring names never overlap
        ticks = [(float(i), ("\n" if i % 2 else "") + name) for i, name in enumerate(short_names(names))]
        stride = max(1, math.ceil(len(ticks) / MAX_TICKS))
        start = res.get("projector_starts")
        self.graphics.clear()
        self.curves, self.plots, self.regions = {}, {}, []
        first = None
        shown = [(name, series) for name, series in PLOTS
                 if any(r.get(k) is not None for k, *_ in series for r in rows)]
        for row, (pname, series) in enumerate(shown):
            title = " · ".join(f"<span style='color:{c}'>{SYMBOL_CHAR[s]} {label}</span>" for _k, label, c, s, _f in series)
            p = styled_plot(self.graphics, row, 0, title)
            for key, label, colour, symbol, scale in series:
                y = np.asarray([np.nan if r.get(key) is None else float(r[key]) * scale for r in rows])
                item = p.plot(x, y, pen=pg.mkPen(colour, width=2), symbol=symbol, symbolSize=10,
                              symbolBrush=colour, symbolPen=pg.mkPen("w"), name=label)
                item.sigPointsClicked.connect(self._point_clicked)
                self.curves[key] = item
            if start is not None:
                region = pg.LinearRegionItem(values=(start - 0.5, len(rows) - 0.5), movable=False,
                                             brush=pg.mkBrush(*PROJECTOR_BRUSH), pen=pg.mkPen(None))
                region.setZValue(-10)
                p.addItem(region, ignoreBounds=True)
                line = pg.InfiniteLine(pos=start - 0.5, angle=90, movable=False,
                                       pen=pg.mkPen("#c26a2e", width=1.5, style=QtCore.Qt.PenStyle.DashLine))
                if row == 0:
                    pg.InfLineLabel(line, text="projector / head →", position=0.08, anchors=[(0, 0.5), (0, 0.5)],
                                    color="#a0521e")
                p.addItem(line, ignoreBounds=True)
                self.regions.append(region)
            ax = p.getAxis("bottom")
            ax.setTicks([[t for i, t in enumerate(ticks) if i % stride == 0], []])
            ax.setStyle(showValues=row == len(shown) - 1)
            p.setXRange(-0.5, len(rows) - 0.5, padding=0.02)
            if first is None:
                first = p
            else:
                p.setXLink(first)
            self.plots[pname] = p
        if shown:
            self.plots[shown[-1][0]].getAxis("bottom").setHeight(44)  # two rows of names
        self._fill_table(rows, start)
        self.result_ready.emit(res)

    def _fill_table(self, rows, start) -> None:
        headers = ["layer", "width", "RankMe", "dims 99%", "SIGReg", "k-NN acc.", "probe acc."]
        cells = []
        for r in rows:
            name = r["layer"] + ("  (projector)" if start is not None and r["depth"] >= start else "")
            cells.append([name, str(r["dim"]), fmt(r["rankme"], "{:.1f}"), str(r["dims_99"]),
                          fmt(r["sigreg"], "{:.4g}"), fmt(r["knn_accuracy"], "{:.1%}"),
                          fmt(r["linear_probe_accuracy"], "{:.1%}")])
        fill_table(self.table, headers, cells)

    # ------------------------------------------------------------------ interaction
    def layer_names(self) -> list:
        return [] if self.result is None else [r["layer"] for r in self.result["layers"]]

    def open_layer(self, index: int) -> None:
        names = self.layer_names()
        if 0 <= index < len(names):
            self.layer_clicked.emit(names[index])

    def _point_clicked(self, _item, points, _ev=None) -> None:
        if points is not None and len(points):
            self.open_layer(int(round(points[0].pos().x())))

    def _row_activated(self, row: int, _col: int) -> None:
        self.open_layer(row)
