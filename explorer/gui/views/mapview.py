"""The map view: a scatter widget that stays smooth with a million points.

Embedding it::

    from explorer.gui.views.mapview import MapView
    view = MapView()                         # a QWidget: toolbar + plot + legend
    view.set_layout(coords)                  # (N, 2) or (N, 3) float32; 3 -> rotatable projection
    view.bind_selection(state.selection)     # shared explorer.app.selection.Selection (optional)
    view.set_categorical(codes, names)       # (N,) int, class names; -1 = missing (grey)
    view.set_continuous(values, "viridis")   # (N,) float; NaN = missing; colour bar, range
    view.set_uniform()
    view.set_filter(mask)                    # (N,) bool; False greyed out (None: no filter)
    view.set_hover_provider(fn)              # fn(index) -> (html_or_text, thumbnail HxWx3 uint8 | None)
    view.point_clicked.connect(...)          # int (original index)
    view.hovered.connect(...)                # int, -1 when the mouse leaves every point
    view.export_image("map.png", width=3200) # PNG or SVG, publication resolution

Public API (all indices are original row indices of ``coords``):

- ``set_layout(coords, reset_view=True)``; ``n`` (property); ``layout_dims`` (2 or 3);
  ``layout_changed`` (signal) after each: the overlays of :mod:`.map_overlays` follow it.
- ``set_graph_quality(method, recall, target)``: a banner when the k-NN graph behind the map
  is below the asked recall.
- ``set_categorical(codes, names=None)``; ``set_continuous(values, cmap="viridis", vmin=None,
  vmax=None)``; ``set_range(vmin, vmax)``; ``set_uniform(color=None)``.
- Legend: ``set_class_visible(k, visible)``, ``isolate_class(k)``, ``show_all_classes()``,
  ``class_visibility`` (bool per class), ``visible_mask()`` (bool per point: drawn or not).
  In the legend: click toggles a class, double-click or Alt-click isolates it (again: all).
  Beyond 20 classes the smaller ones share one "other" entry and colour.
- ``set_point_size(px)`` (device pixels; default depends on N), ``set_opacity(0..1)``,
  ``set_render_mode("auto" | "points" | "density")``.
- ``set_filter(mask | None)``: non-matching points are drawn pale grey, under the others.
- ``bind_selection(selection)``; ``selection`` (the bound one; an own one until bound).
  The view writes with ``selection.select(..., source=self)`` / ``set_focus(i, source=self)``
  and only *displays* what the selection emits, so two views sharing one selection settle
  after one emission (the Selection emits only on real change).
- ``pick(x_px, y_px, radius_px=None) -> int | None``: nearest drawn point within the radius;
  pixels are those of the plot canvas ``view.graphics`` (= its scene coordinates).
  ``data_to_pixels(x, y)`` / ``pixels_to_data(px, py)`` convert with pyqtgraph's own mapping.
- ``select_in_rect(x0, x1, y0, y1, mode)`` / ``select_in_polygon(xs, ys, mode)`` (data coords;
  what box and lasso call); ``mode`` is replace / add / subtract.
- ``set_tool("pan" | "box" | "lasso")``; ``reset_view()``; ``zoom_to_selection()``;
  ``set_rotation(azimuth_deg, elevation_deg)`` for 3-D layouts.
- ``export_image(path, width=None, height=None, scale=2.0)``: ``.png`` or ``.svg``; see there.
- ``render_stats``: the last frame's visible points, level-of-detail stride, mode and ms.

Mouse and keys: drag pans, wheel zooms; Shift-drag lassos (adds), Ctrl/Cmd-drag lassos
(subtracts); with the Box or Lasso tool a plain drag replaces the selection. Click selects
(Shift adds, Ctrl/Cmd toggles; clicking empty space clears); Esc clears; arrows pan; +/-
zoom; R resets the view; Z zooms to the selection. For 3-D layouts the right mouse button
orbits.

How it draws: see :mod:`explorer.gui.views.pointraster`. One ``PointsItem`` rasterises the visible
points into one image at device resolution on every repaint (numba kernels, ~20 ms at 1M
points on 2 cores). Above ``LOD_BUDGET`` point-stamps it draws a stride-sampled subset while
you pan and refines in a worker thread once the view has been still for ``REFINE_MS``; the
kernels release the GIL, so the UI thread never waits for the full render. Colour indices are
cached per point; changing the filter, the hidden classes or the colour-by column rebuilds
only that array (a few ms at 1M), and the selection is an overlay of its own.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from explorer.gui import gc_thread
from explorer.gui import palette as pal
from explorer.gui.views import pointraster as pr
from explorer.gui.subscriptions import Subscriptions
from explorer.app.selection import Selection

LOD_BUDGET = 4_000_000  # point-stamps drawn synchronously per frame
REFINE_MS = 150
HoverProvider = Callable[[int], tuple]


def _default_point_size(n: int) -> float:
    if n > 300_000:
        return 1.0
    if n > 50_000:
        return 2.0
    if n > 5_000:
        return 4.0
    return 7.0


def _rotation(az_deg: float, el_deg: float) -> np.ndarray:
    a, e = math.radians(az_deg), math.radians(el_deg)
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(e), -math.sin(e)], [0, math.sin(e), math.cos(e)]])
    return (rx @ rz).astype(np.float32)


class _Bridge(QtCore.QObject):
    """Carries a finished background render back to the GUI thread (queued connection)."""

    done = QtCore.Signal(object)


class PointsItem(pg.GraphicsObject):
    """Draws every point of a :class:`MapView` as one image rendered at device resolution."""

    def __init__(self, view: "MapView") -> None:
        super().__init__()
        self._view = weakref.ref(view)
        self._img: Optional[np.ndarray] = None
        self._qimg: Optional[QtGui.QImage] = None
        self._key = None
        self._rect = QtCore.QRectF(0, 0, 1, 1)
        self.stats = pr.RenderStats()
        self._bridge = _Bridge()
        self._bridge.done.connect(self._refined)
        gc_thread.hold(self._bridge)  # the refine thread must not run the cyclic collector
        self._refine_timer = QtCore.QTimer()
        self._refine_timer.setSingleShot(True)
        self._refine_timer.timeout.connect(self._start_refine)
        self._worker: Optional[threading.Thread] = None
        self._pending = None  # (key, viewport) waiting for a full-quality render
        self.sync_only = False  # export / tests: always render in full, synchronously

    # pyqtgraph asks items for their data bounds when auto-ranging
    def dataBounds(self, ax, frac=1.0, orthoRange=None):  # noqa: N802 (pyqtgraph API)
        v = self._view()
        if v is None or v._index is None or v._index.n == 0:
            return (None, None)
        i = v._index
        return (i.xmin, i.xmax) if ax == 0 else (i.ymin, i.ymax)

    def pixelPadding(self):  # noqa: N802
        return 0

    def boundingRect(self):  # noqa: N802
        vb = self.getViewBox()
        if vb is None:
            return QtCore.QRectF(self._rect)
        return vb.viewRect()

    def viewRangeChanged(self):  # noqa: N802 (pyqtgraph hook)
        self.prepareGeometryChange()

    def invalidate(self) -> None:
        self._key = None
        self.update()

    def paint(self, p, *args):
        v = self._view()
        vb = self.getViewBox()
        if v is None or vb is None or v._index is None:
            return
        vr = vb.viewRect()
        if vr.width() <= 0 or vr.height() <= 0:
            return
        dev = p.deviceTransform().mapRect(vr)
        w, h = int(round(dev.width())), int(round(dev.height()))
        if w < 1 or h < 1 or w * h > 64_000_000:
            return
        vp = pr.Viewport(vr.left(), vr.right(), vr.top(), vr.bottom(), w, h)
        # exports paint at a larger scale than the screen: points grow with it
        scale = dev.width() / max(vb.width(), 1.0)
        key = (vp, v._version)
        if key != self._key or self._qimg is None:
            full = self.sync_only or v._sync_render
            img, st = v._render(vp, budget=None if full else LOD_BUDGET,
                                scale=scale if abs(scale - 1.0) > 0.05 else 1.0)
            self._set_image(img, key, st)
            if st.stride > 1:
                self._pending = (key, vp)
                self._refine_timer.start(REFINE_MS)
        # image pixel (px, py) -> data (x0 + px / sx, y1 - py / sy); the painter's own transform
        # then takes it to the device, whatever that is (screen, export image, SVG)
        p.save()
        p.translate(vr.left(), vr.bottom())
        p.scale(vr.width() / w, -vr.height() / h)
        p.drawImage(QtCore.QPointF(0.0, 0.0), self._qimg)
        p.restore()

    def _set_image(self, img, key, st) -> None:
        self._img = img
        h, w = img.shape
        self._qimg = QtGui.QImage(img.data, w, h, 4 * w, QtGui.QImage.Format.Format_ARGB32_Premultiplied)
        self._key = key
        self.stats = st

    def _start_refine(self) -> None:
        v = self._view()
        if v is None or self._pending is None:
            return
        if self._worker is not None and self._worker.is_alive():
            self._refine_timer.start(REFINE_MS // 2)
            return
        key, vp = self._pending
        if key != self._key:
            return
        job = v._render_job(vp)
        bridge = self._bridge

        def work():
            try:
                img, st = job()
            except Exception:  # a render raced a new layout: drop it, the next paint redraws
                return
            bridge.done.emit((key, img, st))

        self._worker = threading.Thread(target=work, name="mapview-refine", daemon=True)
        self._worker.start()

    def _refined(self, result) -> None:
        key, img, st = result
        if key == self._key:
            self._pending = None
            self._set_image(img, key, st)
            self.update()

    def wait_refined(self, timeout: float = 5.0) -> None:
        """Block until a pending background refine has been applied (tests, benchmarks)."""
        t_end = time.monotonic() + timeout
        while self._pending is not None and time.monotonic() < t_end:
            if not self._refine_timer.isActive() and (self._worker is None or not self._worker.is_alive()):
                self._start_refine()
            QtWidgets.QApplication.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 20)
            time.sleep(0.005)


class _MapViewBox(pg.ViewBox):
    """A ViewBox whose drags become box/lasso/orbit and whose clicks select."""

    def __init__(self, view: "MapView") -> None:
        super().__init__(enableMenu=False)
        self._view = weakref.ref(view)

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802 (pyqtgraph API)
        v = self._view()
        if v is not None and v._handle_drag(ev):
            return
        super().mouseDragEvent(ev, axis)

    def mouseClickEvent(self, ev):  # noqa: N802
        v = self._view()
        if v is not None and v._handle_click(ev):
            return
        super().mouseClickEvent(ev)


class LegendWidget(QtWidgets.QListWidget):
    """Class legend: click toggles a class; double-click or Alt-click isolates it."""

    toggled = QtCore.Signal(int)
    isolated = QtCore.Signal(int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.NoSelection)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        self.setIconSize(QtCore.QSize(12, 12))
        self.setMinimumWidth(140)
        self.setMaximumWidth(260)
        self.setStyleSheet("QListWidget { background: white; color: #202020; }")
        self.itemClicked.connect(self._clicked)
        self.itemDoubleClicked.connect(lambda it: self.isolated.emit(self.row(it)))

    def _clicked(self, item) -> None:
        mods = QtWidgets.QApplication.keyboardModifiers()
        if mods & QtCore.Qt.KeyboardModifier.AltModifier:
            self.isolated.emit(self.row(item))
        else:
            self.toggled.emit(self.row(item))

    def set_entries(self, entries: list[tuple[str, tuple[int, int, int], int]], visible) -> None:
        self.clear()
        for (name, rgb, count), vis in zip(entries, visible):
            it = QtWidgets.QListWidgetItem(f"{name}  ({count:,})")
            it.setData(QtCore.Qt.ItemDataRole.UserRole, rgb)
            self.addItem(it)
        self.set_visibility(visible)
        w = self.sizeHintForColumn(0) + 12
        self.setFixedWidth(int(np.clip(w, 140, 260)))

    def set_visibility(self, visible) -> None:
        for row, vis in enumerate(visible):
            it = self.item(row)
            if it is None:
                continue
            rgb = it.data(QtCore.Qt.ItemDataRole.UserRole)
            pm = QtGui.QPixmap(12, 12)
            pm.fill(QtCore.Qt.GlobalColor.transparent)
            qp = QtGui.QPainter(pm)
            c = QtGui.QColor(*rgb)
            qp.setPen(QtGui.QPen(c, 2))
            qp.setBrush(QtGui.QBrush(c) if vis else QtCore.Qt.BrushStyle.NoBrush)
            qp.drawEllipse(QtCore.QRectF(1, 1, 10, 10))
            qp.end()
            it.setIcon(QtGui.QIcon(pm))
            it.setForeground(QtGui.QColor("#202020" if vis else "#a0a0a0"))
            f = it.font()
            f.setStrikeOut(not vis)
            it.setFont(f)


class HoverCard(QtWidgets.QFrame):
    """The hover tooltip: thumbnail (shown at 96 to 160 px), label and metadata next to the cursor."""

    MIN_PX, MAX_PX = 96, 160

    def __init__(self, parent=None) -> None:
        super().__init__(parent, QtCore.Qt.WindowType.ToolTip | QtCore.Qt.WindowType.FramelessWindowHint)
        self.setStyleSheet("HoverCard { background: #fffff4; border: 1px solid #909090; }")
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        self.image = QtWidgets.QLabel()
        self.text = QtWidgets.QLabel()
        self.text.setTextFormat(QtCore.Qt.TextFormat.AutoText)
        self.text.setWordWrap(True)
        self.text.setMaximumWidth(320)
        lay.addWidget(self.image)
        lay.addWidget(self.text)

    def show_item(self, text: str, thumb: Optional[np.ndarray], global_pos: QtCore.QPoint) -> None:
        if thumb is not None:
            a = np.ascontiguousarray(thumb[..., :3], dtype=np.uint8)
            h, w = a.shape[:2]
            qi = QtGui.QImage(a.data, w, h, 3 * w, QtGui.QImage.Format.Format_RGB888).copy()
            pm = QtGui.QPixmap.fromImage(qi)
            if max(w, h) > self.MAX_PX:
                pm = pm.scaled(self.MAX_PX, self.MAX_PX, QtCore.Qt.AspectRatioMode.KeepAspectRatio,
                               QtCore.Qt.TransformationMode.SmoothTransformation)
            elif max(w, h) < self.MIN_PX:  # small images (32 px digits) enlarged, pixels kept crisp
                pm = pm.scaled(self.MIN_PX, self.MIN_PX, QtCore.Qt.AspectRatioMode.KeepAspectRatio,
                               QtCore.Qt.TransformationMode.FastTransformation)
            self.image.setPixmap(pm)
            self.image.show()
        else:
            self.image.clear()
            self.image.hide()
        self.text.setText(text)
        self.adjustSize()
        self.move(global_pos + QtCore.QPoint(16, 16))
        self.show()


class MapView(QtWidgets.QWidget):
    """A 2-D/3-D point map for up to ~10M points. See the module docstring for the API."""

    point_clicked = QtCore.Signal(int)
    hovered = QtCore.Signal(int)
    layout_changed = QtCore.Signal()  # the drawn positions moved (overlays follow: map_overlays.py, anchor_overlay.py)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._coords: Optional[np.ndarray] = None
        self._xy: Optional[np.ndarray] = None
        self._index: Optional[pr.PointIndex] = None
        self._version = 0
        self._sync_render = False
        self._buffers: dict = {}  # GUI-thread render buffers (workers use their own)
        self._cidx_basis = None  # (index, codes, filter) the colour indices were made from
        # A map of some rows of a dataset (a timeline's probe set): the dataset's row of each
        # point, and the dataset's length; None when point i is row i of the dataset.
        self.item_rows: Optional[tuple[np.ndarray, int]] = None
        self._rot = (30.0, 20.0)
        # colour state (original order)
        self._colour_kind = "uniform"
        self._codes_pal: Optional[np.ndarray] = None  # uint16 palette index per point
        self._entry_of_point: Optional[np.ndarray] = None  # legend entry per point (-1: none)
        self._palette = np.asarray([pal.hex_to_rgb(pal.UNIFORM)], np.uint32)
        self._entries: list[tuple[str, tuple[int, int, int], int]] = []
        self._entry_visible = np.zeros(0, bool)
        self._values: Optional[np.ndarray] = None
        self._cmap = "viridis"
        self._vrange = (0.0, 1.0)
        self._filter: Optional[np.ndarray] = None
        self._cidx_sorted: Optional[np.ndarray] = None
        self._sel_sorted = np.zeros(0, np.int64)
        self._style = pr.RenderStyle(palette=self._palette, grey_rgb=pal.FILTERED_RGB)
        self._user_point_size: Optional[float] = None
        self._hover_provider: Optional[HoverProvider] = None
        self._hover_index = -1
        self._tool = "pan"
        self._drag = None
        self._selection: Selection = Selection(0)
        self._owns_selection = True
        self._build_ui()
        self._subs = Subscriptions(self)
        self._connect_selection(self._selection)

    # ------------------------------------------------------------------ construction
    def _build_ui(self) -> None:
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        self.toolbar = QtWidgets.QToolBar()
        self.toolbar.setIconSize(QtCore.QSize(16, 16))
        group = QtGui.QActionGroup(self)
        self._tool_actions = {}
        for name, tip in (("pan", "Pan and zoom (drag, wheel)"), ("box", "Box select"),
                          ("lasso", "Lasso select")):
            a = QtGui.QAction(name.capitalize(), self, checkable=True, toolTip=tip)
            a.triggered.connect(lambda _=False, n=name: self.set_tool(n))
            group.addAction(a)
            self.toolbar.addAction(a)
            self._tool_actions[name] = a
        self._tool_actions["pan"].setChecked(True)
        self.toolbar.addSeparator()
        self.toolbar.addAction("Reset view", self.reset_view)
        self.toolbar.addAction("Zoom to selection", self.zoom_to_selection)
        self._orbit_action = self.toolbar.addAction("Reset rotation", lambda: self.set_rotation(30.0, 20.0))
        self._orbit_action.setVisible(False)
        lay.addWidget(self.toolbar)
        # shown only when the map's k-NN graph is below the asked recall (set_graph_quality)
        self.graph_banner = QtWidgets.QLabel()
        self.graph_banner.setWordWrap(True)
        self.graph_banner.setStyleSheet("QLabel { background: #fff3cd; color: #7a4b00; "
                                        "border-bottom: 1px solid #e0b000; padding: 4px 8px; }")
        self.graph_banner.hide()
        lay.addWidget(self.graph_banner)

        self._figure = QtWidgets.QWidget()
        self._figure.setAutoFillBackground(True)
        pal_ = self._figure.palette()
        pal_.setColor(QtGui.QPalette.ColorRole.Window, QtGui.QColor("white"))
        self._figure.setPalette(pal_)
        fl = QtWidgets.QHBoxLayout(self._figure)
        fl.setContentsMargins(0, 0, 0, 0)
        fl.setSpacing(0)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("w")
        self.graphics.ci.layout.setContentsMargins(4, 4, 4, 4)
        self.vb = _MapViewBox(self)
        self.plot = self.graphics.addPlot(row=0, col=0, viewBox=self.vb)
        self.plot.getAxis("left").setWidth(44)
        for ax in ("left", "bottom"):
            a = self.plot.getAxis(ax)
            a.setPen(pg.mkPen("#404040"))
            a.setTextPen(pg.mkPen("#404040"))
        self.plot.hideButtons()
        self.points = PointsItem(self)
        self.plot.addItem(self.points)
        self.focus_marker = pg.ScatterPlotItem(size=16, pen=pg.mkPen("k", width=2), brush=None)
        self.focus_marker.setZValue(10)
        self.plot.addItem(self.focus_marker)
        # the focused item's nearest neighbours (in the original space): small rings, display only
        self.neighbor_marker = pg.ScatterPlotItem(size=11, pen=pg.mkPen("#e6550d", width=1.6), brush=None)
        self.neighbor_marker.setZValue(9)
        self.neighbor_marker.hide()
        self.neighbor_indices = np.zeros(0, np.int64)
        self._neighbors_of: Optional[int] = None
        self.plot.addItem(self.neighbor_marker)
        # where the mouse is in a linked view (side-by-side maps): a dashed ring, display only
        self.linked_marker = pg.ScatterPlotItem(size=18, pen=pg.mkPen("#d62728", width=2, style=QtCore.Qt.PenStyle.DashLine),
                                                brush=None)
        self.linked_marker.setZValue(11)
        self.linked_marker.hide()
        self.linked_hover_index: Optional[int] = None
        self.plot.addItem(self.linked_marker)
        self._drag_item = QtWidgets.QGraphicsPathItem()
        self._drag_item.setPen(pg.mkPen("#202020", width=1.5, style=QtCore.Qt.PenStyle.DashLine, cosmetic=True))
        self._drag_item.setBrush(QtGui.QBrush(QtGui.QColor(30, 30, 30, 25)))
        self._drag_item.setZValue(20)
        self._drag_item.hide()
        self.vb.addItem(self._drag_item, ignoreBounds=True)
        self.colorbar = pg.ColorBarItem(values=(0, 1), colorMap=pg.colormap.get("viridis"),
                                        interactive=True, width=15, pen="k", colorMapMenu=False)
        self.colorbar.sigLevelsChanged.connect(self._colorbar_moved)
        self.graphics.addItem(self.colorbar, row=0, col=1)
        self.colorbar.hide()
        fl.addWidget(self.graphics, 1)
        self.legend = LegendWidget()
        self.legend.toggled.connect(self._legend_toggled)
        self.legend.isolated.connect(self._legend_isolated)
        self._last_toggle = None  # (entry, time, visibility before) to undo on double-click
        self.legend.hide()
        fl.addWidget(self.legend)
        lay.addWidget(self._figure, 1)

        self.hover_card = HoverCard(self)
        self.hover_card.hide()
        self.graphics.scene().sigMouseMoved.connect(self._mouse_moved)
        self.graphics.viewport().installEventFilter(self)

        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)

    def keyPressEvent(self, ev):  # noqa: N802 (Qt API)
        K = QtCore.Qt.Key
        keys = {
            K.Key_Left: lambda: self._pan_by(-0.1, 0),
            K.Key_Right: lambda: self._pan_by(0.1, 0),
            K.Key_Up: lambda: self._pan_by(0, 0.1),
            K.Key_Down: lambda: self._pan_by(0, -0.1),
            K.Key_Plus: lambda: self.vb.scaleBy((0.8, 0.8)),
            K.Key_Equal: lambda: self.vb.scaleBy((0.8, 0.8)),
            K.Key_Minus: lambda: self.vb.scaleBy((1.25, 1.25)),
            K.Key_R: self.reset_view,
            K.Key_Z: self.zoom_to_selection,
            K.Key_Escape: lambda: self._selection.clear(source=self),
        }
        fn = keys.get(ev.key())
        if fn is None or ev.modifiers() & (QtCore.Qt.KeyboardModifier.ControlModifier
                                           | QtCore.Qt.KeyboardModifier.AltModifier):
            super().keyPressEvent(ev)
            return
        ev.accept()
        fn()

    def eventFilter(self, obj, ev):  # noqa: N802 (Qt API)
        if ev.type() == QtCore.QEvent.Type.Leave:
            self._set_hover(-1, None)
        return False

    # ------------------------------------------------------------------ data
    @property
    def n(self) -> int:
        return 0 if self._coords is None else int(self._coords.shape[0])

    @property
    def layout_dims(self) -> int:
        return 0 if self._coords is None else int(self._coords.shape[1])

    @property
    def selection(self) -> Selection:
        return self._selection

    @property
    def render_stats(self) -> pr.RenderStats:
        return self.points.stats

    def set_layout(self, coords: np.ndarray, reset_view: bool = True) -> None:
        """Show N points: ``coords`` (N, 2) or (N, 3) float. Keeps the colouring if N is unchanged.
        A row of NaN is a point not placed yet (a map still being computed): it is not drawn,
        picked or selected by box or lasso."""
        c = np.asarray(coords, dtype=np.float32)
        if c.ndim != 2 or c.shape[1] not in (2, 3):
            raise ValueError(f"coords must have shape (N, 2) or (N, 3), got {c.shape}")
        if np.isinf(c).any():
            raise ValueError("coords contain infinite values")
        same_n = self._coords is not None and self._coords.shape[0] == c.shape[0]
        self._coords = np.ascontiguousarray(c)
        self._orbit_action.setVisible(c.shape[1] == 3)
        if not same_n:
            self._colour_kind = "uniform"
            self._codes_pal = None
            self._entry_of_point = None
            self._filter = None
            self._values = None
            self._palette = np.asarray([pal.hex_to_rgb(pal.UNIFORM)], np.uint32)
            self._entries = []
            self._entry_visible = np.zeros(0, bool)
            self.legend.hide()
            self.colorbar.hide()
            if self._owns_selection:
                self._selection.reset(c.shape[0])
        if self._user_point_size is None:
            self._style.point_size = _default_point_size(c.shape[0])
        self._project()
        self._apply_selection(self._selection.indices)
        self._apply_focus(self._selection.focus)
        if reset_view:
            self.reset_view()  # (_project has told the overlays: once per layout, 0.5 s at 1M)

    def set_graph_quality(self, method: Optional[str], recall: Optional[float],
                          target: Optional[float] = None) -> None:
        """Banner over the map when the k-NN graph it was built from has a measured recall below
        ``target`` (default 0.99, the app's): only an explicitly chosen approximate method can
        give one. ``recall`` None (PCA, exact) hides it."""
        target = 0.99 if target is None else float(target)
        if recall is None or float(recall) >= target:
            self.graph_banner.hide()
            return
        self.graph_banner.setText(
            f"⚠ This map is built on an approximate {method or ''} neighbour graph with recall "
            f"{float(recall):.3f}, below the target {target:g}: about {1 - float(recall):.0%} of the "
            f"neighbours are wrong. Recompute with the automatic or exact k-NN method.")
        self.graph_banner.show()

    def _project(self) -> None:
        c = self._coords
        if c.shape[1] == 3:
            placed = c if not np.isnan(c).any() else c[~np.isnan(c).any(axis=1)]
            mean = placed.mean(axis=0, dtype=np.float64) if len(placed) else np.zeros(3)
            centred = c - mean.astype(np.float32)
            xy = centred @ _rotation(*self._rot)[:2].T
        else:
            xy = c
        self._xy = np.ascontiguousarray(xy, dtype=np.float32)
        self._index = pr.PointIndex(self._xy[:, 0], self._xy[:, 1])
        self._rebuild_cidx()
        self.layout_changed.emit()

    @property
    def xy(self) -> Optional[np.ndarray]:
        """(N, 2) float32 drawn positions (a 3-D map's rotated projection); None before a layout."""
        return self._xy

    @property
    def n_unplaced(self) -> int:
        """Points of the layout not placed yet (NaN rows): not drawn."""
        return 0 if self._index is None else self._index.n_missing

    # ------------------------------------------------------------------ colour
    def set_uniform(self, color: Optional[str] = None) -> None:
        self._require_layout()
        self._colour_kind = "uniform"
        self._palette = np.asarray([pal.hex_to_rgb(color or pal.UNIFORM)], np.uint32)
        self._codes_pal = None
        self._entry_of_point = None
        self._entries = []
        self._entry_visible = np.zeros(0, bool)
        self.legend.hide()
        self.colorbar.hide()
        self._rebuild_cidx()

    def set_categorical(self, codes: np.ndarray, names: Optional[list[str]] = None) -> None:
        """Colour by class: ``codes`` (N,) int in ``0..K-1`` (-1: missing, drawn grey).
        The 20 largest classes get distinct colours; the rest share "other"."""
        self._require_layout()
        codes = np.asarray(codes)
        if codes.shape != (self.n,):
            raise ValueError(f"codes must have shape ({self.n},), got {codes.shape}")
        codes = codes.astype(np.int64, copy=False)
        k = int(codes.max()) + 1 if codes.size else 0
        if names is None:
            names = [str(i) for i in range(k)]
        names = list(names)
        if len(names) < k:
            raise ValueError(f"codes go up to {k - 1} but only {len(names)} names were given")
        k = len(names)
        counts = np.bincount(codes[codes >= 0], minlength=k)
        if k <= pal.MAX_CLASSES:
            kept = np.arange(k)
        else:  # the largest classes keep a colour, in their code order
            kept = np.sort(np.argsort(-counts, kind="stable")[: pal.MAX_CLASSES - 1])
        colours = pal.categorical_rgb(len(kept))  # len(kept) colours + OTHER
        entry_of_code = np.full(k + 1, -1, np.int64)  # last slot: code -1 (missing)
        pal_of_code = np.full(k + 1, len(kept), np.uint16)  # OTHER colour by default
        entry_of_code[kept] = np.arange(len(kept))
        pal_of_code[kept] = np.arange(len(kept), dtype=np.uint16)
        entries = [(names[c], tuple(int(v) for v in colours[i]), int(counts[c])) for i, c in enumerate(kept)]
        rest = np.setdiff1d(np.arange(k), kept)
        if len(rest):
            entry_of_code[rest] = len(kept)
            entries.append((f"other ({len(rest)} classes)", tuple(int(v) for v in colours[-1]),
                            int(counts[rest].sum())))
        if (codes < 0).any():
            entry_of_code[k] = len(entries)
            entries.append(("missing", tuple(int(v) for v in colours[-1]), int((codes < 0).sum())))
        self._colour_kind = "categorical"
        self._palette = colours
        self._codes_pal = pal_of_code[codes]  # codes -1 index the last slot
        self._entry_of_point = entry_of_code[codes].astype(np.int16)
        self._entries = entries
        self._entry_visible = np.ones(len(entries), bool)
        self.colorbar.hide()
        self.legend.set_entries(entries, self._entry_visible)
        self.legend.show()
        self._rebuild_cidx()

    def set_continuous(self, values: np.ndarray, cmap: str = "viridis", vmin: Optional[float] = None,
                       vmax: Optional[float] = None) -> None:
        """Colour by a number per point through a colormap; NaN is drawn grey. The colour bar's
        handles (or ``set_range``) change vmin/vmax."""
        self._require_layout()
        v = np.asarray(values, dtype=np.float32)
        if v.shape != (self.n,):
            raise ValueError(f"values must have shape ({self.n},), got {v.shape}")
        lut = pal.colormap_rgb(cmap)
        finite = v[np.isfinite(v)]
        lo = float(finite.min()) if vmin is None and finite.size else float(vmin if vmin is not None else 0.0)
        hi = float(finite.max()) if vmax is None and finite.size else float(vmax if vmax is not None else 1.0)
        if hi <= lo:
            hi = lo + 1.0
        self._colour_kind = "continuous"
        self._values = v
        self._cmap = cmap
        self._palette = lut
        self._entries = []
        self._entry_visible = np.zeros(0, bool)
        self._entry_of_point = None
        self.legend.hide()
        self.colorbar.setColorMap(pg.colormap.get(cmap))
        self.colorbar.show()
        self.set_range(lo, hi)

    def set_range(self, vmin: float, vmax: float) -> None:
        """The value range the colormap spans (continuous colouring)."""
        if self._colour_kind != "continuous":
            return
        self._vrange = (float(vmin), float(max(vmax, vmin + 1e-12)))
        with QtCore.QSignalBlocker(self.colorbar):
            self.colorbar.setLevels(self._vrange)
        self._quantise()

    def _colorbar_moved(self, bar) -> None:
        lo, hi = bar.levels()
        if self._colour_kind == "continuous" and (lo, hi) != self._vrange:
            self._vrange = (float(lo), float(max(hi, lo + 1e-12)))
            self._quantise()

    def _quantise(self) -> None:
        lo, hi = self._vrange
        v = self._values
        q = (v - np.float32(lo)) * np.float32(255.0 / (hi - lo))
        np.clip(q, 0, 255, out=q)
        codes = q.astype(np.uint16)
        codes[~np.isfinite(v)] = pr.GREY
        self._codes_pal = codes
        self._rebuild_cidx()

    def set_point_size(self, size: Optional[float]) -> None:
        """Point diameter in device pixels (None: chosen from N)."""
        self._user_point_size = None if size is None else float(max(1.0, size))
        self._style.point_size = self._user_point_size or _default_point_size(self.n)
        self._changed()

    def set_opacity(self, opacity: float) -> None:
        self._style.opacity = float(np.clip(opacity, 0.02, 1.0))
        self._changed()

    def set_render_mode(self, mode: str) -> None:
        """"points" (alpha blending), "density" (log-count shading) or "auto" (density once
        more points are in view than half the pixels)."""
        if mode not in ("auto", "points", "density"):
            raise ValueError("mode must be 'auto', 'points' or 'density'")
        self._style.mode = mode
        self._changed()

    @property
    def filter_mask(self) -> Optional[np.ndarray]:
        """The current filter: (N,) bool, True = matches; None when nothing is filtered."""
        return self._filter

    def set_filter(self, mask: Optional[np.ndarray]) -> None:
        """Grey out the points where ``mask`` is False (None: no filter)."""
        self._require_layout()
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != (self.n,):
                raise ValueError(f"filter mask must have shape ({self.n},), got {mask.shape}")
        self._filter = mask
        self._rebuild_cidx()

    # -- legend
    @property
    def class_visibility(self) -> np.ndarray:
        """Visibility of each legend entry (classes, then "other" and "missing" if present)."""
        return self._entry_visible.copy()

    @property
    def legend_entries(self) -> list[tuple[str, tuple[int, int, int], int]]:
        """(name, rgb, count) of each legend entry."""
        return list(self._entries)

    def _legend_toggled(self, k: int) -> None:
        self._last_toggle = (k, time.monotonic(), self._entry_visible.copy())
        self.set_class_visible(k, not self._entry_visible[k])

    def _legend_isolated(self, k: int) -> None:
        # a double-click arrives after the click of its first press: undo that toggle first
        last = self._last_toggle
        dt = QtWidgets.QApplication.doubleClickInterval() / 1000.0 + 0.1
        if last is not None and last[0] == k and time.monotonic() - last[1] < dt:
            self._entry_visible = last[2].copy()
        self._last_toggle = None
        self.isolate_class(k)

    def set_class_visible(self, entry: int, visible: bool) -> None:
        self._entry_visible[int(entry)] = bool(visible)
        self.legend.set_visibility(self._entry_visible)
        self._rebuild_cidx()

    def isolate_class(self, entry: int) -> None:
        """Show only ``entry``; if it is already the only one shown, show all."""
        entry = int(entry)
        only = self._entry_visible[entry] and self._entry_visible.sum() == 1
        self._entry_visible[:] = only
        self._entry_visible[entry] = True
        self.legend.set_visibility(self._entry_visible)
        self._rebuild_cidx()

    def show_all_classes(self) -> None:
        self._entry_visible[:] = True
        self.legend.set_visibility(self._entry_visible)
        self._rebuild_cidx()

    def visible_mask(self) -> np.ndarray:
        """(N,) bool: the points drawn (not hidden through the legend)."""
        if self._entry_of_point is None or self._entry_visible.all():
            return np.ones(self.n, bool)
        e = self._entry_of_point
        return np.where(e >= 0, self._entry_visible[np.maximum(e, 0)], True)

    def _rebuild_cidx(self) -> None:
        """Colour index per point in sorted order: palette, GREY (filtered out) or SKIP (hidden)."""
        if self._index is None:
            return
        n = self.n
        if self._entry_of_point is None or self._entry_visible.all():  # one compiled pass (brushing)
            codes = self._codes_pal if self._codes_pal is not None else np.zeros(0, np.uint16)
            codes = codes.astype(np.uint16, copy=False)
            keep = self._filter if self._filter is not None else np.zeros(0, bool)
            last = self._cidx_basis
            if (self._filter is not None and last is not None and last[0] is self._index
                    and last[1] is self._codes_pal and last[2] is not None):
                # a new brush over the same colours: rewrite only the points that changed
                out = self._cidx_sorted.copy()  # a refine thread may still read the old one
                pr.regrey(self._index.inv, codes, self._codes_pal is not None, last[2], keep, out)
            else:
                out = np.empty(n, np.uint16)
                pr.sorted_colours(self._index.perm, codes, self._codes_pal is not None,
                                  keep, self._filter is not None, out)
            self._cidx_sorted = out
            self._cidx_basis = (self._index, self._codes_pal, None if self._filter is None else self._filter.copy())
            self._style.palette = self._palette
            return self._changed()
        self._cidx_basis = None
        c = np.zeros(n, np.uint16) if self._codes_pal is None else self._codes_pal.copy()
        if self._filter is not None:
            c[~self._filter] = pr.GREY
        if self._entry_of_point is not None and not self._entry_visible.all():
            c[~self.visible_mask()] = pr.SKIP
        self._cidx_sorted = c[self._index.perm]
        self._style.palette = self._palette
        self._changed()

    def _changed(self) -> None:
        self._version += 1
        self.points.invalidate()

    def _require_layout(self) -> None:
        if self._coords is None:
            raise RuntimeError("call set_layout(coords) first")

    # ------------------------------------------------------------------ rendering
    def _render(self, vp: pr.Viewport, budget: Optional[int], scale: float = 1.0):
        style = self._style
        if scale != 1.0:
            style = pr.RenderStyle(**{f: getattr(style, f) for f in style.__dataclass_fields__})
            style.point_size = style.point_size * scale
        return self._index.render(vp, self._cidx_sorted, style, selected=self._sel_sorted,
                                  budget=budget, buffers=self._buffers)

    def _render_job(self, vp: pr.Viewport):
        index, cidx, sel = self._index, self._cidx_sorted, self._sel_sorted
        style = pr.RenderStyle(**{f: getattr(self._style, f) for f in self._style.__dataclass_fields__})
        return lambda: index.render(vp, cidx, style, selected=sel, stride=1)

    # ------------------------------------------------------------------ selection
    def bind_selection(self, selection: Selection) -> None:
        """Share ``selection`` with other views: show it, and write to it."""
        self._subs.release()
        self._selection = selection
        self._owns_selection = False
        self._connect_selection(selection)
        self._apply_selection(selection.indices)
        self._apply_focus(selection.focus)

    def _connect_selection(self, sel: Selection) -> None:
        self._subs.connect(sel.changed, self._on_selection_changed)
        self._subs.connect(sel.focus_changed, self._on_focus_changed)

    def release(self) -> None:
        """Stop listening to the shared selection (the view is closing)."""
        self._subs.release()

    def _on_selection_changed(self, indices, source) -> None:
        # Display only; never writes back, so sharing a selection cannot loop.
        self._apply_selection(indices)

    def _on_focus_changed(self, index, source) -> None:
        self._apply_focus(index)

    def _apply_selection(self, indices) -> None:
        idx = np.asarray(indices, np.int64)
        if self._index is None:
            return
        idx = idx[(idx >= 0) & (idx < self.n)]
        self._sel_sorted = np.sort(self._index.inv[idx]) if idx.size else np.zeros(0, np.int64)
        self._changed()

    def _apply_focus(self, index) -> None:
        if index is None or self._xy is None or not (0 <= int(index) < self.n):
            self.focus_marker.setData([], [])
            self.focus_marker.hide()  # an empty ScatterPlotItem still costs ~3 ms a paint
        else:
            x, y = self._xy[int(index)]
            self.focus_marker.setData([float(x)], [float(y)])
            self.focus_marker.show()
        same = index is not None and self._neighbors_of == int(index)
        self.show_neighbors(self._neighbors_of if same else None, self.neighbor_indices if same else ())

    def show_neighbors(self, of: Optional[int], indices) -> None:
        """Ring ``indices``, the nearest neighbours of item ``of`` (the focus), on the map; they
        go when the focus moves elsewhere. Empty: none."""
        self._neighbors_of = None if of is None else int(of)
        idx = np.asarray(indices if indices is not None else [], np.int64).ravel()
        idx = idx[(idx >= 0) & (idx < self.n)] if self._xy is not None else idx[:0]
        self.neighbor_indices = idx
        if not idx.size:
            self.neighbor_marker.setData([], [])
            self.neighbor_marker.hide()
            return
        xy = self._xy[idx]
        self.neighbor_marker.setData(xy[:, 0].astype(float), xy[:, 1].astype(float))
        self.neighbor_marker.show()

    def show_linked_hover(self, index: Optional[int]) -> None:
        """Mark the item the mouse is over in a linked view (-1/None: no marker). Display only."""
        if index is None or index < 0 or self._xy is None or not (0 <= int(index) < self.n):
            self.linked_hover_index = None
            self.linked_marker.hide()
            return
        self.linked_hover_index = int(index)
        x, y = self._xy[int(index)]
        self.linked_marker.setData([float(x)], [float(y)])
        self.linked_marker.show()

    def select_in_rect(self, x0: float, x1: float, y0: float, y1: float, mode: str = "replace") -> np.ndarray:
        """Select the drawn points inside a data rectangle; returns their indices."""
        self._require_layout()
        idx = self._index.in_rect(x0, x1, y0, y1)
        idx = idx[self.visible_mask()[idx]]
        self._selection.select(idx, mode, source=self)
        return idx

    def select_in_polygon(self, xs, ys, mode: str = "replace") -> np.ndarray:
        """Select the drawn points inside a polygon (data coords, even-odd rule)."""
        self._require_layout()
        idx = self._index.in_polygon(np.asarray(xs), np.asarray(ys))
        idx = idx[self.visible_mask()[idx]]
        self._selection.select(idx, mode, source=self)
        return idx

    # ------------------------------------------------------------------ picking, mapping
    def data_to_pixels(self, x, y) -> tuple[float, float]:
        """Data -> canvas pixel (scene) coordinates, via pyqtgraph's ViewBox mapping."""
        p = self.vb.mapViewToScene(QtCore.QPointF(float(x), float(y)))
        return p.x(), p.y()

    def pixels_to_data(self, px: float, py: float) -> tuple[float, float]:
        p = self.vb.mapSceneToView(QtCore.QPointF(float(px), float(py)))
        return p.x(), p.y()

    def pick(self, x_px: float, y_px: float, radius_px: Optional[float] = None) -> Optional[int]:
        """Index of the drawn point nearest canvas pixel (x_px, y_px), if within ``radius_px``
        (default: half the point size + 4 px); else None."""
        if self._index is None or self.n == 0:
            return None
        if radius_px is None:
            radius_px = self._style.point_size / 2 + 4
        qx, qy = self.pixels_to_data(x_px, y_px)
        pw, ph = self.vb.viewPixelSize()  # data units per pixel
        if pw <= 0 or ph <= 0:
            return None
        return self._index.nearest(qx, qy, 1.0 / pw, 1.0 / ph, radius_px, self._cidx_sorted)

    def set_hover_provider(self, fn: Optional[HoverProvider]) -> None:
        """``fn(index) -> (html_or_text, thumbnail HxWx3 uint8 or None)`` for the hover card."""
        self._hover_provider = fn

    def _mouse_moved(self, scene_pos) -> None:
        if self._drag is not None:
            return
        i = self.pick(scene_pos.x(), scene_pos.y())
        self._set_hover(-1 if i is None else i, scene_pos)

    def _set_hover(self, i: int, scene_pos) -> None:
        if i == self._hover_index:
            return
        self._hover_index = i
        self.hovered.emit(i)
        if i < 0 or self._hover_provider is None:
            self.hover_card.hide()
            return
        try:
            res = self._hover_provider(i)
        except Exception as exc:  # a provider error must not break hovering
            res = (f"item {i}<br><i>{exc}</i>", None)
        text, thumb = (res, None) if isinstance(res, str) else (res[0], res[1] if len(res) > 1 else None)
        gp = self.graphics.mapToGlobal(self.graphics.mapFromScene(scene_pos))
        self.hover_card.show_item(text, thumb, gp)

    # ------------------------------------------------------------------ mouse
    def set_tool(self, tool: str) -> None:
        if tool not in self._tool_actions:
            raise ValueError("tool must be 'pan', 'box' or 'lasso'")
        self._tool = tool
        self._tool_actions[tool].setChecked(True)

    @staticmethod
    def _mode_from(mods) -> str:
        M = QtCore.Qt.KeyboardModifier
        if mods & (M.ControlModifier | M.MetaModifier):
            return "subtract"
        if mods & M.ShiftModifier:
            return "add"
        return "replace"

    def _handle_drag(self, ev) -> bool:
        B = QtCore.Qt.MouseButton
        if ev.button() == B.RightButton and self.layout_dims == 3:
            ev.accept()
            d = ev.screenPos() - ev.lastScreenPos()
            az, el = self._rot
            self.set_rotation(az + d.x() * 0.4, float(np.clip(el + d.y() * 0.4, -89, 89)))
            return True
        if ev.button() != B.LeftButton:
            return False
        mods = ev.modifiers()
        if self._drag is None:
            if not ev.isStart():
                return False
            selecting = self._tool != "pan" or mods & (
                QtCore.Qt.KeyboardModifier.ShiftModifier | QtCore.Qt.KeyboardModifier.ControlModifier
                | QtCore.Qt.KeyboardModifier.MetaModifier)
            if not selecting:
                return False
            kind = "box" if self._tool == "box" else "lasso"
            self._drag = (kind, self._mode_from(mods), [self.vb.mapSceneToView(ev.buttonDownScenePos())])
        ev.accept()
        kind, mode, pts = self._drag
        pts.append(self.vb.mapSceneToView(ev.scenePos()))
        path = QtGui.QPainterPath()
        if kind == "box":
            path.addRect(QtCore.QRectF(pts[0], pts[-1]).normalized())
        else:
            path.addPolygon(QtGui.QPolygonF(pts))
            path.closeSubpath()
        self._drag_item.setPath(path)
        self._drag_item.show()
        if ev.isFinish():
            self._drag = None
            self._drag_item.hide()
            if kind == "box":
                a, b = pts[0], pts[-1]
                self.select_in_rect(a.x(), b.x(), a.y(), b.y(), mode)
            else:
                xs = np.array([p.x() for p in pts])
                ys = np.array([p.y() for p in pts])
                self.select_in_polygon(xs, ys, mode)
        return True

    def _handle_click(self, ev) -> bool:
        if ev.button() != QtCore.Qt.MouseButton.LeftButton:
            return False
        ev.accept()
        sp = ev.scenePos()
        i = self.pick(sp.x(), sp.y())
        mods = ev.modifiers()
        mode = self._mode_from(mods)
        if mode == "subtract":
            mode = "toggle"
        if i is None:
            if mode == "replace":
                self._selection.clear(source=self)
            return True
        self._selection.select([i], mode, source=self)
        self._selection.set_focus(i, source=self)
        self.point_clicked.emit(int(i))
        return True

    # ------------------------------------------------------------------ view
    def _pan_by(self, fx: float, fy: float) -> None:
        vr = self.vb.viewRect()
        self.vb.translateBy(x=fx * vr.width(), y=fy * vr.height())

    def reset_view(self) -> None:
        if self._index is None:
            return
        i = self._index
        self.vb.setRange(xRange=(i.xmin, i.xmax), yRange=(i.ymin, i.ymax), padding=0.03)

    def zoom_to_selection(self) -> None:
        idx = self._selection.indices
        idx = idx[idx < self.n] if self._xy is not None else idx[:0]
        if idx.size == 0:
            return
        pts = self._xy[idx]
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        span = np.maximum(hi - lo, 1e-6 * max(1.0, float(np.abs(pts).max())))
        c = (lo + hi) / 2
        lo, hi = c - span / 2, c + span / 2
        self.vb.setRange(xRange=(lo[0], hi[0]), yRange=(lo[1], hi[1]), padding=0.15)

    def set_rotation(self, azimuth_deg: float, elevation_deg: float) -> None:
        """3-D layouts: orbit the camera (degrees); the map shows the rotated x/y."""
        self._rot = (float(azimuth_deg), float(elevation_deg))
        if self.layout_dims == 3:
            self._project()
            self._apply_selection(self._selection.indices)
            self._apply_focus(self._selection.focus)

    # ------------------------------------------------------------------ export
    def export_image(self, path, width: Optional[int] = None, height: Optional[int] = None,
                     scale: float = 2.0) -> Path:
        """Write the plot, colour bar and legend (not the toolbar) to ``path``.

        ``.png``: a raster of exactly ``width`` x ``height`` pixels. Without both, the size is
        the on-screen size times ``scale`` (or ``width``/``height`` with the on-screen aspect).
        Text and lines are drawn at that resolution and the points are re-rasterised at it.
        ``.svg``: the same composition with ``width``/``height`` in px on the root element;
        axes, ticks, labels and legend are vector, the points are one embedded raster image at
        the SVG's full pixel size (a million vector circles would not open anywhere).
        """
        path = Path(path)
        fmt = path.suffix.lower()
        if fmt not in (".png", ".svg"):
            raise ValueError(f"{path.name}: export to .png or .svg")
        fig = self._figure
        w0, h0 = max(fig.width(), 1), max(fig.height(), 1)
        if width and height:
            out_w, out_h = int(width), int(height)
            s = float(scale)
        elif width:
            s = width / w0
            out_w, out_h = int(width), int(round(h0 * s))
        elif height:
            s = height / h0
            out_w, out_h = int(round(w0 * s)), int(height)
        else:
            s = float(scale)
            out_w, out_h = int(round(w0 * s)), int(round(h0 * s))
        lw, lh = max(1, int(round(out_w / s))), max(1, int(round(out_h / s)))
        old = fig.size()
        resized = (lw, lh) != (w0, h0)
        if resized:
            fig.resize(lw, lh)
            QtCore.QCoreApplication.sendPostedEvents()
            fig.layout().activate()
        self.hover_card.hide()
        self.points.sync_only = True
        try:
            if fmt == ".png":
                img = QtGui.QImage(out_w, out_h, QtGui.QImage.Format.Format_ARGB32)
                img.fill(QtGui.QColor("white"))
                qp = QtGui.QPainter(img)
                qp.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
                qp.setRenderHint(QtGui.QPainter.RenderHint.TextAntialiasing)
                qp.scale(out_w / lw, out_h / lh)
                fig.render(qp, QtCore.QPoint(), QtGui.QRegion(),
                           QtWidgets.QWidget.RenderFlag.DrawChildren | QtWidgets.QWidget.RenderFlag.DrawWindowBackground)
                qp.end()
                if not img.save(str(path), "PNG", 80):  # light compression: 3x faster
                    raise OSError(f"could not write {path}")
            else:
                from PySide6 import QtSvg

                gen = QtSvg.QSvgGenerator()
                gen.setFileName(str(path))
                gen.setSize(QtCore.QSize(out_w, out_h))
                gen.setViewBox(QtCore.QRect(0, 0, out_w, out_h))
                gen.setResolution(96)
                gen.setTitle("Embedding Explorer map")
                qp = QtGui.QPainter(gen)
                qp.scale(out_w / lw, out_h / lh)
                fig.render(qp, QtCore.QPoint(), QtGui.QRegion(),
                           QtWidgets.QWidget.RenderFlag.DrawChildren | QtWidgets.QWidget.RenderFlag.DrawWindowBackground)
                qp.end()
                _svg_pixel_size(path, out_w, out_h)
        finally:
            self.points.sync_only = False
            if resized:
                fig.resize(old)
                QtCore.QCoreApplication.sendPostedEvents()
            self.points.invalidate()
        return path


def _svg_pixel_size(path: Path, w: int, h: int) -> None:
    """QSvgGenerator writes width/height in mm; state them in px, as the file's pixel size."""
    import re

    text = path.read_text(encoding="utf-8")
    head, sep, rest = text.partition("<svg")
    tag_end = rest.index(">")
    tag = rest[:tag_end]
    tag = re.sub(r'\swidth="[^"]*"', f' width="{w}px"', tag, count=1)
    tag = re.sub(r'\sheight="[^"]*"', f' height="{h}px"', tag, count=1)
    path.write_text(head + sep + tag + rest[tag_end:], encoding="utf-8")
