"""The centre of the main window: which model, map and colouring is shown, the search, the
map itself and the tabs opened beside it (Compare, Timeline, Fine-tune).

It reads the session through the pipeline (never through the window), writes only to the
shared selection, and tells the window what the user chose through its signals.
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np
from PySide6 import QtCore, QtWidgets

from explorer.core.errors import ExplorerError
from explorer.gui.panels import item_tooltip_html


PARTIAL_EVERY_S = 5.0  # a map being placed is redrawn at most this often


class MapPanel(QtWidgets.QWidget):
    model_chosen = QtCore.Signal(str)
    method_chosen = QtCore.Signal(str)
    status = QtCore.Signal(str)  # a passing note for the status bar
    layout_shown = QtCore.Signal(str)  # the shown map's one-line summary
    search_filter_changed = QtCore.Signal(object)  # the search's mask (None: no search)

    def __init__(self, pipeline, start_page: QtWidgets.QWidget, parent=None) -> None:
        from explorer.gui.views.mapview import MapView

        super().__init__(parent)
        self.pipeline = pipeline
        self._shown_key: Optional[tuple] = None
        self._shown_n: Optional[int] = None
        self._waiting_text = ""
        self._partial: Optional[tuple] = None  # (model id, method, coords) of a map being placed
        self._partial_shown_at = 0.0
        self._brush_mask: Optional[np.ndarray] = None  # the Charts dock's brushes
        v = QtWidgets.QVBoxLayout(self)
        v.setContentsMargins(0, 0, 0, 0)
        bar = QtWidgets.QHBoxLayout()
        self.model_combo = QtWidgets.QComboBox()
        self.model_combo.setSizeAdjustPolicy(QtWidgets.QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.model_combo.setMinimumContentsLength(10)
        self.model_combo.setToolTip("Which model's embedding the map shows")
        self.model_combo.currentTextChanged.connect(self._model_combo_changed)
        self.method_combo = QtWidgets.QComboBox()
        self.method_combo.addItems(["umap", "pca"])
        self.method_combo.setToolTip("Map: UMAP (neighbourhoods) or PCA (exact, linear)")
        self.method_combo.currentTextChanged.connect(self.method_chosen)
        self.color_combo = QtWidgets.QComboBox()
        self.color_combo.setSizeAdjustPolicy(QtWidgets.QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.color_combo.setMinimumContentsLength(8)
        self.color_combo.setToolTip("Colour points by a label, a metadata column or a per-point metric")
        self.color_combo.currentTextChanged.connect(lambda _n: self.apply_colors())
        self.search = QtWidgets.QLineEdit()
        self.search.setPlaceholderText("Search: 7 (a label), col=value, col~text…  Enter selects")
        self.search.setClearButtonEnabled(True)
        self.search.setMinimumWidth(120)
        self.search.setToolTip("A bare word matches the label exactly (then the item ids); col=value matches a "
                               "column exactly, col~text contains. Greys out the rest; Enter selects the matches")
        self.search.textChanged.connect(self._search_changed)
        self.search.returnPressed.connect(self._search_select)
        for lbl, w in (("Model", self.model_combo), ("Map", self.method_combo), ("Colour", self.color_combo)):
            bar.addWidget(QtWidgets.QLabel(lbl))
            bar.addWidget(w)
        bar.addWidget(self.search, 1)
        self.search_count = QtWidgets.QLabel("")
        self.search_count.setToolTip("What the search matched")
        bar.addWidget(self.search_count)
        self.map_state = QtWidgets.QLabel("")
        self.map_state.setObjectName("map_state")
        self.map_state.setWordWrap(True)
        self.map_state.setVisible(False)
        v.addLayout(bar)
        v.addWidget(self.map_state)
        self.stack = QtWidgets.QStackedWidget()
        self.start_page = start_page
        self.mapview = MapView()
        self.mapview.set_hover_provider(self._hover)
        self.center_tabs = QtWidgets.QTabWidget()
        self.center_tabs.setDocumentMode(True)
        self.center_tabs.setTabsClosable(True)
        self.center_tabs.addTab(self.mapview, "Map")
        self.center_tabs.tabBar().setTabButton(0, QtWidgets.QTabBar.RightSide, None)
        self.center_tabs.tabCloseRequested.connect(self.close_tab)
        self.stack.addWidget(self.start_page)
        self.stack.addWidget(self.center_tabs)
        v.addWidget(self.stack, 1)

    @property
    def session(self):
        return self.pipeline.session

    # -- models and maps -----------------------------------------------------------------------
    def refresh_models(self) -> None:
        s = self.session
        with QtCore.QSignalBlocker(self.model_combo):
            self.model_combo.clear()
            self.model_combo.addItems(list(s.models))
            if s.current:
                self.model_combo.setCurrentText(s.current)

    def _model_combo_changed(self, mid: str) -> None:
        if mid and mid in self.session.models:
            self.model_chosen.emit(mid)

    def dataset_changed(self) -> None:
        self._waiting_text = ""
        self._partial = None
        self.show_current_map()  # clears the previous dataset's map
        self.stack.setCurrentWidget(self.center_tabs)
        self.refresh_color_choices()

    def forget_shown(self) -> None:
        """Another session was adopted: the next map is new."""
        self._shown_key = self._shown_n = self._partial = None

    def show_current_map(self) -> None:
        s = self.session
        m = s.model() if s.current else None
        ds = s.dataset
        method = self.method_combo.currentText()
        part = self._partial
        if m is not None and method not in m.layouts and part is not None and part[:2] == (m.id, method):
            return self.show_partial_map(method, part[2])  # the map being placed, not the PCA
        if m is None or method in m.layouts:
            self._partial = None
        coords = None if m is None else m.layouts.get(method)
        if coords is None and m is not None:
            coords = m.layouts.get("pca")
        if coords is None or ds is None or len(coords) != len(ds):
            # nothing of this dataset to show yet: never keep the previous dataset's layout
            if self._shown_key is not None:
                self.mapview.set_layout(np.zeros((0, 2), np.float32))
                self._shown_key, self._shown_n = None, 0
            self._update_map_state()
            return
        shown = (m.id, method if method in m.layouts else "pca", len(coords))
        first = self._shown_key != shown
        self._shown_key = shown
        self.mapview.set_layout(coords, reset_view=first)
        self._shown_n = len(coords)
        self.apply_colors()
        if self.search.text().strip() or self._brush_mask is not None:
            self.mapview.set_filter(self.combined_filter(self.search_mask(self.search.text())))
        info = m.layout_info.get(method) or {}
        self.layout_shown.emit(info.get("summary", ""))
        # a kNN graph below the recall asked for says so on the map
        self.mapview.set_graph_quality(info.get("graph_method"), info.get("graph_recall"),
                                       info.get("graph_target_recall"))
        self._update_map_state()

    def show_partial_map(self, method: str, coords: np.ndarray) -> None:
        """A map still being placed (NaN rows: not yet): shown while the rest is placed, when it
        is the map asked for and that map is not there yet; the finished map replaces it."""
        s = self.session
        m = s.model() if s.current else None
        if (m is None or s.dataset is None or method != self.method_combo.currentText()
                or method in m.layouts or len(coords) != len(s.dataset)):
            return
        self._partial = (m.id, method, coords)
        shown = (m.id, method, len(coords))
        first = self._shown_key != shown
        now = time.monotonic()
        if not first and now - self._partial_shown_at < PARTIAL_EVERY_S:
            return  # redrawing a million points takes the GUI thread ~0.5 s: not for every block
        self._partial_shown_at = now
        self._shown_key, self._shown_n = shown, len(coords)
        self.mapview.set_layout(coords, reset_view=first)
        if first:
            self.apply_colors()
            if self.search.text().strip() or self._brush_mask is not None:
                self.mapview.set_filter(self.combined_filter(self.search_mask(self.search.text())))
        placed = len(coords) - self.mapview.n_unplaced
        self._waiting_text = f"placed {placed:,} of {len(coords):,} points"
        self._update_map_state()

    def show_waiting(self, model_id: str, text: str) -> None:
        if model_id == self.session.current:
            self._waiting_text = text
        self._update_map_state()

    def _update_map_state(self) -> None:
        """Under the toolbar: what the map shows, and what it waits for."""
        s = self.session
        method = self.method_combo.currentText()
        shown = (self._shown_key or (None, None))[1]
        waiting = self._waiting_text
        if s.current is None or s.dataset is None:
            text = ""
        elif shown is None:
            text = waiting or "No map yet."
        elif shown != method:
            text = f"Showing {shown.upper()} until the {method.upper()} is ready" + (f" ({waiting})" if waiting else ".")
        elif self.mapview.n_unplaced:
            text = (f"{method.upper()} being computed: the fitted sample is shown and the other points "
                    f"appear as they are placed ({waiting}).")
        else:
            text = ""
        self.map_state.setText(text)
        self.map_state.setVisible(bool(text))

    # -- colours -------------------------------------------------------------------------------
    def refresh_color_choices(self) -> None:
        ds = self.session.dataset
        cur = self.color_combo.currentText()
        with QtCore.QSignalBlocker(self.color_combo):
            self.color_combo.clear()
            self.color_combo.addItem("(uniform)")
            if ds is not None:
                for name in ds.columns():
                    self.color_combo.addItem(name)
            self.color_combo.addItem("projection trust")
            if cur and self.color_combo.findText(cur) >= 0:
                self.color_combo.setCurrentText(cur)
            elif ds is not None and ds.labels is not None:
                self.color_combo.setCurrentText("label")
        self.apply_colors()

    def apply_colors(self) -> None:
        ds = self.session.dataset
        name = self.color_combo.currentText()
        if ds is None or self._shown_n != len(ds):
            return
        if name == "projection trust":
            m = self.session.model()
            trust = (m.layout_info.get(self.method_combo.currentText()) or {}).get("trust")
            if trust is None:
                self.status.emit("Projection trust is computed with the UMAP map.")
                return self.mapview.set_uniform()
            return self.mapview.set_continuous(np.asarray(trust, np.float32), "viridis", 0.0, 1.0)
        cols = ds.columns()
        if name not in cols:
            return self.mapview.set_uniform()
        from explorer.gui.palette import colour_codes

        kind, values, names = colour_codes(cols[name], ds.label_names if name == "label" else ())
        if kind == "continuous":
            return self.mapview.set_continuous(values, "viridis", None, None)
        self.mapview.set_categorical(values, names)

    # -- search --------------------------------------------------------------------------------
    def search_mask(self, text: str) -> Optional[np.ndarray]:
        """The search's mask (None: no search, or a query that cannot run, said in the count label)."""
        from explorer.app.search import search

        try:
            res = search(self.session.dataset, text)
        except ExplorerError as exc:
            self.search_count.setText(str(exc))
            return None
        self.search_count.setText(res.description)
        return res.mask

    def _search_changed(self, text: str) -> None:
        """The search greys out what does not match on the map and on every comparison tab."""
        mask = self.search_mask(text)
        self.search_filter_changed.emit(mask)
        self._apply_filter(self.combined_filter(mask))

    def _apply_filter(self, mask) -> None:
        ds = self.session.dataset
        if self._shown_n and ds is not None and self._shown_n == len(ds):
            self.mapview.set_filter(mask)  # else: applied when this dataset's map appears
        for i in range(1, self.center_tabs.count()):
            w = self.tab_view(i)
            if hasattr(w, "set_filter") and getattr(w, "dataset", None) is ds:
                w.set_filter(mask)

    def combined_filter(self, search_mask: Optional[np.ndarray]) -> Optional[np.ndarray]:
        """The search's mask AND the charts' brushes (None: nothing filters)."""
        brush = self._brush_mask
        if brush is None or (search_mask is not None and len(brush) != len(search_mask)):
            return search_mask
        if self.session.dataset is None or len(brush) != len(self.session.dataset):
            return search_mask
        return brush if search_mask is None else (search_mask & brush)

    def set_brush_mask(self, mask: Optional[np.ndarray]) -> None:
        """Grey out what lies outside the charts' brushes, with the search (one AND)."""
        self._brush_mask = None if mask is None else np.asarray(mask, bool)
        ds, text = self.session.dataset, self.search.text()
        key = (text, id(ds), None if ds is None else tuple(ds.metadata))
        last = getattr(self, "_last_search", None)
        if last is None or last[0] != key:  # the search runs once per query, not per brush update
            last = self._last_search = (key, self.search_mask(text) if text.strip() else None)
        self._apply_filter(self.combined_filter(last[1]))

    def _search_select(self) -> None:
        mask = self.search_mask(self.search.text())
        if mask is not None:
            self.session.selection.select(np.flatnonzero(mask), source=self)

    def _hover(self, index: int):
        ds = self.session.dataset
        if ds is None:
            return None
        from explorer.gui.gallery import safe_thumbnail

        return item_tooltip_html(ds, index), safe_thumbnail(ds, index, 96)

    # -- tabs ----------------------------------------------------------------------------------
    def add_tab(self, widget: QtWidgets.QWidget, title: str) -> None:
        """Open ``widget`` as a tab, inside a scroll area: a wide view scrolls, the window never grows."""
        area = QtWidgets.QScrollArea()
        area.setWidgetResizable(True)
        area.setFrameShape(QtWidgets.QFrame.NoFrame)
        area.setWidget(widget)
        self.stack.setCurrentWidget(self.center_tabs)
        self.center_tabs.addTab(area, title)
        self.center_tabs.setCurrentWidget(area)

    def tab_view(self, index: int) -> Optional[QtWidgets.QWidget]:
        """The view shown in tab ``index`` (unwrapping its scroll area)."""
        w = self.center_tabs.widget(index)
        return w.widget() if isinstance(w, QtWidgets.QScrollArea) else w

    def tab_index(self, view: QtWidgets.QWidget) -> int:
        return next((i for i in range(self.center_tabs.count()) if self.tab_view(i) is view), -1)

    def close_extra_tabs(self) -> None:
        """Close every tab but the map (another session was adopted: its views showed the old one)."""
        for i in reversed(range(1, self.center_tabs.count())):
            self.close_tab(i)

    def close_tab(self, index: int) -> None:
        if index > 0:
            w, view = self.center_tabs.widget(index), self.tab_view(index)
            self.center_tabs.removeTab(index)
            if hasattr(view, "release"):  # a view drops its subscriptions to the session first
                view.release()
            w.deleteLater()
