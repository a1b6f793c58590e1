"""Dialogs: settings are remembered; dataset and encoder previews load in a worker and show
what the file holds."""

import pytest

pytest.importorskip("PySide6")

from explorer.core.resources import sample_data_dir  # noqa: E402

SAMPLE = sample_data_dir()
HEALTHY = SAMPLE / "checkpoints" / "healthy.pt"


@pytest.fixture
def window(qtbot, tmp_path):
    from explorer.gui.app import make_app
    from explorer.gui.mainwindow import MainWindow

    make_app()
    w = MainWindow(workspace=str(tmp_path / "ws.h5"))
    qtbot.addWidget(w)
    yield w
    w.runner.cancel_all()
    w.runner.wait(10000)


def test_settings_are_remembered(window):
    from explorer.gui.dialogs import SettingsDialog

    d = SettingsDialog(window)
    d.batch.setValue(64)
    d.precision.setCurrentText("bf16")
    d.workers.setValue(0)
    d.save()
    p = window.embed_params()
    assert (p.batch_size, p.precision, p.num_workers) == (64, "bf16", 0)
    again = SettingsDialog(window)
    assert again.batch.value() == 64 and again.precision.currentText() == "bf16"
    again.batch.setValue(256)
    again.precision.setCurrentText("fp32")
    again.workers.setValue(-1)
    again.save()
    assert window.embed_params().num_workers is None


@pytest.mark.skipif(not HEALTHY.exists(), reason="sample checkpoints not generated")
def test_encoder_preview_lists_layers(window, qtbot):
    from explorer.gui.dialogs import EncoderDialog

    d = EncoderDialog(window, str(HEALTHY))
    d.do_preview()
    qtbot.waitUntil(lambda: "parameters" in d.preview.text(), timeout=20000)
    layers = [d.layer.itemText(i) for i in range(d.layer.count())]
    assert "embed" in layers and "projector" in " ".join(layers)
    d.layer.setCurrentText("embed")
    path, opts = d.result_values()
    assert path == str(HEALTHY) and opts["layer"] == "embed" and "trust" not in opts


def test_dataset_preview(window, qtbot):
    from explorer.gui.dialogs import DatasetDialog

    d = DatasetDialog(window, str(SAMPLE / "digits"))
    d.do_preview()
    qtbot.waitUntil(lambda: "items" in d.preview.text(), timeout=20000)
    assert "1,797 image items" in d.preview.text() and "10 classes" in d.preview.text()
    assert d.thumbs.count() == 8


def test_projection_panel_round_trips_settings_into_map_params(qtbot):
    from explorer.gui.panels import ProjectionPanel, ProjectionSettings
    from explorer.app.session import map_params

    panel = ProjectionPanel()
    qtbot.addWidget(panel)
    want = ProjectionSettings("umap", 30, 0.25, "euclidean", 5, 3, "umap-learn")
    panel.set_settings(want)
    got = []
    panel.apply_requested.connect(got.append)
    panel.apply.click()
    assert got == [want]
    p = map_params("umap", got[0])
    assert (p.n_neighbors, p.min_dist, p.metric, p.seed, p.n_components, p.optimizer) == (
        30, 0.25, "euclidean", 5, 3, "umap-learn")
    assert panel.optimizer.toolTip()  # says what the two optimisers are


def test_no_attribute_shadows_a_qt_virtual(window, qtbot, capfd):
    """An attribute named like a C++ virtual of QWidget (``self.metric = QComboBox()`` once)
    turns every call Qt makes to it into 'Error calling Python override' and breaks painting."""
    from PySide6 import QtWidgets

    window.show()
    for i in range(window.tabs.count()):  # the inspector, map settings, ... panels
        window.tabs.setCurrentIndex(i)
        window.grab()
    for w in window.findChildren(QtWidgets.QWidget):
        w.grab()
    assert "Error calling Python override" not in capfd.readouterr().err


def test_encoder_dialog_sets_preprocessing_and_picks_a_network(window, qtbot, tmp_path):
    """A DINO-style checkpoint (teacher/student): Preview lists both networks and says the
    preprocessing; the fields typed become open_encoder options that change exactly them."""
    import json

    import torch

    from explorer.encoders import open_encoder
    from explorer.encoders.archs import mlp
    from explorer.gui.dialogs import SUBMODEL_AUTO, EncoderDialog

    kw = {"in_dim": 6, "hidden": 8, "out_dim": 3, "layers": 1}
    torch.manual_seed(0)
    t, s = mlp(**kw).state_dict(), mlp(**kw).state_dict()
    path = tmp_path / "dino.pth"
    torch.save({"teacher": t, "student": s}, path)
    (tmp_path / "dino.pth.json").write_text(json.dumps({"arch": "mlp", "arch_kwargs": kw}))
    d = EncoderDialog(None, str(path))  # no runner: the preview runs in place
    qtbot.addWidget(d)
    d.do_preview()
    assert "parameters" in d.preview.text(), d.preview.text()
    assert [d.submodel.itemText(i) for i in range(d.submodel.count())] == [SUBMODEL_AUTO, "teacher", "student"]
    assert "using teacher" in d.preview.text()
    d.submodel.setCurrentText("student")
    d.input_kind.setCurrentText("vector")
    d.mean.setText("0.1")
    path_s, opts = d.result_values()
    assert opts["submodel"] == "student" and opts["preprocess"] == {"kind": "vector", "mean": (0.1,)}
    enc = open_encoder(path_s, **opts)
    x = torch.randn(2, 6)
    ref = mlp(**kw).eval()
    ref.load_state_dict(s)
    assert torch.allclose(enc.module(x), ref(x)) and enc.preprocess.mean == (0.1,)
    # an unusable value is one sentence under Preview and the dialog stays open
    d.std.setText("0,1")
    d.show()
    d.accept()
    assert d.isVisible() and "The std needs one or three numbers above 0" in d.preview.text()


def test_checklist_dialog_returns_the_ticked_items_or_none(qtbot):
    from PySide6 import QtCore as _QtCore
    from PySide6 import QtWidgets as _QtWidgets

    from explorer.gui.dialogs import checklist_dialog

    parent = _QtWidgets.QWidget()
    qtbot.addWidget(parent)
    options = _QtWidgets.QFormLayout()
    options.addRow("K:", _QtWidgets.QSpinBox())

    seen = []

    def tick_and(accept: bool):
        dlg = _QtWidgets.QApplication.activeModalWidget()
        if dlg is None:  # not shown yet: try again on the next turn of the event loop
            return _QtCore.QTimer.singleShot(10, lambda: tick_and(accept))
        try:
            lst = dlg.findChild(_QtWidgets.QListWidget)
            seen.append(([lst.item(i).checkState() == _QtCore.Qt.Checked for i in range(3)],
                         dlg.findChild(_QtWidgets.QSpinBox) is not None))
            lst.item(0).setCheckState(_QtCore.Qt.Unchecked)
            lst.item(2).setCheckState(_QtCore.Qt.Checked)
        finally:
            dlg.accept() if accept else dlg.reject()

    _QtCore.QTimer.singleShot(0, lambda: tick_and(True))
    assert checklist_dialog(parent, "Pick", "Models:", ["a", "b", "c"], {"a", "b"}, above=options) == ["b", "c"]
    _QtCore.QTimer.singleShot(0, lambda: tick_and(False))
    assert checklist_dialog(parent, "Pick", "Models:", ["a", "b", "c"], {"a", "b"}) is None
    # the ticks start as given; the options sit above the list only when given
    assert seen == [([True, True, False], True), ([True, True, False], False)]
