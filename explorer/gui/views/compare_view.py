"""Side-by-side comparison of 2-4 models of one dataset: linked maps, per-point neighbourhood
overlap, the global similarity table.

    view = CompareView(runner)                    # runner: explorer.gui.workers.JobRunner
    view.set_models(dataset, [("A", Za, coords_a), ("B", Zb, coords_b)], session.selection,
                    diagnostics=[diag_a, diag_b])  # diagnostics optional (computed if missing)

* The maps share the one :class:`~explorer.app.selection.Selection` (hover focus, click, box, lasso),
  the same colouring (a dataset column, or the neighbourhood overlap) and, when the layouts
  are aligned, the same view range (pyqtgraph's x/y view links). "Aligned" maps every layout
  onto the reference model's (the first, until another is chosen "onto") by orthogonal
  Procrustes (:func:`explorer.maps.procrustes_align`); off shows the layouts as computed.
  Choosing another reference re-aligns in a job and recomputes the overlap against it.
* Neighbourhood overlap of the chosen pair A/B: per point, the Jaccard overlap of its k nearest
  neighbours (cosine, self excluded, k=50) in A and in B (:func:`explorer.metrics.compare.compare`
  with every point as a query), as a colour layer on every map, a histogram, and the list of the
  points whose neighbourhoods changed most; choosing one (or clicking a point on a map) shows its
  neighbours in A and in B side by side, shared ones marked.
* The similarity table: every pair's linear / debiased / RBF CKA, mutual k-NN, Procrustes
  similarity, SVCCA and mean Jaccard, and each model's diagnostics (RankMe, dims_99, verdict).

The overlap and the table are jobs run by the ``runner`` (never on the UI thread).
"""

from __future__ import annotations

from itertools import combinations
from typing import Optional, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from explorer.gui.gallery import Gallery, safe_thumbnail
from explorer.gui.views.mapview import MapView
from explorer.gui.palette import colour_codes
from explorer.gui.subscriptions import Subscriptions
from explorer.app.comparison import DIAG_KEYS, TABLE_KEYS, align_job, overlap_job, table_job  # noqa: F401
from explorer.metrics.explain import READING, compare_disagreements, compare_readings
from explorer.app.selection import Selection

OVERLAP = "neighbourhood overlap"
MAX_LIST = 200
SHOW_NEIGHBOURS = 24
class _MapPane(QtWidgets.QWidget):
    def __init__(self, title: str, parent=None) -> None:
        super().__init__(parent)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.setSpacing(2)
        self.title = QtWidgets.QLabel(f"<b>{title}</b>")
        self.title.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        lay.addWidget(self.title)
        self.map = MapView()
        self.map.toolbar.setVisible(False)
        lay.addWidget(self.map, 1)


