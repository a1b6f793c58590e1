"""The collapse diagnostics panel: the verdict on top with its evidence and, where values seem to
contradict it or each other, why (:func:`explorer.metrics.explain.disagreements`); the spectrum
on log-log axes with the 90/99% markers and the isotropic level 1/d; the per-dimension std of the
L2-normalised embeddings against 1/sqrt(d); the pairwise cosine histogram; every metric with its
value and how to read it (:func:`explorer.metrics.explain.readings`); the metrics of every open
model side by side.

The plots sit in a scrolling panel, so the mouse wheel scrolls the panel until a plot is clicked;
a clicked plot zooms and pans with the mouse until the pointer leaves it or another model is shown
(which also resets every plot's range)."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from explorer.metrics import registry as _registry
from explorer.metrics.diagnose import EXPLANATIONS
from explorer.metrics.explain import disagreements, readings

VERDICT_COLORS = {"complete collapse": "#b3261e", "dimensional collapse": "#a15c00", "no collapse detected": "#1d6b35"}

# metric key -> (display name, format), in display order: the metric registry's panel rows
ROWS = [(m.key, m.label, m.fmt) for m in _registry.shown_in("panel")]

#: Lowest eigenvalue drawn, relative to the largest (exact zeros would be -inf on a log axis).
SPECTRUM_FLOOR = 1e-18
#: Pixels per tick label: along a vertical axis (text height + gap) and a horizontal one.
LABEL_PIXELS = {"left": 28, "bottom": 44}

_SUP = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


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


def log_ticks(lo: float, hi: float, max_labels: int) -> tuple[list, list]:
    """Ticks of a log axis showing log10 values ``lo``..``hi``: (labelled, unlabelled) lists of
    log10 positions. Labels at 1-2-5 steps when they fit, else every decade, else every 2nd,
    3rd, 5th, 10th... decade, so at most ``max_labels`` (at least 1) are labelled; the other
    decades (and 2..9 within a decade when the labels are decades) are unlabelled ticks."""
    lo, hi = sorted((float(lo), float(hi)))
    max_labels = max(1, int(max_labels))
    k0, k1 = math.floor(lo - 1e-9), math.ceil(hi + 1e-9)
    inside = lambda vals: [v for v in vals if lo - 1e-9 <= v <= hi + 1e-9]  # noqa: E731
    decades = list(range(k0, k1 + 1))
    for mult in ((1, 2, 5), (1, 3), (1,)) if hi - lo < 6 else ():
        vals = inside([k + math.log10(m) for k in decades for m in mult])
        if 2 <= len(vals) <= max_labels:
            minor = inside([k + math.log10(m) for k in decades for m in range(2, 10)]) if hi - lo <= 3 else []
            return vals, [v for v in minor if all(abs(v - w) > 1e-9 for w in vals)]
    for stride in (1, 2, 3, 5, 10, 20, 50, 100):
        vals = inside([float(k) for k in decades if k % stride == 0])
        if len(vals) <= max_labels:
            break
    if not vals:       # less than a decade and no 1-2-5 step inside: the ends
        vals = [lo, hi] if max_labels >= 2 else [lo]
        return vals, []
    minor = inside([float(k) for k in decades if float(k) not in vals])
    if stride == 1 and hi - lo <= 3:
        minor += inside([k + math.log10(m) for k in decades for m in range(2, 10)])
    return vals, minor


def _value_label(v: float) -> str:
    """10^v as '10⁻¹²', '2·10⁻³', or plainly from 1 to 99 ('1', '5', '20')."""
    k = math.floor(v + 1e-9)
    m = round(10 ** (v - k), 6)
    if k in (0, 1):
        return f"{m * 10.0 ** k:g}"
    mant = "" if abs(m - 1) < 1e-6 else (f"{m:g}·")
    return f"{mant}10{str(k).translate(_SUP)}"


class LogAxis(pg.AxisItem):
    """A log-mode axis whose labels never crowd: :func:`log_ticks` with one label per
    ``LABEL_PIXELS`` pixels. ``kind``: "index" (component numbers 1, 2, 5, 10...) or "value"
    (powers of ten)."""

    def __init__(self, orientation: str, kind: str = "value", **kw) -> None:
        super().__init__(orientation, **kw)
        self.kind = kind
        self.setStyle(maxTextLevel=0)          # only the first level carries text
        self.enableAutoSIPrefix(False)

    def logTickValues(self, minVal, maxVal, size, stdTicks):
        n = max(1, int(size // LABEL_PIXELS.get(self.orientation, 30)))
        major, minor = log_ticks(minVal, maxVal, n)
        return [(1.0, major), (None, minor)]

    def logTickStrings(self, values, scale, spacing):
        if spacing is None:
            return ["" for _ in values]
        if self.kind == "index":
            return [f"{10 ** v:.0f}" for v in values]
        return [_value_label(v) for v in values]


class _ClickToInteract(QtCore.QObject):
    """Event filter on a plot's viewport: until the plot is clicked, wheel events scroll the
    ``scroll`` area instead of zooming and the mouse cannot pan; a click arms the plot, leaving
    it (or :meth:`disarm`) disarms it."""

    def __init__(self, plot: pg.PlotWidget, scroll: QtWidgets.QScrollArea, parent=None) -> None:
        super().__init__(parent)
        self.plot, self.scroll_area = plot, scroll
        self.armed = False
        plot.viewport().installEventFilter(self)
        self.disarm()

    def arm(self) -> None:
        self.armed = True
        self.plot.setMouseEnabled(x=True, y=True)
        self.plot.setStyleSheet("border: 1px solid #3366cc;")

    def disarm(self) -> None:
        self.armed = False
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.setStyleSheet("border: 1px solid transparent;")

    def eventFilter(self, obj, ev) -> bool:
        t = ev.type()
        if t == QtCore.QEvent.Type.Wheel and not self.armed:
            QtWidgets.QApplication.sendEvent(self.scroll_area.verticalScrollBar(), ev)
            return True
        if t == QtCore.QEvent.Type.MouseButtonPress and not self.armed:
            self.arm()
        elif t == QtCore.QEvent.Type.Leave and self.armed:
            self.disarm()
        return False


def _plot(title: str, height: int, axes: Optional[dict] = None) -> pg.PlotWidget:
    p = pg.PlotWidget(background="w", axisItems=axes)
    p.setTitle(title, size="9pt", color="#303030")
    p.setMinimumHeight(height)
    p.setMaximumHeight(int(height * 1.4))
    p.showGrid(x=False, y=True, alpha=0.2)
    p.setMenuEnabled(False)                # its log-mode toggles would misplace the marker lines
    for ax in ("left", "bottom"):
        p.getAxis(ax).setTextPen("#303030")
        p.getAxis(ax).setPen("#808080")
    return p


class DiagnosticsPanel(QtWidgets.QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        outer = QtWidgets.QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.scroll_area = QtWidgets.QScrollArea()
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setFrameShape(QtWidgets.QFrame.NoFrame)
        self.scroll_area.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarAlwaysOff)
        outer.addWidget(self.scroll_area)
        inner = QtWidgets.QWidget()
        self.scroll_area.setWidget(inner)
        lay = QtWidgets.QVBoxLayout(inner)
        lay.setSpacing(6)
        self.verdict = QtWidgets.QLabel("Embed a model to see its collapse diagnostics.")
        self.verdict.setWordWrap(True)
        self.verdict.setTextFormat(QtCore.Qt.RichText)
        self.evidence = QtWidgets.QLabel("")
        self.evidence.setWordWrap(True)
        self.evidence.setStyleSheet("color: #404040;")
        lay.addWidget(self.verdict)
        lay.addWidget(self.evidence)
        self.why = QtWidgets.QLabel("")
        self.why.setWordWrap(True)
        self.why.setTextFormat(QtCore.Qt.RichText)
        self.why.setStyleSheet("background: #fff6e5; border: 1px solid #e0c080; border-radius: 4px; "
                               "padding: 6px; color: #303030;")
        self.why.setVisible(False)
        lay.addWidget(self.why)
        self.plot_hint = QtWidgets.QLabel("Click a plot to zoom (wheel) and pan (drag) it, its 'A' button "
                                          "fits it again; elsewhere the wheel scrolls this panel.")
        self.plot_hint.setWordWrap(True)
        self.plot_hint.setStyleSheet("color: #707070; font-size: 8pt;")
        lay.addWidget(self.plot_hint)
        self.p_spec = _plot("Spectrum: covariance eigenvalues", 230,
                            {"bottom": LogAxis("bottom", "index"), "left": LogAxis("left", "value")})
        self.p_spec.setLogMode(x=True, y=True)
        self.p_spec.setLabel("bottom", "component (log scale)")
        self.p_spec.setLabel("left", "eigenvalue")
        self.p_std = _plot("Std per dimension (L2-normalised)", 170)
        self.p_std.setLabel("bottom", "dimension")
        self.p_cos = _plot("Pairwise cosine", 170)
        self.p_cos.setLabel("bottom", "cosine similarity")
        self.p_cos.setLabel("left", "% of pairs")
        self.plot_guards = []
        for p in (self.p_spec, self.p_std, self.p_cos):
            lay.addWidget(p)
            self.plot_guards.append(_ClickToInteract(p, self.scroll_area, self))
        title = QtWidgets.QLabel("<b>Metrics</b> — value and how to read it")
        lay.addWidget(title)
        self.metrics_box = QtWidgets.QWidget()
        grid = QtWidgets.QGridLayout(self.metrics_box)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(1)
        grid.setColumnStretch(0, 1)
        self.metric_rows: dict = {}
        for r, (key, name, _fmt_) in enumerate(ROWS):
            a = QtWidgets.QLabel(f"<b>{name}</b>")
            a.setToolTip(EXPLANATIONS.get(key, ""))
            b = QtWidgets.QLabel("")
            b.setAlignment(QtCore.Qt.AlignRight | QtCore.Qt.AlignVCenter)
            b.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
            b.setWordWrap(True)
            h = QtWidgets.QLabel("")
            h.setWordWrap(True)
            h.setStyleSheet("color: #5a5a5a; font-size: 8pt; padding-bottom: 5px;")
            grid.addWidget(a, 2 * r, 0)
            grid.addWidget(b, 2 * r, 1)
            grid.addWidget(h, 2 * r + 1, 0, 1, 2)
            self.metric_rows[key] = (a, b, h)
        lay.addWidget(self.metrics_box)
        self.side_title = QtWidgets.QLabel("<b>Side by side</b> (every open model and layer)")
        lay.addWidget(self.side_title)
        self.side = QtWidgets.QTableWidget(0, 0)
        self.side.verticalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeToContents)
        self.side.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.side.setToolTip("The same metrics for every model/layer, to compare e.g. backbone and projector")
        self.side.setMinimumHeight(24 * (len(ROWS) + 1) + 40)
        lay.addWidget(self.side)
        self.side_title.setVisible(False)
        self.side.setVisible(False)
        lay.addStretch(1)
        self.metrics: Optional[dict] = None
        self._show_rows({})

    # ------------------------------------------------------------------ side by side
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

    # ------------------------------------------------------------------ one model
    def _show_rows(self, m: dict) -> None:
        texts = readings(m) if m else {}
        for key, name, fmt in ROWS:
            a, b, h = self.metric_rows[key]
            on = bool(m) and key in m
            for w in (a, b, h):
                w.setVisible(on)
            if not on:
                continue
            b.setText(_fmt(fmt, m.get(key)))
            hint = texts.get(key, "")
            if key == "linear_probe_accuracy" and probe_detail(m.get("linear_probe")):
                hint = probe_detail(m.get("linear_probe")).strip()[1:-1] + ". " + hint
            h.setText(hint)
        self.metrics_box.setVisible(bool(m))

    def reset_plots(self) -> None:
        """Forget zooming: disarm every plot, clear it and let it fit its next data."""
        for g in self.plot_guards:
            g.disarm()
        for p in (self.p_spec, self.p_std, self.p_cos):
            p.clear()
            p.enableAutoRange()

    def show_metrics(self, model_id: str, m: Optional[dict]) -> None:
        self.metrics = m
        self.reset_plots()
        if not m:
            self.verdict.setText(f"<b>{model_id}</b>: diagnostics not computed yet (Compute › Diagnose, Ctrl+D).")
            self.evidence.setText("")
            self.why.setVisible(False)
            self._show_rows({})
            return
        v = m.get("verdict") or {}
        label = v.get("label", "")
        color = VERDICT_COLORS.get(label, "#303030")
        self.verdict.setText(f"<span style='font-size:13pt; color:{color}'><b>{v.get('summary', label)}</b></span>"
                             f"<br><span style='color:#606060'>{model_id}</span>")
        ev = v.get("evidence") or []
        self.evidence.setText("\n".join(f"• {e}" for e in ev))
        notes = disagreements(m)
        self.why.setText("<b>Why some numbers seem to disagree</b>"
                         + "".join(f"<p style='margin-top:4px; margin-bottom:0'>{t}</p>" for t in notes.values()))
        self.why.setVisible(bool(notes))
        self._plot_spectrum(m)
        self._plot_std(m)
        self._plot_cosine(m)
        self._show_rows(m)

    def _plot_spectrum(self, m: dict) -> None:
        p = self.p_spec
        spec = np.asarray(m.get("spectrum") or [], dtype=float)
        if not spec.size or not np.isfinite(spec).all() or spec.max() <= 0:
            return
        d = spec.size
        top = float(spec.max())
        y = np.maximum(spec, top * SPECTRUM_FLOOR)
        x = np.arange(1, d + 1, dtype=float)
        p.plot(x, y, pen=pg.mkPen("#3366cc", width=2))
        iso = 1.0 / d
        # the label of the 1/d line goes where it is farthest from the 90/99% lines' labels
        marks = [math.log10(m[k]) / max(math.log10(d), 1e-9) for k in ("dims_90", "dims_99") if m.get(k)]
        spots = ((0.97, (1, 0), (0.62, 0.97)), (0.03, (0, 0), (0.03, 0.38)), (0.5, (0.5, 0), (0.32, 0.68)))
        gap = lambda span: min((max(span[0] - x, x - span[1], 0.0) for x in marks), default=1.0)  # noqa: E731
        where, anchor, _ = max(spots, key=lambda s: gap(s[2]))
        p.addItem(pg.InfiniteLine(pos=math.log10(iso), angle=0, pen=pg.mkPen("#1d6b35", style=QtCore.Qt.DotLine),
                                  label="isotropic 1/d", labelOpts={"position": where, "color": "#1d6b35",
                                                                    "anchors": [anchor, anchor]}))
        for key, col, ypos in (("dims_90", "#a15c00", 0.45), ("dims_99", "#b3261e", 0.85)):
            k = m.get(key)
            if k:
                # the label beside its line, on the side with more room
                side = (0, 0.5) if math.log10(k) < 0.6 * math.log10(max(d, 2)) else (1, 0.5)
                p.addItem(pg.InfiniteLine(pos=math.log10(k), angle=90, pen=pg.mkPen(col, style=QtCore.Qt.DashLine),
                                          label=f"{key[5:]}%: {k}",
                                          labelOpts={"position": ypos, "color": col, "fill": (255, 255, 255, 200),
                                                     "anchors": [side, side]}))
        lo = math.log10(max(float(y.min()), 1e-300))
        hi = math.log10(max(top, iso))
        pad = 0.06 * max(hi - lo, 1.0)
        p.setYRange(lo - pad, hi + pad, padding=0)
        p.setXRange(0, math.log10(d), padding=0.03)

    def _plot_std(self, m: dict) -> None:
        std = m.get("per_dim_std")
        if not std:
            return
        std = np.asarray(std, float)
        d = std.size
        ref = 1 / math.sqrt(d)
        mean = float(std.mean())
        self.p_std.setTitle(f"Std per dimension (L2-normalised)<br>mean {mean:.3g} = {mean / ref:.2g} × 1/√d",
                            size="9pt", color="#303030")
        self.p_std.addItem(pg.BarGraphItem(x=np.arange(d), height=std, width=0.8, brush="#7f9fd6", pen=None))
        self.p_std.addItem(pg.InfiniteLine(pos=ref, angle=0, pen=pg.mkPen("#b3261e", style=QtCore.Qt.DashLine),
                                           label=f"1/√d = {ref:.3f}",
                                           labelOpts={"position": 0.75, "color": "#b3261e", "fill": (255, 255, 255, 200), "anchors": [(0.5, 1), (0.5, 1)]}))
        self.p_std.setYRange(0, max(float(std.max()), ref) * 1.15, padding=0)
        self.p_std.setXRange(-1, d, padding=0.01)

    def _plot_cosine(self, m: dict) -> None:
        hist = m.get("cosine_histogram")
        if not hist:
            return
        counts = np.asarray(hist.get("counts", []), float)
        edges = np.asarray(hist.get("edges", []), float)
        if counts.size and edges.size == counts.size + 1 and counts.sum() > 0:
            counts = 100.0 * counts / counts.sum()
            self.p_cos.plot(edges, counts, stepMode="center", fillLevel=0, brush="#9ccc9c", pen="#4c8c4c")
            self.p_cos.setXRange(-1, 1, padding=0.02)
            self.p_cos.setYRange(0, float(counts.max()) * 1.08, padding=0)
