"""Issue 22: a UMAP map fitted on a sample shows the fitted sample at once, while the other
points are placed, in the window; the finished map replaces it without moving the view."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyqtgraph")


def test_the_fitted_sample_is_on_screen_while_the_rest_is_placed(qtbot, tmp_path):
    from explorer.gui.app import make_app
    from explorer.gui.mainwindow import MainWindow

    rng = np.random.default_rng(0)
    n, fit = 3000, 1000
    y = rng.integers(0, 4, n)
    Z = (rng.normal(size=(4, 16))[y] * 3 + rng.normal(size=(n, 16))).astype(np.float32)
    np.savez(tmp_path / "d.npz", vectors=Z, labels=y)
    make_app()
    w = MainWindow(workspace=str(tmp_path / "window.h5"))
    qtbot.addWidget(w)
    w.show()
    w.projection.max_fit_points = fit  # fit on 1,000 points, place the other 2,000
    seen = []

    def record(mid, method, coords):  # runs after the window has shown the partial map
        seen.append((method, w.mapview.n_unplaced, w.map_panel.map_state.text(), w.mapview.xy.copy()))

    try:
        w.open_dataset(str(tmp_path / "d.npz"))
        qtbot.waitUntil(lambda: w.session.dataset is not None, timeout=60000)
        w.session.partial_layout.connect(record)
        assert w.wait_until_idle(300)
        final = w.session.model().layouts["umap"]
        assert w.session.model().layout_info["umap"]["fitted_on_sample"] == fit
        assert seen, "no partial map was shown"
        method, unplaced, text, xy = seen[0]
        assert method == "umap" and unplaced == n - fit
        assert f"placed {fit:,} of {n:,} points" in text
        shown = ~np.isnan(xy[:, 0])
        assert shown.sum() == fit
        # the sample is drawn where the finished map has it; the finished map has every point
        np.testing.assert_allclose(xy[shown], final[shown], atol=1e-5)
        assert w.mapview.n_unplaced == 0 and not w.map_panel.map_state.isVisible()
        np.testing.assert_allclose(w.mapview.xy, final, atol=1e-5)
    finally:
        w.runner.cancel_all()
        w.runner.wait(10000)
