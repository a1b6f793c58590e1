"""The Analyse menu's tabs (issue 19) against references written here: the truncation curve's
plotted RankMe equals a float64 SVD of the first m columns; the compatibility table equals numpy
brute-force retrieval; the anchors are stratified by label, starred where the map draws them,
and the relative-representation CKA equals linear CKA of the cosine similarities computed
here. Closing a tab cancels its job and drops its subscriptions."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")
from PySide6 import QtCore, QtWidgets  # noqa: E402


def _rankme64(Z) -> float:
    s = np.linalg.svd(np.asarray(Z, np.float64), compute_uv=False)
    p = s / s.sum() + 1e-7
    return float(np.exp(-(p * np.log(p)).sum()))


def _linear_cka64(X, Y) -> float:
    X = np.asarray(X, np.float64) - np.mean(X, 0, dtype=np.float64)
    Y = np.asarray(Y, np.float64) - np.mean(Y, 0, dtype=np.float64)
    return float(np.linalg.norm(Y.T @ X) ** 2 / (np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y)))


def _cos_sims64(Z, anchors):
    U = np.asarray(Z, np.float64)
    U = U / np.linalg.norm(U, axis=1, keepdims=True)
    return U @ U[anchors].T


def _flush_deletes():
    QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.DeferredDelete)
    QtWidgets.QApplication.processEvents()


def _open_vectors(w, tmp_path, Z, y, extra: dict):
    """A labelled vector dataset (its own vectors: "precomputed") plus models given as arrays."""
    np.savez(tmp_path / "d.npz", vectors=Z, labels=y)
    w.open_dataset(str(tmp_path / "d.npz"))
    assert w.wait_until_idle(120)
    for name, V in extra.items():
        w.session.add_model(None, name=name)
        w.session.apply_embedding(name, f"{name}-key", np.ascontiguousarray(V, dtype=np.float32))
        w.session.apply_layout(name, "pca", np.ascontiguousarray(V[:, :2], dtype=np.float32), {})
    assert w.wait_until_idle(120)


def _clusters(rng, n, d, k, spread=0.6):
    y = rng.integers(0, k, n)
    centres = rng.normal(size=(k, d)) * 2
    return (centres[y] + spread * rng.normal(size=(n, d))).astype(np.float32), y


# ------------------------------------------------------------------------------ truncation
def test_truncation_tab_plots_the_rankme_of_the_first_m_dimensions(pca_window, tmp_path):
    from explorer.gui import analysis_actions as analysis

    w = pca_window
    rng = np.random.default_rng(1)
    Z, y = _clusters(rng, 400, 40, 4)
    B = (Z[:, :24] * np.linspace(3, 0.1, 24)).astype(np.float32)  # narrower, decaying spectrum
    _open_vectors(w, tmp_path, Z, y, {"B": B})
    view = analysis.open_truncation(w, ["precomputed", "B"])
    assert w.wait_until_idle(300)
    assert view.result is not None, view.status.text()
    for name, M in (("precomputed", Z), ("B", B)):
        dims = [8, 16, 32, M.shape[1]] if M.shape[1] > 32 else [8, 16, M.shape[1]]
        x, plotted = view.curves[(name, "rankme")].getData()
        np.testing.assert_allclose(x, np.log2(dims))
        np.testing.assert_allclose(plotted, [_rankme64(M[:, :m]) for m in dims], rtol=1e-4)
        acc = view.curves[(name, "knn_accuracy")].getData()[1]
        assert np.all((acc >= 0) & (acc <= 100)) and len(acc) == len(dims)
        assert view.curves[(name, "linear_probe_accuracy")].opts["pen"].style() == QtCore.Qt.PenStyle.DashLine
    assert view.table.rowCount() == 4 + 3
    # the tab shows the models by name in the legend and the x axis in dimensions
    assert "first m dimensions" in view.plots["rankme"].getAxis("bottom").labelText


# ------------------------------------------------------------------------------ compatibility
def _brute_topk(Q, G, yq, yg, k):
    Qn = Q.astype(np.float64) / np.linalg.norm(Q.astype(np.float64), axis=1, keepdims=True)
    Gn = G.astype(np.float64) / np.linalg.norm(G.astype(np.float64), axis=1, keepdims=True)
    hits = 0
    for i in range(len(Qn)):
        s = Gn @ Qn[i]
        top = np.argsort(-s, kind="stable")[:k]
        hits += bool(np.any(yg[top] == yq[i]))
    return hits / len(Qn)


@pytest.mark.parametrize("kind", ["noisy copy", "rotated"])
def test_compatibility_table_matches_brute_force_retrieval(pca_window, tmp_path, kind):
    from explorer.gui import analysis_actions as analysis

    w = pca_window
    rng = np.random.default_rng(2)
    Z, y = _clusters(rng, 300, 12, 5, spread=1.2)
    if kind == "noisy copy":
        New = Z + 0.3 * rng.normal(size=Z.shape).astype(np.float32)
    else:
        New = Z @ np.linalg.qr(rng.normal(size=(12, 12)))[0].astype(np.float32)
    _open_vectors(w, tmp_path, Z, y, {"new": New})
    view = analysis.open_compatibility(w, "precomputed", "new")
    assert w.wait_until_idle(120)
    assert view.result is not None, view.status.text()
    # the documented split: a seeded permutation of the items, its first 20% are the queries
    n_q = int(round(300 * 0.2))
    perm = np.random.default_rng(0).permutation(300)
    q, g = np.sort(perm[:n_q]), np.sort(perm[n_q:])
    models = {"old": Z, "new": New}
    shown = view.table_values()
    for key in ("old-vs-old", "new-vs-new", "new-vs-old", "old-vs-new"):
        qn, gn = key.split("-vs-")
        for c, k in enumerate((1, 5)):
            ref = _brute_topk(models[qn][q], models[gn][g], y[q], y[g], k)
            assert view.result["pairs"][key][f"top{k}"] == pytest.approx(ref, abs=1e-12)
            assert shown[key][c] == pytest.approx(ref, abs=0.0006)  # the table's one decimal of %
    old_self = _brute_topk(Z[q], Z[g], y[q], y[g], 1)
    new_old = _brute_topk(New[q], Z[g], y[q], y[g], 1)
    sentence = view.verdict.text()
    if new_old >= old_self:
        assert sentence.startswith("new can replace precomputed without re-indexing")
    else:
        assert sentence.startswith("new cannot search precomputed's gallery") and "re-embed" in sentence
    assert (kind == "rotated") == (new_old < old_self)  # a rotation breaks the shared space


def test_compatibility_of_different_widths_says_why_in_the_tab(pca_window, tmp_path):
    from explorer.gui import analysis_actions as analysis

    w = pca_window
    rng = np.random.default_rng(3)
    Z, y = _clusters(rng, 120, 10, 3)
    _open_vectors(w, tmp_path, Z, y, {"narrow": Z[:, :6].copy()})
    view = analysis.open_compatibility(w, "precomputed", "narrow")
    assert w.wait_until_idle(60)
    assert view.result is None and "10 and 6 dimensions differ" in view.status.text()


# ------------------------------------------------------------------------------ anchors
def test_anchors_are_stratified_starred_on_every_map_and_compared(pca_window, tmp_path):
    from explorer.gui import analysis_actions as analysis
    from explorer.gui.views.anchor_overlay import overlay_of

    w = pca_window
    rng = np.random.default_rng(4)
    y = np.repeat([0, 1, 2], [150, 100, 50])
    Z = (rng.normal(size=(3, 16))[y] * 2 + rng.normal(size=(300, 16))).astype(np.float32)
    B = (Z[:, :8] @ rng.normal(size=(8, 8)) + 0.1 * rng.normal(size=(300, 8))).astype(np.float32)  # another width
    _open_vectors(w, tmp_path, Z, y, {"B": B})
    base = len(w.session.anchors.changed._slots)
    view = analysis.compare_with_anchors(w, ["precomputed", "B"], k=30)
    assert w.wait_until_idle(120)
    a = w.session.anchors.indices
    assert len(a) == 30 and len(np.unique(a)) == 30
    assert [int((y[a] == c).sum()) for c in range(3)] == [15, 10, 5]  # in proportion to the classes
    assert list(view.anchors) == list(a)
    # starred where the main map draws those items
    w.center_tabs.setCurrentIndex(0)
    ov = overlay_of(w.mapview)
    np.testing.assert_allclose(ov.positions(), w.mapview.xy[a], atol=1e-5)
    # the table: linear CKA of the two models' cosine similarities to the anchors
    row = view.result["pairs"][0]
    assert row["linear_cka"] == pytest.approx(_linear_cka64(_cos_sims64(Z, a), _cos_sims64(B, a)), rel=1e-4)
    assert view.table.columnCount() == 2 and view.table.horizontalHeaderItem(1).text() == "precomputed\nvs\nB"
    assert view.table.item(0, 1).text() == f"{row['linear_cka']:.3f}"
    # a Compare tab opened afterwards stars the anchors on its maps too
    cmp_view = w.compare_models(["precomputed", "B"])
    QtWidgets.QApplication.processEvents()
    for m in cmp_view.maps:
        np.testing.assert_allclose(overlay_of(m).positions(), m.xy[a], atol=1e-5)
    # the current selection as anchors
    w.selection.select([3, 40, 160, 299], source=None)
    view2 = analysis.compare_with_anchors(w, ["precomputed", "B"], use_selection=True)
    assert w.wait_until_idle(120)
    assert list(w.session.anchors.indices) == [3, 40, 160, 299]
    np.testing.assert_allclose(ov.positions(), w.mapview.xy[[3, 40, 160, 299]], atol=1e-5)
    # closing the tab of the anchors shown clears the stars; the older tab's closing changes nothing
    w._close_tab(w.tab_index(view))
    assert list(w.session.anchors.indices) == [3, 40, 160, 299]
    w._close_tab(w.tab_index(view2))
    _flush_deletes()
    assert len(w.session.anchors) == 0 and len(ov.positions()) == 0
    # the Compare tab's maps go with their tab: their overlays no longer listen to the anchors
    n_before = len(w.session.anchors.changed._slots)
    w._close_tab(w.tab_index(cmp_view))
    _flush_deletes()
    assert len(w.session.anchors.changed._slots) == n_before - len(cmp_view.maps) >= base
    w.session.anchors.set([1, 2], 300, "test")  # nothing calls into the deleted maps


# ------------------------------------------------------------------------------ lifetimes
def test_closing_an_analysis_tab_cancels_its_job(pca_window, tmp_path):
    from explorer.gui import analysis_actions as analysis

    w = pca_window
    rng = np.random.default_rng(5)
    Z, y = _clusters(rng, 3000, 256, 10)
    _open_vectors(w, tmp_path, Z, y, {})
    view = analysis.open_truncation(w, ["precomputed"])
    handle = view.handle
    w._close_tab(w.tab_index(view))
    _flush_deletes()
    assert w.wait_until_idle(120)
    assert handle.state == "cancelled"
    assert not (w.message.isVisible() and w.message.level == "error"), w.message.text()


# ------------------------------------------------------------------------------ layer sweep
def _layer_outputs64(ds, checkpoint, layers):
    """Each layer's output for every item, by a forward hook on a freshly built network (the
    sidecar's architecture and preprocessing), spatially averaged: written here, not the app's."""
    import json
    from pathlib import Path

    import torch

    from explorer.encoders.archs import ARCHITECTURES

    side = json.loads(Path(str(checkpoint) + ".json").read_text())
    net = ARCHITECTURES.get(side["arch"]).func(**side.get("arch_kwargs", {}))
    net.load_state_dict(torch.load(checkpoint, weights_only=True))
    net.eval()
    pre = side.get("preprocess") or {}
    mean = torch.tensor(pre.get("mean", (0.5, 0.5, 0.5))).view(1, -1, 1, 1)
    std = torch.tensor(pre.get("std", (0.5, 0.5, 0.5))).view(1, -1, 1, 1)
    got = {name: [] for name in layers}
    hooks = [net.get_submodule(name).register_forward_hook(
        lambda _m, _i, out, name=name: got[name].append(out.mean(dim=(2, 3)) if out.ndim == 4 else out))
        for name in layers]
    with torch.no_grad():
        for s in range(0, len(ds), 256):
            idx = range(s, min(s + 256, len(ds)))
            x = torch.from_numpy(ds.images(idx, int(pre.get("size", 32)))).float().div(255).permute(0, 3, 1, 2)
            net((x - mean) / std)
    for h in hooks:
        h.remove()
    return {name: torch.cat(v).double().numpy() for name, v in got.items()}


def _dims99_64(Z) -> int:
    U = np.asarray(Z, np.float64)
    U = U / np.linalg.norm(U, axis=1, keepdims=True)
    w = np.sort(np.linalg.eigvalsh(np.cov(U, rowvar=False)))[::-1]
    return int(np.searchsorted(np.cumsum(w) / w.sum(), 0.99 - 1e-12) + 1)


def test_layer_sweep_tab_plots_each_layers_rankme_and_opens_its_map(pca_window):
    from explorer.gui import analysis_actions as analysis
    from explorer.core.resources import sample_data_dir

    healthy = sample_data_dir() / "checkpoints" / "healthy.pt"
    if not healthy.exists():
        pytest.skip("sample checkpoints not generated")
    w = pca_window
    w.open_dataset(str(sample_data_dir() / "digits"))
    assert w.wait_until_idle(120)
    w.open_encoder(str(healthy))
    assert w.wait_until_idle(300)
    mid = w.session.current
    layers = ["features.block2", "embed", "projector.2"]
    view = analysis.open_layer_sweep(w, mid, layers)
    assert w.wait_until_idle(600)
    assert view.result is not None, view.status.text()
    ref = _layer_outputs64(w.session.dataset, healthy, layers)
    x, rankme = view.curves["rankme"].getData()
    np.testing.assert_array_equal(x, [0, 1, 2])
    np.testing.assert_allclose(rankme, [_rankme64(ref[n]) for n in layers], rtol=1e-3)
    np.testing.assert_array_equal(view.curves["dims_99"].getData()[1], [_dims99_64(ref[n]) for n in layers])
    # the layer names on the axis, the projector shaded from its first layer on
    ticks = view.plots["accuracy"].getAxis("bottom")._tickLevels[0]
    assert [t.strip() for _x, t in ticks] == ["block2", "embed", "projector.2"]
    assert view.regions and tuple(view.regions[0].getRegion()) == (1.5, 2.5)
    # clicking the first layer opens a model for it; its vectors are that layer's, its map shows
    view.open_layer(0)
    assert w.wait_until_idle(300)
    new = w.session.model()
    assert new.id != mid and new.encoder.layer == "features.block2"
    np.testing.assert_allclose(new.vectors, ref["features.block2"], rtol=1e-3, atol=1e-4)
    assert w.center_tabs.currentIndex() == 0 and w.mapview.n == len(w.session.dataset)
    # the model's own layer is the model itself, and a layer already opened is not opened twice
    n_models = len(w.session.models)
    view.open_layer(1)
    assert w.session.current == mid
    view.open_layer(0)
    assert w.session.current == new.id and len(w.session.models) == n_models


# ------------------------------------------------------------------------------ the menu
def test_the_analyse_menu_says_what_is_missing_instead_of_failing(pca_window, tmp_path):
    w = pca_window
    menu = next(m for m in w.menuBar().findChildren(QtWidgets.QMenu) if m.title() == "&Analyse")
    actions = [a for a in menu.actions() if not a.isSeparator()]
    assert [a.text() for a in actions] == ["&Layer sweep…", "&Truncation curve…", "&Compatibility of two models…",
                                           "Compare with &anchors…"]
    expected = ["Open a dataset and an encoder first", "Embed the dataset first",
                "Compatibility needs two embedded models", "Comparing on anchors needs at least two embedded models"]
    for a, start in zip(actions, expected):
        w.message.show_message("", "", "info")
        a.trigger()
        assert w.message.level == "error" and w.message.text().startswith(start), w.message.text()
    assert w.center_tabs.count() == 1  # no tab opened
    # a labelled dataset with unlabelled items only: compatibility says labels are needed
    rng = np.random.default_rng(6)
    Z = rng.normal(size=(50, 4)).astype(np.float32)
    _open_vectors(w, tmp_path, Z, -np.ones(50, int), {"B": Z[:, ::-1].copy()})
    actions[2].trigger()
    assert w.message.level == "error" and "needs labels with at least two classes" in w.message.text()
