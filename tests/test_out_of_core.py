"""Large workspaces read out of core (issue 20): a record read lazily, its PCA map fitted on a
sample and applied in one streaming pass, compared with numpy references."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.core.jobs import drain
from explorer.store import LazyArray, Workspace
from references import run_steps


def _clusters(n=12000, d=24, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, d)) * 4
    lab = rng.integers(0, 4, n)
    return (centres[lab] + rng.normal(size=(n, d))).astype(np.float32)


def _numpy_pca(S: np.ndarray, X: np.ndarray, c: int = 2) -> np.ndarray:
    """Reference: eigenvectors of the float64 covariance of S, largest loading positive, X projected."""
    S = S.astype(np.float64)
    mu = S.mean(0)
    C = (S - mu).T @ (S - mu) / (len(S) - 1)
    w, V = np.linalg.eigh(C)
    W = V[:, np.argsort(w)[::-1][:c]].T
    W *= np.sign(W[np.arange(c), np.abs(W).argmax(1)])[:, None]
    return (X.astype(np.float64) - mu) @ W.T


@pytest.fixture
def big(tmp_path):
    v = _clusters()
    ws = Workspace(tmp_path / "big.h5")
    ws.put("embeddings", "k", {"vectors": v.astype(np.float16)},
           {"model": "m", "stored_dtype": "float16", "stored_as": {"vectors": "float16"}})
    return tmp_path / "big.h5", v.astype(np.float16).astype(np.float32)


def test_sample_rows_are_runs_spread_over_the_file():
    from explorer.scale.out_of_core import sample_rows

    r = sample_rows(10_000_000, 100_000, runs=512)
    assert len(r) == 100_000 and np.all(np.diff(r) > 0) and r[-1] < 10_000_000
    assert len(np.flatnonzero(np.diff(r) > 1)) + 1 <= 512  # contiguous runs
    assert np.histogram(r, bins=8, range=(0, 10_000_000))[0].min() > 10_000  # every part of the file
    assert np.array_equal(sample_rows(50, 100), np.arange(50))


def test_pca_of_a_lazy_record_fitted_on_a_sample_matches_numpy(big):
    from explorer.scale.out_of_core import pca_sampled_job, sample_rows

    path, want = big
    Z = Workspace(path).lazy("embeddings", "k", "vectors")
    assert isinstance(Z, LazyArray) and Z.dtype == np.float32
    lay = drain(pca_sampled_job(Z, sample=3000, block_rows=1000))
    rows = sample_rows(len(want), 3000)
    ref = _numpy_pca(want[rows], want)
    assert lay.coords.shape == (len(want), 2) and lay.info["fitted_on_sample"] == 3000
    np.testing.assert_allclose(lay.coords, ref, atol=2e-3 * np.abs(ref).max())
    full = drain(pca_sampled_job(Z, sample=10 ** 6))  # the sample is everything: the exact PCA
    assert full.info["fitted_on_sample"] == 0
    np.testing.assert_allclose(full.coords, _numpy_pca(want, want), atol=2e-3 * np.abs(ref).max())


def test_scan_neighbors_is_the_exact_search(big):
    from explorer.scale.out_of_core import scan_neighbors

    path, want = big
    Z = Workspace(path).lazy("embeddings", "k", "vectors")
    idx, s = drain(scan_neighbors(Z, want[17], k=7, metric="cosine", exclude=17, block_rows=1000))
    X = want.astype(np.float64)
    cos = X @ X[17] / (np.linalg.norm(X, axis=1) * np.linalg.norm(X[17]))
    cos[17] = -np.inf
    ref = np.argsort(-cos, kind="stable")[:7]
    assert np.array_equal(idx, ref)
    np.testing.assert_allclose(s, cos[ref], rtol=1e-5)


def test_session_maps_a_workspace_opened_out_of_core(big, tmp_path):
    from explorer.data import open_dataset
    from explorer.core.errors import InputError
    from explorer.app.session import Session, diagnose_job, projection_job

    path, want = big
    ds = open_dataset(path, out_of_core=True)
    assert ds.format == "workspace" and ds.kind == "vector" and len(ds) == len(want)
    s = Session(tmp_path / "cache.h5")
    s.set_dataset(ds)
    m = s.model()
    key, Z = drain(s.embed_job(m.id))
    assert key == "k" and isinstance(Z, LazyArray)  # used where it lies: not read into memory
    s.apply_embedding(m.id, key, Z)

    class St:
        n_neighbors, min_dist, metric, seed, dims = 15, 0.1, "cosine", 0, 2

    coords, info = drain(projection_job(s, m.id, "pca", St()))
    np.testing.assert_allclose(coords, _numpy_pca(want, want), atol=2e-3 * np.abs(coords).max())
    assert "PCA of 12,000 points" in info["summary"]
    with pytest.raises(InputError, match="PCA and UMAP maps are"):
        drain(projection_job(s, m.id, "tsne", St()))
    with pytest.raises(InputError, match="read from disk as needed"):
        s.neighbors(m.id, 0)
    d = drain(diagnose_job(s, m.id))
    assert d["on_sample"] == len(want) and d["n"] == len(want)
    assert not Workspace(tmp_path / "cache.h5").list("embeddings")  # nothing copied into the cache
    # below the threshold the same file opens in memory, as any vector file
    small = open_dataset(path)
    assert small.stored_embedding() is None
    np.testing.assert_array_equal(small.vectors(np.array([5, 1, 3])), want[[5, 1, 3]])


# --------------------------------------------------------------------------- disk IVF index


def _brute(X, q, k, metric, exclude=None):
    X, q = X.astype(np.float64), np.asarray(q, np.float64)
    if metric == "cosine":
        s = (X @ q) / (np.linalg.norm(X, axis=1) * np.linalg.norm(q))
    else:
        s = -np.sqrt(((X - q) ** 2).sum(1))
    if exclude is not None:
        s[exclude] = -np.inf
    o = np.lexsort((np.arange(len(X)), -s))[:k]
    return o, s[o]


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_disk_index_finds_the_exact_neighbours_of_what_it_probes(big, tmp_path, metric):
    # built from a lazy workspace record; every list probed -> the exact answer with exact
    # scores; the default nprobe -> recall near what the index predicts; reopened from disk
    # -> the same answers
    from explorer.scale.disk_index import DiskIvf

    path, want = big
    Z = Workspace(path).lazy("embeddings", "k", "vectors")
    steps, ix = run_steps(DiskIvf.build(Z, tmp_path / "ix", metric, sample=3000, block_rows=1000, target=0.9))
    done = [p.fraction for p in steps if p.fraction is not None]
    assert done == sorted(done) and done[-1] == pytest.approx(1.0)
    assert ix.n == len(want) and ix.nlist == 110 and 1 <= ix.nprobe <= ix.nlist  # sqrt(12000)
    assert ix.rows.dtype == np.float16 and sorted(np.asarray(ix.ids)) == list(range(len(want)))
    for i in (0, 4321, 11999):
        idx, sc = ix.search(want[i], k=7, nprobe=ix.nlist, exclude=i)
        bi, bs = _brute(want, want[i], 7, metric, exclude=i)
        np.testing.assert_array_equal(idx, bi)
        np.testing.assert_allclose(sc, bs, rtol=1e-6, atol=1e-6)
    rows = np.random.default_rng(1).choice(len(want), 200, replace=False)
    hits = [len(set(ix.search(want[i], k=10, exclude=i)[0]) & set(_brute(want, want[i], 10, metric, i)[0]))
            for i in rows]
    assert np.mean(hits) / 10 >= min(0.9, ix.predicted_recall) - 0.05
    again = DiskIvf(tmp_path / "ix", source=Z)
    assert (again.nprobe, again.nlist, again.metric) == (ix.nprobe, ix.nlist, metric)
    np.testing.assert_array_equal(again.search(want[5], 5, exclude=5)[0], ix.search(want[5], 5, exclude=5)[0])


def test_disk_index_build_stopped_half_way_leaves_nothing(big, tmp_path):
    from explorer.core.errors import InputError
    from explorer.scale.disk_index import DiskIvf

    path, want = big
    Z = Workspace(path).lazy("embeddings", "k", "vectors")
    job = DiskIvf.build(Z, tmp_path / "ix", "cosine", sample=3000, block_rows=1000)
    while "writing" not in (next(job).message or ""):
        pass
    job.close()
    assert list(tmp_path.glob("ix*")) == []
    with pytest.raises(InputError, match="no neighbour index"):
        DiskIvf(tmp_path / "ix")
    with pytest.raises(InputError, match="cosine or euclidean"):
        next(DiskIvf.build(Z, tmp_path / "ix", "dot"))


def test_umap_of_a_lazy_record_is_the_map_of_its_rows(big):
    # the window's UMAP of an embedding read from disk: fitted on a sample, the rest placed by
    # blocks read from the file; the same map as from the rows in memory (seeded, and exact
    # neighbours: an HNSW index of the sample, built on several threads, is not repeatable)
    from explorer.maps import MapParams
    from explorer.maps.umap import streamed_umap

    path, want = big
    Z = Workspace(path).lazy("embeddings", "k", "vectors")
    p = MapParams(method="umap", max_fit_points=3000, seed=0, n_epochs=60, knn_method="exact")
    a = drain(streamed_umap(Z, p, block=2500))
    b = drain(streamed_umap(want, p, block=2500))
    assert a.info["fitted_on_sample"] == 3000 and a.info["placed_by_transform"] == 9000
    assert np.isfinite(a.coords).all()
    np.testing.assert_array_equal(a.coords, b.coords)
