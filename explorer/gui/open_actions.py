"""The main window's ways in: open a dataset, an encoder, a layer of it, metadata, a file to
search by; recent files; drag and drop."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6 import QtWidgets


class OpenActions:
    """Mixin of :class:`~explorer.gui.mainwindow.MainWindow`: the File menu's opening actions."""

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
            from explorer.core.jobs import Progress

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
