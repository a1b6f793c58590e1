"""Side panels of the main window: inspector (focused item + neighbours), selection summary,
projection settings, and the message bar that shows errors without a modal dialog."""

from __future__ import annotations

import html
from typing import Optional

import numpy as np
from PySide6 import QtCore, QtWidgets

from explorer.app.pipeline import MapSettings
from explorer.gui.gallery import Gallery, pixmap_from_array


class MessageBar(QtWidgets.QFrame):
    """A dismissable banner: one plain sentence, with the technical part behind "Details"."""

    COLORS = {"error": ("#fdecea", "#8a1c12"), "info": ("#e8f1fb", "#123e6b"), "warning": ("#fff4e0", "#6b4300")}

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("MessageBar")
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(10, 6, 6, 6)
        self.label = QtWidgets.QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        self.details_btn = QtWidgets.QPushButton("Details…")
        self.details_btn.clicked.connect(self._show_details)
        close = QtWidgets.QToolButton()
        close.setText("✕")
        close.setToolTip("Dismiss (Esc)")
        close.clicked.connect(self.hide)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.details_btn)
        lay.addWidget(close)
        self._details = ""
        self.level = ""
        self.hide()

    def show_message(self, text: str, details: str = "", level: str = "error") -> None:
        bg, fg = self.COLORS.get(level, self.COLORS["info"])
        self.setStyleSheet(f"#MessageBar {{ background: {bg}; border: 1px solid {fg}; border-radius: 4px; }}"
                           f"#MessageBar QLabel {{ color: {fg}; }}")
        self.level = level
        self.label.setText(text)
        self._details = details
        self.details_btn.setVisible(bool(details))
        self.show()

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""

    def _show_details(self) -> None:
        box = QtWidgets.QMessageBox(self)
        box.setIcon(QtWidgets.QMessageBox.Information)
        box.setWindowTitle("Details")
        box.setText(self.label.text())
        box.setDetailedText(self._details)
        box.open()


class InspectorPanel(QtWidgets.QWidget):
    """The focused item large, its metadata, and its k nearest neighbours in the original space."""

    neighbor_activated = QtCore.Signal(int)
    k_changed = QtCore.Signal(int)
    metric_changed = QtCore.Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        lay = QtWidgets.QVBoxLayout(self)
        self.title = QtWidgets.QLabel("Click a point on the map to inspect it.")
        self.title.setWordWrap(True)
        f = self.title.font()
        f.setBold(True)
        self.title.setFont(f)
        self.image = QtWidgets.QLabel()
        self.image.setAlignment(QtCore.Qt.AlignCenter)
        self.image.setMinimumHeight(140)
        self.text = QtWidgets.QTextBrowser()
        self.text.setMaximumHeight(120)
        self.meta = QtWidgets.QTableWidget(0, 2)
        self.meta.setHorizontalHeaderLabels(["Field", "Value"])
        self.meta.horizontalHeader().setStretchLastSection(True)
        self.meta.verticalHeader().hide()
        self.meta.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.meta.setMaximumHeight(150)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(QtWidgets.QLabel("Neighbours"))
        self.k = QtWidgets.QSpinBox()
        self.k.setRange(1, 200)
        self.k.setValue(12)
        self.k.setPrefix("k = ")
        self.k.setToolTip("How many nearest neighbours to show (exact search in the embedding space)")
        self.metric_box = QtWidgets.QComboBox()
        self.metric_box.addItems(["cosine", "euclidean", "dot"])
        self.metric_box.setToolTip("Similarity used for the neighbours")
        row.addStretch(1)
        row.addWidget(self.k)
        row.addWidget(self.metric_box)
        self.gallery = Gallery(72)
        self.gallery.activated_index.connect(self.neighbor_activated)
        self.k.valueChanged.connect(self.k_changed)
        self.metric_box.currentTextChanged.connect(self.metric_changed)
        self.hint = QtWidgets.QLabel("")
        self.hint.setEnabled(False)
        self.hint.setWordWrap(True)  # a long hint must not widen the dock
        lay.addWidget(self.title)
        lay.addWidget(self.image)
        lay.addWidget(self.text)
        lay.addWidget(self.meta)
        lay.addLayout(row)
        lay.addWidget(self.gallery, 1)
        lay.addWidget(self.hint)
        self.text.hide()
        self.index: Optional[int] = None

    def show_item(self, dataset, index: Optional[int]) -> None:
        self.index = index
        if dataset is None or index is None:
            self.title.setText("Click a point on the map to inspect it.")
            self.image.clear()
            self.text.hide()
            self.meta.setRowCount(0)
            self.gallery.clear()
            return
        label = dataset.label_of(index)
        ident = dataset.ids[index] if dataset.ids is not None else index
        self.title.setText(f"#{index}  {ident}" + (f"  —  {label}" if label else ""))
        if dataset.kind == "image":
            self.text.hide()
            try:
                self.image.setPixmap(pixmap_from_array(dataset.image(index, 160), 160))
            except Exception as exc:
                self.image.setText(f"Cannot show this image: {exc}")
        else:
            self.image.clear()
            self.image.setMinimumHeight(0)
            self.text.show()
            self.text.setPlainText(dataset.text(index))
        cols = dataset.columns()
        self.meta.setRowCount(len(cols))
        for r, (k, v) in enumerate(cols.items()):
            self.meta.setItem(r, 0, QtWidgets.QTableWidgetItem(str(k)))
            val = v[index]
            if isinstance(val, (float, np.floating)):
                val = f"{val:.4g}"
            self.meta.setItem(r, 1, QtWidgets.QTableWidgetItem(str(val)))

    def show_neighbors(self, dataset, indices, scores, metric: str, how: str = "exact") -> None:
        caps, tips = [], []
        for i, s in zip(indices, scores):
            lab = dataset.label_of(int(i)) or ""
            caps.append(f"{s:.3f} {lab}".strip())
            tips.append(f"#{int(i)} {dataset.ids[int(i)] if dataset.ids is not None else ''}\n{metric}: {s:.4f}\n{lab}")
        self.gallery.show_items(dataset, indices, caps, tips)
        self.hint.setText(f"{len(indices)} nearest by {metric}, {how}, self excluded. Click one to move the focus.")


