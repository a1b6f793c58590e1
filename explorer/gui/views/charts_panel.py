"""The Charts dock: one bar chart per chosen metadata column, cross-filtering the map.

Numbers and dates are histograms: drag across one to brush a range (the brush snaps to whole
bars and can be dragged or resized), click a bar to keep only it. Categories are horizontal
bars: click one to keep it, Ctrl-click to add or remove more, drag across several. Click empty
space (or the chart's × brush button) to clear a chart's brush.

Each chart draws three layers: every item (pale grey), the items that pass the other charts'
brushes and the search (blue; the bars outside this chart's own brush paler) and the selected
items (a narrow orange bar inside). The brushes' AND greys out the rest of the map
(:meth:`explorer.gui.map_panel.MapPanel.set_brush_mask`); selecting on the map updates the
orange bars. The binning and counting are :mod:`explorer.app.crossfilter` (Qt-free).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from explorer.app.crossfilter import CrossFilter
from explorer.core.errors import ExplorerError
from explorer.gui.subscriptions import Subscriptions

TOTAL = (224, 224, 224)
PASS = (76, 120, 168)
PASS_OUT = (183, 202, 224)  # passes the other charts but lies outside this chart's brush
SELECTED = (245, 133, 24)
DAY_S = 86400.0


class _ChartBox(pg.ViewBox):
    """No pan or zoom: a drag brushes, a click picks a bar."""

    def __init__(self, chart: "ChartView") -> None:
        super().__init__(enableMenu=False)
        self._chart = chart
        self.setMouseEnabled(False, False)

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802 (pyqtgraph API)
        if ev.button() != QtCore.Qt.MouseButton.LeftButton:
            return super().mouseDragEvent(ev, axis)
        ev.accept()
        a = self.mapSceneToView(ev.buttonDownScenePos())
        b = self.mapSceneToView(ev.scenePos())
        self._chart.drag(a, b, ev.isFinish())

    def mouseClickEvent(self, ev):  # noqa: N802
        if ev.button() != QtCore.Qt.MouseButton.LeftButton:
            return super().mouseClickEvent(ev)
        ev.accept()
        add = bool(ev.modifiers() & (QtCore.Qt.KeyboardModifier.ControlModifier | QtCore.Qt.KeyboardModifier.MetaModifier))
        self._chart.click(self.mapSceneToView(ev.scenePos()), add)


class ChartView(QtWidgets.QFrame):
    """One column's chart. ``bar_heights(layer)`` reads back what is drawn ("total",
    "filtered" or "selected"), one value per bar."""

    remove_requested = QtCore.Signal(str)

    def __init__(self, crossfilter: CrossFilter, column: str, parent=None) -> None:
        super().__init__(parent)
        self.cf = crossfilter
        self.column = column
        self.binning = crossfilter.charts[column]
        self.horizontal = self.binning.kind == "category"
        self.setFrameShape(QtWidgets.QFrame.Shape.StyledPanel)
        self.setMinimumWidth(260)
        v = QtWidgets.QVBoxLayout(self)
        v.setContentsMargins(4, 2, 4, 2)
        v.setSpacing(2)
        head = QtWidgets.QHBoxLayout()
        self.title = QtWidgets.QLabel(f"<b>{column}</b> <span style='color:#777'>{self.binning.kind}</span>")
        head.addWidget(self.title, 1)
        self.clear_button = QtWidgets.QToolButton(text="× brush", toolTip=f"Clear the brush on {column}")
        self.clear_button.clicked.connect(lambda: self.cf.clear(self.column))
        self.clear_button.setVisible(False)
        head.addWidget(self.clear_button)
        close = QtWidgets.QToolButton(text="✕", toolTip=f"Remove the chart of {column}")
        close.clicked.connect(lambda: self.remove_requested.emit(self.column))
        head.addWidget(close)
        v.addLayout(head)
        axes = {"bottom": pg.DateAxisItem(orientation="bottom")} if self.binning.kind == "date" else {}
        self.plot = pg.PlotWidget(viewBox=_ChartBox(self), axisItems=axes, background="w")
        self.plot.setMinimumHeight(90)
        pi = self.plot.getPlotItem()
        pi.hideButtons()
        for ax in ("left", "bottom"):
            pi.getAxis(ax).setPen(pg.mkPen("#606060"))
            pi.getAxis(ax).setTextPen(pg.mkPen("#404040"))
        v.addWidget(self.plot, 1)
        b = self.binning
        n = b.n_bars
        if self.horizontal:
            self._pos = -np.arange(n, dtype=float)  # first bar on top
            self._size = np.full(n, 0.8)
            ticks = [(float(self._pos[i]), _short(b.labels[i])) for i in range(n)]
            pi.getAxis("left").setTicks([ticks, []])
            pi.getAxis("left").setWidth(70)
        else:
            e = b.edges * (DAY_S if b.kind == "date" else 1.0)
            k = len(e) - 1
            step = (e[-1] - e[0]) / max(k, 1)
            centres = list((e[:-1] + e[1:]) / 2) + ([e[-1] + step] if b.has_missing else [])
            widths = list(np.diff(e)) + ([step] if b.has_missing else [])
            self._pos, self._size = np.asarray(centres, float), np.asarray(widths, float) * 0.94
            pi.getAxis("left").setWidth(42)
        self._items = {}
        for name, colour, scale, z in (("total", TOTAL, 1.0, 0), ("filtered", PASS, 1.0, 1), ("selected", SELECTED, 0.45, 2)):
            item = self._bar_item(np.zeros(n), scale, pg.mkBrush(*colour))
            item.setZValue(z)
            self.plot.addItem(item)
            self._items[name] = item
        self.region: Optional[pg.LinearRegionItem] = None
        if not self.horizontal:
            self.region = pg.LinearRegionItem(orientation="vertical", brush=pg.mkBrush(76, 120, 168, 40),
                                              pen=pg.mkPen(40, 70, 120, width=2))
            self.region.setZValue(5)
            self.region.hide()
            self.region.sigRegionChanged.connect(self._region_moved)
            self.region.sigRegionChangeFinished.connect(lambda _r: self._snap_region())
            self.plot.addItem(self.region, ignoreBounds=True)
        self._set_range()

    # -- drawing ------------------------------------------------------------------------------
    def _bar_item(self, heights, scale: float, brush) -> pg.BarGraphItem:
        if self.horizontal:
            return pg.BarGraphItem(x0=0, y=self._pos, height=self._size * scale, width=heights, brush=brush, pen=None)
        return pg.BarGraphItem(x=self._pos, width=self._size * scale, y0=0, height=heights, brush=brush, pen=None)

    def _set_bars(self, name: str, heights, brushes=None) -> None:
        item = self._items[name]
        h = np.asarray(heights, float)
        opts = {"width": h} if self.horizontal else {"height": h}
        if brushes is not None:
            opts["brushes"] = brushes
            opts["brush"] = None
        item.setOpts(**opts)

    def _set_range(self) -> None:
        top = float(max(self.binning.totals.max(initial=0), 1)) * 1.05
        vb = self.plot.getPlotItem().getViewBox()
        if self.horizontal:
            vb.setRange(xRange=(0, top), yRange=(self._pos.min() - 0.6, 0.6), padding=0)
        else:
            lo = float(self._pos[0] - self._size[0])
            hi = float(self._pos[-1] + self._size[-1])
            vb.setRange(xRange=(lo, hi), yRange=(0, top), padding=0)

    def bar_heights(self, layer: str) -> np.ndarray:
        """What is drawn: the bars' lengths of ``layer`` ("total", "filtered", "selected")."""
        opts = self._items[layer].opts
        return np.asarray(opts["width"] if self.horizontal else opts["height"], float)

    def refresh(self, selected: Optional[np.ndarray]) -> None:
        b = self.binning
        self._set_bars("total", b.totals)
        keep = self.cf.keep(self.column)
        counts = self.cf.counts(self.column)
        if keep is None:
            self._set_bars("filtered", counts, [pg.mkBrush(*PASS)] * b.n_bars)
        else:
            self._set_bars("filtered", counts, [pg.mkBrush(*(PASS if k else PASS_OUT)) for k in keep])
        if selected is None or len(selected) == 0:
            self._set_bars("selected", np.zeros(b.n_bars))
            self._items["selected"].hide()
        else:
            self._set_bars("selected", self.cf.selected_counts(self.column, selected))
            self._items["selected"].show()
        self.clear_button.setVisible(keep is not None)
        if self.region is not None:
            if keep is None:
                self.region.hide()
            elif not self._dragging_region():
                self._snap_region()

    # -- brushing ------------------------------------------------------------------------------
    def _bar_at(self, p) -> Optional[int]:
        coord = p.y() if self.horizontal else p.x()
        d = np.abs(self._pos - coord)
        i = int(np.argmin(d))
        return i if d[i] <= self._size[i] / 2 / (0.94 if not self.horizontal else 1.0) else None

    def click(self, p, add: bool) -> None:
        i = self._bar_at(p)
        if i is None:
            self.cf.clear(self.column)
        else:
            self.cf.toggle_bar(self.column, i, add=add)

    def drag(self, a, b, finished: bool) -> None:
        if self.horizontal:
            lo, hi = sorted((a.y(), b.y()))
            keep = (self._pos >= lo - 0.4) & (self._pos <= hi + 0.4)
            if keep.any():
                self.cf.set_keep(self.column, keep)
            return
        lo, hi = sorted((a.x(), b.x()))
        with QtCore.QSignalBlocker(self.region):
            self.region.setRegion((lo, hi))
        self.region.show()
        self._brush_range(lo, hi)
        if finished:
            self._snap_region()

    def _brush_range(self, lo: float, hi: float) -> None:
        b = self.binning
        scale = DAY_S if b.kind == "date" else 1.0
        keep = b.bars_in_range(lo / scale, hi / scale)
        if b.has_missing:  # the missing bar is kept when the range reaches it
            x = self._pos[-1]
            keep[-1] = lo <= x <= hi
        if keep.any():
            self.cf.set_keep(self.column, keep)
        else:
            self.cf.clear(self.column)

    def _region_moved(self, region) -> None:
        lo, hi = region.getRegion()
        self._brush_range(lo, hi)

    def _dragging_region(self) -> bool:
        return bool(self.region is not None and (getattr(self.region, "moving", False)
                                                  or any(getattr(ln, "moving", False) for ln in self.region.lines)))

    def _snap_region(self) -> None:
        keep = self.cf.keep(self.column)
        if self.region is None or keep is None:
            return
        kept = np.flatnonzero(keep)
        lo = self._pos[kept[0]] - self._size[kept[0]] / 0.94 / 2
        hi = self._pos[kept[-1]] + self._size[kept[-1]] / 0.94 / 2
        with QtCore.QSignalBlocker(self.region):
            self.region.setRegion((lo, hi))
        self.region.show()


