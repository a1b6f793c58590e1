"""The main window: open -> compute -> look -> inspect -> keep.

The window owns a :class:`~explorer.session.Session` (Qt-free state) and a
:class:`~explorer.gui.workers.JobRunner`; every slow step is a core job run in a worker, and
its result is applied to the session on the GUI thread. Views listen to the session and to the
shared selection; none of them pulls data from another.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any, Callable, Optional

from PySide6 import QtCore, QtGui, QtWidgets

from explorer import __version__
from explorer.errors import ExplorerError
from explorer.gui.browser import DataBrowser
from explorer.gui.jobs_panel import JobsPanel
from explorer.gui.map_panel import MapPanel
from explorer.gui.settings import APP, settings
from explorer.gui.status_bar import StatusBar
from explorer.gui.details import DetailsPanel
from explorer.gui.panels import MessageBar, ProjectionSettings
from explorer.gui.workers import JobRunner
from explorer.gui.subscriptions import Subscriptions
from explorer.session import Session

class MainWindow(QtWidgets.QMainWindow):
    idle = QtCore.Signal()  # no job running any more (for --screenshot and tests)

    def __init__(self, workspace: Optional[str] = None) -> None:
        super().__init__()
        from explorer.resources import cache_dir

        self.setWindowTitle(f"{APP} {__version__}")
        self.setAcceptDrops(True)
        self.runner = JobRunner(self, max_threads=2)
        self.runner.job_added.connect(self._watch_job)
        ws = workspace or str(cache_dir() / "workspace.h5")
        self.projection = ProjectionSettings()
        from explorer.app.pipeline import Pipeline

        self.pipeline = Pipeline(Session(ws), submit=self._submit_task, embed_params=self.embed_params,
                                 settings=self.projection)
        self._session_subs = Subscriptions(self)
        self._bind_session(self.pipeline.session)
        self.pipeline.info.connect(self.show_info)
        self.pipeline.error.connect(self.show_error)
        self.pipeline.waiting.connect(lambda mid, text: self.map_panel.show_waiting(mid, text))
        self.pipeline.embedded.connect(self._after_embedded)
        self._build_ui()
        self._build_actions()
        self._restore_settings()
        self._update_status()
        # heavy imports (numba kernels, torch) start once the window is up, in workers
        QtCore.QTimer.singleShot(300, self, self._warm_renderer)
        QtCore.QTimer.singleShot(1500, self, self._probe_device)

    def _warm_renderer(self) -> None:
        """Load (or compile) the map renderer's numba kernels in a worker, before the first map."""
        from explorer.gui import pointraster
        from explorer.jobs import Progress

        def job():
            yield Progress(0, 1, "loading the point renderer")
            pointraster.warm_up()
            yield Progress(1, 1, "ready")

        self.runner.submit("Prepare the map renderer", job, None, None, exclusive="renderer")

    # ------------------------------------------------------------------ UI construction
    def _build_ui(self) -> None:
        central = QtWidgets.QWidget()
        v = QtWidgets.QVBoxLayout(central)
        v.setContentsMargins(6, 6, 6, 0)
        self.message = MessageBar()
        v.addWidget(self.message)
        self.map_panel = MapPanel(self.pipeline, self._build_start_page())
        mp = self.map_panel
        # the panel's parts, under the names menus, views and tests use
        (self.model_combo, self.method_combo, self.color_combo, self.search, self.search_count, self.mapview,
         self.center_tabs, self.stack, self.start_page) = (mp.model_combo, mp.method_combo, mp.color_combo, mp.search,
                                                           mp.search_count, mp.mapview, mp.center_tabs, mp.stack,
                                                           mp.start_page)
        self.add_tab, self.tab_view, self.tab_index, self._close_tab = mp.add_tab, mp.tab_view, mp.tab_index, mp.close_tab
        mp.model_chosen.connect(lambda mid: self.guarded(lambda: self.pipeline.show_model(mid)))
        mp.method_chosen.connect(self._method_changed)
        mp.status.connect(lambda text: self.statusBar().showMessage(text, 4000))
        mp.layout_shown.connect(lambda summary: self.projpanel.info.setText(summary))
        self.mapview.bind_selection(self.selection)
        v.addWidget(mp, 1)
        self.setCentralWidget(central)

        # left: browser
        self.browser = DataBrowser()
        self.browser.model_activated.connect(lambda mid: self.guarded(lambda: self.pipeline.show_model(mid)))
        self._dock("Data and models", self.browser, QtCore.Qt.LeftDockWidgetArea, "browser")
        # right: tabs
        self.tabs = DetailsPanel(self.pipeline)
        self.tabs.error.connect(self.show_error)
        self.tabs.neighbors_shown.connect(lambda of, idx: self.mapview.show_neighbors(of, idx))
        self.inspector, self.selpanel, self.projpanel, self.diagpanel = (
            self.tabs.inspector, self.tabs.selpanel, self.tabs.projpanel, self.tabs.diagpanel)
        self.projpanel.apply_requested.connect(self.apply_projection)
        details = self._dock("Details", self.tabs, QtCore.Qt.RightDockWidgetArea, "details")
        self.resizeDocks([details], [420], QtCore.Qt.Horizontal)
        # bottom: jobs
        self.jobs_panel = JobsPanel(self.runner)
        self._dock("Jobs", self.jobs_panel, QtCore.Qt.BottomDockWidgetArea, "jobs")
        self.setStatusBar(StatusBar())
        self._mem_timer = QtCore.QTimer(self)
        self._mem_timer.setInterval(2000)
        self._mem_timer.timeout.connect(self._update_status)
        self._mem_timer.start()
        self.fit_to_screen()

    def fit_to_screen(self, width: int = 1920, height: int = 1200) -> None:
        """90% of the screen's free area (at most ``width`` x ``height``), centred on it: room
        for side-by-side maps on a large screen, never larger than a small one."""
        screen = self.screen() or QtGui.QGuiApplication.primaryScreen()
        if screen is None:
            return self.resize(width, height)
        avail = screen.availableGeometry()
        w, h = min(width, int(avail.width() * 0.9)), min(height, int(avail.height() * 0.9))
        self.resize(w, h)
        self.move(avail.x() + (avail.width() - w) // 2, avail.y() + (avail.height() - h) // 2)

    def _dock(self, title: str, widget: QtWidgets.QWidget, area, name: str) -> QtWidgets.QDockWidget:
        d = QtWidgets.QDockWidget(title, self)
        d.setObjectName(name)
        d.setWidget(widget)
        d.setFeatures(QtWidgets.QDockWidget.DockWidgetMovable | QtWidgets.QDockWidget.DockWidgetFloatable
                      | QtWidgets.QDockWidget.DockWidgetClosable)
        self.addDockWidget(area, d)
        return d

    def _build_start_page(self) -> QtWidgets.QWidget:
        from explorer.gui.start_page import StartPage

        page = StartPage((("Open dataset…", self.open_dataset_dialog), ("Open encoder…", self.open_encoder_dialog),
                          ("Open session…", self.open_session_dialog), ("Try the demo", self.open_demo)))
        page.open_recent.connect(self.open_path)
        return page

    def _build_actions(self) -> None:
        from explorer.gui.menus import build_menus

        self.finetune_action = build_menus(self)["finetune_dialog"]
        self._refresh_recent()

    # ------------------------------------------------------------------ settings
    def _restore_settings(self) -> None:
        s = settings()
        geo = s.value("geometry")
        if geo is not None:
            self.restoreGeometry(geo)
            screen = self.screen() or QtGui.QGuiApplication.primaryScreen()
            if screen is not None and not screen.availableGeometry().contains(self.frameGeometry()):
                self.fit_to_screen()  # saved on a larger screen
        state = s.value("windowState")
        if state is not None:
            self.restoreState(state)

    def _probe_device(self) -> None:
        self.statusBar().probe_device(self.runner)

    def embed_params(self):
        from explorer.embed import EmbedParams

        s = settings()
        workers = s.value("workers", -1, int)
        return EmbedParams(device=str(s.value("device", "auto")), batch_size=int(s.value("batch_size", 256)),
                           precision=str(s.value("precision", "fp32")),
                           num_workers=None if workers < 0 else workers)

    def closeEvent(self, event) -> None:  # noqa: N802
        s = settings()
        s.setValue("geometry", self.saveGeometry())
        s.setValue("windowState", self.saveState())
        self.runner.cancel_all()
        self.runner.wait(3000)
        super().closeEvent(event)

    # ------------------------------------------------------------------ errors and jobs
    def show_error(self, message: str, details: str = "") -> None:
        self.message.show_message(message, details, "error")

    def show_info(self, message: str) -> None:
        self.message.show_message(message, "", "info")

    def guarded(self, fn: Callable[[], Any]) -> Any:
        """Run a quick GUI-thread step; a user error becomes a message, never a crash."""
        try:
            return fn()
        except ExplorerError as exc:
            self.show_error(str(exc), traceback.format_exc())
        except Exception as exc:  # a bug: report, keep the app up
            self.show_error(f"Unexpected error: {type(exc).__name__}: {exc}", traceback.format_exc())
        return None

    def submit(self, name: str, factory, on_result, exclusive: Optional[str] = None, priority: int = 0,
               on_error: Optional[Callable[[str], None]] = None):
        def ok(result):
            self.guarded(lambda: on_result(result))

        def failed(msg, det):
            if on_error is not None:
                on_error(msg)
            self.show_error(msg, det)

        return self.runner.submit(name, factory, ok, failed, exclusive, priority=priority)

    def _submit_task(self, task):
        """The pipeline's tasks run in the worker pool, the one on screen first."""
        return self.submit(task.name, task.job, task.on_result or (lambda _r: None), exclusive=task.exclusive,
                           priority=task.priority, on_error=task.on_error)

    def _watch_job(self, handle) -> None:
        handle.done.connect(self._job_done)
        self._update_status()

    def _job_done(self) -> None:
        self._update_status()
        QtCore.QTimer.singleShot(0, self, self._check_idle)

    def _check_idle(self) -> None:
        if not self.runner.active():
            self.idle.emit()

    def is_busy(self) -> bool:
        return bool(self.runner.active())

    def _update_status(self) -> None:
        self.statusBar().show_counts(self.session.dataset, len(self.selection), len(self.runner.active()))

    # ------------------------------------------------------------------ opening things
    def _remember_recent(self, path: str, kind: str) -> None:
        from explorer.gui.start_page import remember

        remember(path, kind)
        self._refresh_recent()

    def _refresh_recent(self) -> None:
        self.start_page.refresh(self.recent_menu)

    def open_path(self, path: str, kind: Optional[str] = None) -> None:
        """Open whatever ``path`` is: a session, a checkpoint or a dataset (asks the registries)."""
        p = Path(path)
        if kind == "session" or p.suffix == ".eesession":
            return self.open_session(path)
        if kind == "encoder" or (kind is None and self._looks_like_encoder(p)):
            return self.open_encoder(path)
        return self.open_dataset(path)

    @staticmethod
    def _looks_like_encoder(p: Path) -> bool:
        if p.suffix.lower() in (".pt", ".pth") and p.is_file():
            from explorer.data import DATASETS

            if any(e.name == "torch-tensor" for e in DATASETS.find(p)):
                return False  # one tensor of vectors: a dataset, not a model
        return p.suffix.lower() in (".pt", ".pth", ".ckpt", ".safetensors", ".onnx", ".jit", ".ts")

    def open_dataset(self, path: str, fmt: Optional[str] = None, metadata: Optional[str] = None, **options) -> None:
        """Open a dataset in a worker (optionally joining a metadata table by row order)."""
        self.pipeline.open_dataset(path, fmt, metadata=metadata, **options)

    def open_encoder(self, path: str, **options) -> None:
        self.pipeline.open_encoder(path, **options)

    def open_dataset_dialog(self) -> None:
        from explorer.gui.dialogs import DatasetDialog

        dlg = DatasetDialog(self)
        if dlg.exec() == QtWidgets.QDialog.Accepted:
            path, fmt, options, metadata = dlg.result_values()
            self.open_dataset(path, fmt, metadata=metadata, **options)

    def open_encoder_dialog(self) -> None:
        from explorer.gui.dialogs import EncoderDialog

        dlg = EncoderDialog(self)
        if dlg.exec() == QtWidgets.QDialog.Accepted:
            path, options = dlg.result_values()
            self.open_encoder(path, **options)

    def add_layer_dialog(self) -> None:
        if self.session.current is None or self.session.model().encoder is None:
            return self.show_error("Open an encoder first; precomputed vectors have no layers.")
        enc = self.session.model().encoder
        layers = enc.layers()
        if not layers:
            return self.show_error(f"{enc.name} exposes no layers (TorchScript models only give their output).")
        layer, ok = QtWidgets.QInputDialog.getItem(self, "Add layer", f"Layer of {enc.name} to embed with:", layers, 0, False)
        if ok and layer:
            self.add_layer(layer)

    def add_layer(self, layer: str, pooling: str = "auto") -> None:
        """Add the current encoder again with ``layer`` as its embedding (a new model entry)."""
        import copy

        from explorer.encoders import set_layer

        def run():
            m = self.session.model()
            enc = set_layer(copy.copy(m.encoder), layer, pooling)
            new = self.session.add_model(enc, options={**m.options, "layer": layer})
            if self.session.dataset is not None:
                self.embed(new.id)

        self.guarded(run)

    def find_similar_dialog(self) -> None:
        if self.session.current is None or self.session.model().encoder is None:
            return self.show_error("Open and embed an encoder first; a new input is embedded with it.")
        if self.session.model().encoder.preprocess.kind == "image":
            path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Find similar to an image", "",
                                                            "Images (*.png *.jpg *.jpeg *.webp *.bmp);;All files (*)")
            if path:
                self.find_similar([path])
        else:
            text, ok = QtWidgets.QInputDialog.getMultiLineText(self, "Find similar", "Text to search with:")
            if ok and text.strip():
                self.find_similar([text.strip()], kind="text")

    def find_similar(self, items, kind=None) -> None:
        """Embed a new input in a worker and show its exact neighbours in the inspector."""
        m = self.session.model()
        k, metric = self.inspector.k.value(), self.inspector.metric_box.currentText()

        def job():
            from explorer.jobs import Progress

            yield Progress(0, 1, "embedding the query")
            return self.session.query_new(m.id, items, k=k, metric=metric, kind=kind)

        def done(results):
            idx, scores = results[0]
            self.tabs.show_query(f"Query: {Path(str(items[0])).name if kind != 'text' else str(items[0])[:60]}",
                                 idx, scores, metric)
            self.selection.select(idx, source=self)

        self.submit("Find similar", job, done)

    def attach_metadata_dialog(self) -> None:
        if self.session.dataset is None:
            return self.show_error("Open a dataset before attaching metadata to it.")
        from explorer.gui.dialogs import METADATA_FILTER

        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Attach metadata", "", METADATA_FILTER)
        if path:
            self.attach_metadata(path)

    def attach_metadata(self, path: str, id_column: Optional[str] = None) -> None:
        self.guarded(lambda: self.pipeline.attach_metadata(path, id_column))

    # drag and drop
    def dragEnterEvent(self, e) -> None:  # noqa: N802
        if e.mimeData().hasUrls():
            e.acceptProposedAction()

    def dropEvent(self, e) -> None:  # noqa: N802
        for url in e.mimeData().urls():
            if url.isLocalFile():
                self.open_path(url.toLocalFile())
        e.acceptProposedAction()

    # ------------------------------------------------------------------ demo
    def open_demo(self) -> None:
        """The bundled sample data with its checkpoints; maps and diagnostics computed, and one
        item inspected so its neighbours show what the tool is for."""
        self._demo_focus = True
        self.guarded(self.pipeline.open_demo)

    # ------------------------------------------------------------------ compute
    def embed(self, model_id: str) -> None:
        self.pipeline.embed(model_id)

    def _after_embedded(self, model_id: str) -> None:
        if getattr(self, "_demo_focus", False) and self.session.dataset is not None:
            # the demo opens with one item inspected, so its neighbours show what the tool is for
            self._demo_focus = False
            self.selection.set_focus(min(42, len(self.session.dataset) - 1), source=self)

    def embed_current(self) -> None:
        if self.session.dataset is None:
            return self.show_error("Open a dataset first (File > Open dataset).")
        if self.session.current is None:
            return self.show_error("Open an encoder first (File > Open encoder).")
        self.embed(self.session.current)

    def embed_all(self) -> None:
        self.pipeline.embed_all()

    def compute_maps(self, model_id: str, settings_: Optional[ProjectionSettings] = None) -> None:
        """PCA at once; UMAP next (on the shared kNN graph)."""
        self.pipeline.compute_maps(model_id, settings_)

    def apply_projection(self, s: ProjectionSettings) -> None:
        self.projection = self.pipeline.settings = s
        self.method_combo.setCurrentText(s.method)
        if self.session.current is None or not self.session.model().embedded:
            return self.show_error("Embed the dataset first (Compute > Embed).")
        self.compute_maps(self.session.current, s)

    def diagnose(self, model_id: str) -> None:
        self.pipeline.diagnose(model_id)

    def diagnose_current(self) -> None:
        if self.session.current is None or not self.session.model().embedded:
            return self.show_error("Embed the dataset first (Compute > Embed).")
        self.diagnose(self.session.current)

    def warmup(self) -> None:
        """Compile UMAP's numba kernels in the background (cached on disk; TRAPS.md #2)."""
        from explorer.maps import warmup

        self.runner.submit("Warm up UMAP kernels", warmup, None, None, exclusive="warmup")

    # ------------------------------------------------------------------ session signals
    def _on_dataset_changed(self, ds) -> None:
        self.map_panel.dataset_changed()
        if ds is not None and getattr(ds, "source", None):
            self._remember_recent(str(ds.source), "dataset")
        self._refresh_browser()
        self.tabs.clear()
        self._update_status()

    def _refresh_browser(self) -> None:
        self.browser.refresh(self.session)
        self.map_panel.refresh_models()

    def _on_current_changed(self, mid) -> None:
        self._refresh_browser()
        self.map_panel.show_current_map()
        self.tabs.show_diagnostics()
        self.tabs.show_neighbors()

    def _on_model_updated(self, mid: str) -> None:
        self._refresh_browser()
        if mid == self.session.current:
            self.map_panel.show_current_map()
            self.tabs.show_neighbors()
        self.tabs.show_diagnostics()

    def _method_changed(self, method: str) -> None:
        self.projection.method = method
        self.projpanel.method.setCurrentText(method)
        if self.session.current:
            self.pipeline.show_model(self.session.current)
        self.map_panel.show_current_map()

    def _on_selection_changed(self, indices, source) -> None:
        self.tabs.show_selection(indices, from_elsewhere=source is not self)
        self._update_status()

    def _on_focus_changed(self, index, source) -> None:
        self.tabs.show_focus(index)

    # ------------------------------------------------------------------ compare, timeline, fine-tune
    def compare_dialog(self) -> None:
        ready = [mid for mid, m in self.session.models.items() if m.vectors is not None and m.layouts]
        if len(ready) < 2:
            return self.show_error("Comparing needs at least two embedded models with a map; open and embed another encoder.")
        dlg = QtWidgets.QDialog(self)
        dlg.setWindowTitle("Compare models")
        lay = QtWidgets.QVBoxLayout(dlg)
        lay.addWidget(QtWidgets.QLabel("Choose 2 to 4 models (the first is the reference for alignment; "
                                       "the view can change it):"))
        lst = QtWidgets.QListWidget()
        for i, mid in enumerate(ready):
            it = QtWidgets.QListWidgetItem(mid)
            it.setCheckState(QtCore.Qt.Checked if i < 2 or mid == self.session.current else QtCore.Qt.Unchecked)
            lst.addItem(it)
        lay.addWidget(lst)
        bb = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Ok | QtWidgets.QDialogButtonBox.Cancel)
        bb.accepted.connect(dlg.accept)
        bb.rejected.connect(dlg.reject)
        lay.addWidget(bb)
        if dlg.exec() != QtWidgets.QDialog.Accepted:
            return
        chosen = [lst.item(i).text() for i in range(lst.count()) if lst.item(i).checkState() == QtCore.Qt.Checked]
        self.compare_models(chosen)

    def compare_models(self, model_ids) -> Optional[QtWidgets.QWidget]:
        """Open 2-4 models side by side in a new tab (linked, aligned, overlap, CKA table)."""
        ids = list(model_ids)
        if not 2 <= len(ids) <= 4:
            self.show_error("Choose between 2 and 4 models to compare.")
            return None
        from explorer.gui.compare_view import CompareView

        ms = [self.session.models[i] for i in ids]
        method = self.method_combo.currentText()
        view = CompareView(self.runner)
        view.set_models(self.session.dataset,
                        [(m.id, m.vectors, m.layouts.get(method, m.layouts.get("pca"))) for m in ms],
                        self.selection, diagnostics=[m.diagnostics for m in ms])
        self.add_tab(view, "Compare: " + " vs ".join(ids))
        view.set_filter(self.map_panel.search_mask(self.search.text()))
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
        from explorer.gui.timeline_view import TimelineView
        from explorer.timeline import TimelineParams, timeline_job

        if self.session.dataset is None:
            return self.show_error("Open the dataset the run was trained on first.")
        s = settings()
        dev = str(s.value("device", "auto"))
        p = TimelineParams(probe_size=probe_size, device=None if dev == "auto" else dev, **params)
        s.setValue("timeline_folder", str(Path(folder).resolve()))
        tv = TimelineView()
        tv.source = timeline_entry(folder, probe_size, params)  # what a saved session reopens
        ds, ws = self.session.dataset, self.session.workspace

        def show(res):
            tv.set_result(res, ds)
            tv.set_position(min(max(0.0, float(position)), len(res) - 1))

        self.add_tab(tv, f"Run: {Path(folder).name}")
        self.submit(f"Timeline of {Path(folder).name}", lambda: timeline_job(folder, ds, p, ws), show,
                    exclusive=f"timeline:{tv.source['folder']}")
        return tv

    def _open_timelines(self) -> list:
        """The open timeline tabs as a session stores them (folder, settings, position)."""
        out = []
        for i in range(1, self.center_tabs.count()):
            tv = self.tab_view(i)
            if getattr(tv, "source", None):
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
            from explorer.gui.finetune_panel import FinetuneDialog, start_finetune
        except ImportError:
            return self.show_error("Fine-tuning is not available in this build.")
        if self.session.dataset is None or self.session.current is None or self.session.model().encoder is None:
            return self.show_error("Open a dataset and an encoder first; fine-tuning adapts the current encoder.")
        dlg = FinetuneDialog(self, self.session.dataset, self.session.model())
        if dlg.exec() == QtWidgets.QDialog.Accepted:
            params, out = dlg.values()
            self.guarded(lambda: start_finetune(self, self.session.current, params, out))

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
        from explorer.export import export_selection

        m = self.session.models.get(self.session.current) if self.session.current else None
        export_selection(path, self.session.dataset, self.selection.indices,
                         None if m is None else m.vectors, None if m is None else m.id)
        self.show_info(f"Exported {len(self.selection):,} items to {path}.")

    def export_map_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export map", "map.png", "PNG image (*.png);;SVG (*.svg)")
        if path:
            self.guarded(lambda: self.mapview.export_image(path))

    def copy_snippet(self) -> None:
        from explorer.session import python_snippet

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
            from explorer.session import Session

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

    # ------------------------------------------------------------------ misc dialogs
    def settings_dialog(self) -> None:
        from explorer.gui.dialogs import SettingsDialog

        dlg = SettingsDialog(self)
        if dlg.exec() == QtWidgets.QDialog.Accepted:
            dlg.save()
            self._restore_settings()
            from explorer.gui.settings import apply_theme

            apply_theme(QtWidgets.QApplication.instance(), str(settings().value("theme", "light")))

    def remove_model(self, model_id: Optional[str]) -> None:
        """Take a model out of the session (its cached embeddings stay in the workspace; open
        comparisons keep showing their copy)."""
        if model_id is None or model_id not in self.session.models:
            return self.show_error("No model to remove; open an encoder or a file of vectors first.")
        self.session.remove_model(model_id)
        self.show_info(f"Removed {model_id} from the session; its cached embeddings stay in the workspace.")

    def about(self) -> None:
        QtWidgets.QMessageBox.about(self, APP, f"<b>{APP}</b> {__version__}<br>Maps, neighbours, collapse "
                                    "diagnostics, comparison and fine-tuning for the encoders you train.")

    # ------------------------------------------------------------------ screenshot support
    def wait_until_idle(self, timeout_s: float = 600.0) -> bool:
        """Process events until no job runs (and the event queue settled). For --screenshot and tests."""
        app = QtWidgets.QApplication.instance()
        t0 = time.monotonic()
        quiet_since = None
        while time.monotonic() - t0 < timeout_s:
            app.processEvents(QtCore.QEventLoop.AllEvents, 50)
            if self.runner.active():
                quiet_since = None
            else:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 0.3:
                    app.processEvents()
                    return True
            time.sleep(0.01)
        return False
