"""What the map draws over its points: cluster names at the cluster centres, and density contours.

    labels = ClusterLabels(mapview)              # follows the view's zoom by itself
    labels.set_clusters(centres, names, sizes, spread)
    contours = DensityContours(mapview)
    contours.set_enabled(True)                   # recomputed on every new layout (refresh())

**Names fade with zoom** (Embedding Atlas and Nomic Atlas do the same): a cluster's weight is
``sqrt(share of the points) x zoom`` (zoom: the map's extent over the view's, 1 when the whole
map shows); its name shows from weight :data:`MIN_WEIGHT` (a cluster of 0.5% of the points
on the whole map), fading in up to twice that, largest clusters first, never over a name already
placed. Zoomed out you read the big islands; zooming in brings the smaller ones.

**Contours** are the boundaries of the densest 90/70/50/30/10% of the points
(:mod:`explorer.maps.density`), drawn as thin translucent lines *over* the points: under a
rasterised million-point map they would be hidden exactly where the density is high.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui

MIN_WEIGHT = 0.07
LABEL_Z = 15
CONTOUR_Z = 5
MAX_POINTS = 250_000  # points the contours are computed from (a stride above)


class ClusterLabels(QtCore.QObject):
    """Cluster names on a :class:`~explorer.gui.views.mapview.MapView`, faded by on-screen size."""

    def __init__(self, view) -> None:
        super().__init__(view)
        self.view = view
        self.items: list[pg.TextItem] = []
        self._centres = np.zeros((0, 2), np.float32)
        self._spread = np.zeros(0, np.float32)
        self._order = np.zeros(0, np.int64)
        self.enabled = True
        self._timer = QtCore.QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(30)  # pan/zoom settle: one placement per burst of range changes
        self._timer.timeout.connect(self.update_visibility)
        view.vb.sigRangeChanged.connect(lambda *_a: self._timer.start())
        view.vb.sigResized.connect(lambda *_a: self._timer.start())

    @property
    def anchors(self) -> np.ndarray:
        """(K, 2) where each name belongs (its cluster's centre); drawn there unless pushed
        inside the plot's edge."""
        return self._centres

    @property
    def names(self) -> list[str]:
        return [it.textItem.toPlainText() for it in self.items]

    def visible_names(self) -> list[str]:
        return [it.textItem.toPlainText() for it in self.items if it.isVisible() and it.opacity() > 0]

    def clear(self) -> None:
        for it in self.items:
            self.view.plot.removeItem(it)
        self.items = []
        self._centres = np.zeros((0, 2), np.float32)

    def set_clusters(self, centres: np.ndarray, names: list[str], sizes: np.ndarray, spread: np.ndarray) -> None:
        """``centres`` (K, 2) in map coordinates, one name per cluster, ``sizes`` (points) and
        ``spread`` (map units) ordering and fading them."""
        self.clear()
        self._centres = np.asarray(centres, np.float64)[:, :2]
        self._spread = np.asarray(spread, np.float64)
        sizes = np.asarray(sizes, np.float64)
        self._order = np.argsort(-sizes, kind="stable")
        xy = getattr(self.view, "_xy", None)
        n = max(int(self.view.n), int(sizes.sum()), 1)
        self._share_root = np.sqrt(sizes / n)
        self._extent = float(np.hypot(*np.ptp(xy, axis=0))) if xy is not None and len(xy) else 1.0
        dark = self.view.graphics.backgroundBrush().color().lightness() < 128
        for (x, y), name in zip(self._centres, names):
            it = pg.TextItem(str(name), color="#f0f0f0" if dark else "#1a1a1a", anchor=(0.5, 0.5),
                             fill=pg.mkBrush(30, 30, 30, 170) if dark else pg.mkBrush(255, 255, 255, 190),
                             border=pg.mkPen(120, 120, 120, 120))
            f = it.textItem.font()
            f.setBold(True)
            it.setFont(f)
            it.setPos(float(x), float(y))
            it.setZValue(LABEL_Z)
            self.view.plot.addItem(it, ignoreBounds=True)
            self.items.append(it)
        self.update_visibility()

    def set_enabled(self, on: bool) -> None:
        self.enabled = bool(on)
        self.update_visibility()

    def update_visibility(self) -> None:
        """Place the names: largest cluster first, opacity by on-screen radius, no overlaps."""
        if not self.items:
            return
        vb = self.view.vb
        px = vb.viewPixelSize()  # map units per pixel (x, y)
        if not (px[0] > 0 and px[1] > 0) or not self.enabled:
            for it in self.items:
                it.setVisible(False)
            return
        rect = vb.viewRect()
        bounds = vb.sceneBoundingRect()
        zoom = self._extent / max(float(np.hypot(rect.width(), rect.height())), 1e-12)
        placed: list[QtCore.QRectF] = []
        for k in self._order:
            it = self.items[k]
            x, y = self._centres[k]
            weight = self._share_root[k] * zoom
            alpha = float(np.clip((weight - MIN_WEIGHT) / MIN_WEIGHT, 0.0, 1.0))
            if alpha <= 0.0 or not rect.contains(QtCore.QPointF(x, y)):
                it.setVisible(False)
                continue
            centre = vb.mapViewToScene(QtCore.QPointF(x, y))
            br = it.textItem.boundingRect()
            box = QtCore.QRectF(centre.x() - br.width() / 2, centre.y() - br.height() / 2, br.width(), br.height())
            # a name near the edge is pushed inside the plot rather than cut off
            dx = max(0.0, bounds.left() - box.left()) - max(0.0, box.right() - bounds.right())
            dy = max(0.0, bounds.top() - box.top()) - max(0.0, box.bottom() - bounds.bottom())
            box.translate(dx, dy)
            it.setPos(vb.mapSceneToView(box.center()) if (dx or dy) else QtCore.QPointF(x, y))
            if any(box.intersects(b) for b in placed):
                it.setVisible(False)
                continue
            placed.append(box.adjusted(-3, -2, 3, 2))
            it.setOpacity(0.35 + 0.65 * alpha)
            it.setVisible(True)


class DensityContours(QtCore.QObject):
    """Iso-density lines of the shown 2-D map (see the module docstring)."""

    def __init__(self, view, bins: int = 200, sigma: float = 2.5) -> None:
        from explorer.maps.density import CONTOUR_MASSES

        super().__init__(view)
        self.view = view
        self.bins, self.sigma = bins, sigma
        self.enabled = False
        self.levels: list[float] = []
        self.curves: list[pg.PlotCurveItem] = []
        n = len(CONTOUR_MASSES)
        for i in range(n):
            shade = int(90 - 50 * i / max(n - 1, 1))
            c = pg.PlotCurveItem(pen=pg.mkPen(QtGui.QColor(shade, shade, shade, 110 + 25 * i), width=1.2,
                                              cosmetic=True), connect="finite", antialias=True)
            c.setZValue(CONTOUR_Z)
            c.hide()
            view.plot.addItem(c, ignoreBounds=True)
            self.curves.append(c)

    def set_enabled(self, on: bool) -> None:
        self.enabled = bool(on)
        self.refresh()

    def drawn(self) -> bool:
        return any(c.isVisible() and c.xData is not None and len(c.xData) > 0 for c in self.curves)

    def refresh(self) -> None:
        """Recompute from the view's points (2-D maps only)."""
        from explorer.maps.density import density_grid, mass_levels

        xy: Optional[np.ndarray] = getattr(self.view, "_xy", None)
        # a map still being placed shows no contours: they would outline the fitted sample only
        # (and a million points cost the GUI thread ~0.5 s a block)
        if (not self.enabled or xy is None or len(xy) < 10 or self.view.layout_dims != 2
                or self.view.n_unplaced):
            for c in self.curves:
                c.hide()
            return
        # above MAX_POINTS a regular stride of the points: the same picture at 200 x 200 cells,
        # a fraction of the time on the GUI thread (~0.5 s for 1M points on 2 busy cores)
        step = -(-len(xy) // MAX_POINTS)
        g = density_grid(xy[::step], bins=self.bins, sigma=self.sigma)
        self.levels = mass_levels(g.values)
        for c, level in zip(self.curves, self.levels):
            lines = pg.functions.isocurve(g.values, level, connected=True)
            if not lines:
                c.setData([], [])
                c.hide()
                continue
            parts = []
            for line in lines:
                a = np.asarray(line, np.float64)
                parts.append(a)
                parts.append(np.full((1, 2), np.nan))
            a = np.concatenate(parts)
            # isocurve's coordinates are in cells with cell i centred at i + 0.5 (as the grid's)
            c.setData(g.x0 + a[:, 0] * g.dx, g.y0 + a[:, 1] * g.dy)
            c.show()
