"""PCA, UMAP on our graph, Procrustes, trust and the staged cache, checked against independent
references written here (numpy SVD, umap-learn's own UMAP.fit, analytic cases)."""

import importlib.util
import json

import numpy as np
import pytest

from explorer.core.errors import InputError
from explorer.core.jobs import drain
from explorer.neighbors import KnnParams, knn_graph


def subspace_agreement(A, B):
    """Mean squared cosine of the principal angles between row spaces of A, B (c, D): 1 = same."""
    Qa, _ = np.linalg.qr(A.T)
    Qb, _ = np.linalg.qr(B.T)
    s = np.linalg.svd(Qa.T @ Qb, compute_uv=False)
    return float(np.mean(s ** 2))


def test_pca_matches_numpy_svd_and_beats_pca_lowrank():
    import torch

    from explorer.maps import pca

    rng = np.random.default_rng(0)
    # slowly decaying spectrum: the hard case for few-iteration randomised PCA
    sd = np.linspace(1.3, 1.0, 120)
    X = (rng.normal(size=(4000, 120)) * sd) @ np.linalg.qr(rng.normal(size=(120, 120)))[0] + 5.0
    X = X.astype(np.float32)
    r = pca(X, 2)
    X64 = X.astype(np.float64) - X.astype(np.float64).mean(0)
    _, S, Vt = np.linalg.svd(X64, full_matrices=False)
    assert subspace_agreement(r.components, Vt[:2]) > 0.9999
    np.testing.assert_allclose(r.explained_variance, S[:2] ** 2 / (len(X) - 1), rtol=1e-6)
    np.testing.assert_allclose(r.explained_variance_ratio, S[:2] ** 2 / (S ** 2).sum(), rtol=1e-6)
    np.testing.assert_allclose(r.coords, X64 @ r.components.T, rtol=1e-4, atol=1e-4)
    # sign convention: largest-magnitude loading positive; same data, same picture
    assert (r.components[np.arange(2), np.abs(r.components).argmax(1)] > 0).all()
    np.testing.assert_array_equal(pca(X, 2).coords, r.coords)
    torch.manual_seed(0)
    _, _, V = torch.pca_lowrank(torch.from_numpy(X))  # defaults: q=6, niter=2
    low = subspace_agreement(V[:, :2].T.numpy().astype(np.float64), Vt[:2])
    assert low < 0.9  # the randomised default is visibly off on this spectrum


def test_procrustes_recovers_rotation_scale_translation():
    from explorer.maps import procrustes_align

    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 2))
    th = 1.1
    R = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    for flip in (False, True):
        Rf = R @ np.diag([1, -1]) if flip else R
        Y = 3.7 * X @ Rf + np.array([10.0, -4.0])
        out, info = procrustes_align(Y, X)
        np.testing.assert_allclose(out, X, atol=1e-5)
        assert info["rmsd"] < 1e-5 and abs(info["scale"] - 1 / 3.7) < 1e-9
    _, info = procrustes_align(3.7 * X @ (R @ np.diag([1, -1])), X, allow_reflection=False)
    assert info["rmsd"] > 0.1  # a mirror image cannot be matched by a rotation
    with pytest.raises(InputError):
        procrustes_align(X, X[:10])


def test_procrustes_returned_transform_reproduces_the_aligned_points():
    """s Y R + t with the returned rotation, scale and translation is the aligned layout, and
    for an exact similarity transform they are its inverse (known rotation, scale, shift)."""
    from explorer.maps import procrustes_align

    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 2)) * [3.0, 1.0] + [5.0, -2.0]
    th = -0.7
    R = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    s, t = 2.5, np.array([-7.0, 4.0])
    Y = (X - t) @ R.T / s                              # so that s Y R + t = X exactly
    out, info = procrustes_align(Y, X)
    assert out.dtype == np.float32 and out.shape == X.shape
    np.testing.assert_allclose(info["rotation"], R, atol=1e-9)
    assert info["scale"] == pytest.approx(s, rel=1e-9)
    np.testing.assert_allclose(info["translation"], t, atol=1e-9)
    np.testing.assert_allclose(out, X, atol=1e-4)
    # with noise the fit is inexact, but the transform still reproduces the returned points
    Yn = Y + 0.3 * rng.normal(size=Y.shape)
    out, info = procrustes_align(Yn, X)
    again = info["scale"] * Yn @ np.asarray(info["rotation"]) + np.asarray(info["translation"])
    np.testing.assert_allclose(again, out, atol=1e-4)
    assert info["rmsd"] == pytest.approx(np.sqrt(((again - X) ** 2).sum(1).mean()), rel=1e-6)
    # without scaling the returned scale is 1 and the transform still holds
    out, info = procrustes_align(Yn, X, scale=False)
    assert info["scale"] == 1.0
    again = Yn @ np.asarray(info["rotation"]) + np.asarray(info["translation"])
    np.testing.assert_allclose(again, out, atol=1e-4)


