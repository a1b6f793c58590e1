"""Compare: the reference model can be changed (issue 18 item 9). Choosing another reference
re-aligns the maps onto it in a job and recomputes the neighbourhood overlap against it;
expected values are computed here in float64 numpy."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyqtgraph")

from explorer.data.base import Dataset  # noqa: E402
from explorer.gui.views import pointraster as pr  # noqa: E402
from explorer.gui.views.compare_view import CompareView  # noqa: E402
from explorer.gui.workers import JobRunner  # noqa: E402
from explorer.app.selection import Selection  # noqa: E402
from references import jaccard64 as _jaccard64, knn64 as _knn64  # noqa: E402

N, D, K = 240, 12, 20


@pytest.fixture(scope="module", autouse=True)
def _compiled():
    pr.warm_up()


def _procrustes64(Y, X):
    """Least-squares s, R (orthogonal), t with s (Y - mean Y) R + t ~ X (Schoenemann 1966)."""
    Y, X = np.asarray(Y, np.float64), np.asarray(X, np.float64)
    Y0, X0 = Y - Y.mean(0), X - X.mean(0)
    U, S, Vt = np.linalg.svd(Y0.T @ X0)
    return S.sum() / (Y0 ** 2).sum() * Y0 @ (U @ Vt) + X.mean(0)


@pytest.fixture
def view(qtbot):
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(3, D)) * 3
    y = np.repeat(np.arange(3), N // 3)
    Za = (centres[y] + rng.normal(size=(N, D))).astype(np.float32)
    Zb = (Za + 0.9 * rng.normal(size=(N, D))).astype(np.float32)
    Zc = rng.normal(size=(N, D)).astype(np.float32)
    ca = Za[:, :2].copy()
    th = 1.1
    R = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    cb = (0.4 * ca @ R - 3.0).astype(np.float32)
    cc = (Zc[:, :2] * 2).astype(np.float32)
    ds = Dataset(name="toy", source=Path("toy"), kind="vector", n=N, labels=y.astype(np.int64),
                 label_names=["a", "b", "c"])
    runner = JobRunner()
    v = CompareView(runner)
    qtbot.addWidget(v)
    v.resize(1280, 720)
    v.show()
    qtbot.waitExposed(v)
    v.set_models(ds, [("A", Za, ca), ("B", Zb, cb), ("C", Zc, cc)], Selection(N), k=K)
    qtbot.waitUntil(lambda: v.overlap is not None and v.table is not None, timeout=60000)
    v.Z, v.C = (Za, Zb, Zc), (ca, cb, cc)
    yield v
    runner.cancel_all()
    runner.wait(10000)


def test_choosing_another_reference_realigns_and_recomputes(view, qtbot):
    v = view
    Za, Zb, Zc = v.Z
    ca, cb, cc = v.C
    assert [v.ref_combo.itemText(i) for i in range(v.ref_combo.count())] == ["A", "B", "C"]
    assert v.reference == 0 and v.overlap_pair == (0, 1)
    jobs = []
    v.runner.job_added.connect(lambda h: jobs.append(h.name))
    v.ref_combo.activated.emit(2)  # the user picks C
    assert v.reference == 0  # nothing changed on the UI thread yet: the alignment is a job
    assert any("Align" in j and "C" in j for j in jobs)
    qtbot.waitUntil(lambda: v.reference == 2 and v.overlap_pair == (2, 1), timeout=60000)
    # every map aligned onto C's layout; C itself as computed
    np.testing.assert_allclose(v.aligned_coords[2], cc, atol=1e-6)
    np.testing.assert_allclose(v.aligned_coords[0], _procrustes64(ca, cc), atol=1e-4)
    np.testing.assert_allclose(v.aligned_coords[1], _procrustes64(cb, cc), atol=1e-4)
    for m, c in zip(v.maps, v.aligned_coords):
        np.testing.assert_allclose(m._coords, c, atol=1e-6)
    assert v.maps[0].vb.linkedView(0) is v.maps[2].vb and v.linked
    assert "(reference)" in v.panes[2].title.text() and "(reference)" not in v.panes[0].title.text()
    # the overlap is now of C against B
    qtbot.waitUntil(lambda: v.overlap is not None, timeout=60000)
    expected = _jaccard64(_knn64(Zc, K), _knn64(Zb, K))
    np.testing.assert_allclose(v.overlap, expected, atol=1e-6)
    assert (v.pair_a.currentText(), v.pair_b.currentText()) == ("C", "B")
    if os.environ.get("EE_SHOT_DIR"):
        v.grab().save(os.path.join(os.environ["EE_SHOT_DIR"], "compare_reference.png"))

    # back to B: B's layout is a rotated, scaled, shifted copy of A's, so A lands on it exactly
    v.ref_combo.activated.emit(1)
    qtbot.waitUntil(lambda: v.reference == 1 and v.overlap_pair == (1, 2), timeout=60000)
    np.testing.assert_allclose(v.aligned_coords[0], cb, atol=1e-3)
    v.set_aligned(False)
    np.testing.assert_allclose(v.maps[0]._coords, ca, atol=1e-6)
    assert not v.linked
    v.set_aligned(True)
    assert v.linked and v.maps[0].vb.linkedView(0) is v.maps[1].vb
