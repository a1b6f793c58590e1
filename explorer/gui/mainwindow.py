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

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from explorer import __version__
from explorer.errors import ExplorerError
from explorer.gui.jobs_panel import JobsPanel
from explorer.gui.panels import (InspectorPanel, MessageBar, ProjectionPanel, ProjectionSettings,
                                 SelectionPanel, item_tooltip_html)
from explorer.gui.workers import JobRunner
from explorer.session import Session

ORG, APP = "embedding-explorer", "Embedding Explorer"


def settings() -> QtCore.QSettings:
    return QtCore.QSettings(ORG, APP)


def icon(name: str) -> QtGui.QIcon:
    from explorer.resources import assets_dir

    app = QtWidgets.QApplication.instance()
    dark = app is not None and app.property("theme") == "dark"
    base = assets_dir() / "icons" / "toolbar"
    for folder in ((base / "dark", base) if dark else (base,)):
        for ext in (".svg", ".png"):
            p = folder / f"{name}{ext}"
            if p.exists():
                return QtGui.QIcon(str(p))
    return QtGui.QIcon()


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
        self.session = Session(ws)
        self.session.dataset_changed.connect(self._on_dataset_changed)
        self.session.models_changed.connect(self._refresh_browser)
        self.session.model_updated.connect(self._on_model_updated)
        self.session.current_changed.connect(self._on_current_changed)
        self.session.columns_changed.connect(lambda _name: self._refresh_color_choices())
        self.selection = self.session.selection
        self.selection.changed.connect(self._on_selection_changed)
        self.selection.focus_changed.connect(self._on_focus_changed)
        self.projection = ProjectionSettings()
        self._pending_umap: set[str] = set()
        self._auto_umap = True
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
        from explorer.gui.mapview import MapView

        central = QtWidgets.QWidget()
        v = QtWidgets.QVBoxLayout(central)
        v.setContentsMargins(6, 6, 6, 0)
        self.message = MessageBar()
        v.addWidget(self.message)
        bar = QtWidgets.QHBoxLayout()
        self.model_combo = QtWidgets.QComboBox()
        self.model_combo.setMinimumWidth(170)
        self.model_combo.setSizeAdjustPolicy(QtWidgets.QComboBox.AdjustToContents)
        self.model_combo.setToolTip("Which model's embedding the map shows")
        self.model_combo.currentTextChanged.connect(self._model_combo_changed)
        self.method_combo = QtWidgets.QComboBox()
        self.method_combo.addItems(["umap", "pca"])
        self.method_combo.setToolTip("Map: UMAP (neighbourhoods) or PCA (exact, linear)")
        self.method_combo.currentTextChanged.connect(self._method_changed)
        self.color_combo = QtWidgets.QComboBox()
        self.color_combo.setMinimumWidth(140)
        self.color_combo.setToolTip("Colour points by a label, a metadata column or a per-point metric")
        self.color_combo.currentTextChanged.connect(self._color_changed)
        self.search = QtWidgets.QLineEdit()
        self.search.setPlaceholderText("Search metadata (e.g. 7, or label=3)…  Enter selects matches")
        self.search.setClearButtonEnabled(True)
        self.search.setMinimumWidth(220)
        self.search.setToolTip("Greys out the points that do not match; Enter selects the matches")
        self.search.textChanged.connect(self._search_changed)
        self.search.returnPressed.connect(self._search_select)
        for lbl, w in (("Model", self.model_combo), ("Map", self.method_combo), ("Colour", self.color_combo)):
            bar.addWidget(QtWidgets.QLabel(lbl))
            bar.addWidget(w)
        bar.addWidget(self.search, 1)
        v.addLayout(bar)
        self.stack = QtWidgets.QStackedWidget()
        self.start_page = self._build_start_page()
        self.mapview = MapView()
        self.mapview.bind_selection(self.selection)
        self.mapview.set_hover_provider(self._hover)
        self.center_tabs = QtWidgets.QTabWidget()
        self.center_tabs.setDocumentMode(True)
        self.center_tabs.setTabsClosable(True)
        self.center_tabs.addTab(self.mapview, "Map")
        self.center_tabs.tabBar().setTabButton(0, QtWidgets.QTabBar.RightSide, None)
        self.center_tabs.tabCloseRequested.connect(self._close_tab)
        self.stack.addWidget(self.start_page)
        self.stack.addWidget(self.center_tabs)
        v.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        # left: browser
        self.browser = QtWidgets.QTreeWidget()
        self.browser.setHeaderLabels(["Item", "State"])
        self.browser.setColumnWidth(0, 170)
        self.browser.header().setStretchLastSection(True)
        self.browser.setMinimumWidth(300)
        self.browser.itemDoubleClicked.connect(self._browser_activated)
        self._dock("Data and models", self.browser, QtCore.Qt.LeftDockWidgetArea, "browser")
        # right: tabs
        self.tabs = QtWidgets.QTabWidget()
        self.inspector = InspectorPanel()
        self.inspector.neighbor_activated.connect(lambda i: self.selection.set_focus(i, source=self))
        self.inspector.k_changed.connect(lambda _k: self._show_neighbors())
        self.inspector.metric_changed.connect(lambda _m: self._show_neighbors())
        self.selpanel = SelectionPanel()
        self.selpanel.item_activated.connect(lambda i: self.selection.set_focus(i, source=self))
        self.projpanel = ProjectionPanel()
        self.projpanel.apply_requested.connect(self.apply_projection)
        self.tabs.addTab(self.inspector, "Inspector")
        self.tabs.addTab(self.selpanel, "Selection")
        self.tabs.addTab(self.projpanel, "Map settings")
        try:
            from explorer.gui.diagnostics_panel import DiagnosticsPanel

            self.diagpanel = DiagnosticsPanel()
            self.tabs.addTab(self.diagpanel, "Diagnostics")
        except ImportError:
            self.diagpanel = None
        details = self._dock("Details", self.tabs, QtCore.Qt.RightDockWidgetArea, "details")
        self.resizeDocks([details], [420], QtCore.Qt.Horizontal)
        # bottom: jobs
        self.jobs_panel = JobsPanel(self.runner)
        self._dock("Jobs", self.jobs_panel, QtCore.Qt.BottomDockWidgetArea, "jobs")
        # status bar
        sb = self.statusBar()
        self.status_device = QtWidgets.QLabel()
        self.status_points = QtWidgets.QLabel()
        self.status_sel = QtWidgets.QLabel()
        self.status_mem = QtWidgets.QLabel()
        for w in (self.status_device, self.status_mem, self.status_points, self.status_sel):
            sb.addPermanentWidget(w)
        self._mem_timer = QtCore.QTimer(self)
        self._mem_timer.setInterval(2000)
        self._mem_timer.timeout.connect(self._update_status)
        self._mem_timer.start()
        self.resize(1500, 950)

    def _dock(self, title: str, widget: QtWidgets.QWidget, area, name: str) -> QtWidgets.QDockWidget:
        d = QtWidgets.QDockWidget(title, self)
        d.setObjectName(name)
        d.setWidget(widget)
        d.setFeatures(QtWidgets.QDockWidget.DockWidgetMovable | QtWidgets.QDockWidget.DockWidgetFloatable
                      | QtWidgets.QDockWidget.DockWidgetClosable)
        self.addDockWidget(area, d)
        return d

    def _build_start_page(self) -> QtWidgets.QWidget:
        w = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(w)
        lay.addStretch(1)
        title = QtWidgets.QLabel(f"<h1>{APP}</h1><p>See what your embedding space looks like: open a dataset "
                                 "and your own checkpoints, map them, diagnose collapse, compare.</p>"
                                 "<p>Drop files or folders here, or:</p>")
        title.setAlignment(QtCore.Qt.AlignCenter)
        title.setWordWrap(True)
        lay.addWidget(title)
        row = QtWidgets.QHBoxLayout()
        row.addStretch(1)
        for text, slot in (("Open dataset…", self.open_dataset_dialog), ("Open encoder…", self.open_encoder_dialog),
                           ("Open session…", self.open_session_dialog), ("Try the demo", self.open_demo)):
            b = QtWidgets.QPushButton(text)
            b.setMinimumWidth(140)
            b.clicked.connect(slot)
            row.addWidget(b)
        row.addStretch(1)
        lay.addLayout(row)
        self.recent_list = QtWidgets.QListWidget()
        self.recent_list.setMaximumWidth(700)
        self.recent_list.setMaximumHeight(200)
        self.recent_list.itemActivated.connect(lambda it: self.open_path(it.data(QtCore.Qt.UserRole)))
        rl = QtWidgets.QHBoxLayout()
        rl.addStretch(1)
        box = QtWidgets.QVBoxLayout()
        box.addWidget(QtWidgets.QLabel("Recent"))
        box.addWidget(self.recent_list)
        rl.addLayout(box)
        rl.addStretch(1)
        lay.addLayout(rl)
        lay.addStretch(2)
        return w

    def _build_actions(self) -> None:
        mb = self.menuBar()
        tb = self.addToolBar("Main")
        tb.setObjectName("main_toolbar")
        tb.setIconSize(QtCore.QSize(20, 20))
        tb.setToolButtonStyle(QtCore.Qt.ToolButtonTextBesideIcon)

        def act(menu, text, slot, shortcut=None, tip="", icon_name=None, toolbar=False):
            a = QtGui.QAction(text, self)
            if icon_name:
                a.setIcon(icon(icon_name))
            if shortcut:
                a.setShortcut(QtGui.QKeySequence(shortcut))
            a.setToolTip(tip or text)
            a.setStatusTip(tip or text)
            a.triggered.connect(slot)
            menu.addAction(a)
            if toolbar:
                tb.addAction(a)
            return a

        f = mb.addMenu("&File")
        act(f, "Open &dataset…", self.open_dataset_dialog, "Ctrl+O", "Open an image folder, array, HDF5, text or vector file", "open", True)
        act(f, "Open &encoder…", self.open_encoder_dialog, "Ctrl+E", "Open a checkpoint (TorchScript, state_dict, safetensors, Lightning)", "open", True)
        act(f, "Add &layer of this encoder…", self.add_layer_dialog, "Ctrl+L",
            "Embed with another layer of the current encoder (e.g. backbone vs projector) to compare them")
        act(f, "Attach &metadata…", self.attach_metadata_dialog, None, "Join a CSV/TSV table to the dataset by row order or id column")
        f.addSeparator()
        act(f, "Open &session…", self.open_session_dialog, "Ctrl+Shift+O")
        act(f, "&Save session…", self.save_session_dialog, "Ctrl+S", "Save the workspace and the open views")
        f.addSeparator()
        act(f, "Export &selection…", self.export_selection_dialog, "Ctrl+Shift+E", "CSV of ids, labels and metadata; vectors as .npy or .h5", "export", True)
        act(f, "Export map &image…", self.export_map_dialog, "Ctrl+Shift+P", "PNG or SVG at publication resolution")
        act(f, "Copy &Python snippet", self.copy_snippet, "Ctrl+Shift+C", "Copy code that reproduces the current map from the workspace")
        f.addSeparator()
        self.recent_menu = f.addMenu("Recent")
        f.addSeparator()
        act(f, "Se&ttings…", self.settings_dialog, "Ctrl+,")
        act(f, "&Quit", self.close, "Ctrl+Q")
        act(f, "&Find similar to a file or text…", self.find_similar_dialog, "Ctrl+Shift+F",
            "Embed a new image or sentence with the current encoder and list its nearest items")
        c = mb.addMenu("&Compute")
        tb.addSeparator()
        act(c, "&Embed", self.embed_current, "Ctrl+Return", "Embed the dataset with the current model", "embed", True)
        act(c, "Embed &all models", self.embed_all, "Ctrl+Shift+Return")
        act(c, "&Recompute map", lambda: self.apply_projection(self.projpanel.settings()), "Ctrl+R", "Re-run the map with the settings panel's values", "map", True)
        act(c, "&Diagnose collapse", self.diagnose_current, "Ctrl+D", "Collapse diagnostics of the current model", "diagnose", True)
        act(c, "Cancel all jobs", self.runner.cancel_all, "Ctrl+.", "Cancel every running job", "cancel")
        cmp_menu = mb.addMenu("Com&pare")
        act(cmp_menu, "Compare models &side by side…", self.compare_dialog, "Ctrl+K",
            "2-4 models in linked, aligned maps with neighbourhood overlap and CKA", "compare", True)
        act(cmp_menu, "Open a checkpoint &run (timeline)…", self.timeline_dialog, "Ctrl+T",
            "Embed every checkpoint of a training run on a probe set: metric curves and aligned maps")
        self.finetune_action = act(cmp_menu, "&Fine-tune…", self.finetune_dialog, "Ctrl+F",
                                   "Linear probe or fine-tune the current encoder, live, then compare before/after",
                                   "finetune", True)
        vmenu = mb.addMenu("&View")
        act(vmenu, "&Reset view", lambda: self.mapview.reset_view(), "R", "Show all points", "reset_view", True)
        act(vmenu, "&Zoom to selection", lambda: self.mapview.zoom_to_selection(), "Z")
        act(vmenu, "Clear selection", lambda: self.selection.clear(source=self), "Esc")
        act(vmenu, "Select &all", lambda: self.selection.select(np.arange(self.selection.n), source=self), "Ctrl+A")
        vmenu.addSeparator()
        for d in self.findChildren(QtWidgets.QDockWidget):
            vmenu.addAction(d.toggleViewAction())
        h = mb.addMenu("&Help")
        act(h, "&About", self.about)
        self._refresh_recent()

    # ------------------------------------------------------------------ settings
    def _restore_settings(self) -> None:
        s = settings()
        geo = s.value("geometry")
        if geo is not None:
            self.restoreGeometry(geo)
        state = s.value("windowState")
        if state is not None:
            self.restoreState(state)
        self.status_device.setText(f"Device: {settings().value('device', 'auto')}")

    def _probe_device(self) -> None:
        """Name the device (and its free memory) in the status bar. Importing torch takes
        seconds, so it happens in a worker after the window is up, not before."""
        dev = str(settings().value("device", "auto"))
        self.status_device.setText(f"Device: {dev}")
        self.status_device.setToolTip("Choose the device in File > Settings")

        def job():
            from explorer.device import device_info
            from explorer.jobs import Progress

            yield Progress(0, 1, "looking for a GPU")
            return device_info(None if dev == "auto" else dev).describe()

        def show(text):
            self.status_device.setText(f"Device: {text}")

        self.runner.submit("Detect the compute device", job, show,
                           lambda msg, _d: self.status_device.setText(f"Device: {msg}"), exclusive="device")

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

    def submit(self, name: str, factory, on_result, exclusive: Optional[str] = None):
        def ok(result):
            self.guarded(lambda: on_result(result))

        return self.runner.submit(name, factory, ok, lambda msg, det: self.show_error(msg, det), exclusive)

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
        ds = self.session.dataset
        self.status_points.setText(f"{len(ds):,} points" if ds is not None else "no dataset")
        self.status_sel.setText(f"{len(self.selection):,} selected")
        try:
            import resource

            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            self.status_mem.setText(f"Memory: {rss:,.0f} MB peak")
        except Exception:
            self.status_mem.setText("")
        n = len(self.runner.active())
        if n:
            self.statusBar().showMessage(f"{n} job{'s' if n > 1 else ''} running", 2500)
        else:
            self.statusBar().clearMessage()

    # ------------------------------------------------------------------ opening things
    def _remember_recent(self, path: str, kind: str) -> None:
        s = settings()
        recent = [r for r in (s.value("recent", []) or []) if r and r.split("|", 1)[-1] != path]
        recent.insert(0, f"{kind}|{path}")
        s.setValue("recent", recent[:12])
        self._refresh_recent()

    def _refresh_recent(self) -> None:
        recent = settings().value("recent", []) or []
        if isinstance(recent, str):
            recent = [recent]
        self.recent_menu.clear()
        self.recent_list.clear()
        for r in recent:
            kind, _, path = r.partition("|")
            a = self.recent_menu.addAction(f"{kind}: {path}")
            a.triggered.connect(lambda _=False, p=path, k=kind: self.open_path(p, k))
            it = QtWidgets.QListWidgetItem(f"{kind}:  {path}")
            it.setData(QtCore.Qt.UserRole, path)
            self.recent_list.addItem(it)

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
        return p.suffix.lower() in (".pt", ".pth", ".ckpt", ".safetensors", ".onnx", ".jit", ".ts")

    def open_dataset(self, path: str, fmt: Optional[str] = None, metadata: Optional[str] = None, **options) -> None:
        """Open a dataset in a worker (optionally joining a metadata table by row order)."""
        from explorer.data import attach_metadata, open_dataset

        def job():
            from explorer.jobs import Progress

            yield Progress(0, None, f"Reading {Path(path).name}")
            ds = open_dataset(path, fmt, **options)
            if metadata:
                ds = attach_metadata(ds, metadata)
            return ds

        def done(ds):
            self.session.set_dataset(ds, {"path": str(Path(metadata).resolve()), "id_column": None} if metadata else None)
            self._remember_recent(str(path), "dataset")
            if ds.skipped:
                self.show_info(f"{len(ds.skipped)} items of {ds.name} could not be read and were left out "
                               f"(first: {ds.skipped[0][0]}: {ds.skipped[0][1]}).")
            self.embed_all()

        self.submit(f"Open {Path(path).name}", job, done)

    def open_encoder(self, path: str, **options) -> None:
        from explorer.encoders import open_encoder

        def job():
            from explorer.jobs import Progress

            yield Progress(0, None, f"Loading {Path(path).name}")
            return open_encoder(path, **options)

        def done(enc):
            m = self.session.add_model(enc, options={k: v for k, v in options.items() if v is not None})
            if getattr(self, "_demo_current", None) == Path(path).name:
                self.session.set_current(m.id)
            self._remember_recent(str(path), "encoder")
            if self.session.dataset is not None:
                self.embed(m.id)

        self.submit(f"Load {Path(path).name}", job, done)

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
            ds = self.session.dataset
            self.inspector.show_item(None, None)
            self.inspector.title.setText(f"Query: {Path(str(items[0])).name if kind != 'text' else str(items[0])[:60]}")
            self.inspector.show_neighbors(ds, idx, scores, metric)
            self.tabs.setCurrentWidget(self.inspector)
            self.selection.select(idx, source=self)

        self.submit("Find similar", job, done)

    def attach_metadata_dialog(self) -> None:
        if self.session.dataset is None:
            return self.show_error("Open a dataset before attaching metadata to it.")
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Attach metadata", "", "Tables (*.csv *.tsv);;All files (*)")
        if path:
            self.attach_metadata(path)

    def attach_metadata(self, path: str, id_column: Optional[str] = None) -> None:
        from explorer.data import attach_metadata

        def run():
            ds = attach_metadata(self.session.dataset, path, id_column=id_column)
            self.session.dataset = ds
            self.session.metadata_source = {"path": str(Path(path).resolve()), "id_column": id_column}
            self._refresh_color_choices()
            self.show_info(f"Attached {Path(path).name}: {len(ds.metadata)} columns to colour, filter and search by.")

        self.guarded(run)

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
        """The bundled sample data with its checkpoints; maps and diagnostics computed."""
        from explorer.resources import sample_data_dir

        root = sample_data_dir()
        data = root / "digits"
        if not data.is_dir():
            return self.show_error(f"The sample data is missing from {root}; reinstall the app or run make sample-data.")
        meta = root / "digits_metadata.csv"
        self._pending_metadata = str(meta) if meta.exists() else None
        self._demo_models = [p for p in (root / "checkpoints" / n for n in ("healthy.pt", "dimcollapsed.pt", "collapsed.pt")) if p.exists()]
        from explorer.data import open_dataset

        def job():
            from explorer.jobs import Progress

            yield Progress(0, None, "Reading the sample digits")
            ds = open_dataset(str(data))
            if self._pending_metadata:
                from explorer.data import attach_metadata

                ds = attach_metadata(ds, self._pending_metadata, id_column="path")
            return ds

        self._demo_focus = True
        self._demo_current = "healthy.pt"  # the demo opens on the healthy model, the others beside it

        def done(ds):
            meta = self._pending_metadata
            self.session.set_dataset(ds, {"path": str(Path(meta).resolve()), "id_column": "path"} if meta else None)
            for p in self._demo_models:
                self.open_encoder(str(p))

        self.submit("Open the demo", job, done)

    # ------------------------------------------------------------------ compute
    def embed(self, model_id: str) -> None:
        m = self.session.models.get(model_id)
        if m is None:
            return
        params = self.embed_params()
        self.submit(f"Embed with {model_id}", lambda: self.session.embed_job(model_id, params),
                    lambda r: self._embedded(model_id, r), exclusive=f"embed:{model_id}")

    def _embedded(self, model_id: str, result) -> None:
        key, vectors = result
        self.session.apply_embedding(model_id, key, vectors)
        self._probe_correctness(model_id)
        self.compute_maps(model_id)
        self.diagnose(model_id)
        if getattr(self, "_demo_focus", False) and model_id == self.session.current:
            # the demo opens with one item inspected, so its neighbours show what the tool is for
            self._demo_focus = False
            self.selection.set_focus(min(42, len(vectors) - 1), source=self)

    def _probe_correctness(self, model_id: str) -> None:
        """For a linear probe's logits: a "correct/incorrect" column to colour the map by."""
        m = self.session.models[model_id]
        ds = self.session.dataset
        if (m.encoder is None or m.encoder.info.get("output") != "linear probe logits" or ds is None
                or ds.labels is None or m.vectors.shape[1] != len(ds.label_names)):
            return
        pred = np.argmax(m.vectors, axis=1)
        col = np.where(pred == ds.labels, "correct", "incorrect").astype(object)
        col[ds.labels < 0] = "unlabelled"
        name = f"probe correct ({model_id})"
        self.session.add_column(name, col)
        acc = float(np.mean(pred[ds.labels >= 0] == ds.labels[ds.labels >= 0]))
        self.show_info(f"{model_id}: {acc:.1%} of labelled items correct; colour by “{name}” to see where it errs.")

    def embed_current(self) -> None:
        if self.session.dataset is None:
            return self.show_error("Open a dataset first (File > Open dataset).")
        if self.session.current is None:
            return self.show_error("Open an encoder first (File > Open encoder).")
        self.embed(self.session.current)

    def embed_all(self) -> None:
        if self.session.dataset is None:
            return
        for mid in list(self.session.models):
            self.embed(mid)

    def compute_maps(self, model_id: str, settings_: Optional[ProjectionSettings] = None) -> None:
        """PCA at once; UMAP next (on the shared kNN graph)."""
        s = settings_ or self.projection
        m = self.session.models[model_id]
        if m.vectors is None:
            return
        from explorer.session import projection_job

        Z = m.vectors
        self.submit(f"PCA of {model_id}", lambda: projection_job(self.session, model_id, "pca", s),
                    lambda r: self.session.apply_layout(model_id, "pca", r[0], r[1]), exclusive=f"pca:{model_id}")
        if s.method == "umap":
            self.submit(f"UMAP of {model_id} ({len(Z):,} points)", lambda: projection_job(self.session, model_id, "umap", s),
                        lambda r: self.session.apply_layout(model_id, "umap", r[0], r[1]), exclusive=f"umap:{model_id}")

    def apply_projection(self, s: ProjectionSettings) -> None:
        self.projection = s
        self.method_combo.setCurrentText(s.method)
        if self.session.current is None or not self.session.model().embedded:
            return self.show_error("Embed the dataset first (Compute > Embed).")
        self.compute_maps(self.session.current, s)

    def diagnose(self, model_id: str) -> None:
        from explorer.session import diagnose_job

        m = self.session.models[model_id]
        if m.vectors is None:
            return
        self.submit(f"Diagnose {model_id}", lambda: diagnose_job(self.session, model_id),
                    lambda r: self.session.apply_diagnostics(model_id, r), exclusive=f"diag:{model_id}")

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
        self.stack.setCurrentWidget(self.center_tabs)
        self._refresh_color_choices()
        self._refresh_browser()
        self.inspector.show_item(None, None)
        self.selpanel.show_selection(None, np.zeros(0, int))
        self._update_status()

    def _refresh_color_choices(self) -> None:
        ds = self.session.dataset
        cur = self.color_combo.currentText()
        with QtCore.QSignalBlocker(self.color_combo):
            self.color_combo.clear()
            self.color_combo.addItem("(uniform)")
            if ds is not None:
                for name in ds.columns():
                    self.color_combo.addItem(name)
            for extra in ("projection trust",):
                self.color_combo.addItem(extra)
            if cur and self.color_combo.findText(cur) >= 0:
                self.color_combo.setCurrentText(cur)
            elif ds is not None and ds.labels is not None:
                self.color_combo.setCurrentText("label")
        self._apply_colors()

    def _refresh_browser(self) -> None:
        self.browser.clear()
        ds = self.session.dataset
        top = QtWidgets.QTreeWidgetItem(["Dataset", "" if ds is None else f"{len(ds):,} {ds.kind} items"])
        if ds is not None:
            it = QtWidgets.QTreeWidgetItem([ds.name, f"{len(ds.label_names)} classes" if ds.label_names else ""])
            it.setToolTip(0, str(ds.source))
            top.addChild(it)
        self.browser.addTopLevelItem(top)
        mt = QtWidgets.QTreeWidgetItem(["Models", f"{len(self.session.models)}"])
        for mid, m in self.session.models.items():
            state = "not embedded"
            if m.vectors is not None:
                state = f"{m.vectors.shape[1]}-d"
                if m.layouts:
                    state += ", " + "+".join(sorted(m.layouts))
                if m.diagnostics:
                    state += ", " + m.diagnostics.get("verdict", {}).get("label", "diagnosed")
            it = QtWidgets.QTreeWidgetItem([mid, state])
            it.setData(0, QtCore.Qt.UserRole, mid)
            it.setToolTip(0, m.source or "precomputed vectors")
            if mid == self.session.current:
                f = it.font(0)
                f.setBold(True)
                it.setFont(0, f)
            mt.addChild(it)
        self.browser.addTopLevelItem(mt)
        wt = QtWidgets.QTreeWidgetItem(["Workspace", self.session.workspace_path.name])
        wt.setToolTip(0, str(self.session.workspace_path))
        try:
            for key, attrs in self.session.workspace.list("embeddings"):
                wt.addChild(QtWidgets.QTreeWidgetItem([str(attrs.get("model", key)), f"cached {attrs.get('n', '?')}x{attrs.get('dim', '?')}"]))
        except Exception:
            pass
        self.browser.addTopLevelItem(wt)
        self.browser.expandAll()
        with QtCore.QSignalBlocker(self.model_combo):
            self.model_combo.clear()
            self.model_combo.addItems(list(self.session.models))
            if self.session.current:
                self.model_combo.setCurrentText(self.session.current)

    def _browser_activated(self, item, _col) -> None:
        mid = item.data(0, QtCore.Qt.UserRole)
        if mid:
            self.session.set_current(mid)

    def _model_combo_changed(self, mid: str) -> None:
        if mid and mid in self.session.models:
            self.session.set_current(mid)

    def _on_current_changed(self, mid) -> None:
        self._refresh_browser()
        self._show_current_map()
        self._show_diagnostics()
        self._show_neighbors()

    def _on_model_updated(self, mid: str) -> None:
        self._refresh_browser()
        if mid == self.session.current:
            self._show_current_map()
            self._show_neighbors()
        self._show_diagnostics()

    def _method_changed(self, method: str) -> None:
        self.projection.method = method
        self.projpanel.method.setCurrentText(method)
        if self.session.current and method == "umap":
            m = self.session.model()
            if m.embedded and "umap" not in m.layouts and not any(
                    j.name.startswith("UMAP of " + m.id) for j in self.runner.active()):
                self.compute_maps(m.id)
        self._show_current_map()

    def _show_current_map(self) -> None:
        if self.session.current is None:
            return
        m = self.session.model()
        method = self.method_combo.currentText()
        coords = m.layouts.get(method)
        if coords is None:
            coords = m.layouts.get("pca")
            if coords is not None and method == "umap":
                self.statusBar().showMessage("Showing PCA until the UMAP is ready…", 4000)
        if coords is None:
            return
        shown = (m.id, method if method in m.layouts else "pca", len(coords))
        first = getattr(self, "_shown_key", None) != shown
        self._shown_key = shown
        self.mapview.set_layout(coords, reset_view=first)
        self._shown_n = len(coords)
        self._apply_colors()
        info = m.layout_info.get(method) or {}
        self.projpanel.info.setText(info.get("summary", ""))
        self.mapview.set_graph_quality(info.get("graph_method"), info.get("graph_recall"),
                                       info.get("graph_target_recall"))

    def _apply_colors(self) -> None:
        ds = self.session.dataset
        name = self.color_combo.currentText()
        if ds is None or getattr(self, "_shown_n", None) != len(ds):
            return
        if name == "projection trust":
            m = self.session.model()
            trust = (m.layout_info.get(self.method_combo.currentText()) or {}).get("trust")
            if trust is None:
                self.statusBar().showMessage("Projection trust is computed with the UMAP map.", 4000)
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

    def _color_changed(self, _name: str) -> None:
        self._apply_colors()

    def _search_mask(self, text: str) -> Optional[np.ndarray]:
        ds = self.session.dataset
        text = text.strip()
        if ds is None or not text:
            return None
        cols = ds.columns()
        if "=" in text:
            key, _, val = text.partition("=")
            key, val = key.strip(), val.strip().lower()
            if key in cols:
                return np.char.lower(cols[key].astype(str)) == val
        t = text.lower()
        mask = np.zeros(len(ds), bool)
        for c in cols.values():
            s = np.char.lower(c.astype(str))
            mask |= (np.char.find(s, t) >= 0)
        if ds.ids is not None:
            mask |= np.char.find(np.char.lower(ds.ids.astype(str)), t) >= 0
        return mask

    def _search_changed(self, text: str) -> None:
        """The search greys out what does not match on the map and on every comparison tab."""
        mask = self._search_mask(text)
        self.mapview.set_filter(mask)
        for i in range(1, self.center_tabs.count()):
            w = self.center_tabs.widget(i)
            if hasattr(w, "set_filter") and getattr(w, "dataset", None) is self.session.dataset:
                w.set_filter(mask)

    def _search_select(self) -> None:
        mask = self._search_mask(self.search.text())
        if mask is not None:
            self.selection.select(np.flatnonzero(mask), source=self)

    def _hover(self, index: int):
        ds = self.session.dataset
        if ds is None:
            return None
        from explorer.gui.gallery import safe_thumbnail

        return item_tooltip_html(ds, index), safe_thumbnail(ds, index, 96)

    def _on_selection_changed(self, indices, source) -> None:
        self.selpanel.show_selection(self.session.dataset, indices)
        self._update_status()
        if len(indices) > 1 and source is not self:
            self.tabs.setCurrentWidget(self.selpanel)

    def _on_focus_changed(self, index, source) -> None:
        self.inspector.show_item(self.session.dataset, index)
        self._show_neighbors()
        if index is not None:
            self.tabs.setCurrentWidget(self.inspector)

    def _show_neighbors(self) -> None:
        idx = self.selection.focus
        ds = self.session.dataset
        if idx is None or ds is None or self.session.current is None:
            return
        m = self.session.model()
        if m.vectors is None:
            return
        k = self.inspector.k.value()
        metric = self.inspector.metric_box.currentText()

        def run():
            nbr, scores = self.session.neighbors(m.id, int(idx), k=k, metric=metric)
            self.inspector.show_neighbors(ds, nbr, scores, metric)

        self.guarded(run)

    def _show_diagnostics(self) -> None:
        if self.diagpanel is None or self.session.current is None:
            return
        m = self.session.model()
        self.diagpanel.show_metrics(m.id, m.diagnostics)
        self.diagpanel.show_all({mid: mm.diagnostics for mid, mm in self.session.models.items()})

    # ------------------------------------------------------------------ compare, timeline, fine-tune
    def _close_tab(self, index: int) -> None:
        if index > 0:
            w = self.center_tabs.widget(index)
            self.center_tabs.removeTab(index)
            w.deleteLater()

    def add_tab(self, widget: QtWidgets.QWidget, title: str) -> None:
        self.stack.setCurrentWidget(self.center_tabs)
        self.center_tabs.addTab(widget, title)
        self.center_tabs.setCurrentWidget(widget)

    def compare_dialog(self) -> None:
        ready = [mid for mid, m in self.session.models.items() if m.vectors is not None and m.layouts]
        if len(ready) < 2:
            return self.show_error("Comparing needs at least two embedded models with a map; open and embed another encoder.")
        dlg = QtWidgets.QDialog(self)
        dlg.setWindowTitle("Compare models")
        lay = QtWidgets.QVBoxLayout(dlg)
        lay.addWidget(QtWidgets.QLabel("Choose 2 to 4 models (the first is the reference for alignment):"))
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
        view.set_filter(self._search_mask(self.search.text()))
        return view

    def timeline_dialog(self) -> None:
        if self.session.dataset is None:
            return self.show_error("Open the dataset the run was trained on first; its probe set is a sample of it.")
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Folder of checkpoints from one run")
        if folder:
            self.open_timeline(folder)

    def open_timeline(self, folder: str, probe_size: int = 5000, **params):
        """Embed every checkpoint of a run on a fixed probe set; metric curves + aligned maps."""
        from explorer.gui.timeline_view import TimelineView
        from explorer.timeline import TimelineParams, timeline_job

        if self.session.dataset is None:
            return self.show_error("Open the dataset the run was trained on first.")
        s = settings()
        dev = str(s.value("device", "auto"))
        p = TimelineParams(probe_size=probe_size, device=None if dev == "auto" else dev, **params)
        tv = TimelineView()
        ds, ws = self.session.dataset, self.session.workspace
        self.add_tab(tv, f"Run: {Path(folder).name}")
        self.submit(f"Timeline of {Path(folder).name}", lambda: timeline_job(folder, ds, p, ws),
                    lambda res: tv.set_result(res, ds), exclusive="timeline")
        return tv

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
                                  "projection": vars(self.projection)})
        self.session.save(path)
        self._remember_recent(path, "session")
        self.statusBar().showMessage(f"Saved session to {path}", 4000)

    def open_session_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open session", "", "Sessions (*.eesession);;All files (*)")
        if path:
            self.open_session(path)

    def open_session(self, path: str) -> None:
        """Reopen workspace, dataset and models; embeddings come from the workspace cache."""
        from explorer.session import read_session_file

        d = self.guarded(lambda: read_session_file(path))
        if d is None:
            return
        from explorer.data import open_dataset
        from explorer.encoders import open_encoder

        def job():
            from explorer.jobs import Progress

            yield Progress(0, None, "Opening the dataset")
            ds = None
            if d.get("dataset"):
                ds = open_dataset(d["dataset"]["path"], d["dataset"].get("format") or None, **d["dataset"].get("options", {}))
                meta = d["dataset"].get("metadata")
                if meta:
                    from explorer.data import attach_metadata

                    ds = attach_metadata(ds, meta["path"], id_column=meta.get("id_column"))
            encs = []
            for i, md in enumerate(d.get("models", [])):
                yield Progress(i + 1, len(d["models"]) + 1, f"Loading {md['id']}")
                enc = open_encoder(md["source"], **md.get("options", {})) if md.get("source") else None
                encs.append((md, enc))
            return ds, encs

        def done(result):
            ds, encs = result
            from explorer.session import Session

            self.session_restore = d
            new = Session(d["workspace"])
            self._adopt_session(new)
            if ds is not None:
                self.session.set_dataset(ds, (d.get("dataset") or {}).get("metadata"))
                sel, focus = d.get("selection", []), d.get("focus")
                self.selection.select([i for i in sel if 0 <= i < len(ds)], source=self)
                if focus is not None and 0 <= focus < len(ds):
                    self.selection.set_focus(focus, source=self)
            for md, enc in encs:
                if enc is None and "precomputed" in self.session.models:
                    continue
                self.session.add_model(enc, name=md["id"], source=md.get("source"), options=md.get("options", {}))
            view = d.get("view", {})
            if view.get("projection"):
                self.projection = ProjectionSettings(**view["projection"])
                self.projpanel.set_settings(self.projection)
            with QtCore.QSignalBlocker(self.method_combo):
                self.method_combo.setCurrentText(view.get("method", "umap"))
            if d.get("current") in self.session.models:
                self.session.set_current(d["current"])
            self.color_combo.setCurrentText(view.get("color_by", "label"))
            self.search.setText(view.get("search", ""))
            self.embed_all()
            self._remember_recent(str(path), "session")

        self.submit(f"Open session {Path(path).name}", job, done)

    def _adopt_session(self, new: Session) -> None:
        old = self.session
        for sig, slot in ((old.dataset_changed, self._on_dataset_changed), (old.models_changed, self._refresh_browser),
                          (old.model_updated, self._on_model_updated), (old.current_changed, self._on_current_changed)):
            sig.disconnect(slot)
        self.session = new
        new.dataset_changed.connect(self._on_dataset_changed)
        new.models_changed.connect(self._refresh_browser)
        new.model_updated.connect(self._on_model_updated)
        new.current_changed.connect(self._on_current_changed)
        new.columns_changed.connect(lambda _name: self._refresh_color_choices())
        self.selection = new.selection
        self.selection.changed.connect(self._on_selection_changed)
        self.selection.focus_changed.connect(self._on_focus_changed)
        self.mapview.bind_selection(self.selection)
        self._shown_n = None
        self._shown_key = None

    # ------------------------------------------------------------------ misc dialogs
    def settings_dialog(self) -> None:
        from explorer.gui.dialogs import SettingsDialog

        dlg = SettingsDialog(self)
        if dlg.exec() == QtWidgets.QDialog.Accepted:
            dlg.save()
            self._restore_settings()
            from explorer.gui.app import apply_theme

            apply_theme(QtWidgets.QApplication.instance(), str(settings().value("theme", "light")))

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