def test_procrustes_float32_layouts_are_solved_in_float64_and_rotations_kept():
    from explorer.maps import procrustes_align

    rng = np.random.default_rng(3)
    X = rng.normal(size=(500, 2)).astype(np.float32) * 100 + 1000   # float32 map coordinates
    Y = rng.normal(size=(500, 2)).astype(np.float32) * 0.01 + 5
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    Y0, X0 = Y64 - Y64.mean(0), X64 - X64.mean(0)
    U, S, Vt = np.linalg.svd(Y0.T @ X0)
    R, s = U @ Vt, S.sum() / (Y0 ** 2).sum()
    _, info = procrustes_align(Y, X)
    assert info["scale"] == pytest.approx(s, rel=1e-12)
    np.testing.assert_allclose(info["translation"], X64.mean(0) - s * Y64.mean(0) @ R, rtol=1e-12)
    # a proper rotation is kept as it is when reflections are not allowed
    for seed in range(20):
        th = np.random.default_rng(seed).uniform(0, 2 * np.pi)
        Rt = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
        _, info = procrustes_align(X64 @ Rt.T, X64, allow_reflection=False)
        np.testing.assert_allclose(info["rotation"], Rt, atol=1e-9)
        assert info["rmsd"] < 1e-9


def test_procrustes_without_reflection_is_the_best_rotation():
    """Kabsch: for a mirror image and allow_reflection=False, the best proper rotation is
    U diag(1, det(U V^T)) V^T with scale (s1 - s2) / ||Y0||^2; written here from the SVD."""
    from explorer.maps import procrustes_align

    rng = np.random.default_rng(4)
    for c in (2, 3):                                   # 2-D and 3-D maps
        X = rng.normal(size=(300, c)) * np.linspace(2.0, 0.5, c)
        Q, _ = np.linalg.qr(rng.normal(size=(c, c)))
        Q = Q if np.linalg.det(Q) > 0 else -Q if c % 2 else Q @ np.diag([1.0] * (c - 1) + [-1.0])
        mirror = np.diag([1.0] * (c - 1) + [-1.0])
        Y = 0.3 * X @ mirror @ Q + 4.0 + 0.05 * rng.normal(size=(300, c))
        Y0, X0 = Y - Y.mean(0), X - X.mean(0)
        U, S, Vt = np.linalg.svd(Y0.T @ X0)
        assert np.linalg.det(U @ Vt) < 0
        R = U @ mirror @ Vt
        s = (S[:-1].sum() - S[-1]) / (Y0 ** 2).sum()
        out, info = procrustes_align(Y, X, allow_reflection=False)
        assert np.linalg.det(np.asarray(info["rotation"])) == pytest.approx(1.0)
        np.testing.assert_allclose(info["rotation"], R, atol=1e-10)
        assert info["scale"] == pytest.approx(s, rel=1e-10)
        np.testing.assert_allclose(out, s * Y0 @ R + X.mean(0), atol=1e-5)
    # a layout of identical points: nothing to scale, no division by zero
    out, info = procrustes_align(np.ones((10, 3)), X[:10])
    assert info["scale"] == 1.0 and np.isfinite(out).all()


def test_trust_analytic_and_against_sets():
    from explorer.maps import projection_trust

    # points on a line embedded in 5-D; a layout that is the same line reversed and scaled
    t = np.arange(50, dtype=np.float64)
    H = np.zeros((50, 5))
    H[:, 0] = t + 0.01 * t ** 2  # unequal gaps: no ties
    hk = np.argsort(np.abs(H[:, None, 0] - H[None, :, 0]) + np.eye(50) * 1e9, axis=1)[:, :4]
    layout = np.stack([-2 * H[:, 0], np.zeros(50)], 1)
    np.testing.assert_array_equal(projection_trust(hk, layout), np.ones(50, np.float32))
    # random layout: compare with a direct set computation
    rng = np.random.default_rng(2)
    Y = rng.normal(size=(50, 2))
    D = ((Y[:, None] - Y[None]) ** 2).sum(-1) + np.eye(50) * 1e9
    lk = np.argsort(D, axis=1)[:, :4]
    want = np.array([len(set(hk[i]) & set(lk[i])) / 4 for i in range(50)])
    np.testing.assert_allclose(projection_trust(hk, Y), want)


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 12)) * 4
    labels = rng.integers(0, 4, 500)
    X = (centers[labels] + rng.normal(size=(500, 12))).astype(np.float32)
    return X


