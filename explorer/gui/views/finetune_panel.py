"""Fine-tuning from the app: the settings dialog, the live panel, and the run that ties them to
the main window.

    dlg = FinetuneDialog(window, session.dataset, session.model())
    if dlg.exec() == QtWidgets.QDialog.Accepted:
        params, out = dlg.values()
        panel = start_finetune(window, session.current, params, out)

The training itself is :func:`explorer.finetune.finetune` (Qt-free), run through the window's
:class:`~explorer.gui.workers.JobRunner`. Pause is a :class:`explorer.core.jobs.PauseGate` (a ``threading.Event``)
checked between the job's yields by :func:`explorer.core.jobs.pausable`, a plain generator wrapper with no Qt in it;
while paused it keeps yielding "paused" progress so a Stop still gets through. Stop ends the
job early: the :class:`~explorer.finetune.FinetuneResult` keeps the last (and best) weights, the
panel offers to save them, and the jobs panel shows the job "stopped (weights kept)" (then
"weights saved" / "weights discarded"), not "cancelled". A finished run is saved (weights-only
``.pt`` + JSON sidecar), added to the session as a new model, embedded, and compared with the
base model side by side. The weights go by default to :func:`default_save_folder`:
``checkpoints/`` next to the open workspace, else ``<Documents>/Embedding Explorer/checkpoints``,
or the folder the user last chose; never into the installed package or its sample data.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from explorer.core.errors import InputError
from explorer.finetune.job import probe_logits_module, save_job
from explorer.core.jobs import PauseGate, Progress, pausable  # noqa: F401  (re-exported)

__all__ = ["FinetuneDialog", "FinetunePanel", "FinetuneRun", "PauseGate", "pausable",
           "start_finetune", "open_finetune_dialog", "default_out_path", "default_save_folder", "default_lr"]

OBJECTIVES = (
    ("linear", "Linear probe", "a new linear head on the frozen features, trained with cross-entropy on the labels"),
    ("ce", "Cross-entropy", "supervised cross-entropy through the encoder and a linear head (needs labels)"),
    ("simclr", "SimCLR (InfoNCE)", "two augmented views of each item attract, every other item in the batch repels"),
    ("vicreg", "VICReg", "invariance between two views plus variance and covariance terms that prevent collapse"),
    ("sigreg", "LeJEPA SIGReg", "invariance between two views plus the isotropic-Gaussian regulariser; undoes collapse"),
)
SUPERVISED = ("linear", "ce")
MODES = (("linear", "Linear probe (encoder frozen)"), ("full", "Full fine-tune"), ("last", "Last N blocks"))


def default_lr(objective: str) -> float:
    """The learning rate the dialog (and the CLI) start from: 1e-2 for a linear probe, else 1e-3."""
    return 1e-2 if objective == "linear" else 1e-3


#: QSettings key of the folder the user last chose for fine-tuned weights (see FinetuneDialog)
SAVE_FOLDER_KEY = "finetune/save_folder"


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except (ValueError, OSError):
        return False


def _app_folders() -> list:
    """Folders that ship with the app (the package, its bundled data) or belong to its cache."""
    import explorer
    from explorer.core.resources import assets_dir, cache_dir, sample_data_dir

    return [Path(explorer.__file__).parent, sample_data_dir(), assets_dir(), cache_dir()]


def _writable(folder: Path) -> bool:
    """True when ``folder`` is, or can be made (its nearest existing ancestor is), writable."""
    f = folder
    while not f.exists() and f.parent != f:
        f = f.parent
    return f.is_dir() and os.access(f, os.W_OK)


def usable_save_folder(folder) -> bool:
    """A folder fine-tuned weights may go to: writable and outside the installed package, its
    bundled sample data and assets, and the app's cache."""
    if not folder:
        return False
    f = Path(folder).expanduser()
    return f.is_absolute() and _writable(f) and not any(_inside(f, r) for r in _app_folders())


def documents_folder() -> Path:
    """``<Documents>/Embedding Explorer/checkpoints`` (platformdirs' user documents folder, which
    follows XDG_DOCUMENTS_DIR / user-dirs.dirs on Linux, like Qt's DocumentsLocation)."""
    from platformdirs import user_documents_dir

    return Path(user_documents_dir()) / "Embedding Explorer" / "checkpoints"


def default_save_folder(workspace=None, remembered=None) -> Path:
    """Where fine-tuned weights go unless the user picks another file: the folder they chose
    last (``remembered``) while it is still usable; else ``<workspace folder>/checkpoints`` when
    a workspace of theirs is open (not the app's scratch workspace in its cache); else
    ``<Documents>/Embedding Explorer/checkpoints``; never inside the installed package or its
    sample data (:func:`usable_save_folder`). The folder is not created here."""
    if remembered and usable_save_folder(remembered):
        return Path(remembered).expanduser()
    if workspace:
        ws = Path(workspace).expanduser().absolute()
        folder = ws.parent / "checkpoints"
        if usable_save_folder(folder):
            return folder
    docs = documents_folder()
    if usable_save_folder(docs):
        return docs
    from explorer.core.resources import cache_dir

    return cache_dir() / "finetuned"  # no writable documents folder: the app's own cache


def default_out_path(base: Optional[str], objective: str, folder=None) -> Path:
    """``<stem of the base checkpoint>_<objective>.pt`` in ``folder`` (default:
    :func:`default_save_folder` with no workspace); ``_2``, ``_3``... if the name is taken."""
    p = Path(base).expanduser() if base else None
    stem = (p.stem if p is not None and p.suffix else (p.name if p is not None else "")) or "model"
    folder = Path(folder).expanduser() if folder is not None else default_save_folder()
    out = folder / f"{stem}_{objective}.pt"
    i = 2
    while out.exists() or (p is not None and out.resolve() == p.resolve()):
        out = folder / f"{stem}_{objective}_{i}.pt"
        i += 1
    return out


# ------------------------------------------------------------------ the dialog

def _tip(w: QtWidgets.QWidget, text: str) -> QtWidgets.QWidget:
    w.setToolTip(text)
    return w


def _units(spin: QtWidgets.QSpinBox, one: str, many: str) -> QtWidgets.QSpinBox:
    """Show the unit after the number ("1 step", "20 steps")."""
    def follow(v: int) -> None:
        suffix = f" {one if v == 1 else many}"
        if spin.suffix() != suffix:
            spin.setSuffix(suffix)

    spin.valueChanged.connect(follow)
    follow(spin.value())
    return spin


