"""The focused item's exact nearest neighbours are ringed on the map (not only listed in the
inspector), follow the focus, and go when it is cleared. Expected neighbours: numpy cosine."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")


def _cosine_topk(Z, i, k):
    Zn = Z.astype(np.float64) / np.linalg.norm(Z.astype(np.float64), axis=1, keepdims=True)
    s = Zn @ Zn[i]
    s[i] = -np.inf
    return np.argsort(-s, kind="stable")[:k]


def test_neighbours_are_ringed_on_the_map(pca_window, tmp_path):
    w = pca_window
    Z = np.random.default_rng(3).normal(size=(200, 12)).astype(np.float32)
    np.save(tmp_path / "z.npy", Z)
    w.open_dataset(str(tmp_path / "z.npy"))
    assert w.wait_until_idle(60)
    w.inspector.metric_box.setCurrentText("cosine")
    k = w.inspector.k.value()
    for i in (5, 77):
        w.selection.set_focus(i, source=None)
        assert sorted(w.mapview.neighbor_indices.tolist()) == sorted(_cosine_topk(Z, i, k).tolist())
        assert w.mapview.neighbor_marker.isVisible()
        xy = np.column_stack(w.mapview.neighbor_marker.getData())
        np.testing.assert_allclose(np.sort(xy[:, 0]), np.sort(w.mapview._xy[w.mapview.neighbor_indices, 0]), rtol=1e-6)
    w.selection.set_focus(None, source=None)
    assert w.mapview.neighbor_indices.size == 0 and not w.mapview.neighbor_marker.isVisible()


@pytest.mark.parametrize("side,expected", [(32, 96), (120, 120), (400, 160)])
def test_hover_card_shows_thumbnails_at_96_to_160_px(qtbot, side, expected):
    from PySide6 import QtCore

    from explorer.gui.views.mapview import HoverCard

    card = HoverCard()
    qtbot.addWidget(card)
    thumb = np.random.default_rng(0).integers(0, 255, (side, side // 2, 3), dtype=np.uint8)
    card.show_item("x", thumb, QtCore.QPoint(0, 0))
    pm = card.image.pixmap()
    assert max(pm.width(), pm.height()) == expected
    assert abs(pm.width() / pm.height() - 0.5) < 0.05  # aspect kept
    card.hide()