def blobs_labels():
    rng = np.random.default_rng(0)
    rng.normal(size=(4, 12))
    return rng.integers(0, 4, 500)


@pytest.mark.slow
def test_umap_on_our_graph_is_umap_learn_bit_for_bit(blobs):
    import umap

    from explorer.maps import MapParams, _umap_inputs, umap_layout

    knn = drain(knn_graph(blobs, KnnParams(k=9, metric="cosine", method="exact")))
    p = MapParams(n_neighbors=10, min_dist=0.2, n_epochs=20, seed=7, optimizer="umap-learn")
    seen = []
    lay = drain(umap_layout(blobs, knn, p), on_progress=lambda pr: seen.append(pr))
    assert lay.coords.shape == (500, 2) and lay.coords.dtype == np.float32 and np.isfinite(lay.coords).all()
    for name in ("n_neighbors", "min_dist", "metric", "n_epochs", "seed", "init"):
        assert name in lay.params
    assert lay.info["n_epochs"] == 20 and lay.info["graph_method"] == "exact" and lay.method == "umap"
    # the recipe shown to the user names the settings of the reference fit below
    for part in ("n_neighbors=10, min_dist=0.2", "n_epochs=20", "init='spectral'", "random_state=7", "metric='cosine'"):
        assert part in lay.info["reproduce"], part
    assert any(pr.partial is not None and pr.total == 20 for pr in seen)  # per-epoch progress
    # independent reference: umap-learn's own fit on the same graph (the notebook recipe)
    ki, kd = _umap_inputs(knn, 10)
    ref = umap.UMAP(n_neighbors=10, min_dist=0.2, n_epochs=20, random_state=7, metric="cosine",
                    precomputed_knn=(ki, kd), force_approximation_algorithm=True).fit(blobs)
    np.testing.assert_array_equal(lay.coords, ref.embedding_)
    # large-N path: fit on a sample, place the rest with transform
    lay2 = drain(umap_layout(blobs, knn, MapParams(n_neighbors=10, n_epochs=20, seed=7, max_fit_points=300,
                                                   optimizer="umap-learn")))
    assert lay2.info["fitted_on_sample"] == 300 and lay2.info["placed_by_transform"] == 200
    assert lay2.info["blocks"] == lay2.info["blocks_done"] >= 1
    sec = lay2.info["seconds"]  # each stage's time, for the benchmark notes and the job log
    assert {"sample_graph", "sample_fit", "sample_index", "place", "total"} <= set(sec)
    assert all(isinstance(v, float) and 0 <= v <= sec["total"] for v in sec.values())
    assert np.isfinite(lay2.coords).all()
    # placed points land in their own blob: the nearest fitted point in the map has its label
    from scipy.spatial import cKDTree

    fit = np.zeros(500, bool)
    fit[np.sort(np.random.default_rng(7).choice(500, 300, replace=False))] = True
    labels = blobs_labels()
    _, j = cKDTree(lay2.coords[fit]).query(lay2.coords[~fit])
    assert np.mean(labels[fit][j] == labels[~fit]) > 0.95
    # cancellation between epochs
    job = umap_layout(blobs, knn, p)
    for pr in job:
        if pr.total == 20 and pr.done >= 2:
            break
    job.close()


