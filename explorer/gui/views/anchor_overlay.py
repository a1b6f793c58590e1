"""The anchors of a relative-representation comparison, marked on a map: a gold star over each
anchor item, above the points and below the focus/neighbour markers.

    mark_anchors(window.findChildren(MapView), session.anchors)   # every open map
    overlay_of(mapview).positions()                               # (K, 2) where the stars are

An overlay is a child of its map: it follows the map's layout (``MapView.layout_changed``) and
the anchors (:class:`explorer.app.anchors.Anchors`), and drops its subscription to the anchors
when the map is destroyed. On a map of some rows of the dataset (a timeline's probe set, named by
``MapView.item_rows``) it stars the anchors among those rows; on a map of another number of items
it hides itself.
"""

from __future__ import annotations

from typing import Iterable, Optional

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore

from explorer.gui.subscriptions import Subscriptions

STAR_BRUSH = (255, 212, 0, 220)  # gold, a little transparent
STAR_PEN = "#202020"


class AnchorOverlay(QtCore.QObject):
    def __init__(self, mapview, anchors) -> None:
        super().__init__(mapview)
        self.map = mapview
        self.anchors = anchors
        self.item = pg.ScatterPlotItem(symbol="star", size=13, pen=pg.mkPen(STAR_PEN, width=1),
                                       brush=pg.mkBrush(*STAR_BRUSH))
        self.item.setZValue(8)  # over the points; the focus (10) and neighbour rings (9) stay on top
        self.item.hide()
        mapview.plot.addItem(self.item)
        self._subs = Subscriptions(self)
        self._subs.connect(anchors.changed, self.refresh)
        mapview.layout_changed.connect(self.refresh)
        self.refresh()

    def positions(self) -> np.ndarray:
        """(K, 2) positions of the stars drawn now (empty when hidden)."""
        if not self.item.isVisible():
            return np.zeros((0, 2), np.float32)
        x, y = self.item.getData()
        return np.column_stack([x, y]).astype(np.float32)

    def refresh(self, *_a) -> None:
        xy, idx = self.map.xy, self.anchors.indices
        pts = self._points_of(idx, 0 if xy is None else len(xy))
        if xy is None or not pts.size:
            self.item.setData([], [])
            self.item.hide()
            return
        self.item.setData(xy[pts, 0].astype(float), xy[pts, 1].astype(float))
        self.item.setToolTip(f"{idx.size} anchors: {self.anchors.how}")
        self.item.show()


    def _points_of(self, idx: np.ndarray, n_points: int) -> np.ndarray:
        """The map's points that are anchors: the anchors themselves on a map of the whole
        dataset, those in the subset on a map of some of its rows (``MapView.item_rows``)."""
        sub = self.map.item_rows
        if sub is not None and len(sub[0]) == n_points and sub[1] == self.anchors.n:
            return np.flatnonzero(np.isin(sub[0], idx))
        if self.anchors.n == n_points:
            return idx
        return np.zeros(0, np.int64)


def overlay_of(mapview) -> Optional[AnchorOverlay]:
    return mapview.findChild(AnchorOverlay)


def mark_anchors(maps: Iterable, anchors) -> list:
    """Give every map in ``maps`` an anchor overlay (once); returns the overlays."""
    out = []
    for m in maps:
        ov = overlay_of(m)
        out.append(ov if ov is not None else AnchorOverlay(m, anchors))
    return out
