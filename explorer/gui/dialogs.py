"""Dialogs that ask what must be chosen (format options, architecture, layer) with sensible
defaults and a preview, and the settings dialog. Previews load in a worker."""

from __future__ import annotations

from typing import Optional, Sequence

from PySide6 import QtCore, QtWidgets

from explorer.gui.gallery import pixmap_from_array


def _browse_row(parent, placeholder: str, file_filter: str, allow_dir: bool = True):
    row = QtWidgets.QHBoxLayout()
    edit = QtWidgets.QLineEdit()
    edit.setPlaceholderText(placeholder)
    b = QtWidgets.QPushButton("File…")
    b.clicked.connect(lambda: _pick(parent, edit, file_filter, False))
    row.addWidget(edit, 1)
    row.addWidget(b)
    if allow_dir:
        d = QtWidgets.QPushButton("Folder…")
        d.clicked.connect(lambda: _pick(parent, edit, file_filter, True))
        row.addWidget(d)
    return row, edit


def _pick(parent, edit, file_filter, folder):
    if folder:
        p = QtWidgets.QFileDialog.getExistingDirectory(parent, "Choose a folder")
    else:
        p, _ = QtWidgets.QFileDialog.getOpenFileName(parent, "Choose a file", "", file_filter)
    if p:
        edit.setText(p)


class _PreviewMixin:
    def _run_preview(self, name, factory, done):
        runner = getattr(self.parent(), "runner", None)
        self.preview.setText("Loading preview…")
        if runner is None:
            try:
                done(factory())
            except Exception as exc:
                self.preview.setText(str(exc))
            return

        def job():
            from explorer.core.jobs import Progress

            yield Progress(0, None, name)
            return factory()

        h = runner.submit(name, job, done, lambda msg, _d: self.preview.setText(msg))
        return h


def _dataset_patterns() -> str:
    """File patterns of every registered dataset format that reads files (the registry's)."""
    try:
        from explorer.data import DATASETS

        exts = sorted({x for e in DATASETS.entries() if not e.directory for x in e.extensions})
    except ImportError:
        exts = [".npy", ".npz", ".h5", ".csv", ".tsv", ".txt", ".jsonl"]
    return " ".join(f"*{x}" for x in exts)


#: What File > Attach metadata and the open-dataset dialog offer (explorer.data.attach_metadata reads them).
METADATA_FILTER = "Metadata tables or labels (*.csv *.tsv *.jsonl *.parquet *.arrow *.feather *.npy);;All files (*)"


class DatasetDialog(QtWidgets.QDialog, _PreviewMixin):
    """Path, format (auto from the registry), format options and an optional metadata table."""

    def __init__(self, parent=None, path: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("Open dataset")
        self.setMinimumWidth(640)
        form = QtWidgets.QFormLayout(self)
        row, self.path = _browse_row(self, "Image folder, .npy/.npz/.h5, .csv/.tsv/.txt/.jsonl, .parquet/.arrow, "
                                     "a Hugging Face dataset folder, a .pt tensor",
                                     f"Datasets ({_dataset_patterns()});;All files (*)")
        self.path.setText(path)
        form.addRow("Path", row)
        self.fmt = QtWidgets.QComboBox()
        self.fmt.addItem("auto")
        try:
            from explorer.data import DATASETS

            for e in DATASETS.entries():
                self.fmt.addItem(e.name)
                self.fmt.setItemData(self.fmt.count() - 1, e.label, QtCore.Qt.ToolTipRole)
        except ImportError:
            pass
        form.addRow("Format", self.fmt)
        self.key = QtWidgets.QLineEdit()
        self.key.setPlaceholderText("HDF5/npz: array with the data (default: the only suitable one)")
        self.labels_key = QtWidgets.QLineEdit()
        self.labels_key.setPlaceholderText("HDF5/npz: array with the labels (optional)")
        self.column = QtWidgets.QLineEdit()
        self.column.setPlaceholderText("Tables: the item column: text, vectors or images (default: by type)")
        row2, self.metadata = _browse_row(self, "Optional CSV/TSV/JSONL/Parquet table or .npy of labels, "
                                          "joined by row order", METADATA_FILTER, False)
        form.addRow("Data key", self.key)
        form.addRow("Labels key", self.labels_key)
        form.addRow("Text column", self.column)
        form.addRow("Metadata", row2)
        self.preview = QtWidgets.QLabel("Choose a file or folder, then Preview.")
        self.preview.setWordWrap(True)
        self.thumbs = QtWidgets.QHBoxLayout()
        pv = QtWidgets.QPushButton("Preview")
        pv.clicked.connect(self.do_preview)
        form.addRow(pv, self.preview)
        form.addRow(self.thumbs)
        bb = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Open | QtWidgets.QDialogButtonBox.Cancel)
        bb.accepted.connect(self._accept)
        bb.rejected.connect(self.reject)
        form.addRow(bb)

    def options(self) -> dict:
        o = {}
        for k, w in (("key", self.key), ("labels_key", self.labels_key), ("column", self.column)):
            if w.text().strip():
                o[k] = w.text().strip()
        return o

    def result_values(self):
        fmt = None if self.fmt.currentText() == "auto" else self.fmt.currentText()
        return self.path.text().strip(), fmt, self.options(), self.metadata.text().strip() or None

    def _accept(self) -> None:
        if not self.path.text().strip():
            self.preview.setText("Choose a file or folder first.")
            return
        self.accept()

    def do_preview(self) -> None:
        """What opening will give: the dataset read with the metadata attached (the same
        :func:`~explorer.app.pipeline.read_dataset` that opening uses)."""
        from explorer.app.pipeline import read_dataset

        path, fmt, opts, metadata = self.result_values()

        def done(ds):
            while self.thumbs.count():
                w = self.thumbs.takeAt(0).widget()
                if w:
                    w.deleteLater()
            d = ds.describe()
            self.preview.setText(f"{d['n']:,} {d['kind']} items, {d['classes']} classes, "
                                 f"columns: {', '.join(d['columns']) or 'none'}; format {d['format']}")
            for i in range(min(8, len(ds))):
                lab = QtWidgets.QLabel()
                if ds.kind == "image":
                    try:
                        lab.setPixmap(pixmap_from_array(ds.thumbnail(i, 56), 56))
                    except Exception:
                        lab.setText("?")
                else:
                    lab.setText(ds.text(i)[:30])
                self.thumbs.addWidget(lab)

        self._run_preview("Preview dataset", lambda: read_dataset(path, fmt, metadata, **opts), done)


