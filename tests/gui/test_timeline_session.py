"""The run-folder dialog starts where the user's runs are, and a saved session brings back its
timeline tab (slider position, the tab on screen) and the focused point (issue 18 item 9)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")
from PySide6 import QtWidgets  # noqa: E402

from references import write_tiny_images, write_tiny_run  # noqa: E402

N_IMG = 60


@pytest.fixture
def run(tmp_path):
    return write_tiny_images(tmp_path / "imgs", N_IMG // 3), write_tiny_run(tmp_path / "runs" / "run1")


def _timeline_tabs(w):
    from explorer.gui.views.timeline_view import TimelineView

    return [w.tab_view(i) for i in range(w.center_tabs.count()) if isinstance(w.tab_view(i), TimelineView)]


def test_the_run_folder_dialog_starts_in_the_last_folder_or_the_encoders(pca_window, run, tmp_path, monkeypatch):
    from explorer.gui.settings import settings

    settings().remove("timeline_folder")
    w = pca_window
    imgs, run1 = run
    asked, answer = [], [""]

    def fake_dialog(parent, caption, start="", *a, **k):
        asked.append(start)
        return answer[0]

    monkeypatch.setattr(QtWidgets.QFileDialog, "getExistingDirectory", staticmethod(fake_dialog))
    w.open_dataset(str(imgs))
    assert w.wait_until_idle(60)
    w.timeline_dialog()
    assert Path(asked[-1]) == tmp_path  # nothing remembered, no checkpoint: the workspace's folder
    w.open_encoder(str(run1 / "epoch_02.pt"))
    assert w.wait_until_idle(120)
    w.timeline_dialog()
    assert Path(asked[-1]) == run1  # the shown encoder's folder
    answer[0] = str(run1)
    w.timeline_dialog()  # chosen: opens the timeline and remembers the folder
    assert w.wait_until_idle(120)
    assert len(_timeline_tabs(w)) == 1 and _timeline_tabs(w)[0].result is not None
    other = tmp_path / "elsewhere"
    other.mkdir()
    w.session.models[w.session.current].source = str(other / "x.pt")
    answer[0] = ""
    w.timeline_dialog()
    assert Path(asked[-1]) == run1  # the last run folder wins over the encoder's


def test_a_session_reopens_its_timeline_tab_and_focus(pca_window, run, tmp_path, qtbot):
    from explorer.gui.mainwindow import MainWindow

    w = pca_window
    imgs, run1 = run
    w.open_dataset(str(imgs))
    w.open_encoder(str(run1 / "epoch_03.pt"))
    assert w.wait_until_idle(120) and w.session.model().layouts.get("pca") is not None
    tv = w.open_timeline(str(run1), probe_size=40, seed=2)
    assert w.wait_until_idle(120) and tv.result is not None
    tv.set_position(1.5)
    steps = list(tv.result.steps)
    w.selection.select([3, 17, 21], source=None)
    w.selection.set_focus(17, source=None)
    sess = tmp_path / "s.eesession"
    w.save_session(str(sess))
    saved = json.loads(sess.read_text())["view"]["timelines"]
    assert saved == [{"folder": str(run1.resolve()), "probe_size": 40, "seed": 2, "position": 1.5, "shown": True}]

    # reopened in the same window: the old tab is closed first, the session's one comes back
    w.center_tabs.setCurrentIndex(0)
    w.save_session(str(tmp_path / "map_shown.eesession"))
    w.open_session(str(sess))
    assert w.wait_until_idle(120)
    tabs = _timeline_tabs(w)
    assert len(tabs) == 1 and tabs[0] is not tv
    back = tabs[0]
    assert back.result is not None and list(back.result.steps) == steps
    assert back.position == pytest.approx(1.5) and back.result.probe_indices.size == 40
    assert w.center_tabs.currentIndex() == w.tab_index(back)  # it was the tab on screen
    # the focused point: in the selection, the inspector and on the map
    assert w.selection.focus == 17 and list(w.selection.indices) == [3, 17, 21]
    ds = w.session.dataset
    assert ds.label_of(17) in w.inspector.title.text() or str(ds.ids[17]) in w.inspector.title.text()
    x, y = w.mapview.focus_marker.getData()
    assert w.mapview.focus_marker.isVisible()
    np.testing.assert_allclose([x[0], y[0]], w.session.model().layouts["pca"][17, :2], atol=1e-5)
    if os.environ.get("EE_SHOT_DIR"):
        w.grab().save(os.path.join(os.environ["EE_SHOT_DIR"], "session_timeline.png"))

    # a session saved with the map on screen reopens on the map, its timeline tab behind it
    w2 = MainWindow(workspace=str(tmp_path / "other.h5"))
    qtbot.addWidget(w2)
    w2.show()
    w2.open_session(str(tmp_path / "map_shown.eesession"))
    assert w2.wait_until_idle(120)
    assert len(_timeline_tabs(w2)) == 1 and w2.center_tabs.currentIndex() == 0
    assert w2.selection.focus == 17 and "#17" in w2.inspector.title.text()
    assert "12 nearest" in w2.inspector.hint.text()  # its neighbours, in the reopened model's space
    assert _timeline_tabs(w2)[0].position == pytest.approx(1.5)
    w2.runner.cancel_all()
    w2.runner.wait(10000)


def test_a_timeline_of_an_earlier_dataset_is_not_saved_with_the_next_one(pca_window, run, tmp_path):
    """Found by the long random walk: a timeline tab left open from the image dataset was saved
    with a session of a vector dataset, and reopening ran its image checkpoints on vectors."""
    w = pca_window
    imgs, run1 = run
    w.open_dataset(str(imgs))
    assert w.wait_until_idle(120)
    tv = w.open_timeline(str(run1), probe_size=30)
    assert w.wait_until_idle(120) and tv.result is not None
    np.save(tmp_path / "v.npy", np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32))
    w.open_dataset(str(tmp_path / "v.npy"))
    assert w.wait_until_idle(120)
    sess = tmp_path / "v.eesession"
    w.save_session(str(sess))
    assert json.loads(sess.read_text())["view"].get("timelines", []) == []
    w.open_session(str(sess))
    assert w.wait_until_idle(120)
    assert _timeline_tabs(w) == [] and not (w.message.isVisible() and w.message.level == "error")
