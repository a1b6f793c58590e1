"""The window opens a workspace read out of core (issue 20): the record is not loaded, the PCA
map of every point is drawn, and a click asks for neighbours without freezing or crashing."""

from __future__ import annotations

import numpy as np

from explorer.store import LazyArray, Workspace


def test_window_maps_a_workspace_read_out_of_core(pca_window, tmp_path, monkeypatch):
    import explorer.scale.out_of_core as ooc

    monkeypatch.setattr(ooc, "OUT_OF_CORE_ROWS", 1000)
    rng = np.random.default_rng(0)
    lab = rng.integers(0, 3, 5000)
    v = (rng.normal(size=(3, 16))[lab] * 5 + rng.normal(size=(5000, 16))).astype(np.float32)
    Workspace(tmp_path / "big.h5").put("embeddings", "k", {"vectors": v.astype(np.float16)},
                                       {"model": "m", "stored_as": {"vectors": "float16"}})
    w = pca_window
    w.open_dataset(str(tmp_path / "big.h5"))
    assert w.wait_until_idle(120)
    m = w.session.model()
    assert isinstance(m.vectors, LazyArray) and len(m.vectors) == 5000
    xy = m.layouts["pca"]
    assert xy.shape == (5000, 2) and np.isfinite(xy).all()
    # the first component separates the three clusters (a numpy PCA of the same rows does)
    X = v.astype(np.float16).astype(np.float64)
    X -= X.mean(0)
    ref = X @ np.linalg.eigh(X.T @ X)[1][:, -1]
    assert abs(np.corrcoef(ref, xy[:, 0])[0, 1]) > 0.999
    img = w.mapview.grab().toImage()
    assert img.width() > 100
    w.selection.set_focus(3, source=None)  # neighbours of a point: one message, no crash
    assert "read from disk as needed" in w.message.label.text()
