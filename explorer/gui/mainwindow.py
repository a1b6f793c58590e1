"""The main window: open -> compute -> look -> inspect -> keep.

The window owns a :class:`~explorer.app.session.Session` (Qt-free state) and a
:class:`~explorer.gui.workers.JobRunner`; every slow step is a core job run in a worker, and
its result is applied to the session on the GUI thread. Views listen to the session and to the
shared selection; none of them pulls data from another.
"""

from __future__ import annotations

import time
import traceback
from typing import Any, Callable, Optional

from PySide6 import QtCore, QtGui, QtWidgets

from explorer import __version__
from explorer.core.errors import ExplorerError
from explorer.gui.browser import DataBrowser
from explorer.gui.cluster_actions import ClusterActions
from explorer.gui.jobs_panel import JobsPanel
from explorer.gui.map_panel import MapPanel
from explorer.gui.settings import APP, settings
from explorer.gui.status_bar import StatusBar
from explorer.gui.details import DetailsPanel
from explorer.gui.explore_actions import ExploreActions
from explorer.gui.file_actions import FileActions
from explorer.gui.open_actions import OpenActions
from explorer.gui.view_actions import ViewActions
from explorer.gui.panels import MessageBar, ProjectionSettings
from explorer.gui.workers import JobRunner
from explorer.gui.subscriptions import Subscriptions
from explorer.app.session import Session

class MainWindow(OpenActions, ViewActions, ExploreActions, FileActions, ClusterActions, QtWidgets.QMainWindow):
    idle = QtCore.Signal()  # no job running any more (for --screenshot and tests)

    def __init__(self, workspace: Optional[str] = None) -> None:
        super().__init__()
        from explorer.core.resources import cache_dir

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
        from explorer.gui.views import pointraster
        from explorer.core.jobs import Progress

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
        self._build_explore_ui()  # charts, bookmarks (explore_actions)
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
        self._build_cluster_actions()
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
               on_error: Optional[Callable[[str], None]] = None, heavy: bool = False):
        def ok(result):
            self.guarded(lambda: on_result(result))

        def failed(msg, det):
            if on_error is not None:
                on_error(msg)
            self.show_error(msg, det)

        return self.runner.submit(name, factory, ok, failed, exclusive, priority=priority, heavy=heavy)

    def _submit_task(self, task):
        """The pipeline's tasks run in the worker pool, the one on screen first."""
        handle = self.submit(task.name, task.job, task.on_result or (lambda _r: None), exclusive=task.exclusive,
                             priority=task.priority, on_error=task.on_error, heavy=task.heavy)
        if task.on_progress is not None:
            handle.progress.connect(lambda p, fn=task.on_progress: self.guarded(lambda: fn(p)))
        return handle

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

    def _on_partial_layout(self, mid: str, method: str, coords) -> None:
        if mid == self.session.current:
            self.map_panel.show_partial_map(method, coords)

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
