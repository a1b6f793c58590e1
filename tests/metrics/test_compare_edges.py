"""Comparison metrics on the inputs the first tests left out (found by mutation testing): more rows
than one moment block, the float32 product path, the smallest n for debiased CKA, constant
embeddings, SVCCA's kept fraction and its cap at n - 1 directions, RBF CKA's subsample and
bandwidth, and the compare job's parameters. References: float64 numpy written here."""

import math

import numpy as np
import pytest

from explorer.core.jobs import drain
from explorer.metrics import compare as M


def centred(Z):
    Z = np.asarray(Z, np.float64)
    return Z - Z.mean(0)


def linear_cka64(X, Y):
    Xc, Yc = centred(X), centred(Y)
    return np.linalg.norm(Yc.T @ Xc) ** 2 / (np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Yc.T @ Yc))


def debiased_cka64(X, Y):
    """Song et al.'s unbiased HSIC on the n x n Gram matrices with zeroed diagonals."""
    def hsic(K, L):
        n = len(K)
        K, L = K - np.diag(np.diag(K)), L - np.diag(np.diag(L))
        o = np.ones(n)
        return (np.trace(K @ L) + (o @ K @ o) * (o @ L @ o) / ((n - 1) * (n - 2))
                - 2 / (n - 2) * o @ K @ L @ o) / (n * (n - 3))
    Xc, Yc = centred(X), centred(Y)
    K, L = Xc @ Xc.T, Yc @ Yc.T
    return hsic(K, L) / math.sqrt(hsic(K, K) * hsic(L, L))


def procrustes64(X, Y):
    Xc, Yc = centred(X), centred(Y)
    return np.linalg.svd(Xc.T @ Yc, compute_uv=False).sum() / (np.linalg.norm(Xc) * np.linalg.norm(Yc))


def data(n, d1=5, d2=4, seed=0, noise=1.0):
    r = np.random.default_rng(seed)
    X = r.standard_normal((n, d1)) * np.linspace(2, 0.5, d1) + 1.5
    Y = X @ r.standard_normal((d1, d2)) + noise * r.standard_normal((n, d2)) - 4.0
    return X, Y


