"""Charts, tags and bookmarks in the real window (issue 19), offscreen.

Brushing a chart greys out exactly the map points numpy says lie outside the brush; selecting
on the map makes the orange bars the selected counts per bar; tags survive a session save and
reopen; a bookmark brings back camera, colouring, selection and brushes, and one whose model is
gone says so in one sentence. Every expected number is computed here from the raw columns."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")
from PySide6 import QtCore, QtWidgets  # noqa: E402

N = 500


@pytest.fixture
def loaded(pca_window, tmp_path):
    w = pca_window
    rng = np.random.default_rng(4)
    np.save(tmp_path / "v.npy", rng.normal(size=(N, 6)).astype(np.float32))
    ink = rng.gamma(2.0, 0.1, N)
    kind = rng.choice(["round", "sharp", "thin", "bold"], N)
    (tmp_path / "meta.csv").write_text("label,ink,kind\n" + "\n".join(
        f"{i % 3},{ink[i]:.6f},{kind[i]}" for i in range(N)) + "\n")
    w.open_dataset(str(tmp_path / "v.npy"), metadata=str(tmp_path / "meta.csv"))
    assert w.wait_until_idle(60)
    assert w.mapview.n == N
    ink = np.round(ink, 6)
    return w, ink, kind


def _flush():
    QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.DeferredDelete)
    QtWidgets.QApplication.processEvents()


def test_brushing_greys_out_the_map_and_selection_fills_the_bars(loaded):
    w, ink, kind = loaded
    charts = w.charts
    ink_chart = charts.add_chart("ink")
    kind_chart = charts.add_chart("kind")
    assert w.mapview.filter_mask is None
    # a drag on the ink histogram, from 0.1 to 0.25 in data units
    vb = ink_chart.plot.getPlotItem().getViewBox()
    ink_chart.drag(QtCore.QPointF(0.1, 0), QtCore.QPointF(0.25, 0), True)
    e = ink_chart.binning.edges
    lo = e[np.searchsorted(e, 0.1, side="right") - 1]
    hi = e[np.searchsorted(e, 0.25, side="left")]
    in_ink = (ink >= lo) & (ink < hi)
    np.testing.assert_array_equal(w.mapview.filter_mask, in_ink)
    lo_r, hi_r = ink_chart.region.getRegion()  # the brush snapped to the bars' edges
    assert np.isclose(lo_r, lo) and np.isclose(hi_r, hi)
    # click "sharp", ctrl-click "thin" on the category chart
    labels = kind_chart.binning.labels
    y = {lab: kind_chart._pos[i] for i, lab in enumerate(labels)}
    kind_chart.click(QtCore.QPointF(1, y["sharp"]), add=False)
    kind_chart.click(QtCore.QPointF(1, y["thin"]), add=True)
    in_kind = np.isin(kind, ["sharp", "thin"])
    np.testing.assert_array_equal(w.mapview.filter_mask, in_ink & in_kind)
    assert (~w.mapview.filter_mask).sum() == N - (in_ink & in_kind).sum()
    assert f"{(in_ink & in_kind).sum():,} of {N:,}" in charts.status.text()
    # each chart's blue bars count what passes the other chart
    assert list(kind_chart.bar_heights("filtered")) == [float(np.sum(in_ink & (kind == lab))) for lab in labels]
    k = len(e) - 1
    ref = [np.sum(in_kind & (ink >= e[i]) & ((ink < e[i + 1]) if i < k - 1 else (ink <= e[i + 1]))) for i in range(k)]
    np.testing.assert_array_equal(ink_chart.bar_heights("filtered"), ref)
    # the search narrows the brushes' greying too
    w.search.setText("kind=thin")
    np.testing.assert_array_equal(w.mapview.filter_mask, in_ink & (kind == "thin"))
    assert list(kind_chart.bar_heights("filtered")) == [float(np.sum(in_ink & (kind == lab) & (kind == "thin")))
                                                        for lab in labels]
    w.search.setText("")
    # a box selection on the map: the orange bars are the selected counts
    xy = w.mapview._xy
    x0, x1 = np.percentile(xy[:, 0], [20, 60])
    y0, y1 = np.percentile(xy[:, 1], [10, 70])
    idx = w.mapview.select_in_rect(x0, x1, y0, y1)
    inside = np.flatnonzero((xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1))
    np.testing.assert_array_equal(np.sort(idx), inside)
    assert list(kind_chart.bar_heights("selected")) == [float(np.sum(kind[inside] == lab)) for lab in labels]
    assert kind_chart.bar_heights("total").tolist() == [float(np.sum(kind == lab)) for lab in labels]
    # clearing the brushes lifts the greying
    charts.clear_button.click()
    assert w.mapview.filter_mask is None
    vb.update()


def test_charts_drop_their_subscriptions_when_destroyed(qtbot):
    from explorer.gui.views.charts_panel import ChartsPanel
    from explorer.app.session import Session

    s = Session.__new__(Session)  # only the signals the panel binds to
    from explorer.core.events import Signal
    from explorer.app.selection import Selection

    s.dataset, s.dataset_changed, s.columns_changed, s.selection = None, Signal(), Signal(), Selection(0)
    before = (len(s.dataset_changed), len(s.columns_changed), len(s.selection.changed))
    p = ChartsPanel()
    p.bind(s)
    assert (len(s.dataset_changed), len(s.columns_changed), len(s.selection.changed)) == tuple(b + 1 for b in before)
    p.deleteLater()
    _flush()
    assert (len(s.dataset_changed), len(s.columns_changed), len(s.selection.changed)) == before
    s.selection.select([], source=None)


def test_tags_and_bookmarks_survive_a_session(loaded, tmp_path, monkeypatch):
    w, ink, kind = loaded
    w.selection.select([3, 5, 8], source=None)
    assert w.tag_selection("odd") == 3
    w.selection.select([5, 400], source=None)
    w.tag_selection("odd")
    w.tag_selection("late")
    assert w.color_combo.findText("tags") >= 0
    w.color_combo.setCurrentText("tags")
    names = [e[0] for e in w.mapview.legend_entries]
    assert "odd" in names and "late, odd" in names
    w.search.setText("tag:odd")
    np.testing.assert_array_equal(np.flatnonzero(w.mapview.filter_mask), [3, 5, 8, 400])
    w.search.setText("")
    # a bookmark: camera, colour, selection, brush
    w.charts.add_chart("kind")
    w.charts.crossfilter.set_keep("kind", ["bold"])
    w.mapview.vb.setRange(xRange=(-1.0, 0.5), yRange=(-0.5, 0.25), padding=0)
    cam = w.camera()
    w.selection.select([1, 2, 3], source=None)
    w.add_bookmark("zoomed")
    # change everything, then step back to it
    w.charts.crossfilter.clear()
    w.color_combo.setCurrentText("label")
    w.selection.clear()
    w.mapview.reset_view()
    w.add_bookmark("wide")
    w.previous_bookmark()
    assert w.session.bookmarks.names[w.session.bookmarks.cursor] == "zoomed"
    assert np.allclose(w.camera(), cam, atol=1e-4 * (cam[1] - cam[0]))
    assert w.color_combo.currentText() == "tags"
    assert list(w.selection.indices) == [1, 2, 3]
    np.testing.assert_array_equal(w.mapview.filter_mask, kind == "bold")
    # save and reopen the session: tags and bookmarks come back
    path = tmp_path / "s.eesession"
    w.save_session(str(path))
    w.open_session(str(path))
    assert w.wait_until_idle(60)
    s = w.session
    assert {n: s.tags.indices(n).tolist() for n in s.tags.names} == {"odd": [3, 5, 8, 400], "late": [5, 400]}
    assert s.bookmarks.names == ["zoomed", "wide"]
    # the charts and their brush at save time (the "zoomed" view) are back, and grey the map
    assert w.charts.crossfilter.state() == {"columns": ["kind"], "brushes": [{"column": "kind", "bins": ["bold"]}]}
    np.testing.assert_array_equal(w.mapview.filter_mask, kind == "bold")
    # a bookmark whose model is gone: one sentence, nothing changes
    b = s.bookmarks.get("wide")
    b.model = "gone model"
    sel = list(s.selection.indices)
    assert w.restore_bookmark("wide") is False
    msg = w.message.text()
    assert msg == "Bookmark “wide” shows the model “gone model”, which is no longer open; open it again to restore this view."
    assert list(s.selection.indices) == sel