def test_staged_cache_recomputes_only_what_changed(tmp_path, blobs):
    from explorer.maps import STATS, MapParams, cached_layout
    from explorer.store import Workspace

    ws = Workspace(tmp_path / "w.h5")
    ws.put("embeddings", "e1", {"vectors": blobs}, {"model": "m", "layer": "l", "dataset": "d"})
    p = MapParams(n_neighbors=8, n_epochs=5, seed=0, knn_method="exact")
    before = STATS.copy()

    def delta():
        return {k: STATS[k] - before[k] for k in ("knn", "layout")}

    k1, l1 = drain(cached_layout(ws, "e1", p))
    assert delta() == {"knn": 1, "layout": 1}
    k2, l2 = drain(cached_layout(ws, "e1", p))
    assert delta() == {"knn": 1, "layout": 1} and k2 == k1
    np.testing.assert_array_equal(l1.coords, l2.coords)
    _, l3 = drain(cached_layout(ws, "e1", MapParams(n_neighbors=8, n_epochs=5, seed=0, knn_method="exact", min_dist=0.5)))
    assert delta() == {"knn": 1, "layout": 2}
    drain(cached_layout(ws, "e1", MapParams(n_neighbors=6, n_epochs=5, seed=0, knn_method="exact")))
    assert delta() == {"knn": 1, "layout": 3}  # a smaller k reuses the stored graph
    drain(cached_layout(ws, "e1", MapParams(n_neighbors=8, n_epochs=5, seed=0, knn_method="exact", metric="euclidean")))
    assert delta() == {"knn": 2, "layout": 4}
    assert len(ws.list("knn")) == 2 and len(ws.list("layouts")) == 4
    rec = ws.get("layouts", k1)
    assert rec.attrs["params"]["min_dist"] == 0.1 and rec.attrs["embedding"] == "e1"
    _, pl = drain(cached_layout(ws, "e1", MapParams(method="pca")))
    assert pl.coords.shape == (500, 2) and len(pl.info["explained_variance_ratio"]) == 2
    assert delta() == {"knn": 2, "layout": 5}  # a PCA map needs no graph


def test_cli_project(tmp_path, blobs, capsys):
    from explorer.cli import main
    from explorer.store import Workspace

    path = tmp_path / "Z.npy"
    np.save(path, blobs)
    out = tmp_path / "map.npy"
    assert main(["project", "--vectors", str(path), "--method", "pca", "--dims", "3", "--out", str(out), "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["dims"] == 3 and np.load(out).shape == (500, 3)
    ws = Workspace(tmp_path / "w.h5")
    ws.put("embeddings", "a", {"vectors": blobs}, {"model": "m1", "layer": "x", "dataset": "d"})
    ws.put("embeddings", "b", {"vectors": blobs[:, :6].copy()}, {"model": "m2", "layer": "x", "dataset": "d"})
    assert main(["project", "--workspace", str(tmp_path / "w.h5"), "--method", "pca", "--quiet"]) == 2
    assert "several stored embeddings" in capsys.readouterr().err
    assert main(["project", "--workspace", str(tmp_path / "w.h5"), "--model", "m2", "--method", "pca", "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["embedding_key"] == "b"


@pytest.mark.skipif(importlib.util.find_spec("hnswlib") is None,
                    reason="without hnswlib the warm-up also compiles pynndescent (~90 s)")
def test_warmup_reports_its_four_stages_and_their_times():
    from references import run_steps

    from explorer.maps.warmup import warmup

    steps, t = run_steps(warmup(n=300))
    own = [(p.done, p.message) for p in steps if p.total == 4]
    assert own == [(0, "importing umap"), (1, "compiling UMAP kernels"), (2, "compiling pynndescent"), (4, "warm")]
    assert {"import", "umap", "total", "cache_dir"} <= set(t) and t["total"] >= t["umap"] > 0


def test_aligned_umap_keeps_each_point_near_itself_across_snapshots(blobs):
    # three snapshots of the same 500 points (the second slightly moved, the third rotated):
    # AlignedUMAP gives one layout each, and a point stays close to where it was (relative to
    # the map's size), unlike two independent fits, which need not share an orientation
    from explorer.maps import MapParams
    from explorer.maps.align import aligned_umap

    r = np.random.default_rng(4)
    X = blobs.astype(np.float32)
    Q, _ = np.linalg.qr(r.standard_normal((X.shape[1], X.shape[1])))
    snaps = [X, X + 0.05 * r.standard_normal(X.shape).astype(np.float32), (X @ Q).astype(np.float32)]
    lays = drain(aligned_umap(snaps, MapParams(n_neighbors=10, n_epochs=60, seed=0)))
    assert len(lays) == 3 and all(L.shape == (500, 2) and L.dtype == np.float32 and np.isfinite(L).all() for L in lays)
    size = np.linalg.norm(lays[0] - lays[0].mean(0), axis=1).mean()
    for a, b in zip(lays, lays[1:]):
        assert np.linalg.norm(a - b, axis=1).mean() < 0.25 * size
    with pytest.raises(InputError, match="same number of rows"):
        drain(aligned_umap([X, X[:400]], MapParams(n_neighbors=10)))
    with pytest.raises(InputError, match="at least two"):
        drain(aligned_umap([X], MapParams(n_neighbors=10)))
