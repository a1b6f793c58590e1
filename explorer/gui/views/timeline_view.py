"""A training run over time: metric curves over the checkpoints and one map that scrubs through
the aligned maps of every checkpoint.

    view = TimelineView()
    view.set_result(result, dataset)      # explorer.app.timeline.TimelineResult; dataset for hover/colours
    view.set_position(2.5)                # half-way between checkpoints 2 and 3
    view.play() / view.pause()

* Curves (pyqtgraph, one small plot per metric, x = the run's step/epoch, x-linked): RankMe,
  SIGReg, k-NN accuracy, linear CKA and mutual k-NN to the last checkpoint. A vertical line marks
  the position; clicking a point of a curve jumps to that checkpoint's map.
* The slider moves in hundredths of a checkpoint; the map shows
  :func:`explorer.app.timeline.layout_at` of the position (linear interpolation between the two
  neighbouring aligned maps), with ``set_layout(coords, reset_view=False)`` so the view stays
  put. Play animates with a QTimer (one checkpoint per ``seconds_per_checkpoint``).
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from explorer.gui.gallery import safe_thumbnail
from explorer.gui.views.analysis_plots import styled_plot
from explorer.gui.views.mapview import MapView
from explorer.metrics import registry as _registry
from explorer.app.timeline import TimelineResult, layout_at

SUB = 100  # slider steps per checkpoint
FRAME_MS = 40
LABELS = {m.key: _registry.TIMELINE_LABELS.get(m.key, m.column) for m in _registry.shown_in("timeline")}
COLOURS = {"rankme": "#4c72b0", "sigreg": "#dd8452", "knn_accuracy": "#55a868", "linear_cka": "#c44e52",
           "mutual_knn": "#8172b3"}


class TimelineView(QtWidgets.QWidget):
    """Metric curves + a scrubbable, animated map of a :class:`TimelineResult`."""

    position_changed = QtCore.Signal(float)
    checkpoint_clicked = QtCore.Signal(int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.result: Optional[TimelineResult] = None
        self.dataset = None
        self.seconds_per_checkpoint = 1.0
        self.loop = False
        self._plots: dict = {}
        self._lines: list = []
        self._build_ui()
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(FRAME_MS)
        self._timer.timeout.connect(self._tick)

    def _build_ui(self) -> None:
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        self.curves = pg.GraphicsLayoutWidget()
        self.curves.setBackground("w")
        self.curves.setMinimumWidth(300)
        split.addWidget(self.curves)
        self.map = MapView()
        split.addWidget(self.map)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        split.setSizes([420, 680])
        lay.addWidget(split, 1)
        bar = QtWidgets.QHBoxLayout()
        self.play_button = QtWidgets.QPushButton("Play")
        self.play_button.setCheckable(True)
        self.play_button.toggled.connect(lambda on: self.play() if on else self.pause())
        bar.addWidget(self.play_button)
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.valueChanged.connect(self._slider_moved)
        bar.addWidget(self.slider, 1)
        self.where = QtWidgets.QLabel("")
        self.where.setMinimumWidth(260)
        bar.addWidget(self.where)
        lay.addLayout(bar)

    # ------------------------------------------------------------------ data
    def set_result(self, result: TimelineResult, dataset=None) -> None:
        """Show ``result``. ``dataset`` (the full dataset the probe was drawn from) gives hover
        thumbnails; the colours are the probe's labels when there are any."""
        self.pause()
        self.result = result
        self.dataset = dataset
        T = len(result)
        self._build_curves()
        all_xy = np.concatenate([np.asarray(L, np.float32) for L in result.layouts])
        n_rows = len(dataset) if dataset is not None else None
        self.map.item_rows = None if n_rows is None else (np.asarray(result.probe_indices, np.int64), n_rows)
        self.map.set_layout(result.layouts[0], reset_view=False)
        if result.labels is not None and len(result.label_names):
            self.map.set_categorical(result.labels, [str(n) for n in result.label_names])
        lo, hi = all_xy.min(0), all_xy.max(0)
        self.map.vb.setRange(xRange=(float(lo[0]), float(hi[0])), yRange=(float(lo[1]), float(hi[1])), padding=0.03)
        self.map.set_hover_provider(self._hover)
        self.slider.blockSignals(True)
        self.slider.setRange(0, (T - 1) * SUB)
        self.slider.setPageStep(SUB)
        self.slider.setSingleStep(max(1, SUB // 10))
        self.slider.setValue(0)
        self.slider.blockSignals(False)
        self._show(0.0)

    def _build_curves(self) -> None:
        res = self.result
        self.curves.clear()
        self._plots = {}
        self._lines = []
        x = np.asarray(res.steps, np.float64)
        first = None
        row = 0
        keys = [k for k in LABELS if k in (res.metrics[0] if res.metrics else {})]
        for key in keys:
            y = res.series(key)
            if not np.isfinite(y).any():
                continue
            p = styled_plot(self.curves, row, 0, LABELS[key], left_width=48)
            c = COLOURS[key]
            item = p.plot(x, y, pen=pg.mkPen(c, width=2), symbol="o", symbolSize=9, symbolBrush=c,
                          symbolPen=pg.mkPen("w"), name=key)
            item.sigPointsClicked.connect(self._point_clicked)
            line = pg.InfiniteLine(pos=float(x[0]), angle=90, pen=pg.mkPen("#202020", width=1,
                                                                           style=QtCore.Qt.PenStyle.DashLine))
            p.addItem(line, ignoreBounds=True)
            self._lines.append(line)
            if first is None:
                first = p
            else:
                p.setXLink(first)
            if row < len(keys) - 1:
                p.getAxis("bottom").setStyle(showValues=False)
            self._plots[key] = (p, item)
            row += 1
        if first is not None:
            last = list(self._plots.values())[-1][0]
            last.setLabel("bottom", res.axis)
            last.getAxis("bottom").setStyle(showValues=True)

    # ------------------------------------------------------------------ position
    @property
    def position(self) -> float:
        """Current position in checkpoints (0 .. T-1, fractional)."""
        return self.slider.value() / SUB

    def set_position(self, pos: float) -> None:
        """Move to a fractional checkpoint position (updates the slider and the map)."""
        self.slider.setValue(int(round(float(pos) * SUB)))

    def jump_to(self, i: int) -> None:
        """Show checkpoint ``i``'s map."""
        self.pause()
        self.set_position(int(i))

    def shown_coords(self) -> Optional[np.ndarray]:
        return None if self.map._coords is None else self.map._coords.copy()

    def _slider_moved(self, value: int) -> None:
        self._show(value / SUB)

    def _step_at(self, pos: float) -> float:
        steps = np.asarray(self.result.steps, np.float64)
        i = int(math.floor(pos))
        if i >= len(steps) - 1:
            return float(steps[-1])
        return float(steps[i] + (steps[i + 1] - steps[i]) * (pos - i))

    def _show(self, pos: float) -> None:
        res = self.result
        if res is None:
            return
        self.map.set_layout(layout_at(res, pos), reset_view=False)
        xs = self._step_at(pos)
        for line in self._lines:
            line.setValue(xs)
        i = int(round(pos))
        exact = abs(pos - i) < 1e-9
        name = res.names[i]
        txt = f"{res.axis} {int(res.steps[i])}: {name}" if exact else \
            f"{res.axis} {xs:.1f} (between {res.names[int(math.floor(pos))]} and {res.names[int(math.floor(pos)) + 1]})"
        self.where.setText(txt)
        self.position_changed.emit(float(pos))

    # ------------------------------------------------------------------ play
    @property
    def is_playing(self) -> bool:
        return self._timer.isActive()

    def play(self) -> None:
        if self.result is None or len(self.result) < 2:
            return
        if self.slider.value() >= self.slider.maximum():
            self.slider.setValue(0)
        self._timer.start()
        if not self.play_button.isChecked():
            self.play_button.blockSignals(True)
            self.play_button.setChecked(True)
            self.play_button.blockSignals(False)
        self.play_button.setText("Pause")

    def pause(self) -> None:
        self._timer.stop()
        if self.play_button.isChecked():
            self.play_button.blockSignals(True)
            self.play_button.setChecked(False)
            self.play_button.blockSignals(False)
        self.play_button.setText("Play")

    def _tick(self) -> None:
        step = max(1, int(round(SUB * FRAME_MS / 1000.0 / max(0.05, self.seconds_per_checkpoint))))
        v = self.slider.value() + step
        if v >= self.slider.maximum():
            if self.loop:
                v = 0
            else:
                self.slider.setValue(self.slider.maximum())
                self.pause()
                return
        self.slider.setValue(v)

    # ------------------------------------------------------------------ interaction
    def _point_clicked(self, item, points, ev=None) -> None:
        if points is None or len(points) == 0:
            return
        i = int(points[0].index())
        self.jump_to(i)
        self.checkpoint_clicked.emit(i)

    def _hover(self, j: int):
        res = self.result
        row = int(res.probe_indices[j])
        ds = self.dataset
        text = f"item {ds.ids[row] if ds is not None and ds.ids is not None else row}"
        if res.labels is not None and res.labels[j] >= 0 and res.label_names:
            text += f" ({res.label_names[res.labels[j]]})"
        return text, safe_thumbnail(ds, row, 64)
