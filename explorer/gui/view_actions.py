"""The main window's views beyond the map: Compare tabs, checkpoint timelines, fine-tuning."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6 import QtWidgets

from explorer.gui.settings import settings


class ViewActions:
    """Mixin of :class:`~explorer.gui.mainwindow.MainWindow`: opens the views that live in tabs."""

    # ------------------------------------------------------------------ compare, timeline, fine-tune
    def compare_dialog(self) -> None:
        ready = [mid for mid, m in self.session.models.items() if m.vectors is not None and m.layouts]
        if len(ready) < 2:
            return self.show_error("Comparing needs at least two embedded models with a map; open and embed another encoder.")
        from explorer.gui.dialogs import checklist_dialog

        first = set(ready[:2]) | {self.session.current}
        chosen = checklist_dialog(self, "Compare models", "Choose 2 to 4 models (the first is the reference for "
                                  "alignment; the view can change it):", ready, first)
        if chosen is not None:
            self.compare_models(chosen)

    def compare_models(self, model_ids, method: Optional[str] = None,
                       title: Optional[str] = None) -> Optional[QtWidgets.QWidget]:
        """Open 2-4 models side by side in a new tab (linked, aligned, overlap, CKA table), on the
        map ``method`` (default: the one shown); ``title`` names the tab."""
        ids = list(model_ids)
        if not 2 <= len(ids) <= 4:
            self.show_error("Choose between 2 and 4 models to compare.")
            return None
        from explorer.gui.views.compare_view import CompareView

        ms = [self.session.models[i] for i in ids]
        method = method or self.method_combo.currentText()
        view = CompareView(self.runner)
        view.set_models(self.session.dataset,
                        [(m.id, m.vectors, m.layouts.get(method, m.layouts.get("pca"))) for m in ms],
                        self.selection, diagnostics=[m.diagnostics for m in ms])
        self.add_tab(view, title or "Compare: " + " vs ".join(ids))
        view.set_filter(self.map_panel.combined_filter(self.map_panel.search_mask(self.search.text())))
        return view

    def timeline_dialog(self) -> None:
        if self.session.dataset is None:
            return self.show_error("Open the dataset the run was trained on first; its probe set is a sample of it.")
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Folder of checkpoints from one run",
                                                            self.timeline_start_dir())
        if folder:
            self.open_timeline(folder)

    def timeline_start_dir(self) -> str:
        """Where the run-folder dialog starts: the last run folder opened (remembered in the
        settings), else the folder of the shown encoder's checkpoint, else the workspace's."""
        last = str(settings().value("timeline_folder", "") or "")
        candidates = [Path(last)] if last else []
        m = self.session.models.get(self.session.current) if self.session.current else None
        if m is not None and m.source:
            candidates.append(Path(m.source).expanduser().parent)
        candidates.append(Path(self.session.workspace_path).expanduser().resolve().parent)
        return str(next((c for c in candidates if c.is_dir()), Path.home()))

    def open_timeline(self, folder: str, probe_size: int = 5000, position: float = 0.0, **params):
        """Embed every checkpoint of a run on a fixed probe set; metric curves + aligned maps,
        shown at checkpoint ``position`` once computed."""
        from explorer.app.session_file import timeline_entry
        from explorer.gui.views.timeline_view import TimelineView
        from explorer.app.timeline import TimelineParams, timeline_job

        if self.session.dataset is None:
            return self.show_error("Open the dataset the run was trained on first.")
        s = settings()
        dev = str(s.value("device", "auto"))
        p = TimelineParams(probe_size=probe_size, device=None if dev == "auto" else dev, **params)
        s.setValue("timeline_folder", str(Path(folder).resolve()))
        tv = TimelineView()
        tv.source = timeline_entry(folder, probe_size, params)  # what a saved session reopens
        ds, ws = self.session.dataset, self.session.workspace
        tv.dataset = ds  # a session keeps the tab only while this dataset is open

        def show(res):
            tv.set_result(res, ds)
            tv.set_position(min(max(0.0, float(position)), len(res) - 1))

        self.add_tab(tv, f"Run: {Path(folder).name}")
        self.submit(f"Timeline of {Path(folder).name}", lambda: timeline_job(folder, ds, p, ws), show,
                    exclusive=f"timeline:{tv.source['folder']}")
        return tv

    def _open_timelines(self) -> list:
        """The open timeline tabs as a session stores them (folder, settings, position): those
        probing the open dataset (a tab left from an earlier dataset is not reopened on this one)."""
        out = []
        for i in range(1, self.center_tabs.count()):
            tv = self.tab_view(i)
            if getattr(tv, "source", None) and getattr(tv, "dataset", None) is self.session.dataset:
                out.append({**tv.source, "position": float(tv.position),
                            "shown": self.center_tabs.currentIndex() == i})
        return out

    def _restore_timelines(self, entries: list) -> None:
        """Reopen a session's timeline tabs (after the dataset is back); the map stays on
        screen unless a timeline was."""
        shown = None
        for t in entries:
            params = {k: v for k, v in t.items() if k not in ("folder", "probe_size", "position", "shown")}
            tv = self.guarded(lambda t=t, params=params: self.open_timeline(
                t["folder"], t.get("probe_size", 5000), t.get("position", 0.0), **params))
            if tv is not None and t.get("shown"):
                shown = tv
        if entries:
            self.center_tabs.setCurrentIndex(0 if shown is None else self.tab_index(shown))

    def finetune_dialog(self) -> None:
        try:
            from explorer.gui.views.finetune_panel import FinetuneDialog, start_finetune
        except ImportError:
            return self.show_error("Fine-tuning is not available in this build.")
        if self.session.dataset is None or self.session.current is None or self.session.model().encoder is None:
            return self.show_error("Open a dataset and an encoder first; fine-tuning adapts the current encoder.")
        dlg = FinetuneDialog(self, self.session.dataset, self.session.model())
        if dlg.exec() == QtWidgets.QDialog.Accepted:
            params, out = dlg.values()
            self.guarded(lambda: start_finetune(self, self.session.current, params, out))
