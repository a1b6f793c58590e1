"""The collapse diagnostics panel: verdict on top, spectrum (log scale) with the 90/99% markers,
per-dimension std of the L2-normalised embeddings against 1/sqrt(d), the pairwise cosine
histogram, and the metrics table with one line per metric saying what the value means."""

from __future__ import annotations

from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

VERDICT_COLORS = {"complete collapse": "#b3261e", "dimensional collapse": "#a15c00", "no collapse detected": "#1d6b35"}

# metric key -> (display name, format)
ROWS = [
    ("rankme", "RankMe (effective rank)", "{:.1f}"),
    ("dims_90", "Dimensions for 90% variance", "{:d}"),
    ("dims_99", "Dimensions for 99% variance", "{:d}"),
    ("dead_dims", "Dead dimensions", "{:d}"),
    ("alpha_req", "α-ReQ (eigen-decay)", "{:.2f}"),
    ("std_l2_normalized", "Std of L2-normalised", "{:.4f}"),
    ("sigreg", "SIGReg (Epps-Pulley), raw", "{:.3g}"),
    ("sigreg_standardized", "SIGReg, standardised", "{:.3g}"),
    ("sigreg_gaussian_reference", "SIGReg of Gaussian data", "{:.3g}"),
    ("uniformity", "Uniformity", "{:.3f}"),
    ("mean_cosine", "Mean pairwise cosine", "{:.3f}"),
    ("twonn_dimension", "Intrinsic dim. (TwoNN)", "{:.1f}"),
    ("mle_dimension", "Intrinsic dim. (MLE, k=20)", "{:.1f}"),
    ("knn_accuracy", "kNN accuracy (k=20)", "{:.1%}"),
    ("linear_probe_accuracy", "Linear-probe accuracy", "{:.1%}"),
]


def _fmt(fmt: str, v) -> str:
    if v is None:
        return "–"
    try:
        if "d}" in fmt:
            return fmt.format(int(v))
        return fmt.format(float(v))
    except (TypeError, ValueError):
        return str(v)


def probe_detail(lp: Optional[dict]) -> str:
    """' (95% CI 51.2-63.1%; 240 train / 60 test)' for a linear-probe result, '' without one."""
    if not lp or lp.get("accuracy") is None or lp.get("ci_low") is None:
        return ""
    return (f" (95% CI {100 * lp['ci_low']:.1f}–{100 * lp['ci_high']:.1f}%; "
            f"{lp['n_train']} train / {lp['n_test']} test)")


