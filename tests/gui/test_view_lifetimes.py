"""Views own their subscriptions to the session: a closed Compare tab (or a rebuilt pane) is no
longer called by the shared selection, so opening a dataset afterwards works (issue: "close a
Compare tab, then open a dataset: libshiboken: Internal C++ object already deleted")."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")
from PySide6 import QtCore, QtWidgets  # noqa: E402


@pytest.fixture
def window(pca_window):
    return pca_window


def _flush_deletes():
    QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.DeferredDelete)
    QtWidgets.QApplication.processEvents()


def _listeners(sel):
    return len(sel.changed), len(sel.focus_changed)


def test_closed_compare_tab_is_unsubscribed_and_the_next_dataset_opens(window, tmp_path):
    w = window
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(300, 8)).astype(np.float32)
    np.save(tmp_path / "a.npy", Z)
    w.open_dataset(str(tmp_path / "a.npy"))
    assert w.wait_until_idle(60)
    w.session.add_model(None, name="B")
    w.session.apply_embedding("B", "b-key", 2 * Z[:, ::-1].copy())
    w.session.apply_layout("B", "pca", Z[:, :2] * 3, {})
    assert w.wait_until_idle(60)
    base = _listeners(w.selection)

    view = w.compare_models(["precomputed", "B"])
    assert view is not None
    assert _listeners(w.selection) == (base[0] + 2, base[1] + 3)  # two maps; + the view's focus link
    w._close_tab(w.tab_index(view))
    _flush_deletes()
    assert _listeners(w.selection) == base

    np.save(tmp_path / "b.npy", rng.normal(size=(123, 8)).astype(np.float32))
    w.open_dataset(str(tmp_path / "b.npy"))
    assert w.wait_until_idle(60)
    assert not (w.message.isVisible() and w.message.level == "error"), w.message.text()
    assert len(w.session.dataset) == 123
    w.selection.select([1, 2, 3], source=None)
    w.selection.set_focus(5, source=None)
    assert list(w.selection.indices) == [1, 2, 3]


def test_a_destroyed_map_drops_its_subscriptions_without_release(qtbot):
    from explorer.gui.views.mapview import MapView
    from explorer.app.selection import Selection

    sel = Selection(10)
    base = _listeners(sel)
    v = MapView()
    v.set_layout(np.random.default_rng(0).normal(size=(10, 2)).astype(np.float32))
    v.bind_selection(sel)
    assert _listeners(sel) == (base[0] + 1, base[1] + 1)
    v.deleteLater()
    _flush_deletes()
    assert _listeners(sel) == base
    sel.select([1, 2], source=None)  # nothing calls into the deleted view
