"""CompareView (linked maps, neighbourhood overlap, similarity table) and TimelineView
(scrubbing through interpolated maps). Expected values are computed here in float64 numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyqtgraph")

from explorer.data.base import Dataset  # noqa: E402
from explorer.gui.views import pointraster as pr  # noqa: E402
from explorer.gui.views.compare_view import OVERLAP, CompareView  # noqa: E402
from explorer.gui.views.timeline_view import SUB, TimelineView  # noqa: E402
from explorer.gui.workers import JobRunner  # noqa: E402
from explorer.app.selection import Selection  # noqa: E402
from references import jaccard64 as _jaccard64, knn64 as _knn64  # noqa: E402
from explorer.app.timeline import TimelineResult  # noqa: E402

N, D, K = 300, 16, 50


@pytest.fixture(scope="module", autouse=True)
def _compiled():
    pr.warm_up()


@pytest.fixture(scope="module")
def models():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, D)) * 3
    y = np.repeat(np.arange(3), N // 3)
    Za = (centres[y] + rng.normal(size=(N, D))).astype(np.float32)
    Q, _ = np.linalg.qr(rng.normal(size=(D, D)))
    Zb = (Za @ Q + 0.8 * rng.normal(size=(N, D))).astype(np.float32)  # rotated, perturbed
    Zc = rng.normal(size=(N, D)).astype(np.float32)
    ca = Za[:, :2] * 1.0
    th = 0.7
    R = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    cb = (2.5 * ca @ R + 4.0).astype(np.float32)  # the same layout, rotated, scaled, shifted
    cc = Zc[:, :2].copy()
    ds = Dataset(name="toy", source=Path("toy"), kind="vector", n=N, labels=y.astype(np.int64),
                 label_names=["a", "b", "c"], ids=np.array([f"p{i}" for i in range(N)], dtype=object))
    return ds, [("A", Za, ca), ("B", Zb, cb), ("C", Zc, cc)]


@pytest.fixture
def view(qtbot, models):
    ds, ms = models
    runner = JobRunner()
    v = CompareView(runner)
    qtbot.addWidget(v)
    v.resize(1100, 700)
    v.show()
    qtbot.waitExposed(v)
    sel = Selection(N)
    v.set_models(ds, ms, sel)
    qtbot.waitUntil(lambda: v.overlap is not None and v.table is not None, timeout=60000)
    yield v
    runner.cancel_all()
    runner.wait(10000)


def test_linked_selection_and_focus(view, qtbot):
    sel = view.selection
    emitted = []
    sel.changed.connect(lambda idx, src: emitted.append(len(idx)))
    a, b, c = view.maps
    got = a.select_in_rect(-100, 0.0, -100, 100)  # left half of map A
    assert got.size > 0 and len(emitted) == 1
    for m in view.maps:
        shown = np.sort(m._index.perm[m._sel_sorted])
        assert np.array_equal(shown, np.sort(got))
    c.select_in_polygon([-100, 100, 100, -100], [-100, -100, 100, 100], "subtract")
    assert len(emitted) == 2 and len(sel) == 0
    for m in view.maps:
        assert m._sel_sorted.size == 0
    sel.set_focus(7)
    for m in view.maps:
        assert m.focus_marker.isVisible()
        x, y = m.focus_marker.getData()
        assert np.allclose([x[0], y[0]], m._xy[7])


def test_hover_in_one_map_marks_the_item_in_the_others(view):
    a, b = view.maps[0], view.maps[1]
    a.hovered.emit(7)
    assert b.linked_hover_index == 7 and b.linked_marker.isVisible()
    assert a.linked_hover_index is None
    a.hovered.emit(-1)
    assert b.linked_hover_index is None and not b.linked_marker.isVisible()


def test_filter_greys_out_on_every_map(view):
    """A search filter shows in all maps: non-matching points are greyed, not hidden."""
    ds = view.dataset
    mask = np.zeros(N, bool)
    mask[: N // 3] = True
    view.set_filter(mask)
    for m in view.maps:
        assert m.visible_mask().sum() == N  # greyed out, still drawn
        assert np.array_equal(m.filter_mask, mask)
    view.set_filter(None)
    assert all(m.filter_mask is None for m in view.maps)
    assert ds is not None


def test_alignment_toggle_and_linked_zoom(view):
    from explorer.maps import procrustes_align  # noqa: F401  (what the view uses; checked independently here)

    ca, cb = view.raw_coords[0].astype(np.float64), view.raw_coords[1].astype(np.float64)
    # independent: B's layout is a rotated, scaled, shifted copy of A's -> aligned onto A exactly
    np.testing.assert_allclose(view.aligned_coords[1], ca, atol=1e-3)
    assert np.allclose(view.maps[1]._coords, view.aligned_coords[1])
    assert view.linked
    view.maps[0].vb.setRange(xRange=(-1, 1), yRange=(-1, 1), padding=0)
    r1 = view.maps[1].vb.viewRange()
    assert np.allclose(r1[0], (-1, 1), atol=1e-6) and np.allclose(r1[1], (-1, 1), atol=1e-6)
    view.set_aligned(False)
    assert np.allclose(view.maps[1]._coords, cb)
    assert not view.linked
    view.set_aligned(True)
    assert view.linked and np.allclose(view.maps[1]._coords, view.aligned_coords[1])


def test_overlap_layer_histogram_and_list(view, models):
    _, ms = models
    expected = _jaccard64(_knn64(ms[0][1], K), _knn64(ms[1][1], K))
    np.testing.assert_allclose(view.overlap, expected, atol=1e-6)
    view.set_colour(OVERLAP)
    for m in view.maps:
        assert m._colour_kind == "continuous"
        np.testing.assert_allclose(m._values, expected, atol=1e-6)
    # histogram counts
    counts, _ = np.histogram(expected, bins=25, range=(0, 1))
    assert np.array_equal(np.asarray(view._hist_item.opts["height"]), counts)
    # the changed-most list: lowest overlap first, ties by index
    order = np.lexsort((np.arange(N), np.round(expected, 6)))
    rows = view.changed_rows()
    assert len(rows) == min(N, 200)
    assert np.allclose(expected[rows], np.sort(expected)[:len(rows)], atol=1e-6)
    assert rows[:10] == order[:10].tolist()


def test_choosing_a_changed_point_shows_both_neighbourhoods(view, models):
    _, ms = models
    view.changed_table.selectRow(0)
    i = view.changed_rows()[0]
    assert view.selection.focus == i and view.selection.indices.tolist() == [i]
    na, nb = _knn64(ms[0][1], K)[i], _knn64(ms[1][1], K)[i]
    ga = [int(view.gallery_a.item(r).data(0x0100)) for r in range(view.gallery_a.count())]
    gb = [int(view.gallery_b.item(r).data(0x0100)) for r in range(view.gallery_b.count())]
    assert ga == na[:len(ga)].tolist() and gb == nb[:len(gb)].tolist() and len(ga) > 0
    shared = set(na) & set(nb)
    for r, j in enumerate(ga):
        assert view.gallery_a.item(r).text().startswith("●") == (j in shared)


def test_other_pair_and_similarity_table(view, models, qtbot):
    _, ms = models
    pairs = view.table["pairs"]
    assert [p["pair"] for p in pairs] == [(0, 1), (0, 2), (1, 2)]
    assert view.sim_table.rowCount() == 3

    def cka(X, Y):
        X = np.asarray(X, np.float64) - np.mean(X, 0)
        Y = np.asarray(Y, np.float64) - np.mean(Y, 0)
        return np.linalg.norm(Y.T @ X) ** 2 / (np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y))

    for p in pairs:
        a, b = p["pair"]
        assert p["linear_cka"] == pytest.approx(cka(ms[a][1], ms[b][1]), abs=1e-6)
        assert view.sim_table.item(pairs.index(p), 0).text() == f"{p['linear_cka']:.3f}"
    assert all(d is not None and "rankme" in d for d in view.diagnostics)
    assert view.diag_table.item(0, 3).text() == view.diagnostics[0]["verdict"]["label"]
    # A vs the random model C: overlap near k/n
    with qtbot.waitSignal(view.overlap_ready, timeout=60000):
        view.set_pair(0, 2)
    expected = _jaccard64(_knn64(ms[0][1], K), _knn64(ms[2][1], K))
    np.testing.assert_allclose(view.overlap, expected, atol=1e-6)
    assert view.overlap.mean() < 0.35


# ------------------------------------------------------------------ timeline view
def _result(T=4, P=120):
    rng = np.random.default_rng(1)
    lays = [rng.normal(size=(P, 2)).astype(np.float32) + i for i in range(T)]
    metrics = [{"rankme": 5.0 + i, "sigreg": 1.0 / (i + 1), "knn_accuracy": 0.5 + 0.1 * i,
                "linear_cka": 0.7 + 0.1 * i, "mutual_knn": 0.4 + 0.2 * i} for i in range(T)]
    return TimelineResult(paths=[f"/r/ep{i}.pt" for i in range(T)], names=[f"ep{i}.pt" for i in range(T)],
                          steps=np.array([10, 20, 40, 80]), axis="step", step_sources=["step (sidecar)"] * T,
                          probe_indices=np.arange(P), labels=np.arange(P) % 3, label_names=["x", "y", "z"],
                          vectors=None, layouts=lays, metrics=metrics)


def test_timeline_slider_interpolates(qtbot):
    res = _result()
    v = TimelineView()
    qtbot.addWidget(v)
    v.resize(900, 500)
    v.show()
    v.set_result(res)
    assert v.slider.maximum() == 3 * SUB
    np.testing.assert_allclose(v.shown_coords(), res.layouts[0])
    v.slider.setValue(int(1.25 * SUB))
    want = 0.75 * res.layouts[1].astype(np.float64) + 0.25 * res.layouts[2]
    np.testing.assert_allclose(v.shown_coords(), want, atol=1e-5)
    # the curves' position marker sits at the interpolated step: 20 + 0.25 * (40 - 20)
    assert all(line.value() == pytest.approx(25.0) for line in v._lines)
    assert set(v._plots) == {"rankme", "sigreg", "knn_accuracy", "linear_cka", "mutual_knn"}
    # clicking a curve point jumps to that checkpoint
    p, item = v._plots["linear_cka"]
    pts = item.scatter.points()
    item.sigPointsClicked.emit(item, [pts[3]], None)
    assert v.position == 3.0
    np.testing.assert_allclose(v.shown_coords(), res.layouts[3])


def test_timeline_map_stars_the_anchors_among_its_probe_rows(qtbot):
    """The timeline's map shows a probe set (some rows of the dataset): the anchors that are
    among those rows are starred where their probe points are drawn, at every checkpoint."""
    from dataclasses import replace

    from explorer.app.anchors import Anchors
    from explorer.gui.views.anchor_overlay import mark_anchors

    n_rows = 1000
    probe = np.sort(np.random.default_rng(2).choice(n_rows, 120, replace=False))
    res = replace(_result(), probe_indices=probe)
    v = TimelineView()
    qtbot.addWidget(v)
    v.resize(900, 500)
    v.show()
    v.set_result(res, list(range(n_rows)))
    anchors = Anchors()
    chosen = np.concatenate([probe[[3, 50, 99]], [i for i in range(n_rows) if i not in set(probe)][:5]])
    anchors.set(np.sort(chosen), n_rows, "test")
    (ov,) = mark_anchors([v.map], anchors)
    np.testing.assert_allclose(ov.positions(), res.layouts[0][[3, 50, 99]], atol=1e-5)
    v.slider.setValue(2 * SUB)  # another checkpoint: the stars move with their points
    np.testing.assert_allclose(ov.positions(), res.layouts[2][[3, 50, 99]], atol=1e-5)
    anchors.set([probe[7]], n_rows, "one")
    np.testing.assert_allclose(ov.positions(), res.layouts[2][[7]], atol=1e-5)
    anchors.set([0, 1], 500, "another dataset")  # anchors of another dataset: no stars
    assert len(ov.positions()) == 0


def test_timeline_play_animates_to_the_end(qtbot):
    res = _result()
    v = TimelineView()
    qtbot.addWidget(v)
    v.set_result(res)
    v.seconds_per_checkpoint = 0.05
    seen = []
    v.position_changed.connect(seen.append)
    v.play()
    assert v.is_playing
    qtbot.waitUntil(lambda: not v.is_playing, timeout=10000)
    assert v.position == 3.0 and len(seen) >= 3 and seen == sorted(seen)
    np.testing.assert_allclose(v.shown_coords(), res.layouts[-1])


def test_similarity_table_says_how_to_read_it(view):
    """Each measure's column has a tooltip and the text beside the table says how to read it,
    with the chance level of mutual kNN for these N items (10 / (N - 1))."""
    from explorer.gui.views.compare_view import TABLE_KEYS

    notes = view.sim_notes
    view.tabs.setCurrentIndex(1)
    assert notes.isVisible() and "How to read the table" in notes.text()
    for c, (_key, label) in enumerate(TABLE_KEYS):
        assert label in notes.text()
        assert len(view.sim_table.horizontalHeaderItem(c).toolTip()) > 20
    mk = [c for c, (k, _) in enumerate(TABLE_KEYS) if k == "mutual_knn"][0]
    assert f"{10 / (N - 1):.3f}" in view.sim_table.horizontalHeaderItem(mk).toolTip()


def test_similarity_table_explains_a_collapsed_model(qtbot, models):
    """B = one shared vector + 1e-5 x A: centred it is A scaled (CKA 1 in float64), but all its
    cosines are 1, so its neighbours are arbitrary: the text says why mutual kNN is at chance."""
    ds, ms = models
    Za = ms[0][1].astype(np.float64)
    u = np.random.default_rng(3).normal(size=D)
    Zb = (u / np.linalg.norm(u) + 1e-5 * Za).astype(np.float32)
    Ac, Bc = Za - Za.mean(0), Zb.astype(np.float64) - Zb.astype(np.float64).mean(0)
    assert np.linalg.norm(Ac.T @ Bc) ** 2 / (np.linalg.norm(Ac.T @ Ac) * np.linalg.norm(Bc.T @ Bc)) > 0.99
    runner = JobRunner()
    v = CompareView(runner)
    qtbot.addWidget(v)
    v.resize(1100, 700)
    v.show()
    try:
        v.set_models(ds, [("A", ms[0][1], ms[0][2]), ("collapsed", Zb, ms[0][2])], Selection(N))
        qtbot.waitUntil(lambda: v.table is not None, timeout=60000)
        assert v.diagnostics[1]["verdict"]["label"] == "complete collapse"
        text = v.sim_notes.text()
        assert "Why A / collapsed seem to disagree" in text
        assert "collapsed is completely collapsed" in text
        assert f"{v.table['pairs'][0]['mutual_knn']:.3f}" in text
    finally:
        runner.cancel_all()
        runner.wait(10000)
