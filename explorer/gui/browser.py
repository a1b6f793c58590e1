"""The "Data and models" tree: the open dataset, the models with their state (embedded, which
maps, the verdict), and what the workspace caches. Double-click a model to show it."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets


class DataBrowser(QtWidgets.QTreeWidget):
    model_activated = QtCore.Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setHeaderLabels(["Item", "State"])
        self.header().setStretchLastSection(True)
        self.header().setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeToContents)
        self.setMinimumWidth(180)
        self.setTextElideMode(QtCore.Qt.ElideMiddle)
        self.itemDoubleClicked.connect(self._activated)

    def _activated(self, item, _col) -> None:
        mid = item.data(0, QtCore.Qt.UserRole)
        if mid:
            self.model_activated.emit(mid)

    @staticmethod
    def _item(texts, tip: str = "") -> QtWidgets.QTreeWidgetItem:
        it = QtWidgets.QTreeWidgetItem([str(t) for t in texts])
        for c, t in enumerate(texts):  # every cell says all of itself on hover, even when clipped
            it.setToolTip(c, tip if (tip and c == 0) else str(t))
        return it

    def refresh(self, session) -> None:
        self.clear()
        ds = session.dataset
        top = self._item(["Dataset", "" if ds is None else f"{len(ds):,} {ds.kind} items"])
        if ds is not None:
            top.addChild(self._item([ds.name, f"{len(ds.label_names)} classes" if ds.label_names else ""],
                                    str(ds.source)))
        self.addTopLevelItem(top)
        mt = self._item(["Models", f"{len(session.models)}"])
        for mid, m in session.models.items():
            state = "not embedded"
            if m.vectors is not None:
                state = f"{m.vectors.shape[1]}-d"
                if m.layouts:
                    state += ", " + "+".join(sorted(m.layouts))
                if m.diagnostics:
                    state += ", " + m.diagnostics.get("verdict", {}).get("label", "diagnosed")
            it = self._item([mid, state], m.source or "precomputed vectors")
            it.setData(0, QtCore.Qt.UserRole, mid)
            if mid == session.current:
                f = it.font(0)
                f.setBold(True)
                it.setFont(0, f)
            mt.addChild(it)
        self.addTopLevelItem(mt)
        wt = self._item(["Workspace", session.workspace_path.name], str(session.workspace_path))
        try:
            for key, attrs in session.workspace.list("embeddings"):
                wt.addChild(self._item([attrs.get("model", key), f"cached {attrs.get('n', '?')}x{attrs.get('dim', '?')}"]))
        except Exception:  # an unreadable workspace shows no cache list; opening it said why
            pass
        self.addTopLevelItem(wt)
        self.expandAll()