class FinetuneDialog(QtWidgets.QDialog):
    """Settings of a fine-tuning run. ``values()`` -> (FinetuneParams, output path str).

    The weights are saved by default in :func:`default_save_folder`: the folder the user chose
    last (QSettings ``finetune/save_folder``), else ``checkpoints/`` next to the open workspace
    (``workspace``, default: the parent window's), else the documents folder."""

    def __init__(self, parent=None, dataset=None, model=None, workspace=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Fine-tune")
        self.dataset = dataset
        self.model = model
        if workspace is None:
            workspace = getattr(getattr(parent, "session", None), "workspace_path", None)
        self.workspace = workspace
        from explorer.gui.settings import settings

        self.save_folder = default_save_folder(workspace, str(settings().value(SAVE_FOLDER_KEY, "") or ""))
        enc = getattr(model, "encoder", model)
        self.base_source = getattr(model, "source", None) or (str(enc.source) if enc is not None and
                                                              getattr(enc, "source", None) else None)
        self.has_labels = dataset is not None and dataset.labels is not None and \
            bool((np.asarray(dataset.labels) >= 0).any())
        self._n_blocks = 1
        if enc is not None and getattr(enc, "module", None) is not None:
            try:
                from explorer.finetune import trainable_blocks

                self._n_blocks = max(1, len(trainable_blocks(enc.module)))
            except Exception:
                pass
        self._lr_edited = False
        self._out_edited = False
        self._build()
        self.mode.setCurrentIndex(0 if self.has_labels else 1)
        self.objective.setCurrentIndex(self.objective.findData("linear" if self.has_labels else "sigreg"))
        self._sync()

    def _build(self) -> None:
        lay = QtWidgets.QVBoxLayout(self)
        name = getattr(self.model, "id", None) or getattr(getattr(self.model, "encoder", self.model), "name", "")
        head = QtWidgets.QLabel(f"Adapt <b>{name}</b> on <b>{getattr(self.dataset, 'name', 'the dataset')}</b>"
                                f" ({len(self.dataset):,} items)" if self.dataset is not None else
                                f"Adapt <b>{name}</b>")
        head.setWordWrap(True)
        lay.addWidget(head)
        form = QtWidgets.QFormLayout()
        self.mode = QtWidgets.QComboBox()
        for key, text in MODES:
            self.mode.addItem(text, key)
        _tip(self.mode, "What is trained: only a new linear head, the whole encoder, or only its last N blocks")
        self.blocks = _tip(QtWidgets.QSpinBox(), f"How many of the encoder's {self._n_blocks} blocks, counted "
                                                 "from the output, are trained; the rest stay frozen")
        self.blocks.setRange(1, self._n_blocks)
        self.blocks.setValue(1)
        _units(self.blocks, "block", "blocks")
        mrow = QtWidgets.QHBoxLayout()
        mrow.addWidget(self.mode, 1)
        mrow.addWidget(QtWidgets.QLabel("N"))
        mrow.addWidget(self.blocks)
        form.addRow("Mode", mrow)
        self.objective = QtWidgets.QComboBox()
        model_ = self.objective.model()
        for i, (key, text, tip) in enumerate(OBJECTIVES):
            self.objective.addItem(text, key)
            self.objective.setItemData(i, tip, QtCore.Qt.ToolTipRole)
            if key in SUPERVISED and not self.has_labels:
                model_.item(i).setEnabled(False)
                self.objective.setItemData(i, tip + " (this dataset has no labels)", QtCore.Qt.ToolTipRole)
        _tip(self.objective, "The training loss; hover an entry for what it does"
             + ("" if self.has_labels else " (linear probe and cross-entropy need labels; this dataset has none)"))
        form.addRow("Objective", self.objective)
        self.epochs = _tip(QtWidgets.QSpinBox(), "Passes over the training items")
        self.epochs.setRange(1, 10000)
        self.epochs.setValue(5)
        _units(self.epochs, "epoch", "epochs")
        form.addRow("Epochs", self.epochs)
        self.lr = _tip(QtWidgets.QDoubleSpinBox(), "Peak AdamW learning rate (linear warm-up, then cosine decay "
                                                   "to 1/100); 1e-2 suits a linear probe, 1e-3 the rest")
        self.lr.setDecimals(6)
        self.lr.setRange(1e-6, 10.0)
        self.lr.setSingleStep(1e-4)
        form.addRow("Learning rate", self.lr)
        self.batch = _tip(QtWidgets.QSpinBox(), "Items per step (per view for the two-view objectives); "
                                                "lower it if the GPU runs out of memory")
        self.batch.setRange(2, 65536)
        self.batch.setValue(256)
        _units(self.batch, "item", "items")
        form.addRow("Batch size", self.batch)
        self.temperature = _tip(QtWidgets.QDoubleSpinBox(), "SimCLR softmax temperature: lower sharpens the "
                                                            "contrast between positives and negatives")
        self.temperature.setDecimals(3)
        self.temperature.setRange(0.001, 10.0)
        self.temperature.setSingleStep(0.01)
        self.temperature.setValue(0.1)
        form.addRow("Temperature", self.temperature)
        self.lambda_ = _tip(QtWidgets.QDoubleSpinBox(), "Weight of the SIGReg term against the invariance "
                                                        "term (LeJEPA's lambda)")
        self.lambda_.setDecimals(3)
        self.lambda_.setRange(0.0, 1.0)
        self.lambda_.setSingleStep(0.01)
        self.lambda_.setValue(0.05)
        form.addRow("SIGReg lambda", self.lambda_)
        self.device = _tip(QtWidgets.QComboBox(), "Where to train: auto picks a CUDA GPU, then Apple MPS, "
                                                  "then the CPU")
        self.device.addItems(self._devices())
        form.addRow("Device", self.device)
        self.amp = _tip(QtWidgets.QCheckBox("Mixed precision (AMP)"), "bf16 autocast (fp16 with loss scaling "
                                                                      "where bf16 is missing); CUDA only")
        form.addRow("", self.amp)
        self.probe_every = _tip(QtWidgets.QSpinBox(), "Steps between live diagnostics and map updates on the "
                                                      "fixed probe set (0: only at the end)")
        self.probe_every.setRange(0, 100000)
        self.probe_every.setValue(20)
        self.probe_every.setSpecialValueText("only at the end")
        _units(self.probe_every, "step", "steps")
        form.addRow("Probe every", self.probe_every)
        self.out = _tip(QtWidgets.QLineEdit(), "Where the new weights (.pt) and their JSON sidecar are saved; "
                                               "the base checkpoint is never overwritten")
        self.out.textEdited.connect(self._out_was_edited)
        self.browse = QtWidgets.QPushButton("Browse…")
        self.browse.setToolTip("Choose the file (and folder) the new weights are saved to; the folder "
                               "you pick is remembered for the next run")
        self.browse.clicked.connect(self._browse)
        orow = QtWidgets.QHBoxLayout()
        orow.addWidget(self.out, 1)
        orow.addWidget(self.browse)
        form.addRow("Save as", orow)
        lay.addLayout(form)
        self.note = QtWidgets.QLabel()
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: palette(mid);")
        lay.addWidget(self.note)
        bb = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Ok | QtWidgets.QDialogButtonBox.Cancel)
        bb.button(QtWidgets.QDialogButtonBox.Ok).setText("Start")
        bb.accepted.connect(self._accept)
        bb.rejected.connect(self.reject)
        lay.addWidget(bb)
        self.mode.currentIndexChanged.connect(self._mode_changed)
        self.objective.currentIndexChanged.connect(self._objective_changed)
        self.lr.valueChanged.connect(self._lr_was_edited)
        self.setMinimumWidth(620)  # room for a save path under the documents folder

    @staticmethod
    def _devices() -> list:
        out = ["auto", "cpu"]
        try:
            import torch

            if torch.cuda.is_available():
                out += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())] * (torch.cuda.device_count() > 1)
            mps = getattr(torch.backends, "mps", None)
            if mps is not None and mps.is_available():
                out.append("mps")
        except Exception:
            pass
        return out

    # -- coupling between the fields
    def _lr_was_edited(self, _v) -> None:
        if not getattr(self, "_setting", False):
            self._lr_edited = True

    def _out_was_edited(self, _t) -> None:
        self._out_edited = True

    def _mode_changed(self, _i) -> None:
        mode = self.mode.currentData()
        obj = self.objective.currentData()
        if mode == "linear" and obj != "linear":
            self.objective.setCurrentIndex(self.objective.findData("linear"))
        elif mode != "linear" and obj == "linear":
            self.objective.setCurrentIndex(self.objective.findData("ce" if self.has_labels else "sigreg"))
        self._sync()

    def _objective_changed(self, _i) -> None:
        obj = self.objective.currentData()
        if obj == "linear" and self.mode.currentData() != "linear":
            self.mode.setCurrentIndex(0)
        elif obj != "linear" and self.mode.currentData() == "linear":
            self.mode.setCurrentIndex(1)
        self._sync()

    def _sync(self) -> None:
        obj = self.objective.currentData()
        mode = self.mode.currentData()
        self.blocks.setEnabled(mode == "last")
        self.temperature.setEnabled(obj == "simclr")
        self.lambda_.setEnabled(obj == "sigreg")
        if not self._lr_edited:
            self._setting = True
            self.lr.setValue(default_lr(obj))
            self._setting = False
        if not self._out_edited:
            self.out.setText(str(default_out_path(self.base_source, obj, self.save_folder)))
        mode_row = self.mode.model().item(0)
        mode_row.setEnabled(self.has_labels)
        text = dict((k, t) for k, _, t in OBJECTIVES)[obj]
        self.note.setText(f"{text[0].upper()}{text[1:]}.")

    def _browse(self) -> None:
        """A save dialog that opens in the current save folder (made if it does not exist yet,
        since the weights go there anyway), with the current file name filled in."""
        cur = Path(self.out.text().strip() or str(default_out_path(self.base_source, self.objective.currentData(),
                                                                    self.save_folder))).expanduser()
        folder = cur.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            while not folder.is_dir() and folder.parent != folder:
                folder = folder.parent
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save the fine-tuned weights as", str(folder / cur.name),
                                                        "PyTorch weights (*.pt *.pth)")
        if path:
            self.out.setText(path)
            self._out_edited = True

    def _accept(self) -> None:
        try:
            _, out = self.values()
        except InputError as exc:
            QtWidgets.QMessageBox.warning(self, "Fine-tune", str(exc))
            return
        self.remember_folder(Path(out).parent)
        self.accept()

    def remember_folder(self, folder: Path) -> None:
        """Keep ``folder`` as the next run's default when the user chose it (it differs from the
        workspace / documents default); choosing the default again forgets it."""
        from explorer.gui.settings import settings

        s = settings()
        if not usable_save_folder(folder) or Path(folder).absolute() == default_save_folder(self.workspace).absolute():
            s.remove(SAVE_FOLDER_KEY)
        else:
            s.setValue(SAVE_FOLDER_KEY, str(folder))

    # -- result
    def set_values(self, **kw) -> None:
        """Set fields by name (objective, mode, epochs, lr, batch_size, temperature, lambda_,
        device, amp, probe_every, last_n_blocks, out) - for scripts and tests."""
        if "mode" in kw:
            self.mode.setCurrentIndex(self.mode.findData(kw.pop("mode")))
        if "objective" in kw:
            self.objective.setCurrentIndex(self.objective.findData(kw.pop("objective")))
        for key, w in (("epochs", self.epochs), ("batch_size", self.batch), ("probe_every", self.probe_every),
                       ("last_n_blocks", self.blocks), ("temperature", self.temperature), ("lambda_", self.lambda_)):
            if key in kw:
                w.setValue(kw.pop(key))
        if "lr" in kw:
            self.lr.setValue(kw.pop("lr"))
            self._lr_edited = True
        if "device" in kw:
            self.device.setCurrentText(kw.pop("device"))
        if "amp" in kw:
            self.amp.setChecked(bool(kw.pop("amp")))
        if "out" in kw:
            self.out.setText(str(kw.pop("out")))
            self._out_edited = True
        if kw:
            raise TypeError(f"unknown fields: {', '.join(kw)}")

    def values(self) -> tuple:
        """(FinetuneParams, output path); InputError with one sentence when a value cannot work."""
        from explorer.finetune import FinetuneParams

        obj = self.objective.currentData()
        if obj in SUPERVISED and not self.has_labels:
            raise InputError(f"The {obj} objective needs labels, and this dataset has none.")
        out = self.out.text().strip()
        if not out:
            raise InputError("Choose a file to save the fine-tuned weights to.")
        p = Path(out).expanduser()
        if p.suffix.lower() not in (".pt", ".pth"):
            raise InputError(f"{p}: save fine-tuned weights as a .pt or .pth file.")
        if self.base_source and p.resolve() == Path(self.base_source).expanduser().resolve():
            raise InputError(f"{p}: choose a new file; the base checkpoint is never overwritten.")
        mode = self.mode.currentData()
        params = FinetuneParams(objective=obj, epochs=self.epochs.value(), lr=float(self.lr.value()),
                                batch_size=self.batch.value(), temperature=float(self.temperature.value()),
                                lambda_=float(self.lambda_.value()),
                                last_n_blocks=self.blocks.value() if mode == "last" else None,
                                device=self.device.currentText(), amp=self.amp.isChecked(),
                                probe_every=self.probe_every.value())
        return params, str(p)