def _short(text: str, n: int = 12) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


class ChartsPanel(QtWidgets.QWidget):
    """The dock's contents: a column chooser and the charts side by side.

    ``bind(session)`` follows a session's dataset, columns and selection (through
    :class:`~explorer.gui.subscriptions.Subscriptions`, dropped by ``release()`` or when the
    panel is destroyed). ``brush_changed(mask | None)`` carries the brushes' AND to the map.
    """

    brush_changed = QtCore.Signal(object)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.crossfilter = CrossFilter()
        self.crossfilter.changed.connect(self._filter_changed)
        self.crossfilter.charts_changed.connect(self._charts_changed)
        self.session = None
        self.views: dict[str, ChartView] = {}
        self._subs = Subscriptions(self)
        v = QtWidgets.QVBoxLayout(self)
        v.setContentsMargins(4, 4, 4, 4)
        bar = QtWidgets.QHBoxLayout()
        self.chooser = QtWidgets.QComboBox()
        self.chooser.setMinimumContentsLength(14)
        self.chooser.setToolTip("Add a chart of a metadata column")
        self.chooser.activated.connect(self._chosen)
        bar.addWidget(QtWidgets.QLabel("Chart"))
        bar.addWidget(self.chooser)
        self.clear_button = QtWidgets.QPushButton("Clear brushes")
        self.clear_button.setToolTip("Clear every chart's brush")
        self.clear_button.clicked.connect(lambda: self.crossfilter.clear())
        bar.addWidget(self.clear_button)
        self.status = QtWidgets.QLabel("")
        self.status.setToolTip("How many items lie inside every brush")
        bar.addWidget(self.status, 1)
        v.addLayout(bar)
        self.area = QtWidgets.QScrollArea()
        self.area.setWidgetResizable(True)
        self.area.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        inner = QtWidgets.QWidget()
        self.row = QtWidgets.QHBoxLayout(inner)
        self.row.setContentsMargins(0, 0, 0, 0)
        self.hint = QtWidgets.QLabel("Choose a column above to chart it; brushing a chart greys out the rest of the map.")
        self.hint.setStyleSheet("color: #777")
        self.row.addWidget(self.hint)
        self.row.addStretch(1)
        self.area.setWidget(inner)
        v.addWidget(self.area, 1)

    # -- the session ---------------------------------------------------------------------------
    def bind(self, session) -> None:
        self._subs.release()
        self.session = session
        self._subs.connect(session.dataset_changed, lambda _ds: self._columns_changed())
        self._subs.connect(session.columns_changed, lambda _name: self._columns_changed())
        self._subs.connect(session.selection.changed, self._selection_changed)
        self._columns_changed()

    def release(self) -> None:
        self._subs.release()

    def _columns_changed(self) -> None:
        ds = None if self.session is None else self.session.dataset
        cols = {} if ds is None else ds.columns()
        try:
            self.crossfilter.set_columns(cols)
        except ExplorerError:
            self.crossfilter.set_columns({})
        with QtCore.QSignalBlocker(self.chooser):
            self.chooser.clear()
            self.chooser.addItem("Add a chart…")
            for c in cols:
                self.chooser.addItem(c)

    def _chosen(self, row: int) -> None:
        if row > 0:
            self.add_chart(self.chooser.itemText(row))
        with QtCore.QSignalBlocker(self.chooser):
            self.chooser.setCurrentIndex(0)

    def add_chart(self, column: str) -> ChartView:
        self.crossfilter.add(column)
        return self.views[column]

    def remove_chart(self, column: str) -> None:
        self.crossfilter.remove(column)

    def set_search_mask(self, mask) -> None:
        """The search's matches narrow every chart's blue bars."""
        if mask is not None and len(mask) != self.crossfilter.n:
            mask = None
        self.crossfilter.set_base(mask)
        self._refresh()

    # -- updates -------------------------------------------------------------------------------
    def _charts_changed(self) -> None:
        for c in list(self.views):
            if c not in self.crossfilter.charts or self.views[c].binning is not self.crossfilter.charts[c]:
                w = self.views.pop(c)
                self.row.removeWidget(w)
                w.deleteLater()
        for i, c in enumerate(self.crossfilter.charts):
            if c not in self.views:
                w = ChartView(self.crossfilter, c)
                w.remove_requested.connect(self.remove_chart)
                self.views[c] = w
                self.row.insertWidget(i, w, 1)
        self.hint.setVisible(not self.views)
        self._refresh()

    def _filter_changed(self, _column=None) -> None:
        self.brush_changed.emit(self.crossfilter.mask())
        self._refresh()

    def _selection_changed(self, _indices, _source) -> None:
        self._refresh()

    def _refresh(self) -> None:
        sel = None if self.session is None else self.session.selection.indices
        for w in self.views.values():
            w.refresh(sel)
        m = self.crossfilter.mask()
        n = self.crossfilter.n
        self.status.setText("" if m is None else f"{int(m.sum()):,} of {n:,} items inside the brushes")
