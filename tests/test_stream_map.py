"""The streamed UMAP of issue 22 (explorer.maps.stream): fit a sample, place the rest block by
block. Checked against references written here (numpy brute-force neighbours, float64)."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.core.jobs import drain


def _blobs(n=4000, d=16, c=8, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(c, d)) * 5
    lab = rng.integers(0, c, n)
    return (centres[lab] + rng.normal(size=(n, d))).astype(np.float32), lab


def _exact_cosine_knn(Q, Z, k):
    """Reference: brute-force cosine neighbours in float64 numpy."""
    q = Q.astype(np.float64)
    z = Z.astype(np.float64)
    S = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (z / np.linalg.norm(z, axis=1, keepdims=True)).T
    return np.argsort(-S, axis=1, kind="stable")[:, :k]


@pytest.fixture(scope="module")
def data():
    return _blobs()


@pytest.fixture(scope="module")
def fitted(data):
    """A small map of a 1500-point sample and the sample rows."""
    from explorer.maps import MapParams, make_layout

    Z, _ = data
    rows = np.sort(np.random.default_rng(1).choice(len(Z), 1500, replace=False))
    lay = drain(make_layout(Z[rows], MapParams(n_neighbors=10, n_epochs=60, seed=3, knn_method="exact")))
    return rows, lay.coords


def test_placement_of_a_point_does_not_depend_on_its_block(data, fitted):
    from explorer.maps import MapParams
    from explorer.maps.stream import membership, place_points

    Z, _ = data
    rows, emb = fitted
    rest = np.setdiff1d(np.arange(len(Z)), rows)
    idx = _exact_cosine_knn(Z[rest], Z[rows], 10)
    q = Z[rest].astype(np.float64)
    nb = Z[rows][idx].astype(np.float64)
    d = (1 - np.einsum("id,ijd->ij", q, nb) / (np.linalg.norm(q, axis=1)[:, None] * np.linalg.norm(nb, axis=2)))
    d = np.maximum(d, 0).astype(np.float32)
    p = MapParams(n_neighbors=10, seed=5)
    whole = place_points(emb, idx, d, p, 30, rows=rest)
    parts = np.concatenate([place_points(emb, idx[s:s + 97], d[s:s + 97], p, 30, rows=rest[s:s + 97])
                            for s in range(0, len(rest), 97)])
    np.testing.assert_array_equal(whole, parts)
    assert np.isfinite(whole).all()
    # membership weights: UMAP's exp(-(d - rho) / sigma) with rho = 0 (local connectivity 0),
    # sigma such that the weights of columns 1..k-1 sum to log2(k) (smooth_knn_dist's target,
    # which treats column 0 as the point itself)
    w = membership(idx[:50], d[:50], 10, 1.0)
    np.testing.assert_allclose(w[:, 1:].sum(1), np.log2(10), rtol=1e-3)
    sigma = -d[:50, 1] / np.log(w[:, 1])
    np.testing.assert_allclose(w, np.exp(-d[:50] / sigma[:, None]), rtol=1e-4)
    # placed points land near their exact neighbours' positions: within the spread of the map
    # around the neighbours' own (unweighted) mean position
    centre = emb[idx].mean(1)
    span = np.ptp(emb, axis=0).max()
    err = np.linalg.norm(whole - centre, axis=1)
    assert np.median(err) < 0.03 * span and np.quantile(err, 0.95) < 0.1 * span


def test_streamed_map_blocks_memory_map_and_quality(data, tmp_path):
    from scipy.spatial import cKDTree

    from explorer.maps import MapParams, make_layout
    from explorer.maps.umap import streamed_umap

    Z, lab = data
    p = MapParams(n_neighbors=10, n_epochs=60, seed=2, max_fit_points=2500)
    one = drain(streamed_umap(Z, p, block=len(Z)))
    many = drain(streamed_umap(Z, p, block=300))
    np.testing.assert_array_equal(one.coords, many.coords)
    assert many.info["blocks"] == -(-len(Z) // 300) and many.info["blocks_done"] == many.info["blocks"]
    assert many.info["fitted_on_sample"] == 2500 and many.info["placed_by_transform"] == 1500
    assert many.info["placement_neighbors"]["method"] == "ivf"
    # the same from a memory map, through make_layout (which skips the all-points graph)
    np.save(tmp_path / "z.npy", Z)
    mm = np.load(tmp_path / "z.npy", mmap_mode="r")
    lay = drain(make_layout(mm, p))
    np.testing.assert_array_equal(lay.coords, many.coords)
    # quality: the nearest fitted point in the map of a placed point is from its own blob
    fit = np.zeros(len(Z), bool)
    fit[np.sort(np.random.default_rng(2).choice(len(Z), 2500, replace=False))] = True
    _, j = cKDTree(many.coords[fit]).query(many.coords[~fit])
    assert np.mean(lab[fit][j] == lab[~fit]) > 0.98


def test_sample_search_recall_against_brute_force():
    from explorer.maps.stream import SampleSearch
    from explorer.neighbors.search import recall_at_k

    Z, _ = _blobs(n=12000, d=24, c=20, seed=4)
    Zs, Q = Z[:8000], Z[8000:]
    s = drain(SampleSearch(Zs, "cosine", 12).build(Q[:500]))
    assert s.kind == "ivf"
    idx, dist = drain(s.search(Q))
    ref = _exact_cosine_knn(Q, Zs, 12)
    rec = recall_at_k(idx, ref)
    assert rec >= 0.99
    assert abs(s.info["recall"] - recall_at_k(idx[:500], ref[:500])) < 1e-9
    assert (np.diff(dist, axis=1) >= -1e-6).all()  # ascending distances
    # the distances are the cosine distances of the returned pairs
    q = Q.astype(np.float64)
    nb = Zs[idx].astype(np.float64)
    cos = np.einsum("id,ijd->ij", q, nb) / (np.linalg.norm(q, axis=1)[:, None] * np.linalg.norm(nb, axis=2))
    np.testing.assert_allclose(dist, 1 - cos, atol=1e-5)


def test_cancel_between_blocks_stops_the_placement(data):
    from explorer.maps import MapParams
    from explorer.maps.umap import streamed_umap

    Z, _ = data
    job = streamed_umap(Z, MapParams(n_neighbors=10, n_epochs=30, seed=1, max_fit_points=1000), block=250)
    first = None
    for pr in job:
        if pr.partial is not None and "block 2/" in pr.message:
            first = pr.partial
            break
    assert first is not None
    job.close()
    with pytest.raises(StopIteration):
        next(job)
    placed = np.isfinite(first[:, 0]).sum()
    total_blocks = -(-len(Z) // 250)
    # the sample and at most two blocks are placed; the rest never was
    assert 1000 < placed <= 1000 + 2 * 250 and total_blocks > 2
    assert np.isnan(first[:, 0]).sum() == len(Z) - placed


def test_streamed_pca_of_a_memory_map_is_numpy_pca(tmp_path):
    from explorer.maps import MapParams, make_layout

    rng = np.random.default_rng(7)
    Z = (rng.normal(size=(5000, 12)) * np.linspace(5, 0.5, 12) + 100.0).astype(np.float32)
    np.save(tmp_path / "z.npy", Z)
    mm = np.load(tmp_path / "z.npy", mmap_mode="r")
    from explorer.maps.stream import streamed_pca

    lay = drain(streamed_pca(mm, MapParams(method="pca", n_components=2), block=700))
    assert lay.info["streamed_blocks"] == 8
    # reference: float64 numpy SVD of the centred data, largest loading positive
    X = Z.astype(np.float64)
    Xc = X - X.mean(0)
    _, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    V = Vt[:2] * np.sign(Vt[:2][np.arange(2), np.abs(Vt[:2]).argmax(1)])[:, None]
    np.testing.assert_allclose(lay.coords, Xc @ V.T, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(lay.info["explained_variance_ratio"], (s ** 2 / (s ** 2).sum())[:2], rtol=1e-6)
    # make_layout streams a memory map too
    lay2 = drain(make_layout(mm, MapParams(method="pca")))
    np.testing.assert_allclose(lay2.coords, lay.coords, rtol=1e-5, atol=1e-4)
    # a non-finite row is refused with one sentence
    Z[3210, 4] = np.nan
    np.save(tmp_path / "bad.npy", Z)
    from explorer.core.errors import InputError

    with pytest.raises(InputError, match="row 3210"):
        drain(make_layout(np.load(tmp_path / "bad.npy", mmap_mode="r"), MapParams(method="pca")))


def test_cli_maps_a_large_npy_in_place(tmp_path, monkeypatch, capsys):
    """Above MAP_IN_PLACE_BYTES the CLI memory-maps the file; the map equals the in-memory one."""
    import json

    from explorer.cli import main
    from explorer.commands import project

    Z, _ = _blobs(n=3000, d=8, c=5, seed=9)
    np.save(tmp_path / "z.npy", Z)
    args = ["project", "--vectors", str(tmp_path / "z.npy"), "--method", "pca", "--quiet", "--json"]
    assert main(args + ["--out", str(tmp_path / "a.npy")]) == 0
    monkeypatch.setattr(project, "MAP_IN_PLACE_BYTES", 1000)
    assert isinstance(project.open_vectors_npy(str(tmp_path / "z.npy")), np.memmap)
    capsys.readouterr()
    assert main(args + ["--out", str(tmp_path / "b.npy")]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["info"]
    assert info["streamed_blocks"] == 1
    np.testing.assert_allclose(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"), rtol=1e-4, atol=1e-4)


def test_a_seeded_map_placed_through_hnsw_comes_out_the_same_twice():
    # isotropic rows: the sample's lists carry no structure, so the placement searches an HNSW
    # index of the sample; a seeded map builds it on one thread (hnswlib's multi-threaded
    # build depends on the threads' timing) and so is the same map every time
    pytest.importorskip("hnswlib")
    from explorer.maps import MapParams
    from explorer.maps.umap import streamed_umap

    Z = np.random.default_rng(5).standard_normal((4000, 12)).astype(np.float32)
    p = MapParams(method="umap", max_fit_points=2000, seed=1, n_epochs=20)
    a, b = drain(streamed_umap(Z, p, block=1000)), drain(streamed_umap(Z, p, block=1000))
    assert a.info["placement_neighbors"]["method"] == "hnsw"
    np.testing.assert_array_equal(a.coords, b.coords)
