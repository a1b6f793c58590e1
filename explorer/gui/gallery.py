"""Galleries of items (thumbnails or text) with captions: the neighbour list, the selection."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets


def qimage_from_array(a: np.ndarray) -> QtGui.QImage:
    """uint8 (H, W) or (H, W, 3|4) -> QImage (copied, so the array may be freed)."""
    a = np.ascontiguousarray(a)
    if a.ndim == 2:
        a = np.ascontiguousarray(np.repeat(a[:, :, None], 3, axis=2))
    h, w, c = a.shape
    fmt = QtGui.QImage.Format_RGBA8888 if c == 4 else QtGui.QImage.Format_RGB888
    return QtGui.QImage(a.data, w, h, w * c, fmt).copy()


def safe_thumbnail(dataset, index: int, size: int = 64) -> Optional[np.ndarray]:
    """The item's thumbnail for hover cards and galleries, or None (not an image dataset, or an
    unreadable file: hovering must never fail because one image is broken)."""
    if dataset is None or dataset.kind != "image":
        return None
    try:
        return dataset.thumbnail(int(index), size)
    except Exception:
        return None


def pixmap_from_array(a: np.ndarray, size: Optional[int] = None) -> QtGui.QPixmap:
    pm = QtGui.QPixmap.fromImage(qimage_from_array(a))
    if size:
        pm = pm.scaled(size, size, QtCore.Qt.KeepAspectRatio, QtCore.Qt.FastTransformation)
    return pm


class Gallery(QtWidgets.QListWidget):
    """Icon grid; ``activated_index(int)`` fires with the dataset index of a clicked item."""

    activated_index = QtCore.Signal(int)

    def __init__(self, icon_size: int = 72, parent=None) -> None:
        super().__init__(parent)
        self.icon_px = icon_size
        self.setViewMode(QtWidgets.QListView.IconMode)
        self.setResizeMode(QtWidgets.QListView.Adjust)
        self.setMovement(QtWidgets.QListView.Static)
        self.setIconSize(QtCore.QSize(icon_size, icon_size))
        self.setGridSize(QtCore.QSize(icon_size + 28, icon_size + 40))
        self.setWordWrap(True)
        self.setUniformItemSizes(True)
        self.setSelectionMode(QtWidgets.QAbstractItemView.SingleSelection)
        self.itemClicked.connect(self._clicked)
        self.itemActivated.connect(self._clicked)

    def _clicked(self, item: QtWidgets.QListWidgetItem) -> None:
        self.activated_index.emit(int(item.data(QtCore.Qt.UserRole)))

    def show_items(self, dataset, indices: Sequence[int], captions: Sequence[str],
                   tooltips: Optional[Sequence[str]] = None) -> None:
        self.setUpdatesEnabled(False)
        self.clear()
        is_image = dataset is not None and dataset.kind == "image"
        if not is_image:
            self.setViewMode(QtWidgets.QListView.ListMode)
            self.setGridSize(QtCore.QSize())
        else:
            self.setViewMode(QtWidgets.QListView.IconMode)
            self.setGridSize(QtCore.QSize(self.icon_px + 28, self.icon_px + 40))
        for k, (i, cap) in enumerate(zip(indices, captions)):
            item = QtWidgets.QListWidgetItem(cap)
            item.setData(QtCore.Qt.UserRole, int(i))
            if is_image:
                thumb = safe_thumbnail(dataset, i, self.icon_px)  # unreadable image: caption only
                if thumb is not None:
                    item.setIcon(QtGui.QIcon(pixmap_from_array(thumb, self.icon_px)))
            else:
                txt = dataset.text(int(i)) if dataset is not None else str(i)
                item.setText(f"{cap}  {txt[:160]}")
            item.setToolTip(tooltips[k] if tooltips else cap)
            self.addItem(item)
        self.setUpdatesEnabled(True)