SUBMODEL_AUTO = "(by the documented rule)"


class EncoderDialog(QtWidgets.QDialog, _PreviewMixin):
    """Checkpoint, architecture (built-in or ``file.py:function``), layer, pooling, trust."""

    def __init__(self, parent=None, path: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("Open encoder")
        self.setMinimumWidth(640)
        form = QtWidgets.QFormLayout(self)
        row, self.path = _browse_row(self, "TorchScript, .pt/.pth state_dict, .safetensors, Lightning .ckpt, HF folder",
                                     "Checkpoints (*.pt *.pth *.ckpt *.safetensors *.onnx);;All files (*)")
        self.path.setText(path)
        form.addRow("Checkpoint", row)
        self.arch = QtWidgets.QComboBox()
        self.arch.setEditable(True)
        self.arch.addItem("(from checkpoint or sidecar)")
        try:
            from explorer.encoders.archs import ARCHITECTURES

            self.arch.addItems(ARCHITECTURES.names())
        except ImportError:
            pass
        self.arch.setToolTip("Architecture for a weights-only file: a built-in name, any torchvision "
                             "classification model (resnet50, vit_b_16, ...) or timm:NAME ([vision] extra)")
        form.addRow("Architecture", self.arch)
        frow, self.factory = _browse_row(self, "or your own factory: path/to/file.py:function", "Python (*.py)", False)
        form.addRow("Factory", frow)
        self.layer = QtWidgets.QComboBox()
        self.layer.setEditable(True)
        self.layer.addItem("(model output)")
        self.layer.setToolTip("Any named submodule can be the embedding layer; Preview lists them")
        form.addRow("Layer", self.layer)
        self.pooling = QtWidgets.QComboBox()
        self.pooling.addItems(["auto", "avg", "cls", "mean", "flatten", "none"])
        self.pooling.setToolTip("auto: average for feature maps, CLS or mean for tokens")
        form.addRow("Pooling", self.pooling)
        self.submodel = QtWidgets.QComboBox()
        self.submodel.setEditable(True)
        self.submodel.addItem(SUBMODEL_AUTO)
        self.submodel.setToolTip("For checkpoints holding several networks (MoCo encoder_q/encoder_k, DINO "
                                 "teacher/student, BYOL backbone/momentum_backbone, EMA copies); Preview lists them")
        form.addRow("Network", self.submodel)
        # preprocessing: empty fields keep what the model declares
        self.image_size = QtWidgets.QSpinBox()
        self.image_size.setRange(0, 4096)
        self.image_size.setSpecialValueText("(model's)")
        self.resize = QtWidgets.QSpinBox()
        self.resize.setRange(0, 8192)
        self.resize.setSpecialValueText("(model's)")
        self.resize.setToolTip("Shorter side before the centre crop")
        self.interpolation = QtWidgets.QComboBox()
        self.interpolation.addItems(["(model's)", "bilinear", "bicubic"])
        self.mean = QtWidgets.QLineEdit()
        self.mean.setPlaceholderText("(model's) e.g. 0.485,0.456,0.406")
        self.std = QtWidgets.QLineEdit()
        self.std.setPlaceholderText("(model's) e.g. 0.229,0.224,0.225")
        self.input_kind = QtWidgets.QComboBox()
        self.input_kind.addItems(["(model's, else follows the data)", "image", "vector", "text"])
        pre = QtWidgets.QHBoxLayout()
        for label, w in (("size", self.image_size), ("resize", self.resize), ("", self.interpolation)):
            if label:
                pre.addWidget(QtWidgets.QLabel(label))
            pre.addWidget(w)
        form.addRow("Image", pre)
        norm = QtWidgets.QHBoxLayout()
        norm.addWidget(QtWidgets.QLabel("mean"))
        norm.addWidget(self.mean)
        norm.addWidget(QtWidgets.QLabel("std"))
        norm.addWidget(self.std)
        form.addRow("Normalise", norm)
        form.addRow("Input", self.input_kind)
        self.trust = QtWidgets.QCheckBox("I trust this file (allow a pickled model, which can run code)")
        self.trust.toggled.connect(self._confirm_trust)
        form.addRow("", self.trust)
        self.preview = QtWidgets.QLabel("Preview loads the checkpoint and lists its layers and parameters.")
        self.preview.setWordWrap(True)
        pv = QtWidgets.QPushButton("Preview")
        pv.clicked.connect(self.do_preview)
        form.addRow(pv, self.preview)
        bb = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Open | QtWidgets.QDialogButtonBox.Cancel)
        bb.accepted.connect(self.accept)
        bb.rejected.connect(self.reject)
        form.addRow(bb)

    def accept(self) -> None:
        """Close only when the typed preprocessing is usable; else say why under Preview."""
        from explorer.core.errors import ExplorerError

        try:
            self.result_values()
        except ExplorerError as exc:
            self.preview.setText(str(exc))
            return
        super().accept()

    def _confirm_trust(self, on: bool) -> None:
        if not on:
            return
        r = QtWidgets.QMessageBox.warning(
            self, "Trust this file?", "A pickled model can execute arbitrary code when it is loaded. "
            "Only trust files you made yourself or got from a source you trust.",
            QtWidgets.QMessageBox.Yes | QtWidgets.QMessageBox.No, QtWidgets.QMessageBox.No)
        if r != QtWidgets.QMessageBox.Yes:
            self.trust.setChecked(False)

    def result_values(self):
        o: dict = {}
        a = self.arch.currentText().strip()
        if a and not a.startswith("("):
            o["arch"] = a
        if self.factory.text().strip():
            o["factory"] = self.factory.text().strip()
        layer = self.layer.currentText().strip()
        if layer and not layer.startswith("("):
            o["layer"] = layer
        if self.pooling.currentText() != "auto":
            o["pooling"] = self.pooling.currentText()
        if self.trust.isChecked():
            o["trust"] = True
        sub = self.submodel.currentText().strip()
        if sub and sub != SUBMODEL_AUTO and not sub.startswith("("):
            o["submodel"] = sub
        pre = self.preprocess_values()
        if pre:
            o["preprocess"] = pre
        return self.path.text().strip(), o

    def preprocess_values(self) -> dict:
        """The preprocessing fields the user set (empty: keep the model's). Bad mean/std text
        raises the same one-sentence InputError as the command line."""
        from explorer.encoders.report import channel_values

        d: dict = {}
        if self.image_size.value():
            d["size"] = self.image_size.value()
        if self.resize.value():
            d["resize"] = self.resize.value()
        if self.interpolation.currentIndex() > 0:
            d["interpolation"] = self.interpolation.currentText()
        for key, edit in (("mean", self.mean), ("std", self.std)):
            if edit.text().strip():
                d[key] = tuple(channel_values(edit.text(), f"The {key}", positive=key == "std"))
        if self.input_kind.currentIndex() > 0:
            d["kind"] = self.input_kind.currentText()
        return d

    def do_preview(self) -> None:
        from explorer.encoders import open_encoder
        from explorer.core.errors import ExplorerError

        try:
            path, o = self.result_values()
        except ExplorerError as exc:
            self.preview.setText(str(exc))
            return
        o.pop("layer", None)

        def done(enc):
            from explorer.encoders.report import encoder_notes

            n = sum(p.numel() for p in enc.module.parameters()) if hasattr(enc.module, "parameters") else 0
            cur = self.layer.currentText()
            self.layer.clear()
            self.layer.addItem("(model output)")
            self.layer.addItems(enc.layers())
            self.layer.setCurrentText(cur)
            subs = enc.info.get("submodels") or []
            cur_sub = self.submodel.currentText()
            self.submodel.clear()
            self.submodel.addItem(SUBMODEL_AUTO)
            self.submodel.addItems(subs)
            self.submodel.setCurrentText(cur_sub if cur_sub in subs else SUBMODEL_AUTO)
            info = enc.info.get("arch") or enc.format
            self.preview.setText("\n".join([f"{enc.name}: {info}, {n:,} parameters, {len(enc.layers())} layers; "
                                             f"input {enc.preprocess.kind} {enc.preprocess.size}px"]
                                            + encoder_notes(enc)))

        self._run_preview("Preview encoder", lambda: open_encoder(path, **o), done)