class CompareView(QtWidgets.QWidget):
    """2-4 linked maps with neighbourhood overlap and the similarity table (module docstring)."""

    overlap_ready = QtCore.Signal(object)  # (N,) float32 Jaccard of the current pair
    table_ready = QtCore.Signal(object)    # {"pairs": [...], "diagnostics": [...]}

    def __init__(self, runner=None, parent=None) -> None:
        super().__init__(parent)
        if runner is None:
            from explorer.gui.workers import JobRunner

            runner = JobRunner(self)
        self.runner = runner
        self._subs = Subscriptions(self)
        self.dataset = None
        self.names: list[str] = []
        self.vectors: list[np.ndarray] = []
        self.raw_coords: list[np.ndarray] = []
        self.aligned_coords: list[np.ndarray] = []
        self.selection = Selection(0)
        self.diagnostics: list = []
        self.overlap: Optional[np.ndarray] = None
        self.overlap_pair: Optional[tuple] = None
        self.changed_order = np.zeros(0, np.int64)
        self.table: Optional[dict] = None
        self.panes: list[_MapPane] = []
        self._indexes: dict = {}
        self._k = 50
        self.reference = 0  # the model the others are aligned onto and compared with
        self._build_ui()

    # ------------------------------------------------------------------ UI
    def _build_ui(self) -> None:
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        bar = QtWidgets.QHBoxLayout()
        bar.addWidget(QtWidgets.QLabel("Colour by"))
        self.colour_combo = QtWidgets.QComboBox()
        self.colour_combo.currentTextChanged.connect(lambda _t: self._apply_colour())
        bar.addWidget(self.colour_combo)
        self.aligned_check = QtWidgets.QCheckBox("Aligned")
        self.aligned_check.setToolTip("Rotate, scale and shift every map onto the reference (orthogonal Procrustes)")
        self.aligned_check.setChecked(True)
        self.aligned_check.toggled.connect(self.set_aligned)
        bar.addWidget(self.aligned_check)
        bar.addWidget(QtWidgets.QLabel("onto"))
        self.ref_combo = QtWidgets.QComboBox()
        self.ref_combo.setToolTip("The reference model: the other maps are aligned onto it and the overlap "
                                  "is computed against it")
        self.ref_combo.activated.connect(self.set_reference)
        bar.addWidget(self.ref_combo)
        self.link_check = QtWidgets.QCheckBox("Link zoom")
        self.link_check.setToolTip("Pan and zoom all maps together (aligned maps only)")
        self.link_check.setChecked(True)
        self.link_check.toggled.connect(lambda _on: self._update_links())
        bar.addWidget(self.link_check)
        bar.addStretch(1)
        lay.addLayout(bar)
        bar = QtWidgets.QHBoxLayout()  # a second row: the bar fits a narrow tab
        bar.addWidget(QtWidgets.QLabel("Overlap of"))
        self.pair_a = QtWidgets.QComboBox()
        self.pair_b = QtWidgets.QComboBox()
        bar.addWidget(self.pair_a)
        bar.addWidget(QtWidgets.QLabel("and"))
        bar.addWidget(self.pair_b)
        bar.addWidget(QtWidgets.QLabel("k"))
        self.k_spin = QtWidgets.QSpinBox()
        self.k_spin.setRange(2, 500)
        self.k_spin.setValue(self._k)
        bar.addWidget(self.k_spin)
        self.pair_a.activated.connect(lambda _i: self._pair_changed())
        self.pair_b.activated.connect(lambda _i: self._pair_changed())
        self.k_spin.editingFinished.connect(self._pair_changed)
        for combo in (self.colour_combo, self.ref_combo, self.pair_a, self.pair_b):
            # long model names must not make the bar (and the tab) wider than the screen
            combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(10)
        bar.addStretch(1)
        self.status = QtWidgets.QLabel("")
        self.status.setStyleSheet("color: #555")
        # the status takes the room left, never more (its whole text is in its tooltip)
        self.status.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
        self.status.setMinimumWidth(0)
        bar.addWidget(self.status, 1)
        lay.addLayout(bar)

        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        self.maps_box = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        split.addWidget(self.maps_box)

        self.tabs = QtWidgets.QTabWidget()
        ov = QtWidgets.QWidget()
        ol = QtWidgets.QHBoxLayout(ov)
        ol.setContentsMargins(2, 2, 2, 2)
        self.hist = pg.PlotWidget(background="w")
        self.hist.setMinimumWidth(220)
        self.hist.setLabel("bottom", "neighbourhood overlap (Jaccard)")
        self.hist.setLabel("left", "points")
        self.hist.setMouseEnabled(x=False, y=False)
        self.hist.hideButtons()
        self._hist_item = pg.BarGraphItem(x0=[], x1=[], height=[], brush="#4c72b0", pen="w")
        self.hist.addItem(self._hist_item)
        ol.addWidget(self.hist, 3)
        self.changed_table = QtWidgets.QTableWidget(0, 3)
        self.changed_table.setHorizontalHeaderLabels(["item", "label", "overlap"])
        self.changed_table.verticalHeader().setVisible(False)
        self.changed_table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.changed_table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.changed_table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.changed_table.horizontalHeader().setStretchLastSection(True)
        self.changed_table.setToolTip("Points whose neighbourhoods changed most (lowest overlap first)")
        self.changed_table.itemSelectionChanged.connect(self._changed_row_selected)
        box = QtWidgets.QVBoxLayout()
        box.addWidget(QtWidgets.QLabel("Changed most"))
        box.addWidget(self.changed_table)
        ol.addLayout(box, 2)
        nb = QtWidgets.QVBoxLayout()
        self.focus_label = QtWidgets.QLabel("Click a point or a row to see its neighbours in both models.")
        nb.addWidget(self.focus_label)
        self.gallery_a_label = QtWidgets.QLabel("A")
        self.gallery_a = Gallery(icon_size=40)
        self.gallery_b_label = QtWidgets.QLabel("B")
        self.gallery_b = Gallery(icon_size=40)
        row = QtWidgets.QHBoxLayout()
        for lab, gal in ((self.gallery_a_label, self.gallery_a), (self.gallery_b_label, self.gallery_b)):
            col = QtWidgets.QVBoxLayout()
            col.addWidget(lab)
            col.addWidget(gal)
            gal.activated_index.connect(self._gallery_clicked)
            row.addLayout(col)
        nb.addLayout(row, 1)
        ol.addLayout(nb, 5)
        self.tabs.addTab(ov, "Neighbourhood overlap")

        sim = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        sim.setChildrenCollapsible(False)
        tables = QtWidgets.QWidget()
        sl = QtWidgets.QVBoxLayout(tables)
        sl.setContentsMargins(2, 2, 2, 2)
        sim.addWidget(tables)
        self.sim_table = QtWidgets.QTableWidget(0, len(TABLE_KEYS))
        self.sim_table.setHorizontalHeaderLabels([t.replace(" ", "\n", 1) for _, t in TABLE_KEYS])  # 2 lines: fits by its texts
        self.sim_table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        sl.addWidget(QtWidgets.QLabel("Similarity of every pair"))
        sl.addWidget(self.sim_table, 1)
        self.diag_table = QtWidgets.QTableWidget(0, len(DIAG_KEYS) + 1)
        self.diag_table.setHorizontalHeaderLabels([t for _, t in DIAG_KEYS] + ["verdict"])
        self.diag_table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.diag_table.horizontalHeader().setStretchLastSection(True)
        sl.addWidget(QtWidgets.QLabel("Diagnostics of each model"))
        sl.addWidget(self.diag_table, 1)
        for c, (key, _) in enumerate(DIAG_KEYS):
            self.diag_table.horizontalHeaderItem(c).setToolTip(READING.get(key, ""))
        # how to read the table, and why its numbers disagree (explorer.metrics.explain)
        self.sim_notes = QtWidgets.QLabel("")
        self.sim_notes.setWordWrap(True)
        self.sim_notes.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.sim_notes.setAlignment(QtCore.Qt.AlignmentFlag.AlignTop | QtCore.Qt.AlignmentFlag.AlignLeft)
        self.sim_notes.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.sim_notes.setContentsMargins(6, 4, 6, 4)
        notes_scroll = QtWidgets.QScrollArea()
        notes_scroll.setWidgetResizable(True)
        notes_scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        notes_scroll.setWidget(self.sim_notes)
        notes_scroll.setMinimumWidth(220)
        self.sim_notes_scroll = notes_scroll
        sim.addWidget(notes_scroll)
        sim.setStretchFactor(0, 2)
        sim.setStretchFactor(1, 1)
        self._sim_split = sim
        self._set_sim_notes()
        self.tabs.addTab(sim, "Similarity table")
        split.addWidget(self.tabs)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setChildrenCollapsible(False)
        self.maps_box.setMinimumHeight(260)
        self.tabs.setMinimumHeight(180)
        self._split = split
        lay.addWidget(split, 1)

    @property
    def maps(self) -> list[MapView]:
        return [p.map for p in self.panes]

    # ------------------------------------------------------------------ data in
    def release(self) -> None:
        """Stop listening to the shared selection and drop this view's jobs (the tab is closing)."""
        self._subs.release()
        self.runner.release_owner(self)
        for p in self.panes:
            p.map.release()

    def set_models(self, dataset, models: Sequence[tuple], selection: Optional[Selection] = None,
                   diagnostics: Optional[Sequence[Optional[dict]]] = None, k: int = 50) -> None:
        """Show ``models`` = [(name, vectors (N, D_i), coords (N, 2))], 2 to 4 of them, of the same
        N items of ``dataset``; bind every map to ``selection`` (a new one if None). ``diagnostics``:
        per model the dict of :func:`explorer.metrics.diagnose.diagnose` (None: computed)."""
        if not 2 <= len(models) <= 4:
            raise ValueError(f"Compare 2 to 4 models, not {len(models)}.")
        n = None
        for name, Z, C in models:
            Z, C = np.asarray(Z), np.asarray(C)
            if n is None:
                n = Z.shape[0]
            if Z.ndim != 2 or Z.shape[0] != n or C.shape[0] != n:
                raise ValueError(f"Model {name!r}: every model needs vectors and coordinates of the same {n} items.")
        self.dataset = dataset
        self.names = [str(m[0]) for m in models]
        self.vectors = [np.ascontiguousarray(m[1], dtype=np.float32) for m in models]
        self.raw_coords = [np.ascontiguousarray(np.asarray(m[2])[:, :2], dtype=np.float32) for m in models]
        from explorer.core.jobs import drain

        self.reference = 0
        self.aligned_coords = drain(align_job(self.raw_coords, 0))
        self.diagnostics = list(diagnostics) if diagnostics is not None else [None] * len(models)
        self._indexes = {}
        self._k = int(k)
        self.k_spin.setValue(self._k)
        if selection is None:
            selection = Selection(n)
        self.selection = selection
        self._subs.release()
        for p in self.panes:
            p.map.release()
            p.setParent(None)
            p.deleteLater()
        self.panes = []
        coords = self.aligned_coords if self.aligned_check.isChecked() else self.raw_coords
        for name, c in zip(self.names, coords):
            pane = _MapPane(name)
            pane.map.set_layout(c)
            pane.map.bind_selection(selection)
            pane.map.set_hover_provider(self._hover)
            pane.map.hovered.connect(lambda i, src=pane.map: self._hover_moved(src, i))
            self.maps_box.addWidget(pane)
            self.panes.append(pane)
        self._mark_reference()
        self._subs.connect(selection.focus_changed, self._focus_changed)
        for combo, default in ((self.pair_a, 0), (self.pair_b, 1), (self.ref_combo, 0)):
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(self.names)
            combo.setCurrentIndex(default)
            combo.blockSignals(False)
        self.colour_combo.blockSignals(True)
        self.colour_combo.clear()
        cols = list(dataset.columns()) if dataset is not None else []
        self.colour_combo.addItems(cols + [OVERLAP])
        self.colour_combo.setCurrentIndex(0)
        self.colour_combo.blockSignals(False)
        self._apply_colour()
        self._update_links()
        # maps 60% of the height (set here, not in a resizeEvent override: TRAPS #1)
        h = max(self._split.height(), self.height() - 40, 400)
        self._split.setSizes([int(h * 0.6), int(h * 0.4)])
        w = max(self._sim_split.width(), self.width() - 10, 600)
        notes_w = max(260, int(w * 0.35))
        self._sim_split.setSizes([w - notes_w, notes_w])
        self.overlap = None
        self._start_overlap()
        self._start_table()

    # ------------------------------------------------------------------ alignment, links
    def set_aligned(self, on: bool) -> None:
        """Aligned (Procrustes onto the reference's map) or raw layouts."""
        if self.aligned_check.isChecked() != bool(on):
            self.aligned_check.setChecked(bool(on))  # re-enters through toggled
            return
        coords = self.aligned_coords if on else self.raw_coords
        self._unlink()
        for pane, c in zip(self.panes, coords):
            pane.map.set_layout(c, reset_view=True)
        self._update_links()

    def _hover_moved(self, source, index: int) -> None:
        """Hovering a point in one map marks the same item in the others."""
        for m in self.maps:
            if m is not source:
                m.show_linked_hover(index)

    def set_filter(self, mask) -> None:
        """Grey out the items that do not match (the main window's search), on every map."""
        for m in self.maps:
            m.set_filter(mask)

    def current_coords(self) -> list[np.ndarray]:
        return self.aligned_coords if self.aligned_check.isChecked() else self.raw_coords

    def _unlink(self) -> None:
        for m in self.maps:
            m.vb.setXLink(None)
            m.vb.setYLink(None)

    def _update_links(self) -> None:
        self._unlink()
        if not self.maps or not (self.aligned_check.isChecked() and self.link_check.isChecked()):
            return
        ref = self.maps[self.reference].vb
        for m in self.maps:
            if m.vb is not ref:
                m.vb.setXLink(ref)
                m.vb.setYLink(ref)

    @property
    def linked(self) -> bool:
        ref = self.maps[self.reference].vb if self.maps else None
        return len(self.maps) > 1 and all(m.vb.linkedView(0) is ref for m in self.maps if m.vb is not ref)

    # ------------------------------------------------------------------ reference
    def set_reference(self, index: int) -> None:
        """Make model ``index`` the reference: the other maps are aligned onto it and the
        overlap is computed against it. The alignment runs as a job; the overlap is the usual
        overlap job, started when the alignment lands."""
        if not 0 <= int(index) < len(self.names):
            return
        index = int(index)
        with QtCore.QSignalBlocker(self.ref_combo):
            self.ref_combo.setCurrentIndex(index)
        raw = list(self.raw_coords)
        self.status.setText(f"Aligning the maps onto {self.names[index]}...")
        self.runner.submit(f"Align maps onto {self.names[index]}", lambda: align_job(raw, index),
                           lambda res, i=index: self._reference_done(i, res), self._job_failed,
                           exclusive=f"compare-align-{id(self)}", owner=self)

    def _reference_done(self, index: int, aligned: list) -> None:
        if index != self.ref_combo.currentIndex() or len(aligned) != len(self.panes):
            return  # superseded
        old = self.reference
        self.reference = index
        self.aligned_coords = aligned
        self._mark_reference()
        self.set_aligned(self.aligned_check.isChecked())  # redraws and relinks onto the reference
        a, b = self.pair_a.currentIndex(), self.pair_b.currentIndex()
        if b == index:
            b = a if a != index else old
        if b == index:
            b = next(i for i in range(len(self.names)) if i != index)
        self.status.setText(f"Aligned onto {self.names[index]}.")
        self.set_pair(index, b)  # the overlap against the reference (a job)

    def _mark_reference(self) -> None:
        for i, pane in enumerate(self.panes):
            pane.title.setText(f"<b>{self.names[i]}</b>" + (" (reference)" if i == self.reference else ""))

    # ------------------------------------------------------------------ colour
    def set_colour(self, name: str) -> None:
        """Colour every map by a dataset column or :data:`OVERLAP`."""
        self.colour_combo.setCurrentText(name)
        self._apply_colour()

    def _apply_colour(self) -> None:
        name = self.colour_combo.currentText()
        if not self.maps:
            return
        if name == OVERLAP:
            if self.overlap is None:
                for m in self.maps:
                    m.set_uniform()
                self.status.setText("Computing the neighbourhood overlap...")
                return
            for m in self.maps:
                m.set_continuous(self.overlap, "viridis", 0.0, 1.0)
            return
        cols = self.dataset.columns() if self.dataset is not None else {}
        if name not in cols:
            for m in self.maps:
                m.set_uniform()
            return
        kind, vals, names = colour_codes(cols[name], self.dataset.label_names if name == "label" else ())
        for m in self.maps:
            if kind == "continuous":
                m.set_continuous(vals, "viridis")
            else:
                m.set_categorical(vals, names)

    # ------------------------------------------------------------------ overlap
    def set_pair(self, a: int, b: int, k: Optional[int] = None) -> None:
        """Compute the neighbourhood overlap of models ``a`` and ``b``."""
        self.pair_a.setCurrentIndex(a)
        self.pair_b.setCurrentIndex(b)
        if k is not None:
            self.k_spin.setValue(int(k))
        self._pair_changed()

    def _pair_changed(self) -> None:
        pair = (self.pair_a.currentIndex(), self.pair_b.currentIndex(), self.k_spin.value())
        if pair == (*(self.overlap_pair or ()), self._k) and self.overlap is not None:
            return
        self._k = self.k_spin.value()
        self._start_overlap()

    def _start_overlap(self) -> None:
        a, b = self.pair_a.currentIndex(), self.pair_b.currentIndex()
        if a < 0 or b < 0 or a == b:
            self.status.setText("Choose two different models for the overlap.")
            return
        n = self.vectors[a].shape[0]
        k = min(self._k, n - 2)
        Za, Zb = self.vectors[a], self.vectors[b]
        self.status.setText(f"Computing the overlap of {self.names[a]} and {self.names[b]} (k={k})...")
        self.gallery_a_label.setText(f"Neighbours in <b>{self.names[a]}</b>")
        self.gallery_b_label.setText(f"Neighbours in <b>{self.names[b]}</b>")
        self.runner.submit(f"Neighbourhood overlap {self.names[a]} / {self.names[b]}",
                           lambda: overlap_job(Za, Zb, k),
                           lambda res, pair=(a, b): self._overlap_done(pair, res),
                           self._job_failed, exclusive=f"compare-overlap-{id(self)}", owner=self)

    def _overlap_done(self, pair: tuple, res: dict) -> None:
        if pair != (self.pair_a.currentIndex(), self.pair_b.currentIndex()):
            return  # superseded
        jac = np.asarray(res["knn_jaccard"], dtype=np.float32)
        self.overlap = jac
        self.overlap_pair = pair
        self.changed_order = np.argsort(jac, kind="stable").astype(np.int64)
        a, b = pair
        self.status.setText(f"{self.names[a]} vs {self.names[b]}: mean overlap {float(np.nanmean(jac)):.3f}, "
                            f"linear CKA {res['linear_cka']:.3f}")
        counts, edges = np.histogram(jac[np.isfinite(jac)], bins=25, range=(0.0, 1.0))
        self._hist_item.setOpts(x0=edges[:-1], x1=edges[1:], height=counts)
        self.hist.setXRange(0, 1, padding=0.02)
        self.hist.setYRange(0, max(1, int(counts.max())) * 1.05, padding=0)
        self._fill_changed()
        if self.colour_combo.currentText() == OVERLAP:
            self._apply_colour()
        self.overlap_ready.emit(jac)
        f = self.selection.focus
        if f is not None:
            self.show_neighbours(f)

    def _fill_changed(self) -> None:
        t = self.changed_table
        t.blockSignals(True)
        order = self.changed_order[:MAX_LIST]
        t.setRowCount(len(order))
        ds = self.dataset
        for r, i in enumerate(order.tolist()):
            ident = str(ds.ids[i]) if ds is not None and ds.ids is not None else str(i)
            it = QtWidgets.QTableWidgetItem(ident)
            it.setData(QtCore.Qt.ItemDataRole.UserRole, int(i))
            t.setItem(r, 0, it)
            t.setItem(r, 1, QtWidgets.QTableWidgetItem((ds.label_of(i) if ds is not None else None) or ""))
            t.setItem(r, 2, QtWidgets.QTableWidgetItem(f"{self.overlap[i]:.3f}"))
        t.resizeColumnsToContents()
        t.blockSignals(False)

    def changed_rows(self) -> list[int]:
        """Item indices in the "changed most" list, top to bottom."""
        t = self.changed_table
        return [int(t.item(r, 0).data(QtCore.Qt.ItemDataRole.UserRole)) for r in range(t.rowCount())]

    def _changed_row_selected(self) -> None:
        rows = self.changed_table.selectionModel().selectedRows()
        if not rows:
            return
        i = int(self.changed_table.item(rows[0].row(), 0).data(QtCore.Qt.ItemDataRole.UserRole))
        self.selection.select([i], source=self)
        self.selection.set_focus(i, source=self)
        self.show_neighbours(i)

    # ------------------------------------------------------------------ neighbours
    def _index(self, m: int):
        if m not in self._indexes:
            from explorer.neighbors import VectorIndex

            self._indexes[m] = VectorIndex(self.vectors[m], "cosine", half=False)
        return self._indexes[m]

    def neighbours(self, i: int, k: Optional[int] = None) -> tuple:
        """(neighbours of item i in A (k,), in B (k,)): cosine, i itself excluded."""
        a, b = self.pair_a.currentIndex(), self.pair_b.currentIndex()
        k = min(k or self._k, self.vectors[a].shape[0] - 1)
        na, _ = self._index(a).query(index=int(i), k=k)
        nb, _ = self._index(b).query(index=int(i), k=k)
        return np.asarray(na, np.int64), np.asarray(nb, np.int64)

    def show_neighbours(self, i: int) -> None:
        """Fill the two galleries with the neighbours of item ``i`` in A and in B (shared ones
        marked with a dot); captions give the rank."""
        if not self.vectors or i is None:
            return
        na, nb = self.neighbours(i)
        sa, sb = set(na.tolist()), set(nb.tolist())
        shared = len(sa & sb)
        ds = self.dataset
        lab = (ds.label_of(i) if ds is not None else None) or ""
        ov = "" if self.overlap is None else f", overlap {self.overlap[i]:.2f}"
        self.focus_label.setText(f"Item <b>{ds.ids[i] if ds is not None and ds.ids is not None else i}</b> "
                                 f"{lab}: {shared} of {len(na)} neighbours shared{ov}")
        for gal, nbrs, other in ((self.gallery_a, na, sb), (self.gallery_b, nb, sa)):
            show = nbrs[:SHOW_NEIGHBOURS]
            caps = [f"{'● ' if j in other else ''}{r + 1}" for r, j in enumerate(show.tolist())]
            tips = [f"item {j} {(ds.label_of(j) if ds is not None else '') or ''}"
                    f"{' (also a neighbour in the other model)' if j in other else ''}" for j in show.tolist()]
            gal.show_items(ds, show.tolist(), caps, tips)

    def _focus_changed(self, index, source) -> None:
        if index is not None and self.vectors and 0 <= int(index) < self.vectors[0].shape[0]:
            self.show_neighbours(int(index))

    def _gallery_clicked(self, i: int) -> None:
        self.selection.set_focus(int(i), source=self)

    def _hover(self, i: int):
        ds = self.dataset
        text = f"item {ds.ids[i] if ds is not None and ds.ids is not None else i}"
        lab = ds.label_of(i) if ds is not None else None
        if lab:
            text += f" ({lab})"
        if self.overlap is not None:
            text += f"<br>overlap {self.overlap[i]:.2f}"
        return text, safe_thumbnail(ds, i, 64)

    # ------------------------------------------------------------------ table
    def _start_table(self) -> None:
        names, vectors, diags = list(self.names), list(self.vectors), list(self.diagnostics)
        pairs = list(combinations(range(len(names)), 2))
        self.sim_table.setRowCount(len(pairs))
        self.sim_table.setVerticalHeaderLabels([f"{names[a]} / {names[b]}" for a, b in pairs])
        self.diag_table.setRowCount(len(names))
        self.diag_table.setVerticalHeaderLabels(names)
        self._fill_diag(diags)
        self._set_sim_notes()
        self.runner.submit("Similarity table", lambda: table_job(names, vectors, pairs, diags),
                           self._table_done, self._job_failed, exclusive=f"compare-table-{id(self)}", owner=self)

    def _set_sim_notes(self, res: Optional[dict] = None) -> None:
        """The text beside the similarity table: for each pair, why its values seem to disagree
        (when they do), then how to read each measure; the column headers' tooltips too."""
        from explorer.metrics.compare import CompareParams

        n = int(self.vectors[0].shape[0]) if self.vectors else None
        prm = CompareParams()
        read = compare_readings(n, prm.mutual_k, prm.knn_k)
        for c, (key, _) in enumerate(TABLE_KEYS):
            item = self.sim_table.horizontalHeaderItem(c)
            if item is not None:
                item.setToolTip(read.get(key, ""))
        parts = []
        if res:
            diags = res.get("diagnostics") or []
            for row in res.get("pairs", []):
                a, b = row["pair"]
                notes = compare_disagreements(row, n, prm.mutual_k,
                                              [diags[a] if a < len(diags) else None,
                                               diags[b] if b < len(diags) else None],
                                              [self.names[a], self.names[b]])
                if notes:
                    parts.append(f"<p style='margin:0 0 2px 0'><b>Why {self.names[a]} / {self.names[b]} "
                                 f"seem to disagree</b></p>"
                                 + "".join(f"<p style='margin:0 0 6px 0'>{t}</p>" for t in notes.values()))
        parts.append("<p style='margin:4px 0 2px 0'><b>How to read the table</b></p>")
        parts.extend(f"<p style='margin:0 0 4px 0'><i>{label}</i>: {read[key]}</p>"
                     for key, label in TABLE_KEYS if key in read)
        self.sim_notes.setText("".join(parts))

    def _table_done(self, res: dict) -> None:
        self.table = res
        for r, row in enumerate(res["pairs"]):
            for c, (key, _) in enumerate(TABLE_KEYS):
                v = row.get(key)
                self.sim_table.setItem(r, c, QtWidgets.QTableWidgetItem("-" if v is None else f"{v:.3f}"))
        self.sim_table.resizeColumnsToContents()
        self.diagnostics = list(res["diagnostics"])
        self._fill_diag(self.diagnostics)
        self._set_sim_notes(res)
        self.table_ready.emit(res)

    def _fill_diag(self, diags) -> None:
        for r, d in enumerate(diags):
            for c, (key, _) in enumerate(DIAG_KEYS):
                v = None if d is None else d.get(key)
                txt = "..." if d is None else ("-" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v)))
                self.diag_table.setItem(r, c, QtWidgets.QTableWidgetItem(txt))
            verdict = "..." if d is None else ((d.get("verdict") or {}).get("label") or "-")
            self.diag_table.setItem(r, len(DIAG_KEYS), QtWidgets.QTableWidgetItem(verdict))
        self.diag_table.resizeColumnsToContents()

    def _job_failed(self, message: str, details: str) -> None:
        self.status.setText(message)
