"""The window with a folder holding two unreadable images: the map, the dataset and the
message show the six readable images only; the two bad files are named."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from test_unreadable import _folder, _reference, _weights  # noqa: E402


@pytest.fixture
def window(pca_window):
    return pca_window


def test_window_maps_only_readable_images(window, tmp_path):
    w = window
    root, good = _folder(tmp_path)
    weights = _weights(tmp_path)
    w.open_dataset(str(root))
    assert w.wait_until_idle(120)
    assert len(w.session.dataset) == 8  # nothing is decoded on open
    w.open_encoder(str(weights), arch="small_cnn")
    assert w.wait_until_idle(300)
    ds, m = w.session.dataset, w.session.model()
    order = sorted(good)
    assert list(ds.ids) == order
    assert m.layouts["pca"].shape == (6, 2)
    np.testing.assert_allclose(m.vectors, _reference(weights, np.stack([good[r] for r in order])),
                               rtol=1e-4, atol=1e-4)
    text = w.message.text()
    assert "2 items of imgs could not be read and were left out" in text
