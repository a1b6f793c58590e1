"""The search box in the real window: `7` greys out all but label 7, the count says so, Enter
selects exactly those points."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")
from PySide6 import QtCore  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402


def test_search_box_matches_labels_exactly(pca_window, tmp_path):
    w = pca_window
    rng = np.random.default_rng(1)
    y = rng.integers(0, 10, 400)
    np.savez(tmp_path / "d.npz", vectors=rng.normal(size=(400, 6)).astype(np.float32), labels=y)
    w.open_dataset(str(tmp_path / "d.npz"))
    assert w.wait_until_idle(60)
    assert w.session.dataset.labels is not None
    expected = np.array([w.session.dataset.label_of(i) == "7" for i in range(400)])
    QTest.keyClicks(w.search, "7")
    np.testing.assert_array_equal(w.mapview.filter_mask, expected)
    assert f"{expected.sum():,} of 400" in w.search_count.text()
    QTest.keyClick(w.search, QtCore.Qt.Key_Return)
    np.testing.assert_array_equal(w.selection.indices, np.flatnonzero(expected))
    w.search.setText("nosuchcolumn=3")
    assert "nosuchcolumn" in w.search_count.text() and w.mapview.filter_mask is None