# ------------------------------------------------------------------ the live panel

class _Chart(pg.PlotWidget):
    """A small chart. Its preferred size is modest: the panel sits in a scroll area that sizes
    it by its preferred height (a word-wrapped label makes that height-for-width), and
    pyqtgraph's 600x480 pushed the lower row of charts out of sight."""

    def sizeHint(self) -> QtCore.QSize:
        return QtCore.QSize(220, 130)


class _MapBox(QtWidgets.QWidget):
    """The probe map's column; a modest preferred size for the same reason as :class:`_Chart`."""

    def sizeHint(self) -> QtCore.QSize:
        return QtCore.QSize(360, 340)


def _plot(title: str, ylabel: str = "", tip: str = "") -> pg.PlotWidget:
    w = _Chart()
    w.setTitle(title, size="9pt")
    if tip:
        w.setToolTip(tip)
    w.setLabel("bottom", "step")
    w.getAxis("bottom").enableAutoSIPrefix(False)  # steps are counts: never "step (x0.001)"
    if ylabel:
        w.setLabel("left", ylabel)
    w.showGrid(x=True, y=True, alpha=0.2)
    w.setMinimumSize(FinetunePanel.CHART_MIN_W, 130)
    w.getPlotItem().setMenuEnabled(False)
    w.getPlotItem().layout.setContentsMargins(0, 0, 8, 0)  # room for the last tick label on the right
    return w


