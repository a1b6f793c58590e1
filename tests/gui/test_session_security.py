"""Opening a hostile session in the real window, offscreen: a factory, an ``arch`` naming code
and a stored ``trust`` each stop at a confirmation naming the file (and its sha256); saying No
runs nothing and changes nothing, saying Yes runs it. A malformed session shows one sentence."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("PySide6")
from PySide6 import QtCore, QtWidgets  # noqa: E402

from hostile import BAD, Touch, _factory_file, _session, one_sentence  # noqa: E402


@pytest.fixture
def window(pca_window, tmp_path):
    w = pca_window
    np.save(tmp_path / "v.npy", np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32))
    w.open_dataset(str(tmp_path / "v.npy"))
    assert w.wait_until_idle(60)
    return w


class Answer:
    """Answers every real QMessageBox the window raises with ``button``, recording its text."""

    def __init__(self, button) -> None:
        self.button, self.texts = button, []
        self.timer = QtCore.QTimer()
        self.timer.setInterval(20)
        self.timer.timeout.connect(self._poll)
        self.timer.start()

    def _poll(self) -> None:
        box = QtWidgets.QApplication.activeModalWidget()
        if isinstance(box, QtWidgets.QMessageBox):
            self.texts.append(box.text())
            box.button(self.button).click()

    def stop(self) -> None:
        self.timer.stop()


def _state(w):
    return w.session.workspace_path, w.session.dataset, list(w.session.models)


def _open(w, path, button):
    ans = Answer(button)
    try:
        w.open_session(str(path))
        assert w.wait_until_idle(60)
        QtWidgets.QApplication.processEvents()
        assert w.wait_until_idle(60)
    finally:
        ans.stop()
    return ans.texts


def _session_with_data(tmp_path, models):
    from explorer.store import Workspace

    Workspace(tmp_path / "ws.h5")
    return _session(tmp_path, models, dataset={"path": str(tmp_path / "v.npy"), "format": None,
                                               "options": {}, "metadata": None},
                    view={"method": "pca"})


@pytest.mark.parametrize("key", ["factory", "arch"])
def test_session_factory_asks_first(window, tmp_path, key):
    w = window
    evil = _factory_file(tmp_path)
    marker = tmp_path / "factory_ran"
    s = _session_with_data(tmp_path, [{"id": "lin", "source": str(tmp_path / "lin.pt"),
                                       "options": {key: f"{evil}:make"}}])
    texts = _open(w, s, QtWidgets.QMessageBox.No)
    assert len(texts) == 1 and str(evil.resolve()) in texts[0] and "sha256" in texts[0]
    assert not marker.exists()
    assert "lin" not in w.session.models
    assert w.message.isVisible() and one_sentence(w.message.text()), w.message.text()

    texts = _open(w, s, QtWidgets.QMessageBox.Yes)
    assert marker.exists()
    assert "lin" in w.session.models and w.session.models["lin"].encoder is not None


def test_session_trust_asks_again_with_the_files_hash(window, tmp_path):
    import hashlib

    w = window
    marker = tmp_path / "pickle_ran"
    ckpt = tmp_path / "pickled.pt"
    import torch

    torch.save({"model": Touch(str(marker))}, ckpt)
    s = _session_with_data(tmp_path, [{"id": "p", "source": str(ckpt), "options": {"trust": True}}])
    texts = _open(w, s, QtWidgets.QMessageBox.No)
    assert len(texts) == 1 and hashlib.sha256(ckpt.read_bytes()).hexdigest() in texts[0]
    assert not marker.exists()
    assert "p" not in w.session.models

    _open(w, s, QtWidgets.QMessageBox.Yes)
    assert marker.exists()  # it ran (and, not being a model, was then refused in one sentence)
    assert w.message.isVisible() and "pickled.pt" in w.message.text() and one_sentence(w.message.text())


def test_missing_workspace_declined_changes_nothing(window, tmp_path):
    w = window
    before = _state(w)
    s = _session(tmp_path, [], workspace=str(tmp_path / "elsewhere" / "ws.h5"))
    texts = _open(w, s, QtWidgets.QMessageBox.No)
    assert len(texts) == 1 and "elsewhere" in texts[0]
    assert not (tmp_path / "elsewhere").exists()
    assert _state(w) == before


@pytest.mark.parametrize("case", ["unknown model option", "huge seed", "workspace a system file",
                                  "arch_kwargs too deep", "selection of text"])
def test_malformed_session_shows_one_sentence_and_changes_nothing(window, tmp_path, case):
    w = window
    before = _state(w)
    s = _session(tmp_path, [])
    d = json.loads(s.read_text())
    d.update(BAD[case])
    s.write_text(json.dumps(d))
    texts = _open(w, s, QtWidgets.QMessageBox.Yes)
    assert texts == []
    assert w.message.isVisible() and w.message.level == "error"
    assert one_sentence(w.message.text()) and "s.eesession" in w.message.text(), w.message.text()
    assert _state(w) == before
