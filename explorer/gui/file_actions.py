"""The main window's ways out and back: export the selection, the map or a snippet; save and
reopen sessions (validated and confirmed, see :mod:`explorer.app.session_file`)."""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtWidgets

from explorer.gui.panels import ProjectionSettings
from explorer.app.session import Session


class FileActions:
    """Mixin of :class:`~explorer.gui.mainwindow.MainWindow`: export and sessions."""

    # ------------------------------------------------------------------ keep
    def export_selection_dialog(self) -> None:
        if len(self.selection) == 0:
            return self.show_error("Nothing is selected; select points on the map first (Shift-drag lasso, or the Box/Lasso tools).")
        path, filt = QtWidgets.QFileDialog.getSaveFileName(
            self, "Export selection", "selection.csv", "CSV table (*.csv);;Vectors (*.npy);;Vectors (*.h5)")
        if path:
            self.guarded(lambda: self.export_selection(path))

    def export_selection(self, path: str) -> None:
        """``.csv``: index, id, label and metadata; ``.npy``/``.h5``: the current model's vectors."""
        from explorer.app.export import export_selection

        m = self.session.models.get(self.session.current) if self.session.current else None
        export_selection(path, self.session.dataset, self.selection.indices,
                         None if m is None else m.vectors, None if m is None else m.id)
        self.show_info(f"Exported {len(self.selection):,} items to {path}.")

    def export_map_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export map", "map.png", "PNG image (*.png);;SVG (*.svg)")
        if path:
            self.guarded(lambda: self.mapview.export_image(path))

    def copy_snippet(self) -> None:
        from explorer.app.session import python_snippet

        def run():
            code = python_snippet(self.session, self.method_combo.currentText(), self.projection)
            QtWidgets.QApplication.clipboard().setText(code)
            self.show_info("Copied a Python snippet that reproduces this map to the clipboard.")
            return code

        return self.guarded(run)

    def save_session_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save session", "session.eesession", "Sessions (*.eesession)")
        if path:
            self.guarded(lambda: self.save_session(path))

    def save_session(self, path: str) -> None:
        self.session.view.update({"color_by": self.color_combo.currentText(), "method": self.method_combo.currentText(),
                                  "search": self.search.text(),
                                  "projection": vars(self.projection), "timelines": self._open_timelines()})
        self.session.save(path)
        self._remember_recent(path, "session")
        self.statusBar().showMessage(f"Saved session to {path}", 4000)

    def open_session_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open session", "", "Sessions (*.eesession);;All files (*)")
        if path:
            self.open_session(path)

    def confirm(self, title: str, text: str) -> bool:
        """Ask a yes/no question about something that runs code or creates files; No is the default."""
        r = QtWidgets.QMessageBox.warning(self, title, text, QtWidgets.QMessageBox.Yes | QtWidgets.QMessageBox.No,
                                          QtWidgets.QMessageBox.No)
        return r == QtWidgets.QMessageBox.Yes

    def open_session(self, path: str) -> None:
        """Reopen workspace, dataset and models (embeddings come from the workspace cache).

        The file is validated first; factories it names run, pickled checkpoints load and a
        missing workspace is created only after the user confirms each (see
        :mod:`explorer.app.session_file`)."""
        from explorer.app.session_file import plan_restore, restore_job

        plan = self.guarded(lambda: plan_restore(path))
        if plan is None:
            return
        approved = []
        for c in plan.confirmations:
            if self.confirm(c.title, c.message):
                approved.append(c)
            elif c.kind == "workspace":
                self.show_info(f"{Path(path).name} was not opened: its workspace {c.path} does not exist.")
                return
        d = plan.data

        def done(result):
            from explorer.app.session import Session

            self.session_restore = d
            self._adopt_session(Session(d["workspace"]))
            view = d.get("view", {})
            if view.get("projection"):
                self.projection = self.pipeline.settings = ProjectionSettings(
                    **{**vars(ProjectionSettings()), **view["projection"]})
                self.projpanel.set_settings(self.projection)
            with QtCore.QSignalBlocker(self.method_combo):
                self.method_combo.setCurrentText(view.get("method", "umap"))
            self.pipeline.restore(result, d)
            self.color_combo.setCurrentText(view.get("color_by", "label"))
            self.search.setText(view.get("search", ""))
            self._restore_view_extras(view)
            self._remember_recent(str(path), "session")
            for md, c in result.ask_trust:
                if self.confirm(c.title, c.message):
                    self.pipeline.open_encoder(md["source"], name=md["id"], trust=True, **md.get("options", {}))
            if self.session.dataset is not None:  # the old session's tabs were closed by _adopt_session
                self._restore_timelines(view.get("timelines", []))

        self.submit(f"Open session {Path(path).name}", lambda: restore_job(plan, approved), done)

    def _bind_session(self, session: Session) -> None:
        """Listen to ``session`` (and its selection) through one set of subscriptions, dropped
        when another session is adopted."""
        self._session_subs.release()
        self.session = self.pipeline.session = session
        self.selection = session.selection
        for sig, slot in ((session.dataset_changed, self._on_dataset_changed),
                          (session.models_changed, self._refresh_browser),
                          (session.model_updated, self._on_model_updated),
                          (session.partial_layout, self._on_partial_layout),
                          (session.current_changed, self._on_current_changed),
                          (session.columns_changed, self._on_columns_changed),
                          (session.selection.changed, self._on_selection_changed),
                          (session.selection.focus_changed, self._on_focus_changed)):
            self._session_subs.connect(sig, slot)

    def _on_columns_changed(self, _name) -> None:
        self.map_panel.refresh_color_choices()

    def _adopt_session(self, new: Session) -> None:
        self.map_panel.close_extra_tabs()  # comparisons and timelines of the old session
        self._bind_session(new)
        self.mapview.bind_selection(self.selection)
        self.map_panel.forget_shown()