class DiagnosticsPanel(QtWidgets.QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        outer = QtWidgets.QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QtWidgets.QFrame.NoFrame)
        outer.addWidget(scroll)
        inner = QtWidgets.QWidget()
        scroll.setWidget(inner)
        lay = QtWidgets.QVBoxLayout(inner)
        self.verdict = QtWidgets.QLabel("Embed a model to see its collapse diagnostics.")
        self.verdict.setWordWrap(True)
        self.verdict.setTextFormat(QtCore.Qt.RichText)
        self.evidence = QtWidgets.QLabel("")
        self.evidence.setWordWrap(True)
        lay.addWidget(self.verdict)
        lay.addWidget(self.evidence)
        self.plots = pg.GraphicsLayoutWidget()
        self.plots.setMinimumHeight(480)
        self.p_spec = self.plots.addPlot(row=0, col=0, title="Spectrum (log)")
        self.p_spec.setLogMode(y=True)
        self.p_spec.setLabel("bottom", "component")
        self.p_std = self.plots.addPlot(row=1, col=0, title="Std per dimension (L2-normalised)")
        self.p_cos = self.plots.addPlot(row=2, col=0, title="Pairwise cosine")
        for p in (self.p_spec, self.p_std, self.p_cos):
            p.showGrid(x=False, y=True, alpha=0.2)
        lay.addWidget(self.plots, 2)
        self.table = QtWidgets.QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Metric", "Value"])
        self.table.horizontalHeader().setSectionResizeMode(0, QtWidgets.QHeaderView.Stretch)
        self.table.horizontalHeader().setSectionResizeMode(1, QtWidgets.QHeaderView.ResizeToContents)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.table.setMinimumHeight(24 * len(ROWS) + 30)
        lay.addWidget(self.table)
        self.side_title = QtWidgets.QLabel("<b>Side by side</b> (every open model and layer)")
        lay.addWidget(self.side_title)
        self.side = QtWidgets.QTableWidget(0, 0)
        self.side.verticalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeToContents)
        self.side.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.side.setToolTip("The same metrics for every model/layer, to compare e.g. backbone and projector")
        self.side.setMinimumHeight(24 * (len(ROWS) + 1) + 40)
        lay.addWidget(self.side)
        self.metrics: Optional[dict] = None

    def show_all(self, models: dict) -> None:
        """Metrics of several models/layers side by side: ``{name: metrics or None}``."""
        names = [n for n, m in models.items() if m]
        keys = [("verdict", "Verdict", None)] + [r for r in ROWS if any(r[0] in models[n] for n in names)]
        self.side.setColumnCount(len(names))
        self.side.setRowCount(len(keys))
        self.side.setHorizontalHeaderLabels(names)
        self.side.setVerticalHeaderLabels([k[1] for k in keys])
        for c, n in enumerate(names):
            m = models[n]
            for r, (key, _name, fmt) in enumerate(keys):
                if key == "verdict":
                    v = (m.get("verdict") or {}).get("label", "")
                    it = QtWidgets.QTableWidgetItem(v)
                    it.setForeground(pg.mkColor(VERDICT_COLORS.get(v, "#303030")))
                else:
                    it = QtWidgets.QTableWidgetItem(_fmt(fmt, m.get(key)))
                self.side.setItem(r, c, it)
        self.side.resizeColumnsToContents()
        self.side_title.setVisible(len(names) > 1)
        self.side.setVisible(len(names) > 1)

    def show_metrics(self, model_id: str, m: Optional[dict]) -> None:
        self.metrics = m
        for p in (self.p_spec, self.p_std, self.p_cos):
            p.clear()
        if not m:
            self.verdict.setText(f"<b>{model_id}</b>: diagnostics not computed yet (Compute › Diagnose, Ctrl+D).")
            self.evidence.setText("")
            self.table.setRowCount(0)
            return
        v = m.get("verdict") or {}
        label = v.get("label", "")
        color = VERDICT_COLORS.get(label, "#303030")
        self.verdict.setText(f"<span style='font-size:14pt; color:{color}'><b>{v.get('summary', label)}</b></span>"
                             f"<br><span style='color:#606060'>{model_id}</span>")
        ev = v.get("evidence") or []
        self.evidence.setText("\n".join(f"• {e}" for e in ev))
        spec = np.asarray(m.get("spectrum") or [], dtype=float)
        if spec.size:
            spec = np.maximum(spec, 1e-12)
            x = np.arange(1, spec.size + 1)
            self.p_spec.plot(x, spec, pen=pg.mkPen("#3366cc", width=2))
            for key, col, ypos in (("dims_90", "#a15c00", 0.35), ("dims_99", "#b3261e", 0.85)):
                if m.get(key):
                    line = pg.InfiniteLine(pos=m[key], angle=90, pen=pg.mkPen(col, style=QtCore.Qt.DashLine),
                                           label=f"{key[5:]}%: {m[key]}", labelOpts={"position": ypos, "color": col})
                    self.p_spec.addItem(line)
        std = m.get("per_dim_std")
        if std:
            std = np.asarray(std, float)
            self.p_std.addItem(pg.BarGraphItem(x=np.arange(std.size), height=std, width=0.8, brush="#7f9fd6", pen=None))
            d = std.size
            self.p_std.addItem(pg.InfiniteLine(pos=1 / np.sqrt(d), angle=0, pen=pg.mkPen("#b3261e", style=QtCore.Qt.DashLine),
                                               label="1/√d", labelOpts={"position": 0.95, "color": "#b3261e"}))
        hist = m.get("cosine_histogram")
        if hist:
            counts = np.asarray(hist.get("counts", []), float)
            edges = np.asarray(hist.get("edges", []), float)
            if counts.size and edges.size == counts.size + 1:
                self.p_cos.plot(edges, counts, stepMode="center", fillLevel=0, brush="#9ccc9c", pen="#4c8c4c")
        rows = [(name, _fmt(fmt, m.get(key)), key) for key, name, fmt in ROWS if key in m]
        rows = [(n, v + probe_detail(m.get("linear_probe")) if k == "linear_probe_accuracy" else v, k)
                for n, v, k in rows]
        expl = m.get("explanations") or {}
        try:
            from explorer.metrics.diagnose import EXPLANATIONS

            expl = {**EXPLANATIONS, **expl}
        except ImportError:
            pass
        self.table.setRowCount(len(rows))
        for r, (name, val, key) in enumerate(rows):
            a = QtWidgets.QTableWidgetItem(name)
            b = QtWidgets.QTableWidgetItem(val)
            tip = expl.get(key, "")
            if key == "std_l2_normalized" and m.get("dim"):
                tip += f" (1/√d = {1 / np.sqrt(m['dim']):.4f})"
            a.setToolTip(tip)
            b.setToolTip(tip)
            self.table.setItem(r, 0, a)
            self.table.setItem(r, 1, b)
