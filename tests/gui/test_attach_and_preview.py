"""The open-dataset preview shows the dataset as it will open (metadata attached), and labels
from a ``.npy`` attach through the window (issue 18 item 9)."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("PySide6")

N = 90


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(1)
    np.save(tmp_path / "v.npy", rng.normal(size=(N, 8)).astype(np.float32))
    (tmp_path / "meta.csv").write_text("class,group\n" + "\n".join(f"c{i % 4},g{i % 3}" for i in range(N)) + "\n")
    return tmp_path


def test_dataset_preview_shows_the_attached_metadata(pca_window, qtbot, files):
    from explorer.gui.dialogs import DatasetDialog

    d = DatasetDialog(pca_window, str(files / "v.npy"))
    qtbot.addWidget(d)
    d.do_preview()
    qtbot.waitUntil(lambda: "items" in d.preview.text(), timeout=20000)
    assert "0 classes" in d.preview.text() and "columns: none" in d.preview.text()  # nothing attached yet
    d.metadata.setText(str(files / "meta.csv"))
    d.do_preview()
    qtbot.waitUntil(lambda: "4 classes" in d.preview.text(), timeout=20000)
    assert f"{N} vector items" in d.preview.text() and "columns: class, group" in d.preview.text()
    if os.environ.get("EE_SHOT_DIR"):
        d.show()
        qtbot.waitExposed(d)
        d.grab().save(os.path.join(os.environ["EE_SHOT_DIR"], "dataset_preview.png"))
    np.save(files / "labels.npy", np.arange(N) % 6)
    d.metadata.setText(str(files / "labels.npy"))
    d.do_preview()
    qtbot.waitUntil(lambda: "6 classes" in d.preview.text(), timeout=20000)
    np.save(files / "short.npy", np.arange(N - 1))
    d.metadata.setText(str(files / "short.npy"))
    d.do_preview()
    qtbot.waitUntil(lambda: "short.npy" in d.preview.text(), timeout=20000)
    assert f"{N - 1}" in d.preview.text() and f"{N}" in d.preview.text()


def test_npy_labels_attach_through_the_window(pca_window, files):
    w = pca_window
    w.open_dataset(str(files / "v.npy"))
    assert w.wait_until_idle(60)
    labels = np.array(["cat", "dog", "eel"] * (N // 3))
    np.save(files / "labels.npy", labels)
    w.attach_metadata(str(files / "labels.npy"))
    assert w.message.level == "info" and "3 classes" in w.message.text()
    assert [w.session.dataset.label_of(i) for i in range(N)] == labels.tolist()
    choices = [w.color_combo.itemText(i) for i in range(w.color_combo.count())]
    assert "label" in choices
    np.save(files / "long.npy", np.zeros(N + 7, np.int64))
    w.attach_metadata(str(files / "long.npy"))
    assert w.message.level == "error" and "long.npy" in w.message.text()
    assert f"{N + 7}" in w.message.text() and "Traceback" not in w.message.text()
    assert [w.session.dataset.label_of(i) for i in range(N)] == labels.tolist()  # unchanged