class SettingsDialog(QtWidgets.QDialog):
    """Device (with the GPU's name and free memory), batch size, precision, workers, cache, theme."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        from explorer.gui.settings import settings
        from explorer.core.resources import cache_dir

        self.setWindowTitle("Settings")
        s = settings()
        form = QtWidgets.QFormLayout(self)
        self.device = QtWidgets.QComboBox()
        self.device.addItem("auto")
        self.device.addItem("cpu")
        try:
            import torch

            for i in range(torch.cuda.device_count()):
                free, total = torch.cuda.mem_get_info(i)
                self.device.addItem(f"cuda:{i}")
                self.device.setItemData(self.device.count() - 1,
                                        f"{torch.cuda.get_device_name(i)}: {free / 2**30:.1f} of {total / 2**30:.1f} GiB free",
                                        QtCore.Qt.ToolTipRole)
            if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
                self.device.addItem("mps")
        except Exception:
            pass
        self.device.setCurrentText(str(s.value("device", "auto")))
        from explorer.core.device import device_info

        try:
            self.device_label = QtWidgets.QLabel(device_info().describe())
        except Exception as exc:
            self.device_label = QtWidgets.QLabel(str(exc))
        self.batch = QtWidgets.QSpinBox()
        self.batch.setRange(1, 65536)
        self.batch.setValue(int(s.value("batch_size", 256)))
        self.precision = QtWidgets.QComboBox()
        self.precision.addItems(["fp32", "bf16", "fp16"])
        self.precision.setCurrentText(str(s.value("precision", "fp32")))
        self.workers = QtWidgets.QSpinBox()
        self.workers.setRange(-1, 64)
        self.workers.setSpecialValueText("auto")
        self.workers.setValue(int(s.value("workers", -1)))
        self.cache = QtWidgets.QLineEdit(str(s.value("cache_dir", str(cache_dir()))))
        self.theme = QtWidgets.QComboBox()
        self.theme.addItems(["light", "dark"])
        self.theme.setCurrentText(str(s.value("theme", "light")))
        form.addRow("Device", self.device)
        form.addRow("", self.device_label)
        form.addRow("Batch size", self.batch)
        form.addRow("Precision", self.precision)
        form.addRow("Data workers", self.workers)
        form.addRow("Cache folder", self.cache)
        form.addRow("Theme", self.theme)
        bb = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Ok | QtWidgets.QDialogButtonBox.Cancel)
        bb.accepted.connect(self.accept)
        bb.rejected.connect(self.reject)
        form.addRow(bb)

    def save(self) -> None:
        from explorer.gui.settings import settings

        s = settings()
        s.setValue("device", self.device.currentText())
        s.setValue("batch_size", self.batch.value())
        s.setValue("precision", self.precision.currentText())
        s.setValue("workers", self.workers.value())
        s.setValue("cache_dir", self.cache.text().strip())
        s.setValue("theme", self.theme.currentText())


def checklist_dialog(parent, title: str, text: str, items: Sequence[str], checked, above=None) -> Optional[list]:
    """A dialog of checkable ``items`` (those in ``checked`` ticked), under the layout ``above``
    (options, optional) and ``text``; the checked ones, or None when cancelled."""
    dlg = QtWidgets.QDialog(parent)
    dlg.setWindowTitle(title)
    lay = QtWidgets.QVBoxLayout(dlg)
    if above is not None:
        lay.addLayout(above)
    label = QtWidgets.QLabel(text)
    label.setWordWrap(True)
    lay.addWidget(label)
    lst = QtWidgets.QListWidget()
    for name in items:
        it = QtWidgets.QListWidgetItem(name)
        it.setCheckState(QtCore.Qt.Checked if name in checked else QtCore.Qt.Unchecked)
        lst.addItem(it)
    lay.addWidget(lst)
    bb = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Ok | QtWidgets.QDialogButtonBox.Cancel)
    bb.accepted.connect(dlg.accept)
    bb.rejected.connect(dlg.reject)
    lay.addWidget(bb)
    if dlg.exec() != QtWidgets.QDialog.Accepted:
        return None
    return [lst.item(i).text() for i in range(lst.count()) if lst.item(i).checkState() == QtCore.Qt.Checked]