class SelectionPanel(QtWidgets.QWidget):
    """Counts per label and a gallery of the whole selection, a page at a time, in dataset
    order, by label, or nearest to the focused item first."""

    item_activated = QtCore.Signal(int)
    PAGE = 200

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        lay = QtWidgets.QVBoxLayout(self)
        self.summary = QtWidgets.QLabel(self.EMPTY)
        self.summary.setWordWrap(True)
        self.counts = QtWidgets.QTableWidget(0, 2)
        self.counts.setHorizontalHeaderLabels(["Label", "Count"])
        self.counts.horizontalHeader().setStretchLastSection(True)
        self.counts.verticalHeader().hide()
        self.counts.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.counts.setMaximumHeight(180)
        from explorer.app.selection import ORDERS

        self.order = QtWidgets.QComboBox()
        self.order.addItems(list(ORDERS))
        self.order.setToolTip("Gallery order: dataset order, by label, or nearest to the inspected item first")
        self.order.currentTextChanged.connect(lambda _t: self._reorder())
        self.page = QtWidgets.QSpinBox()
        self.page.setMinimum(1)
        self.page.setPrefix("page ")
        self.page.valueChanged.connect(lambda _v: self._show_page())
        self.pages = QtWidgets.QLabel("")
        row = QtWidgets.QHBoxLayout()
        row.addWidget(QtWidgets.QLabel("Sort"))
        row.addWidget(self.order, 1)
        row.addWidget(self.page)
        row.addWidget(self.pages)
        self.gallery = Gallery(56)
        self.gallery.activated_index.connect(self.item_activated)
        lay.addWidget(self.summary)
        lay.addWidget(self.counts)
        lay.addLayout(row)
        lay.addWidget(self.gallery, 1)
        self._dataset, self._indices, self._ordered = None, np.zeros(0, np.int64), np.zeros(0, np.int64)
        self._vectors, self._focus = None, None

    EMPTY = "Nothing selected. Shift-drag a lasso on the map (or use the Box/Lasso tools), or search and press Enter."

    def show_selection(self, dataset, indices: np.ndarray, vectors=None, focus=None) -> None:
        """``vectors`` (the shown model's) and ``focus`` serve the "distance to focus" order."""
        self._dataset, self._indices = dataset, np.asarray(indices, np.int64)
        self._vectors, self._focus = vectors, focus
        n = len(indices)
        if dataset is None or n == 0:
            self.summary.setText(self.EMPTY)
            self.counts.setRowCount(0)
            self.gallery.clear()
            self.page.setMaximum(1)
            self.pages.setText("")
            return
        self.summary.setText(f"{n:,} selected of {len(dataset):,}")
        if dataset.labels is not None:
            codes = dataset.labels[self._indices]
            uniq, cnt = np.unique(codes, return_counts=True)
            order = np.argsort(-cnt)
            self.counts.setRowCount(len(uniq))
            for r, j in enumerate(order):
                name = dataset.label_names[uniq[j]] if uniq[j] >= 0 else "(none)"
                self.counts.setItem(r, 0, QtWidgets.QTableWidgetItem(str(name)))
                it = QtWidgets.QTableWidgetItem()
                it.setData(QtCore.Qt.DisplayRole, int(cnt[j]))
                self.counts.setItem(r, 1, it)
        else:
            self.counts.setRowCount(0)
        self._reorder()

    def set_focus(self, vectors, focus) -> None:
        """The inspected item moved: re-sort if the gallery is ordered by distance to it."""
        self._vectors, self._focus = vectors, focus
        if self.order.currentText() == "distance to focus" and self._indices.size:
            self._reorder()

    def _reorder(self) -> None:
        from explorer.app.selection import order_items

        ds = self._dataset
        if ds is None or not self._indices.size:
            return
        self._ordered = order_items(self._indices, self.order.currentText(), ds.labels, self._vectors, self._focus)
        n_pages = max(1, -(-len(self._ordered) // self.PAGE))
        with QtCore.QSignalBlocker(self.page):
            self.page.setMaximum(n_pages)
            self.page.setValue(1)
        self.pages.setText(f"of {n_pages}")
        self._show_page()

    def shown_indices(self) -> np.ndarray:
        start = (self.page.value() - 1) * self.PAGE
        return self._ordered[start:start + self.PAGE]

    def _show_page(self) -> None:
        ds = self._dataset
        if ds is None:
            return
        shown = self.shown_indices()
        self.gallery.show_items(ds, shown, [ds.label_of(int(i)) or f"#{int(i)}" for i in shown])


ProjectionSettings = MapSettings  # the panel edits the pipeline's map settings


class ProjectionPanel(QtWidgets.QWidget):
    """Method, n_neighbors, min_dist, metric and seed; "Apply" re-runs only what changed
    (the maps engine caches the kNN graph separately from the layout)."""

    apply_requested = QtCore.Signal(object)  # ProjectionSettings

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        form = QtWidgets.QFormLayout(self)
        self.method = QtWidgets.QComboBox()
        self.method.addItems(["umap", "pca"])
        self.method.setToolTip("PCA is exact and immediate; UMAP uses the shared kNN graph")
        self.n_neighbors = QtWidgets.QSpinBox()
        self.n_neighbors.setRange(2, 200)
        self.n_neighbors.setValue(15)
        self.n_neighbors.setToolTip("UMAP n_neighbors: larger keeps more global structure (re-runs the kNN graph)")
        self.min_dist = QtWidgets.QDoubleSpinBox()
        self.min_dist.setRange(0.0, 1.0)
        self.min_dist.setSingleStep(0.05)
        self.min_dist.setValue(0.1)
        self.min_dist.setToolTip("UMAP min_dist: how tightly points pack (re-runs only the layout)")
        self.metric_box = QtWidgets.QComboBox()
        self.metric_box.addItems(["cosine", "euclidean", "dot"])
        self.metric_box.setToolTip("Similarity of the kNN graph")
        self.seed = QtWidgets.QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("Random seed: the same seed gives the same map")
        self.optimizer = QtWidgets.QComboBox()
        self.optimizer.addItems(["fast", "umap-learn"])
        self.optimizer.setToolTip("UMAP optimiser. fast: the same SGD in float32, several times quicker; "
                                  "umap-learn: umap-learn's own kernel, bit-identical to umap.UMAP "
                                  "with the same seed and graph (slower)")
        self.dims = QtWidgets.QComboBox()
        self.dims.addItems(["2", "3"])
        self.dims.setToolTip("3 components give a rotatable 3-D view")
        self.apply = QtWidgets.QPushButton("Apply")
        self.apply.setToolTip("Recompute the map with these settings (Ctrl+R)")
        self.apply.clicked.connect(lambda: self.apply_requested.emit(self.settings()))
        form.addRow("Method", self.method)
        form.addRow("Neighbours", self.n_neighbors)
        form.addRow("Min. distance", self.min_dist)
        form.addRow("Metric", self.metric_box)
        form.addRow("Seed", self.seed)
        form.addRow("Optimiser", self.optimizer)
        form.addRow("Dimensions", self.dims)
        form.addRow(self.apply)
        self.info = QtWidgets.QLabel("")
        self.info.setWordWrap(True)
        self.info.setEnabled(False)
        form.addRow(self.info)

    def settings(self) -> ProjectionSettings:
        return ProjectionSettings(self.method.currentText(), self.n_neighbors.value(), self.min_dist.value(),
                                  self.metric_box.currentText(), self.seed.value(), int(self.dims.currentText()),
                                  self.optimizer.currentText())

    def set_settings(self, s: ProjectionSettings) -> None:
        self.method.setCurrentText(s.method)
        self.n_neighbors.setValue(s.n_neighbors)
        self.min_dist.setValue(s.min_dist)
        self.metric_box.setCurrentText(s.metric)
        self.seed.setValue(s.seed)
        self.dims.setCurrentText(str(s.dims))
        self.optimizer.setCurrentText(s.optimizer)


def item_tooltip_html(dataset, index: int) -> str:
    """Hover text: id, label and the first metadata columns."""
    rows = []
    for k, v in list(dataset.columns().items())[:8]:
        val = v[index]
        if isinstance(val, (float, np.floating)):
            val = f"{val:.4g}"
        rows.append(f"<tr><td><b>{html.escape(str(k))}</b></td><td>{html.escape(str(val))[:80]}</td></tr>")
    head = html.escape(str(dataset.ids[index] if dataset.ids is not None else index))
    body = ""
    if dataset.kind == "text":
        body = f"<p>{html.escape(dataset.text(index)[:300])}</p>"
    return f"<b>#{index}</b> {head}{body}<table>{''.join(rows)}</table>"
