"""The main window's charts, tags and bookmarks (issue 19).

- The **Charts** dock (:mod:`explorer.gui.views.charts_panel`) cross-filters the map: its
  brushes grey out the rest of the map together with the search.
- **Tags**: View > Tag selection (Ctrl+Shift+T) adds the selected items to a named tag; tags are
  the column ``tags`` (colour, filter, ``tag:name`` search, export), kept in the workspace
  (in a worker: a workspace write copies the file) and in saved sessions.
- **Bookmarks**: Bookmarks > Save view (Ctrl+B) keeps the model, map, camera, colouring,
  selection, search and charts by name; Ctrl+] / Ctrl+[ step through them; they travel in the
  session file. A bookmark whose model is gone says so in one sentence.

The state and the rules are Qt-free (:mod:`explorer.app.crossfilter`, :mod:`explorer.app.tags`,
:mod:`explorer.app.bookmarks`); this mixin only routes.
"""

from __future__ import annotations

from typing import Optional

from PySide6 import QtCore, QtWidgets


class ExploreActions:
    """Mixin of :class:`~explorer.gui.mainwindow.MainWindow` (before FileActions in its bases)."""

    def _build_explore_ui(self) -> None:
        from explorer.gui.views.bookmarks_panel import BookmarksPanel
        from explorer.gui.views.charts_panel import ChartsPanel

        self.charts = ChartsPanel()
        self.charts.brush_changed.connect(self.map_panel.set_brush_mask)
        self.map_panel.search_filter_changed.connect(self.charts.set_search_mask)
        self.charts_dock = self._dock("Charts", self.charts, QtCore.Qt.BottomDockWidgetArea, "charts")
        jobs = self.findChild(QtWidgets.QDockWidget, "jobs")
        if jobs is not None:
            self.tabifyDockWidget(jobs, self.charts_dock)
        self.bookmarks_panel = BookmarksPanel()
        self.bookmarks_panel.restore_requested.connect(lambda name: self.restore_bookmark(name))
        self.bookmarks_panel.add_requested.connect(self.add_bookmark_dialog)
        self.bookmarks_panel.rename_requested.connect(self.rename_bookmark_dialog)
        self.bookmarks_panel.delete_requested.connect(
            lambda name: self.guarded(lambda: self.session.bookmarks.remove(name)))
        self.bookmarks_dock = self._dock("Bookmarks", self.bookmarks_panel, QtCore.Qt.RightDockWidgetArea, "bookmarks")
        details = self.findChild(QtWidgets.QDockWidget, "details")
        if details is not None:
            self.tabifyDockWidget(details, self.bookmarks_dock)
            details.raise_()
        self._bind_explore(self.session)

    # ------------------------------------------------------------------ session binding
    def _bind_session(self, session) -> None:
        super()._bind_session(session)
        if hasattr(self, "charts"):
            self._bind_explore(session)

    def _bind_explore(self, session) -> None:
        self.charts.bind(session)
        self.bookmarks_panel.bind(session.bookmarks)
        self._session_subs.connect(session.tags.changed, self._tags_changed)
        self._session_subs.connect(session.dataset_changed, self._load_tags)

    def save_session(self, path: str) -> None:
        self.session.view["charts"] = self.charts.crossfilter.state()
        super().save_session(path)

    def _restore_view_extras(self, view: dict) -> None:
        """A reopened session's charts and brushes (after its dataset is back)."""
        if view.get("charts"):
            self.charts.crossfilter.restore(view["charts"])

    # ------------------------------------------------------------------ tags
    def tag_selection_dialog(self) -> None:
        if len(self.selection) == 0:
            return self.show_error("Nothing is selected; select the items to tag first.")
        name, ok = QtWidgets.QInputDialog.getItem(
            self, "Tag selection", f"Tag the {len(self.selection):,} selected items as:",
            self.session.tags.names, 0, True)
        if ok and name.strip():
            self.guarded(lambda: self.tag_selection(name))

    def tag_selection(self, name: str) -> int:
        from explorer.app.tags import tag_items

        added = tag_items(self.session, name, self.selection.indices)
        name = name.strip()
        total = len(self.session.tags.indices(name))
        self.show_info(f"Tagged {added:,} more items “{name}” ({total:,} in all); colour by “tags” or search tag:{name}.")
        return added

    def untag_selection_dialog(self) -> None:
        names = self.session.tags.names
        if not names or len(self.selection) == 0:
            return self.show_error("Select tagged items first; there is nothing to untag.")
        name, ok = QtWidgets.QInputDialog.getItem(self, "Untag selection", "Remove the selected items from the tag:",
                                                  names, 0, False)
        if ok:
            from explorer.app.tags import publish

            n = self.session.tags.remove(name, self.selection.indices)
            publish(self.session)
            self.show_info(f"Removed {n:,} items from the tag “{name}”.")

    def _tags_changed(self) -> None:
        """Keep the tags in the workspace, in a worker (a write copies the workspace file)."""
        if getattr(self, "_loading_tags", False) or self.session.dataset is None:
            return
        from explorer.app.tags import Tags, save_tags

        s = self.session
        ds, ws = s.dataset, s.workspace
        snapshot = Tags(s.tags.n)
        snapshot.merge(s.tags.items())

        def job():
            yield from ()
            return save_tags(ws, ds, snapshot)

        self.submit("Save tags", job, lambda _key: None, exclusive="tags")

    def _load_tags(self, ds) -> None:
        """The dataset's tags kept in the workspace join the session's (in a worker)."""
        if ds is None:
            return
        from explorer.app.tags import load_tags, publish

        s = self.session
        ws = s.workspace

        def job():
            yield from ()
            return load_tags(ws, ds)

        def done(tags):
            if s is not self.session or s.dataset is not ds or not len(tags):
                return
            self._loading_tags = True
            try:
                s.tags.merge(tags.items())
            finally:
                self._loading_tags = False
            publish(s)

        self.submit("Load tags", job, done, exclusive="tags-load")

    # ------------------------------------------------------------------ bookmarks
    def current_view_bookmark(self, name: str):
        from explorer.app.bookmarks import Bookmark

        s = self.session
        return Bookmark(name=name, model=s.current, method=self.method_combo.currentText(), camera=self.camera(),
                        color_by=self.color_combo.currentText() or "label",
                        selection=[int(i) for i in self.selection.indices], focus=self.selection.focus,
                        search=self.search.text(), charts=self.charts.crossfilter.state(),
                        n_items=None if s.dataset is None else len(s.dataset))

    def add_bookmark_dialog(self) -> None:
        if self.session.dataset is None:
            return self.show_error("Open a dataset first; a bookmark saves a view of it.")
        name, ok = QtWidgets.QInputDialog.getText(self, "Save view", "Bookmark name:",
                                                  text=f"View {len(self.session.bookmarks) + 1}")
        if ok and name.strip():
            self.guarded(lambda: self.add_bookmark(name))

    def add_bookmark(self, name: str):
        b = self.session.bookmarks.add(self.current_view_bookmark(name))
        self.statusBar().showMessage(f"Saved the view as “{b.name}”.", 4000)
        return b

    def rename_bookmark_dialog(self, old: str) -> None:
        new, ok = QtWidgets.QInputDialog.getText(self, "Rename bookmark", "New name:", text=old)
        if ok:
            self.guarded(lambda: self.session.bookmarks.rename(old, new))

    def next_bookmark(self) -> None:
        self.guarded(lambda: self.restore_bookmark(self.session.bookmarks.step(1).name))

    def previous_bookmark(self) -> None:
        self.guarded(lambda: self.restore_bookmark(self.session.bookmarks.step(-1).name))

    def restore_bookmark(self, name: str) -> bool:
        """Show bookmark ``name``; one sentence (and False) when it cannot be restored."""
        from explorer.app.bookmarks import check
        from explorer.core.errors import ExplorerError

        s = self.session
        try:
            b = s.bookmarks.get(name)
        except ExplorerError as exc:
            self.show_error(str(exc))
            return False
        why = check(b, s)
        if why is not None:
            self.show_error(why)
            return False
        s.bookmarks.cursor = s.bookmarks.index(name)
        with QtCore.QSignalBlocker(self.method_combo):
            self.method_combo.setCurrentText(b.method)
        self.projection.method = b.method
        if b.model is not None and b.model != s.current:
            self.pipeline.show_model(b.model)
        self.map_panel.show_current_map()
        if self.color_combo.findText(b.color_by) >= 0:
            self.color_combo.setCurrentText(b.color_by)
        self.search.setText(b.search)
        gone = self.charts.crossfilter.restore(b.charts)
        s.selection.select([i for i in b.selection if 0 <= i < len(s.dataset)], source=self)
        s.selection.set_focus(b.focus if b.focus is not None and 0 <= b.focus < len(s.dataset) else None, source=self)
        if b.camera and self.mapview.n:
            x0, x1, y0, y1 = b.camera
            self.mapview.vb.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)
        note = f" (the column {gone[0]} is gone)" if gone else ""
        self.statusBar().showMessage(f"Bookmark “{b.name}”{note}.", 4000)
        return True

    def camera(self) -> Optional[list]:
        """The map's data range [x0, x1, y0, y1] (what a bookmark keeps)."""
        if not self.mapview.n:
            return None
        r = self.mapview.vb.viewRect()
        return [float(r.left()), float(r.right()), float(r.top()), float(r.bottom())]