def _fit_steps(plot: pg.PlotWidget, steps: np.ndarray) -> None:
    """x range of a chart over steps: one step alone gets step-1..step+1 (pyqtgraph would
    centre a width-1 range on it, -0.5..0.5 around step 0); more follow the data again."""
    s = np.unique(np.asarray(steps, float)[np.isfinite(steps)])
    axis = plot.getAxis("bottom")
    if len(s) == 1:
        plot.setXRange(s[0] - 1, s[0] + 1, padding=0)
        axis.setTickSpacing(1, 1)  # whole steps, not -0.5 / 0.5
        plot.one_step = True
    elif len(s) > 1:
        if getattr(plot, "one_step", False):
            axis.setTickSpacing()  # automatic ticks again
            plot.one_step = False
        plot.enableAutoRange(x=True)


PART_COLOURS = ("#d95f02", "#7570b3", "#e7298a", "#66a61e")


class FinetunePanel(QtWidgets.QWidget):
    """Live view of a fine-tuning run: loss (and its parts), learning rate, probe metrics
    (RankMe, std of L2-normalised with the 1/sqrt(d) line, SIGReg, kNN / held-out accuracy) and a
    map of the probe set (PCA of the current embeddings, aligned to the previous frame).

    Feed it with ``on_progress(Progress)``; it redraws at most every ``REDRAW_MS``. The buttons
    emit ``pause_toggled(bool)``, ``stop_requested()``, ``save_requested(str)`` ("last"/"best")
    and ``discard_requested()``; the panel itself runs nothing."""

    pause_toggled = QtCore.Signal(bool)
    stop_requested = QtCore.Signal()
    save_requested = QtCore.Signal(str)
    discard_requested = QtCore.Signal()
    REDRAW_MS = 150

    def __init__(self, title: str = "", parent=None) -> None:
        super().__init__(parent)
        self.history: list[dict] = []       # per logged step: step, epoch, loss, lr, loss parts
        self.probes: list[dict] = []        # per probe: step + metrics
        self.dim: Optional[int] = None
        self.map_coords: Optional[np.ndarray] = None
        self.map_frames = 0
        self.state = "running"
        self._pending_Z: Optional[np.ndarray] = None
        self._codes: Optional[np.ndarray] = None
        self._names: Optional[list] = None
        self._dirty = False
        self._build(title)
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(self.REDRAW_MS)
        self._timer.timeout.connect(self._redraw)
        self._timer.start()

    def _build(self, title: str) -> None:
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        top = QtWidgets.QHBoxLayout()
        self.title = QtWidgets.QLabel(f"<b>{title}</b>")
        top.addWidget(self.title)
        self.bar = QtWidgets.QProgressBar()
        self.bar.setMaximumWidth(220)
        self.bar.setRange(0, 0)
        top.addWidget(self.bar)
        self.pause_btn = QtWidgets.QPushButton("Pause")
        self.pause_btn.setCheckable(True)
        self.pause_btn.setToolTip("Hold the training between two steps; press again to resume")
        self.pause_btn.toggled.connect(self._pause_clicked)
        self.stop_btn = QtWidgets.QPushButton("Stop")
        self.stop_btn.setToolTip("Stop the training; the weights so far are kept and can be saved")
        self.stop_btn.clicked.connect(self.stop_requested.emit)
        top.addWidget(self.pause_btn)
        top.addWidget(self.stop_btn)
        top.addStretch(1)  # the buttons stay next to the title, in sight when the tab scrolls
        lay.addLayout(top)
        self.status = QtWidgets.QLabel("starting…")
        self.status.setWordWrap(True)
        self.status.setSizePolicy(QtWidgets.QSizePolicy.Ignored, QtWidgets.QSizePolicy.Preferred)
        lay.addWidget(self.status)
        # saving what a stopped / failed run left
        self.save_row = QtWidgets.QWidget()
        sr = QtWidgets.QHBoxLayout(self.save_row)
        sr.setContentsMargins(0, 0, 0, 0)
        self.save_label = QtWidgets.QLabel()
        sr.addWidget(self.save_label)
        self.which = QtWidgets.QComboBox()
        self.which.setToolTip("The weights after the last step, or those of the best probe so far")
        sr.addWidget(self.which)
        self.save_btn = QtWidgets.QPushButton("Save what we have")
        self.save_btn.setToolTip("Save these weights as a new checkpoint, open it as a model and compare")
        self.save_btn.clicked.connect(lambda: self.save_requested.emit(self.which.currentData() or "last"))
        self.discard_btn = QtWidgets.QPushButton("Discard")
        self.discard_btn.setToolTip("Forget this run's weights")
        self.discard_btn.clicked.connect(self.discard_requested.emit)
        sr.addWidget(self.save_btn)
        sr.addWidget(self.discard_btn)
        sr.addStretch(1)
        self.save_row.hide()
        lay.addWidget(self.save_row)

        split = QtWidgets.QSplitter(QtCore.Qt.Horizontal)
        grid_w = QtWidgets.QWidget()
        grid = QtWidgets.QGridLayout(grid_w)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(4)
        self.loss_plot = _plot("Loss", tip="Training loss per step, and its parts")
        self.loss_plot.addLegend(offset=(-4, 4), labelTextSize="8pt")
        self.loss_curve = self.loss_plot.plot([], [], pen=pg.mkPen("#1b9e77", width=2), name="loss",
                                             symbolSize=5, symbolBrush="#1b9e77", symbolPen=None, symbol=None)
        self.part_curves: dict[str, Any] = {}
        self.lr_plot = _plot("LR", tip="Learning rate per step (linear warm-up, then cosine decay)")
        self.lr_curve = self.lr_plot.plot([], [], pen=pg.mkPen("#666666", width=2),
                                         symbolSize=5, symbolBrush="#666666", symbolPen=None, symbol=None)
        self.rankme_plot = _plot("RankMe", tip="RankMe: the effective rank of the probe embeddings "
                                  "(Garrido et al. 2023); low means dimensional collapse")
        self.std_plot = _plot("Std, L2-normalised", tip="Std per dimension of the L2-normalised probe "
                              "embeddings (SimSiam): about 1/√d (dashed) for an isotropic spread, 0 when "
                              "collapsed")
        self.std_line = pg.InfiniteLine(angle=0, pen=pg.mkPen("#999999", style=QtCore.Qt.DashLine),
                                        label="1/√d", labelOpts={"position": 0.1, "color": "#777777"})
        self.std_line.hide()
        self.std_plot.addItem(self.std_line)
        self.sigreg_plot = _plot("SIGReg", tip="LeJEPA's SIGReg statistic of the probe embeddings: "
                                 "0 for an isotropic Gaussian, larger the further from one")
        self.acc_plot = _plot("Accuracy", tip="kNN accuracy (k=20) on the probe set, and the held-out "
                              "accuracy of the head when there is one")
        self.acc_plot.addLegend(offset=(-4, -4), labelTextSize="8pt")
        self.acc_plot.setYRange(0, 1)
        sym = dict(symbol="o", symbolSize=5)
        self.rankme_curve = self.rankme_plot.plot([], [], pen=pg.mkPen("#1f78b4", width=2), symbolBrush="#1f78b4", **sym)
        self.std_curve = self.std_plot.plot([], [], pen=pg.mkPen("#33a02c", width=2), symbolBrush="#33a02c", **sym)
        self.sigreg_curve = self.sigreg_plot.plot([], [], pen=pg.mkPen("#e31a1c", width=2), symbolBrush="#e31a1c", **sym)
        self.knn_curve = self.acc_plot.plot([], [], pen=pg.mkPen("#6a3d9a", width=2), symbolBrush="#6a3d9a", **sym)
        self.probe_acc_curve = self.acc_plot.plot([], [], pen=pg.mkPen("#ff7f00", width=2), symbolBrush="#ff7f00", **sym)
        self._acc_names = {id(self.knn_curve): "kNN (k=20)", id(self.probe_acc_curve): "held-out (head)"}
        self._in_legend: set = set()
        self._lr_scale = None
        self.charts = (self.loss_plot, self.lr_plot, self.rankme_plot, self.std_plot, self.sigreg_plot,
                       self.acc_plot)
        self._grid, self._cols = grid, 0
        self._flow_charts(3)
        grid_w.installEventFilter(self)  # 3 columns of charts, 2 where they would be too narrow
        self._grid_w = grid_w
        split.addWidget(grid_w)
        mapbox = _MapBox()
        ml = QtWidgets.QVBoxLayout(mapbox)
        ml.setContentsMargins(0, 0, 0, 0)
        ml.setSpacing(2)
        self.map_title = QtWidgets.QLabel("Probe set (PCA of the current embedding)")
        self.map_title.setToolTip("The fixed probe items placed by the current model (PCA), rotated onto the "
                                  "previous frame (Procrustes) so the picture does not jump")
        ml.addWidget(self.map_title)
        from explorer.gui.views.mapview import MapView

        self.map = MapView()
        self.map.toolbar.setVisible(False)
        self.map.setMinimumSize(260, 220)
        ml.addWidget(self.map, 1)
        split.addWidget(mapbox)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([900, 520])
        lay.addWidget(split, 1)

    CHART_MIN_W = 150
    THREE_COLUMNS_FROM = 3 * 180  # width of the charts' area from which they go three abreast

    def _flow_charts(self, cols: int) -> None:
        if cols == self._cols:
            return
        self._cols = cols
        for w in self.charts:
            self._grid.removeWidget(w)
        for i, w in enumerate(self.charts):
            self._grid.addWidget(w, i // cols, i % cols)
        for r in range(3):
            self._grid.setRowStretch(r, 1 if r < math.ceil(len(self.charts) / cols) else 0)

    def eventFilter(self, obj, ev) -> bool:
        if obj is getattr(self, "_grid_w", None) and ev.type() == QtCore.QEvent.Resize:
            self._flow_charts(3 if ev.size().width() >= self.THREE_COLUMNS_FROM else 2)
        return False

    # -- input
    def set_probe_labels(self, codes: Optional[np.ndarray], names: Optional[list] = None) -> None:
        """Class codes (P,) int (-1 missing) of the probe items, to colour the map."""
        self._codes = None if codes is None else np.asarray(codes, np.int64)
        self._names = names
        if self.map_coords is not None:
            self._colour_map()

    def on_progress(self, p: Progress) -> None:
        part = p.partial if isinstance(p.partial, dict) else None
        if p.total:
            self.bar.setRange(0, int(p.total))
            self.bar.setValue(int(p.done))
        if p.message == "paused":
            self.status.setText(f"Paused at step {int(p.done)}")
            return
        if part is None:
            return
        step = part.get("step")
        if part.get("loss") is not None:
            self.history.append({k: v for k, v in part.items() if isinstance(v, (int, float)) and k not in
                                 ("rankme", "std_l2_normalized", "sigreg", "knn_accuracy", "probe_accuracy")})
        if "rankme" in part:
            self.probes.append({k: part[k] for k in ("step", "rankme", "std_l2_normalized", "sigreg",
                                                     "knn_accuracy", "probe_accuracy") if k in part})
        Z = part.get("probe_embeddings")
        if Z is not None:
            self._pending_Z = np.asarray(Z)
            self.dim = int(self._pending_Z.shape[1])
        loss = part.get("loss")
        self.status.setText(f"epoch {part.get('epoch', 0)}, step {step}"
                            + (f", loss {loss:.4g}" if isinstance(loss, float) else "")
                            + (f", RankMe {part['rankme']:.1f}" if "rankme" in part else ""))
        self._dirty = True

    def set_state(self, state: str, message: str = "", best_step: Optional[int] = None,
                  steps: int = 0, can_save: bool = False) -> None:
        """running / paused / finished / stopped / failed / saved / discarded: buttons follow."""
        self.state = state
        running = state in ("running", "paused")
        self.pause_btn.setEnabled(running)
        self.stop_btn.setEnabled(running)
        if not running:
            self.bar.setRange(0, max(1, self.bar.maximum()))
            self._redraw()
        if message:
            self.status.setText(message)
        if state in ("stopped", "failed") and can_save:
            self.which.clear()
            self.which.addItem(f"last weights (step {steps})", "last")
            if best_step is not None and best_step != steps:
                self.which.addItem(f"best probe (step {best_step})", "best")
            self.which.setVisible(self.which.count() > 1)
            self.save_label.setText("Its weights are kept:")
            self.save_row.show()
        else:
            self.save_row.hide()

    def _pause_clicked(self, on: bool) -> None:
        self.pause_btn.setText("Resume" if on else "Pause")
        self.state = "paused" if on else "running"
        if on:
            self.status.setText("Pausing after this step…")
        self.pause_toggled.emit(on)

    # -- drawing (batched by the timer)
    def _redraw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        h = self.history
        if h:
            steps = np.array([r["step"] for r in h], float)
            self.loss_curve.setData(steps, np.array([r["loss"] for r in h], float))
            _fit_steps(self.loss_plot, steps)
            _fit_steps(self.lr_plot, steps)
            one = "o" if len(steps) == 1 else None  # a line through one point draws nothing
            lr = np.array([r["lr"] for r in h], float)
            top_lr = float(np.nanmax(lr))
            scale = 10.0 ** math.floor(math.log10(top_lr)) if top_lr > 0 else 1.0
            if scale != self._lr_scale:  # axis in units of 10^k rather than 0.000100
                self._lr_scale = scale
                self.lr_plot.setTitle(f"LR (× {scale:.0e})", size="9pt")
            self.lr_curve.setData(steps, lr / (self._lr_scale or 1.0))
            for c in (self.loss_curve, self.lr_curve):
                if c.opts["symbol"] != one:
                    c.setSymbol(one)
            parts = [k for k in h[-1] if k not in ("step", "epoch", "loss", "lr")]
            for i, k in enumerate(parts):
                c = self.part_curves.get(k)
                if c is None:
                    col = PART_COLOURS[i % len(PART_COLOURS)]
                    c = self.part_curves[k] = self.loss_plot.plot(
                        [], [], pen=pg.mkPen(col, width=1), name=k, symbolSize=5, symbolBrush=col,
                        symbolPen=None, symbol=None)
                c.setData(steps, np.array([r.get(k, np.nan) for r in h], float), connect="finite")
                if c.opts["symbol"] != one:
                    c.setSymbol(one)
        pr = self.probes
        if pr:
            s = np.array([r["step"] for r in pr], float)
            for plot in (self.rankme_plot, self.std_plot, self.sigreg_plot, self.acc_plot):
                _fit_steps(plot, s)
            for curve, key in ((self.rankme_curve, "rankme"), (self.std_curve, "std_l2_normalized"),
                               (self.sigreg_curve, "sigreg"), (self.knn_curve, "knn_accuracy"),
                               (self.probe_acc_curve, "probe_accuracy")):
                ys = np.array([r.get(key, np.nan) for r in pr], float)
                if np.isfinite(ys).any():
                    curve.setData(s, ys, connect="finite")
                    name = self._acc_names.get(id(curve))
                    if name and id(curve) not in self._in_legend:
                        self._in_legend.add(id(curve))
                        self.acc_plot.getPlotItem().legend.addItem(curve, name)
        if self.dim:
            self.std_line.setValue(1.0 / math.sqrt(self.dim))
            self.std_line.show()
        if self._pending_Z is not None:
            Z, self._pending_Z = self._pending_Z, None
            self._update_map(Z)

    def _update_map(self, Z: np.ndarray) -> None:
        from explorer.maps import pca, procrustes_align

        Z = np.asarray(Z, np.float32)
        if Z.ndim != 2 or len(Z) < 3 or not np.isfinite(Z).all():
            return
        if Z.shape[1] == 1:
            c = np.concatenate([Z, np.zeros_like(Z)], 1)
        else:
            c = pca(Z, 2, device="cpu").coords.astype(np.float64)
        c = c - c.mean(0)
        r = float(np.sqrt((c ** 2).sum(1).mean()))
        c = c / r if r > 0 else c  # unit RMS radius: the view keeps its range while the space changes
        prev = self.map_coords
        if prev is not None and prev.shape == c.shape:
            c, _ = procrustes_align(c, prev, scale=False)
        c = np.asarray(c, np.float32)
        first = prev is None or prev.shape != c.shape
        self.map_coords = c
        self.map_frames += 1
        self.map.set_layout(c, reset_view=True)  # the view follows the points every frame
        if first:
            self._colour_map()
        self.map_title.setText(f"Probe set: {len(c)} items, frame {self.map_frames}"
                               + (f", step {self.probes[-1]['step']}" if self.probes else ""))

    def _colour_map(self) -> None:
        codes = self._codes
        if codes is None or self.map_coords is None or len(codes) != len(self.map_coords):
            return
        if (codes < 0).all():
            return
        k = int(codes.max()) + 1
        names = list(self._names) if self._names and len(self._names) >= k else [str(i) for i in range(k)]
        self.map.set_categorical(codes, [str(n) for n in names])


# ------------------------------------------------------------------ the run (window glue)

class FinetuneRun(QtCore.QObject):
    """One fine-tuning run started from the main window: job, panel, saving, the new model and
    the before/after comparison. Made by :func:`start_finetune`.

    What it uses of the window is this interface (the main window's, nothing else): ``session``,
    ``runner``, ``embed(model_id)``, ``show_error(message, details)``, ``guarded(fn)``,
    ``add_tab(widget, title)`` and ``compare_models(ids, method, title)``."""

    saved = QtCore.Signal(str)        # path of the new checkpoint
    model_added = QtCore.Signal(str)  # id of the new model in the session
    compare_opened = QtCore.Signal(object)

    def __init__(self, window, model_id: str, params, out_path, panel: FinetunePanel) -> None:
        super().__init__(window)
        from explorer.finetune import FinetuneResult

        self.window = window
        self.session = window.session
        self.base_id = model_id
        self.base = self.session.model(model_id)
        self.params = params
        self.out = Path(out_path).expanduser()
        self.panel = panel
        self.result = FinetuneResult()
        self.gate = PauseGate()
        self.handle = None
        self.new_id: Optional[str] = None
        self.saved_path: Optional[Path] = None
        self.compare_view = None
        self._labels_sent = False
        panel.pause_toggled.connect(self.set_paused)
        panel.stop_requested.connect(self.stop)
        panel.save_requested.connect(self.save)
        panel.discard_requested.connect(self.discard)

    # -- control
    def start(self) -> None:
        ds = self.session.dataset
        enc = self.base.encoder
        params, res, gate = self.params, self.result, self.gate

        def factory():
            from explorer.finetune import finetune

            return pausable(finetune(enc, ds, params, result=res), gate)

        h = self.handle = self.window.runner.submit(f"Fine-tune {self.base_id} ({params.objective})", factory,
                                                    self._finished, self._failed, exclusive=None,
                                                    stop_note="weights kept")
        h.progress.connect(self._progress)
        h.cancelled.connect(self._cancelled)

    def set_paused(self, on: bool) -> None:
        (self.gate.pause if on else self.gate.resume)()
        if self.handle is not None and self.handle.state in ("queued", "running"):
            self.panel.set_state("paused" if on else "running")

    def stop(self) -> None:
        self.gate.resume()
        if self.handle is not None:
            self.handle.cancel()
        self.panel.status.setText("Stopping after this step…")

    @property
    def running(self) -> bool:
        return self.handle is not None and self.handle.state in ("queued", "running")

    # -- job signals
    def _progress(self, p: Progress) -> None:
        if not self._labels_sent and self.result.probe_indices is not None:
            self._labels_sent = True
            ds = self.session.dataset
            if ds is not None and ds.labels is not None:
                idx = np.asarray(self.result.probe_indices)
                self.panel.set_probe_labels(np.asarray(ds.labels)[idx], list(ds.label_names or []))
        self.panel.on_progress(p)

    def _finished(self, res) -> None:
        m = res.metrics if res is not None else {}
        bits = [f"{k} {m[k]:.3g}" for k in ("probe_accuracy", "rankme", "knn_accuracy") if isinstance(m.get(k), float)]
        ci = m.get("probe_accuracy_ci")
        if bits and ci and ci[0] is not None and isinstance(m.get("probe_accuracy"), float):
            bits[0] += (f" (95% CI {ci[0]:.3f}–{ci[1]:.3f}, {m.get('probe_train')} train / "
                        f"{m.get('probe_test')} test)")
        verdict = m.get("verdict")
        self.panel.set_state("finished", f"Finished {self.result.steps} steps"
                             + (": " + ", ".join(bits) if bits else "") + (f"; verdict: {verdict}" if verdict else ""))
        self.save("last")

    def _failed(self, msg: str, details: str) -> None:
        can = self.result.module is not None and self.result.steps > 0
        self.panel.set_state("failed", "Failed: " + msg, self.result.best_step, self.result.steps, can)
        self.window.show_error(f"Fine-tuning {self.base_id} failed: {msg.rstrip('.')}"
                               + (" (the weights so far can still be saved from its panel)." if can else "."),
                               details)

    def _cancelled(self) -> None:
        can = self.result.module is not None and self.result.steps > 0
        self.panel.set_state("stopped", f"Stopped after {self.result.steps} steps"
                             + ("" if can else " (nothing trained yet)"),
                             self.result.best_step, self.result.steps, can)

    # -- keeping the result
    def sidecar(self) -> dict:
        enc = self.base.encoder
        ds = self.session.dataset
        extra = {"layer": enc.layer, "pooling": enc.pooling, "preprocess": enc.preprocess.to_dict(),
                 "dataset": str(getattr(ds, "source", "")), "seed": self.params.seed, "base_model": self.base_id}
        for k in ("arch", "arch_kwargs", "factory"):
            if enc.info.get(k) is not None:
                extra[k] = enc.info[k]
        return self.result.sidecar(base=self.base.source, extra=extra)

    def save(self, which: str = "last") -> None:
        """Save the weights (``which``: "last" or "best"), then open them as a new model."""
        if self.result.module is None:
            self.window.show_error("The fine-tuning run left no weights to save.")
            return
        self.panel.save_row.hide()
        res, out, side = self.result, self.out, self.sidecar()
        self.window.runner.submit(f"Save {out.name}", lambda: save_job(res, which, out, side),
                                  self._saved, self._save_failed)

    def _save_failed(self, msg: str, details: str) -> None:
        self.panel.set_state("failed", "Saving failed: " + msg, self.result.best_step, self.result.steps, True)
        self.window.show_error(f"Could not save the fine-tuned weights to {self.out}: {msg.rstrip('.')}.", details)

    def _note_job(self, note: str) -> None:
        """What the jobs panel says a stopped run left ("weights saved", "weights discarded")."""
        if self.handle is not None and self.handle.state == "stopped":
            self.handle.stop_note = note

    def discard(self) -> None:
        self.result.module = None
        self.result.best_state = None
        self._note_job("weights discarded")
        self.panel.set_state("discarded", "Discarded; nothing was saved.")

    def _saved(self, r) -> None:
        module, path = r
        self.saved_path = Path(path)
        self._note_job("weights saved")
        self.saved.emit(str(path))
        self.window.guarded(lambda: self._open_new(module, Path(path)))

    def _open_new(self, module, path: Path) -> None:
        """Add the saved weights to the session as a new model and embed the dataset with it."""
        enc = self.base.encoder
        if self.params.objective == "linear" and self.result.head is not None:
            from explorer.encoders.base import Encoder

            new_enc = Encoder(name=f"{self.base_id} + linear probe", source=Path(path), format=enc.format,
                              module=probe_logits_module(dataclasses.replace(enc, module=module), self.result.head),
                              preprocess=enc.preprocess, layer=None, pooling="auto",
                              info={**enc.info, "finetuned_from": self.base.source, "output": "linear probe logits"})
            name = new_enc.name
        else:
            new_enc = dataclasses.replace(enc, module=module, name=Path(path).stem, source=Path(path),
                                          info={**enc.info, "finetuned_from": self.base.source})
            name = Path(path).stem
        opts = {k: v for k, v in self.base.options.items() if k in ("arch", "factory", "trust", "layer", "pooling")}
        m = self.session.add_model(new_enc, name=self.session.unique_name(name), source=str(path), options=opts)
        self.new_id = m.id
        self.model_added.emit(m.id)
        self.panel.set_state("saved", self.panel.status.text() + f" — saved {Path(path).name}, opened as "
                             f"“{m.id}”; the comparison opens once it is embedded.")
        self.session.model_updated.connect(self._maybe_compare)
        if self.base.vectors is None:
            self.window.embed(self.base_id)
        self.window.embed(m.id)

    def _maybe_compare(self, _mid=None) -> None:
        if self.new_id is None or self.compare_view is not None:
            return
        a, b = self.session.models.get(self.base_id), self.session.models.get(self.new_id)
        if a is None or b is None:
            return self.session.model_updated.disconnect(self._maybe_compare)
        if a.vectors is None or b.vectors is None or "pca" not in a.layouts or "pca" not in b.layouts:
            return
        self.session.model_updated.disconnect(self._maybe_compare)
        QtCore.QTimer.singleShot(0, self, self.open_compare)

    def open_compare(self) -> None:
        """The before/after comparison (side-by-side aligned maps, overlap, CKA, diagnostics)."""
        try:
            self.compare_view = open_before_after(self.window, self.base_id, self.new_id)
            self.panel.status.setText(self.panel.status.text().replace(
                "the comparison opens once it is embedded", "the before/after comparison is open"))
            self.compare_opened.emit(self.compare_view)
        except Exception as exc:  # the run is saved either way
            import traceback

            self.window.show_error(f"The before/after comparison could not open: {exc}", traceback.format_exc())


def open_before_after(window, base_id: str, new_id: str):
    """Open the base and the fine-tuned model side by side (the window's Compare tab); both need
    vectors and a PCA layout. The map method is UMAP when both have one, else PCA."""
    ms = [window.session.models[base_id], window.session.models[new_id]]
    method = "umap" if all("umap" in m.layouts for m in ms) else "pca"
    view = window.compare_models([base_id, new_id], method=method, title=f"Before/after: {base_id} vs {new_id}")
    if view is None:
        raise InputError("the two models cannot be compared")
    return view


def start_finetune(window, model_id: Optional[str], params, out_path) -> FinetunePanel:
    """Fine-tune the session's model ``model_id`` (None: the current one) on the open dataset in
    the window's runner; show the live panel; when it finishes, save ``out_path`` (+ sidecar), add
    it as a new model, embed it and open the before/after comparison. Returns the panel (its
    ``run`` is the :class:`FinetuneRun`). Raises InputError (one sentence) when it cannot start."""
    from explorer.finetune.objectives import OBJECTIVES as CORE_OBJECTIVES

    s = window.session
    ds = s.dataset
    if ds is None:
        raise InputError("Open a dataset first; fine-tuning trains on it.")
    m = s.model(model_id)
    if m.encoder is None:
        raise InputError(f"{m.id} is a file of precomputed vectors; fine-tuning needs an encoder checkpoint.")
    if ds.kind not in ("image", "vector", "text"):
        raise InputError(f"Fine-tuning works on image, vector and text datasets; {ds.name} holds {ds.kind}.")
    from explorer.encoders import match_input_kind

    match_input_kind(m.encoder, ds)  # one sentence when the encoder cannot take these items (as the CLI)
    if params.objective not in CORE_OBJECTIVES:
        raise InputError(f"Unknown objective {params.objective!r}.")
    if CORE_OBJECTIVES[params.objective].needs_labels and (ds.labels is None or not (np.asarray(ds.labels) >= 0).any()):
        raise InputError(f"The {params.objective} objective needs labels, and {ds.name} has none.")
    out = Path(out_path).expanduser()
    if out.suffix.lower() not in (".pt", ".pth"):
        raise InputError(f"{out}: save fine-tuned weights as a .pt or .pth file.")
    if m.source and out.resolve() == Path(m.source).expanduser().resolve():
        raise InputError(f"{out}: choose a new file; the base checkpoint is never overwritten.")
    title = f"Fine-tune: {m.id} ({params.objective})"
    panel = FinetunePanel(f"{m.id} → {out.name}  ({params.objective}, {params.epochs} epochs)")
    panel.run = FinetuneRun(window, m.id, params, out, panel)
    window.add_tab(panel, title)
    panel.run.start()
    return panel


def open_finetune_dialog(window) -> Optional[FinetunePanel]:
    """The menu action: ask for the settings for the current model, then :func:`start_finetune`."""
    s = window.session
    if s.dataset is None or s.current is None or s.model().encoder is None:
        window.show_error("Open a dataset and an encoder first; fine-tuning adapts the current encoder.")
        return None
    dlg = FinetuneDialog(window, s.dataset, s.model())
    if dlg.exec() != QtWidgets.QDialog.Accepted:
        return None
    params, out = dlg.values()
    return window.guarded(lambda: start_finetune(window, s.current, params, out))
