"""The whole workflow through the real main window, offscreen: open the sample dataset and a
checkpoint, compute, wait for the map, click a point, see its neighbours, lasso a region,
export it, save the session, reopen it and find the same state; bad files dropped on the
window show a message and change nothing."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")
from PySide6 import QtCore, QtGui, QtWidgets  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402

from explorer.core.resources import sample_data_dir  # noqa: E402

SAMPLE = sample_data_dir()
HEALTHY = SAMPLE / "checkpoints" / "healthy.pt"
needs_sample = pytest.mark.skipif(not HEALTHY.exists(), reason="sample checkpoints not generated")


@pytest.fixture
def window(qtbot, tmp_path):
    from explorer.gui.app import make_app
    from explorer.gui.mainwindow import MainWindow

    make_app()
    w = MainWindow(workspace=str(tmp_path / "ws.h5"))
    qtbot.addWidget(w)
    w.method_combo.setCurrentText("pca")  # the UMAP path is covered by the engine's tests
    w.projection.method = "pca"
    w.show()
    yield w
    w.runner.cancel_all()
    w.runner.wait(10000)


def _cosine_topk(Z: np.ndarray, i: int, k: int) -> np.ndarray:
    Zn = Z.astype(np.float64) / np.linalg.norm(Z.astype(np.float64), axis=1, keepdims=True)
    s = Zn @ Zn[i]
    s[i] = -np.inf
    return np.argsort(-s, kind="stable")[:k]


def _inside(xs, ys, px, py) -> np.ndarray:
    """Even-odd point-in-polygon, written here independently of the view."""
    inside = np.zeros(len(xs), bool)
    n = len(px)
    for a in range(n):
        b = (a + 1) % n
        x1, y1, x2, y2 = px[a], py[a], px[b], py[b]
        cross = ((y1 > ys) != (y2 > ys))
        with np.errstate(divide="ignore", invalid="ignore"):
            xint = x1 + (ys - y1) * (x2 - x1) / (y2 - y1)
        inside ^= cross & (xs < xint)
    return inside


@needs_sample
def test_whole_workflow(window, tmp_path, qtbot):
    w = window
    w.open_dataset(str(SAMPLE / "digits"))
    assert w.wait_until_idle(120)
    w.open_encoder(str(HEALTHY))
    assert w.wait_until_idle(300)
    assert w.message.text() == "" or w.message.level != "error", w.message.text()
    ds = w.session.dataset
    assert len(ds) == 1797 and ds.labels is not None
    m = w.session.model()
    assert m.vectors is not None and m.vectors.shape[0] == 1797
    coords = m.layouts["pca"]
    assert coords.shape == (1797, 2)

    # the embedding equals an independent forward pass of the same weights
    import torch

    from explorer.encoders.archs import ARCHITECTURES

    side = json.loads(Path(str(HEALTHY) + ".json").read_text())
    net = ARCHITECTURES.get(side["arch"]).func(**side.get("arch_kwargs", {}))
    net.load_state_dict(torch.load(HEALTHY, weights_only=True))
    net.eval()
    pre = side.get("preprocess") or {}
    x = torch.from_numpy(ds.images(range(8), int(pre.get("size", 32)))).float().div(255).permute(0, 3, 1, 2)
    mean = torch.tensor(pre.get("mean", (0.5, 0.5, 0.5))).view(1, -1, 1, 1)
    std = torch.tensor(pre.get("std", (0.5, 0.5, 0.5))).view(1, -1, 1, 1)
    with torch.no_grad():
        ref = net((x - mean) / std).numpy()
    if m.encoder.layer is None:
        np.testing.assert_allclose(m.vectors[:8], ref.reshape(8, -1), rtol=1e-3, atol=1e-4)

    # click a point: the focus moves there and its exact neighbours are listed
    i = 123
    px, py = w.mapview.data_to_pixels(*coords[i])
    picked = w.mapview.pick(px, py)
    assert picked is not None and np.allclose(coords[picked], coords[i], atol=1e-3) or picked == i
    vp = w.mapview.graphics.viewport() if hasattr(w.mapview.graphics, "viewport") else w.mapview.graphics
    # hovering shows the item's thumbnail, label and metadata
    hovered = []
    w.mapview.hovered.connect(hovered.append)
    QTest.mouseMove(vp, QtCore.QPoint(int(round(px)), int(round(py))))
    qtbot.waitUntil(lambda: bool(hovered) and hovered[-1] >= 0, timeout=5000)
    h = hovered[-1]
    card = w.mapview.hover_card
    assert card.isVisible()
    assert f"#{h}" in card.text.text() and str(ds.ids[h]) in card.text.text()
    assert ds.label_of(h) in card.text.text()
    assert card.image.pixmap() is not None and not card.image.pixmap().isNull()
    QTest.mouseClick(vp, QtCore.Qt.LeftButton, QtCore.Qt.NoModifier, QtCore.QPoint(int(round(px)), int(round(py))))
    qtbot.waitUntil(lambda: w.selection.focus is not None, timeout=5000)
    f = w.selection.focus
    k = w.inspector.k.value()
    assert w.inspector.gallery.count() == k
    shown = [w.inspector.gallery.item(r).data(QtCore.Qt.UserRole) for r in range(k)]
    assert shown == list(_cosine_topk(m.vectors, f, k))
    # clicking a neighbour moves the focus to it
    w.inspector.gallery.activated_index.emit(shown[0])
    assert w.selection.focus == shown[0]

    # lasso a region around the first class's centre
    lab0 = coords[ds.labels == 0]
    cx, cy = lab0.mean(0)
    r = float(np.std(lab0)) * 1.5
    t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    pxs, pys = cx + r * np.cos(t), cy + r * np.sin(t)
    w.mapview.select_in_polygon(pxs, pys)
    expected = np.flatnonzero(_inside(coords[:, 0], coords[:, 1], pxs, pys))
    assert len(expected) > 20
    np.testing.assert_array_equal(w.selection.indices, expected)
    assert w.selpanel.counts.rowCount() >= 1

    # export the selection: CSV of ids and labels, and the vectors
    out = tmp_path / "sel.csv"
    w.export_selection(str(out))
    rows = list(csv.DictReader(out.open()))
    assert [int(r["index"]) for r in rows] == list(expected)
    assert [r["label"] for r in rows] == [ds.label_of(i) for i in expected]
    w.export_selection(str(tmp_path / "sel.npy"))
    np.testing.assert_array_equal(np.load(tmp_path / "sel.npy"), m.vectors[expected])

    # the copied Python snippet reproduces the map from the workspace, outside the app
    code = w.copy_snippet()
    assert QtWidgets.QApplication.clipboard().text() == code
    ns: dict = {}
    exec(compile(code, "<snippet>", "exec"), ns)
    np.testing.assert_allclose(ns["coords"], coords, atol=1e-5)

    # save the session, reopen it in a fresh window, find the same state
    w.color_combo.setCurrentText("label")
    sess = tmp_path / "s.eesession"
    w.save_session(str(sess))
    from explorer.gui.mainwindow import MainWindow

    w2 = MainWindow(workspace=str(tmp_path / "other.h5"))
    qtbot.addWidget(w2)
    w2.show()
    w2.open_session(str(sess))
    assert w2.wait_until_idle(300)
    assert len(w2.session.dataset) == 1797
    assert list(w2.session.models) == list(w.session.models)
    assert w2.session.current == w.session.current
    np.testing.assert_array_equal(w2.session.model().vectors, m.vectors)
    np.testing.assert_array_equal(w2.selection.indices, expected)
    assert w2.selection.focus == shown[0]
    assert w2.method_combo.currentText() == "pca"
    assert w2.color_combo.currentText() == "label"
    assert str(w2.session.workspace_path) == str(tmp_path / "ws.h5")
    w2.runner.wait(5000)


def _drop(win, path: Path) -> None:
    mime = QtCore.QMimeData()
    mime.setUrls([QtCore.QUrl.fromLocalFile(str(path))])
    ev = QtGui.QDropEvent(QtCore.QPointF(50, 50), QtCore.Qt.CopyAction, mime, QtCore.Qt.LeftButton, QtCore.Qt.NoModifier)
    win.dropEvent(ev)


def test_bad_files_dropped_show_a_message_and_change_nothing(window, tmp_path):
    w = window
    good = tmp_path / "v.npy"
    rng = np.random.default_rng(0)
    np.save(good, rng.normal(size=(300, 16)).astype(np.float32))
    _drop(w, good)
    assert w.wait_until_idle(120)
    ds_before = w.session.dataset
    assert ds_before is not None and len(ds_before) == 300
    models_before = list(w.session.models)
    vec_before = w.session.model().vectors.copy()

    garbage = tmp_path / "broken.pt"
    garbage.write_bytes(b"this is not a checkpoint at all")
    _drop(w, garbage)
    assert w.wait_until_idle(60)
    assert w.message.isVisible() and w.message.level == "error"
    assert "broken.pt" in w.message.text()
    assert "Traceback" not in w.message.text()

    wrong = tmp_path / "table.csv"
    wrong.write_text("")
    _drop(w, wrong)
    assert w.wait_until_idle(60)
    assert "table.csv" in w.message.text()

    assert w.session.dataset is ds_before
    assert list(w.session.models) == models_before
    np.testing.assert_array_equal(w.session.model().vectors, vec_before)


def test_jobs_panel_cancel_leaves_state_intact(window, qtbot):
    """A cancelled job ends as 'cancelled' in the panel and applies nothing."""
    from explorer.core.jobs import Progress

    w = window
    applied = []

    def slow():
        for i in range(1000):
            yield Progress(i, 1000, "working")
            QtCore.QThread.msleep(5)
        return "result"

    h = w.submit("slow job", slow, applied.append)
    qtbot.waitUntil(lambda: h.last_progress is not None, timeout=5000)
    row = next(r for r in w.jobs_panel.job_rows() if r.handle is h)
    row.cancel.click()
    qtbot.waitUntil(lambda: h.state == "cancelled", timeout=5000)
    assert applied == []
    assert row.bar.format() == "cancelled"


def test_event_loop_stays_responsive_while_a_job_runs(window, qtbot):
    """The UI thread never waits for a job: a timer keeps firing on time while a CPU-heavy
    job runs in a worker."""
    import time

    from explorer.core.jobs import Progress

    w = window

    def heavy():
        a = np.random.default_rng(0).normal(size=(600, 600))
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.5:
            a = np.tanh(a @ a.T / 600)
            yield Progress(time.monotonic() - t0, 1.5, "crunching")
        return None

    h = w.submit("heavy", heavy, lambda _r: None)
    gaps, last = [], [time.monotonic()]
    timer = QtCore.QTimer()
    timer.setInterval(10)

    def tick():
        now = time.monotonic()
        gaps.append(now - last[0])
        last[0] = now

    timer.timeout.connect(tick)
    timer.start()
    qtbot.waitUntil(lambda: h.state == "finished", timeout=20000)
    timer.stop()
    assert len(gaps) > 20
    assert max(gaps[2:]) < 0.5, f"event loop stalled {max(gaps):.3f} s"
