"""The selection gallery pages through the whole selection and can sort it nearest to the
inspected item first."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")


def test_gallery_pages_and_sorts(qtbot):
    from pathlib import Path

    from explorer.data.base import Dataset
    from explorer.gui.panels import SelectionPanel

    n = 600
    rng = np.random.default_rng(0)
    V = rng.normal(size=(n, 6)).astype(np.float32)
    ds = Dataset(name="t", source=Path("t"), kind="vector", n=n, labels=rng.integers(0, 3, n),
                 label_names=["a", "b", "c"], ids=np.array([f"p{i}" for i in range(n)], dtype=object))
    p = SelectionPanel()
    qtbot.addWidget(p)
    sel = np.arange(0, 450)
    p.show_selection(ds, sel, V, focus=None)
    assert p.pages.text() == "of 3"
    p.page.setValue(3)
    assert p.shown_indices().tolist() == list(range(400, 450))
    assert p.gallery.count() == 50
    p.order.setCurrentText("distance to focus")
    p.set_focus(V, 10)
    Vn = V.astype(np.float64) / np.linalg.norm(V.astype(np.float64), axis=1, keepdims=True)
    d = 1 - Vn[sel] @ Vn[10]
    expected = sel[np.lexsort((sel, d))][:200]
    assert p.page.value() == 1
    assert p.shown_indices().tolist() == expected.tolist()
    assert p.shown_indices()[0] == 10
