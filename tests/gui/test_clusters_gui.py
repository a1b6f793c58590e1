"""Compute > Find clusters in the real window on the sample digits: the clusters are
scikit-learn's HDBSCAN of the map on screen, named by their majority digit (checked with a
Counter), drawn at their centres and fading with zoom, coloured, searched and exported by the
"cluster" column; density contours toggle from the View menu and the choice is remembered; a
cancelled clustering job ends cancelled and changes nothing."""

from __future__ import annotations

import csv
import warnings
from collections import Counter

import numpy as np
import pytest

pytest.importorskip("PySide6")

from explorer.core.resources import sample_data_dir  # noqa: E402

SAMPLE = sample_data_dir()
HEALTHY = SAMPLE / "checkpoints" / "healthy.pt"
needs_sample = pytest.mark.skipif(not HEALTHY.exists(), reason="sample checkpoints not generated")


def _hdbscan(X, mcs, ms):
    from sklearn.cluster import HDBSCAN

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return HDBSCAN(min_cluster_size=mcs, min_samples=ms).fit(np.asarray(X, np.float64)).labels_


@needs_sample
def test_find_clusters_on_the_sample_data(pca_window, tmp_path, qtbot):
    from sklearn.metrics import adjusted_rand_score

    w = pca_window
    w.open_dataset(str(SAMPLE / "digits"))
    assert w.wait_until_idle(120)
    w.open_encoder(str(HEALTHY))
    assert w.wait_until_idle(300)
    coords = w.session.model().layouts["pca"]
    assert w.mapview.n == len(coords) == 1797

    # a cancelled run ends cancelled and adds nothing
    h = w.find_clusters()
    h.cancel()
    assert w.wait_until_idle(60)
    assert h.state == "cancelled" and "cluster" not in w.session.dataset.columns()
    assert w.cluster_labels.items == []

    w.find_clusters()
    assert w.wait_until_idle(120)
    ds = w.session.dataset
    col = ds.columns()["cluster"]
    # the partition is sklearn's HDBSCAN of the shown map (1797 points: no sampling), defaults
    # min_cluster_size = ceil(1% of N) = 18, min_samples = 10
    ref = _hdbscan(coords, 18, 10)
    noise = col == "noise"
    np.testing.assert_array_equal(noise, ref < 0)
    assert adjusted_rand_score(col, ref) == 1.0
    # each cluster is named by its majority digit and that digit's share of its points
    digits = np.array(ds.label_names, dtype=object)[ds.labels]
    names = sorted(set(col.tolist()) - {"noise"})
    assert len(names) == len(set(ref.tolist()) - {-1}) >= 5
    for name in names:
        members = digits[col == name]
        value, count = Counter(members.tolist()).most_common(1)[0]
        assert name.split(": ", 1)[1] == f"{value} ({count / len(members):.0%})"
    # coloured by it, names on the map
    assert w.color_combo.currentText() == "cluster"
    if len(names) <= 20:
        assert sorted(e[0] for e in w.mapview.legend_entries) == sorted(names + ["noise"] * bool(noise.any()))
    labels = w.cluster_labels
    assert sorted(labels.names) == sorted(n.split(": ", 1)[1] for n in names)
    shown = labels.visible_names()
    assert shown, "no cluster name is drawn on the map"
    # each drawn name sits on its cluster: a member of it, near its coordinate-wise median
    assert len(labels.anchors) == len(names)
    for k, (x, y) in enumerate(labels.anchors):
        d = np.hypot(coords[:, 0] - x, coords[:, 1] - y)
        assert d.min() < 1e-4 and int(col[d.argmin()].split(":")[0]) == k
    # zoomed far in on one name, fewer names are in view; zoomed out, the biggest shows
    w.mapview.reset_view()
    labels.update_visibility()
    full = set(labels.visible_names())
    biggest = labels.items[0].textItem.toPlainText()
    assert biggest in full
    x, y = labels.anchors[0]
    w.mapview.vb.setRange(xRange=(x - 0.01, x + 0.01), yRange=(y - 0.01, y + 0.01), padding=0)
    labels.update_visibility()
    assert set(labels.visible_names()) == {biggest}

    # search and export by the cluster column
    first = names[0]
    w.search.setText(f"cluster={first}")
    np.testing.assert_array_equal(w.mapview.filter_mask, col == first)
    w.selection.select(np.flatnonzero(col == first), source=None)
    out = tmp_path / "sel.csv"
    w.export_selection(str(out))
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(rows) == int((col == first).sum()) and {r["cluster"] for r in rows} == {first}

    # contours: off below 50k points by default, toggled from the View menu, remembered
    from explorer.gui.settings import settings

    assert not w.contours_action.isChecked() and not w.contours.drawn()
    w.contours_action.trigger()
    assert w.contours.drawn() and str(settings().value("map/contours")) == "on"
    # each contour encloses about its share of the points (densest 10% ... 90%)
    w.contours_action.trigger()
    assert not w.contours.drawn() and str(settings().value("map/contours")) == "off"
    w.grab().save(str(tmp_path / "clusters.png"))


def test_contours_follow_the_layout_and_the_setting(pca_window, tmp_path):
    """On by default above 50,000 points; an explicit choice wins; the drawn lines are the
    density's iso-lines (the outermost bounds the densest 90% of the map)."""
    from explorer.gui.settings import settings

    w = pca_window
    settings().remove("map/contours")
    rng = np.random.default_rng(0)
    Z = np.zeros((60_000, 3), np.float32)
    Z[:, :2] = rng.normal(size=(60_000, 2))
    Z[:, 2] = rng.normal(size=60_000) * 1e-3
    np.save(tmp_path / "z.npy", Z)
    w.open_dataset(str(tmp_path / "z.npy"))
    assert w.wait_until_idle(120)
    assert w.mapview.n == 60_000
    assert w.contours_action.isChecked() and w.contours.drawn()
    outer = w.contours.curves[0]
    xy = w.mapview._xy
    xs, ys = outer.xData, outer.yData
    ok = np.isfinite(xs)
    # PCA of an isotropic 2-D normal (plus a thin third axis) is a rotated standard normal:
    # its densest 90% is the disc of radius sqrt(-2 ln 0.1) around the mean
    r = np.hypot(xs[ok] - xy[:, 0].mean(), ys[ok] - xy[:, 1].mean())
    assert abs(np.median(r) - np.sqrt(-2 * np.log(0.1))) < 0.15
    w.contours_action.trigger()  # off, remembered: the next map of any size has none
    assert str(settings().value("map/contours")) == "off"
    w.mapview.set_layout(w.mapview._coords)
    assert not w.contours_action.isChecked() and not w.contours.drawn()
    settings().remove("map/contours")


def test_colour_codes_of_string_columns_are_np_uniques():
    """The cluster column (a million strings) is coded with a dict pass; the names and codes
    must be exactly np.unique's, as before."""
    from explorer.gui.palette import colour_codes

    rng = np.random.default_rng(0)
    for col in (np.array(["b", "a", "", "é", "Z", "10", "9", "noise"], dtype=object)[rng.integers(0, 8, 20_000)],
                np.array([1.5, "x", None, "a"], dtype=object)[rng.integers(0, 4, 1000)],
                np.array([], dtype=object)):
        kind, codes, names = colour_codes(col)
        ref_names, ref_codes = np.unique(col.astype(str), return_inverse=True)
        assert kind == "categorical" and names == [str(x) for x in ref_names]
        np.testing.assert_array_equal(codes, ref_codes.reshape(-1))
