"""The Details dock: the inspected item with its exact nearest neighbours, the selection, the
map settings and the collapse diagnostics. It reads the session through the pipeline and
moves the shared focus; it never reaches into the window."""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtWidgets

from explorer.core.errors import ExplorerError
from explorer.gui.panels import InspectorPanel, ProjectionPanel, SelectionPanel


class DetailsPanel(QtWidgets.QTabWidget):
    error = QtCore.Signal(str)  # one sentence for the message bar
    neighbors_shown = QtCore.Signal(object, object)  # focused index, its neighbours' indices

    def __init__(self, pipeline, parent=None) -> None:
        super().__init__(parent)
        self.pipeline = pipeline
        self.inspector = InspectorPanel()
        self.inspector.neighbor_activated.connect(self._focus)
        self.inspector.k_changed.connect(lambda _k: self.show_neighbors())
        self.inspector.metric_changed.connect(lambda _m: self.show_neighbors())
        self.selpanel = SelectionPanel()
        self.selpanel.item_activated.connect(self._focus)
        self.projpanel = ProjectionPanel()
        self.addTab(self.inspector, "Inspector")
        self.addTab(self.selpanel, "Selection")
        self.addTab(self.projpanel, "Map settings")
        try:
            from explorer.gui.views.diagnostics_panel import DiagnosticsPanel

            self.diagpanel = DiagnosticsPanel()
            self.addTab(self.diagpanel, "Diagnostics")
        except ImportError:
            self.diagpanel = None

    @property
    def session(self):
        return self.pipeline.session

    def _focus(self, index: int) -> None:
        self.session.selection.set_focus(int(index), source=self)

    def clear(self) -> None:
        self.inspector.show_item(None, None)
        self.selpanel.show_selection(None, np.zeros(0, int))

    def _vectors(self):
        s = self.session
        return s.model().vectors if s.current is not None else None

    def show_selection(self, indices, from_elsewhere: bool) -> None:
        self.selpanel.show_selection(self.session.dataset, indices, self._vectors(), self.session.selection.focus)
        if len(indices) > 1 and from_elsewhere:
            self.setCurrentWidget(self.selpanel)

    def show_focus(self, index) -> None:
        self.inspector.show_item(self.session.dataset, index)
        self.selpanel.set_focus(self._vectors(), index)
        self.show_neighbors()
        if index is not None:
            self.setCurrentWidget(self.inspector)

    def show_neighbors(self) -> None:
        """The focused item's exact nearest neighbours in the shown model's space."""
        s = self.session
        idx, ds = s.selection.focus, s.dataset
        if idx is None or ds is None or s.current is None or s.model().vectors is None:
            return
        k, metric = self.inspector.k.value(), self.inspector.metric_box.currentText()
        from explorer.scale.out_of_core import is_out_of_core

        if is_out_of_core(s.model().vectors):
            return self._neighbors_from_disk(int(idx), k, metric)
        try:
            nbr, scores = s.neighbors(s.current, int(idx), k=k, metric=metric)
        except ExplorerError as exc:
            return self.error.emit(str(exc))
        self._shown(int(idx), nbr, scores, metric)

    def _shown(self, idx: int, nbr, scores, metric: str, how: str = "exact") -> None:
        self.inspector.show_neighbors(self.session.dataset, nbr, scores, metric, how)
        self.neighbors_shown.emit(idx, np.asarray(nbr))

    def _neighbors_from_disk(self, idx: int, k: int, metric: str) -> None:
        """An embedding read from disk: the search reads only some of its lists, in a worker;
        the first one builds its on-disk index (minutes at 10M rows, in the jobs panel)."""
        from explorer.app.pipeline import PRIORITY, Task
        from explorer.app.session import needs_disk_index, neighbors_job

        s = self.session
        mid, ds = s.current, s.dataset

        def done(res):
            if s.dataset is ds and s.current == mid and s.selection.focus == idx:
                ix = s.model(mid).indexes.get(("disk", metric))
                how = ("exact scores" if ix is None else
                       f"from the on-disk index (recall about {ix.predicted_recall:.0%}; exact scores)")
                self._shown(idx, res[0], res[1], metric, how)

        building = needs_disk_index(s, mid, metric)
        self.pipeline.submit(Task(("Build the neighbour index of " if building else "Neighbours in ") + mid,
                                  lambda: neighbors_job(s, mid, idx, k, metric), done, exclusive=f"disk-neighbors:{mid}",
                                  priority=PRIORITY["neighbors"], heavy=building))

    def show_query(self, title: str, indices, scores, metric: str) -> None:
        """Neighbours of an item from outside the dataset (Find similar)."""
        self.inspector.show_item(None, None)
        self.inspector.title.setText(title)
        self.inspector.show_neighbors(self.session.dataset, indices, scores, metric)
        self.setCurrentWidget(self.inspector)

    def show_diagnostics(self) -> None:
        s = self.session
        if self.diagpanel is None or s.current is None:
            return
        m = s.model()
        self.diagpanel.show_metrics(m.id, m.diagnostics)
        self.diagpanel.show_all({mid: mm.diagnostics for mid, mm in s.models.items()})