def test_more_rows_than_one_moment_block():
    assert M.MOMENT_BLOCK == 4096
    X, Y = data(4096 + 1500, seed=1)
    assert M.linear_cka(X, Y) == pytest.approx(linear_cka64(X, Y), rel=1e-10)
    assert M.procrustes_similarity(X, Y) == pytest.approx(procrustes64(X, Y), rel=1e-10)
    # debiased CKA in feature space: tr(K~L~), 1'K~1, 1'L~1, 1'K~L~1 with the row sums kept
    Xc, Yc = centred(X), centred(Y)
    n = len(X)
    nx, ny = (Xc ** 2).sum(1), (Yc ** 2).sum(1)

    def h(A, B, na, nb):
        ka, kb = A @ A.sum(0) - na, B @ B.sum(0) - nb
        tr = np.linalg.norm(A.T @ B) ** 2 - (na * nb).sum()
        sa, sb = ka.sum(), kb.sum()
        return (tr + sa * sb / ((n - 1) * (n - 2)) - 2 / (n - 2) * (ka * kb).sum()) / (n * (n - 3))
    want = h(Xc, Yc, nx, ny) / math.sqrt(h(Xc, Xc, nx, nx) * h(Yc, Yc, ny, ny))
    assert M.debiased_cka(X, Y) == pytest.approx(want, rel=1e-8)
    m = M.cross_moments(X, Y)
    np.testing.assert_allclose(m["nx"].numpy(), nx, rtol=1e-12)
    np.testing.assert_allclose(m["ny"].numpy(), ny, rtol=1e-12)
    np.testing.assert_allclose(m["xy"].numpy(), Xc.T @ Yc, rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(m["sx"].numpy(), 0, atol=1e-8)
    np.testing.assert_allclose(m["sy"].numpy(), 0, atol=1e-8)
    assert m["n"] == n


def test_float32_products_for_big_inputs_stay_close(monkeypatch):
    # above FLOAT64_BELOW = n (d1 + d2)^2 the products run in float32 (summed in float64):
    # lower the bound so this small input takes that path
    X, Y = data(700, seed=2)
    monkeypatch.setattr(M, "FLOAT64_BELOW", 0)
    m = M.cross_moments(X, Y)
    assert m["xx"].dtype.is_floating_point
    np.testing.assert_allclose(m["xy"].numpy(), centred(X).T @ centred(Y), rtol=1e-5, atol=1e-3)
    assert M.linear_cka(X, Y) == pytest.approx(linear_cka64(X, Y), rel=1e-5)
    assert M.linear_cka(X, Y) != pytest.approx(linear_cka64(X, Y), rel=1e-13)   # really float32


def test_debiased_cka_needs_four_rows():
    X, Y = data(4, d1=3, d2=2, seed=3)
    assert M.debiased_cka(X, Y) == pytest.approx(debiased_cka64(X, Y), rel=1e-8)
    assert math.isnan(M.debiased_cka(X[:3], Y[:3]))
    assert M.linear_cka(X[:3], Y[:3]) == pytest.approx(linear_cka64(X[:3], Y[:3]), rel=1e-10)


def test_constant_embeddings_give_nan_not_a_number_by_accident():
    X, _ = data(50, seed=4)
    C = np.full((50, 3), 2.0)
    for f in (M.linear_cka, M.debiased_cka, M.procrustes_similarity, M.svcca, M.rbf_cka):
        assert math.isnan(f(X, C)), f.__name__
        assert math.isnan(f(C, X)), f.__name__


def svcca64(X, Y, keep):
    def reduce(Z):
        Zc = centred(Z)
        U, s, _ = np.linalg.svd(Zc, full_matrices=False)
        k = int(np.searchsorted(np.cumsum(s ** 2) / (s ** 2).sum(), keep - 1e-12) + 1)
        k = max(1, min(k, len(Z) - 1, int((s ** 2 > s[0] ** 2 * 1e-12).sum())))
        return U[:, :k]
    qa, qb = reduce(X), reduce(Y)
    return np.clip(np.linalg.svd(qa.T @ qb, compute_uv=False), 0, 1).mean()


def test_svcca_kept_fraction_and_cap():
    X, Y = data(300, d1=8, d2=6, seed=5, noise=2.0)
    for keep in (0.5, 0.9, 0.99, 1.0):
        assert M.svcca(X, Y, keep=keep) == pytest.approx(svcca64(X, Y, keep), rel=1e-7), keep
    assert M.svcca(X, Y, keep=0.5) != pytest.approx(M.svcca(X, Y, keep=0.99), rel=1e-3)
    # fewer rows than dimensions: at most n - 1 directions (the centred data has rank n - 1)
    r = np.random.default_rng(6)
    Xs, Ys = r.standard_normal((8, 20)), r.standard_normal((8, 15))
    assert M.svcca(Xs, Ys) == pytest.approx(svcca64(Xs, Ys, 0.99), rel=1e-6)
    # rank-deficient: the near-zero directions are dropped
    low = r.standard_normal((100, 2)) @ r.standard_normal((2, 10))
    assert M.svcca(low, low @ r.standard_normal((10, 10))) == pytest.approx(1.0, abs=1e-6)


def rbf_cka64(X, Y, frac):
    def K(Z):
        Z = centred(Z)
        D2 = ((Z[:, None] - Z[None]) ** 2).sum(-1)
        iu = np.triu_indices(len(Z), 1)
        s = frac * np.median(np.sqrt(D2[iu]))
        K = np.exp(-D2 / (2 * s * s))
        H = np.eye(len(Z)) - 1.0 / len(Z)
        return H @ K @ H
    Kc, Lc = K(X), K(Y)
    return (Kc * Lc).sum() / math.sqrt((Kc * Kc).sum() * (Lc * Lc).sum())


def test_rbf_cka_bandwidth_and_subsample():
    X, Y = data(240, seed=7, noise=1.5)
    for frac in (0.2, 0.8, 2.0):
        assert M.rbf_cka(X, Y, sigma_fraction=frac) == pytest.approx(rbf_cka64(X, Y, frac), rel=1e-9)
    # max_points rows drawn without replacement by numpy's generator(seed), the same for X and Y
    rows = np.sort(np.random.default_rng(3).choice(240, 100, replace=False))
    want = rbf_cka64(X[rows], Y[rows], 0.8)
    assert M.rbf_cka(X, Y, max_points=100, seed=3) == pytest.approx(want, rel=1e-9)
    assert M.rbf_cka(X, Y, max_points=240) == pytest.approx(rbf_cka64(X, Y, 0.8), rel=1e-9)
    assert M.rbf_cka(X, Y, max_points=None) == pytest.approx(rbf_cka64(X, Y, 0.8), rel=1e-9)


def knn_cos(Z, k, rows=None):
    U = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    S = U @ U.T
    np.fill_diagonal(S, -np.inf)
    idx = np.argsort(-S, 1, kind="stable")[:, :k]
    return idx if rows is None else idx[rows]


def test_compare_job_uses_its_parameters():
    X, Y = data(160, d1=6, d2=5, seed=8, noise=1.0)
    X, Y = X.astype(np.float32), Y.astype(np.float32)
    p = M.CompareParams(knn_k=12, mutual_k=4, knn_points=None, rbf_max_points=None,
                        rbf_sigma_fraction=0.5, svcca_keep=0.8, seed=1)
    res = drain(M.compare(X, Y, p))
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    assert res["linear_cka"] == pytest.approx(linear_cka64(X64, Y64), rel=1e-6)
    assert res["debiased_cka"] == pytest.approx(debiased_cka64(X64, Y64), rel=1e-5)
    assert res["procrustes_similarity"] == pytest.approx(procrustes64(X64, Y64), rel=1e-6)
    assert res["svcca"] == pytest.approx(svcca64(X64, Y64, 0.8), rel=1e-5)
    assert res["rbf_cka"] == pytest.approx(rbf_cka64(X64, Y64, 0.5), rel=1e-5)
    a, b = knn_cos(X64, 12), knn_cos(Y64, 12)
    jac = np.array([len(set(a[i]) & set(b[i])) / len(set(a[i]) | set(b[i])) for i in range(160)])
    mut = np.array([len(set(a[i, :4]) & set(b[i, :4])) / 4 for i in range(160)])
    np.testing.assert_allclose(res["knn_jaccard"], jac, rtol=1e-6)
    assert res["knn_jaccard_mean"] == pytest.approx(jac.mean())
    assert res["mutual_knn"] == pytest.approx(mut.mean())
    s = res["sampling"]
    assert s["knn_points"] == 160 and s["rbf_points"] == 160 and s["knn_method"] == "exact"
    assert s["knn_jaccard_mean_se"] == 0.0 and s["mutual_knn_se"] == 0.0
    assert res["n"] == 160 and res["dims"] == [6, 5]
    np.testing.assert_array_equal(res["knn_rows"], np.arange(160))
    # sampled: standard errors of the two means over the q sampled points
    q = drain(M.compare(X, Y, M.CompareParams(knn_k=12, mutual_k=4, knn_points=60, rbf_max_points=50, seed=2)))
    rows = np.sort(np.random.default_rng(2).choice(160, 60, replace=False))
    np.testing.assert_array_equal(q["knn_rows"], rows)
    jr, mr = jac[rows], mut[rows]
    assert q["knn_jaccard_mean"] == pytest.approx(jr.mean())
    assert q["mutual_knn"] == pytest.approx(mr.mean())
    assert q["sampling"]["knn_jaccard_mean_se"] == pytest.approx(jr.std(ddof=1) / math.sqrt(60))
    assert q["sampling"]["mutual_knn_se"] == pytest.approx(mr.std(ddof=1) / math.sqrt(60))
    assert q["sampling"]["knn_points"] == 60 and q["sampling"]["rbf_points"] == 50
    assert np.isnan(q["knn_jaccard"]).sum() == 100
    # too few points for the neighbourhood size
    from explorer.core.errors import InputError

    with pytest.raises(InputError):
        drain(M.compare(X[:13], Y[:13], M.CompareParams(knn_k=12, mutual_k=4)))
    assert drain(M.compare(X[:14], Y[:14], M.CompareParams(knn_k=12, mutual_k=4, knn_points=None)))["n"] == 14
