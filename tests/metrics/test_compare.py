"""Comparison metrics against independent float64 numpy formulas and analytic cases."""

import numpy as np
import pytest

from explorer.core.errors import InputError
from explorer.core.jobs import drain
from explorer.metrics import compare as M


def rng(s=0):
    return np.random.default_rng(s)


def pair(n=400, d1=20, d2=12, noise=1.0, seed=0):
    r = rng(seed)
    X = r.standard_normal((n, d1))
    Y = X @ r.standard_normal((d1, d2)) + noise * r.standard_normal((n, d2)) + 3.0
    return X, Y


def H(n):
    return np.eye(n) - 1.0 / n


def hsic_biased(K, L):
    n = K.shape[0]
    return np.trace(K @ H(n) @ L @ H(n))


def hsic_unbiased(K, L):
    n = K.shape[0]
    K, L = K.copy(), L.copy()
    np.fill_diagonal(K, 0)
    np.fill_diagonal(L, 0)
    o = np.ones(n)
    return (np.trace(K @ L) + (o @ K @ o) * (o @ L @ o) / ((n - 1) * (n - 2)) - 2 / (n - 2) * o @ K @ L @ o) / (n * (n - 3))


def cka(K, L, h):
    return h(K, L) / np.sqrt(h(K, K) * h(L, L))


def test_linear_and_debiased_cka_match_kernel_formulas():
    X, Y = pair()
    K, L = X @ X.T, Y @ Y.T                                   # uncentred on purpose
    assert M.linear_cka(X, Y) == pytest.approx(cka(K, L, hsic_biased), rel=1e-9)
    assert M.debiased_cka(X, Y) == pytest.approx(cka(K, L, hsic_unbiased), rel=1e-7)


def test_cka_invariances():
    X, Y = pair(seed=1)
    Q, _ = np.linalg.qr(rng(2).standard_normal((20, 20)))
    for f in (M.linear_cka, M.debiased_cka, M.rbf_cka):
        assert f(X, X @ Q) == pytest.approx(1.0, abs=1e-9)
        assert f(X, 7.5 * Y) == pytest.approx(f(X, Y), rel=1e-9)


def test_rbf_cka_matches_formula():
    X, Y = pair(n=300, seed=3)

    def K(Z):
        D2 = ((Z[:, None] - Z[None]) ** 2).sum(-1)
        iu = np.triu_indices(len(Z), 1)
        s = 0.8 * np.median(np.sqrt(D2[iu]))
        return np.exp(-D2 / (2 * s * s))

    assert M.rbf_cka(X, Y) == pytest.approx(cka(K(X), K(Y), hsic_biased), rel=1e-9)


def test_procrustes_similarity():
    X, Y = pair(seed=4)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    Xc, Yc = Xc / np.linalg.norm(Xc), Yc / np.linalg.norm(Yc)
    ref = np.linalg.svd(Xc.T @ Yc, compute_uv=False).sum()
    assert M.procrustes_similarity(X, Y) == pytest.approx(ref, rel=1e-9)
    Q, _ = np.linalg.qr(rng(5).standard_normal((20, 20)))
    assert M.procrustes_similarity(X, 3 * X @ Q + 1) == pytest.approx(1.0, abs=1e-9)


def test_svcca_matches_svd_then_cca():
    X, Y = pair(n=600, noise=0.5, seed=6)

    def reduce(Z):
        Zc = Z - Z.mean(0)
        U, s, _ = np.linalg.svd(Zc, full_matrices=False)
        k = int(np.searchsorted(np.cumsum(s ** 2) / (s ** 2).sum(), 0.99) + 1)
        return U[:, :k] * s[:k]

    A, B = reduce(X), reduce(Y)
    qa, _ = np.linalg.qr(A)
    qb, _ = np.linalg.qr(B)
    ref = np.linalg.svd(qa.T @ qb, compute_uv=False).mean()
    assert M.svcca(X, Y) == pytest.approx(ref, rel=1e-7)
    Q, _ = np.linalg.qr(rng(7).standard_normal((20, 20)))
    assert M.svcca(X, X @ Q) == pytest.approx(1.0, abs=1e-7)


def _knn(Z, k):
    U = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    S = U @ U.T
    np.fill_diagonal(S, -np.inf)
    return np.argsort(-S, 1, kind="stable")[:, :k]


def test_mutual_knn_and_jaccard_match_brute_force():
    X, Y = pair(n=300, seed=8)
    a, b = _knn(X, 10), _knn(Y, 10)
    ref = np.mean([len(set(a[i]) & set(b[i])) / 10 for i in range(300)])
    assert M.mutual_knn(X, Y, k=10) == pytest.approx(ref)
    assert M.mutual_knn(X, X, k=10) == 1.0
    a, b = _knn(X, 50), _knn(Y, 50)
    ref_j = [len(set(a[i]) & set(b[i])) / len(set(a[i]) | set(b[i])) for i in range(300)]
    np.testing.assert_allclose(M.knn_jaccard(a, b), ref_j)


def test_compare_job_analytic_cases():
    r = rng(9)
    X = r.standard_normal((1500, 24)).astype(np.float32)
    Q, _ = np.linalg.qr(r.standard_normal((24, 24)))
    res = drain(M.compare(X, (2 * X @ Q).astype(np.float32), M.CompareParams(knn_points=None)))
    for k in M.COMPARE_KEYS:
        assert res[k] == pytest.approx(1.0, abs=1e-4), k
    assert res["knn_jaccard"].shape == (1500,) and np.all(res["knn_jaccard"] > 0.99)
    n, k = 1500, 50
    ind = drain(M.compare(X, r.standard_normal((n, 16)).astype(np.float32), M.CompareParams(knn_points=500)))
    expected = k / (2 * (n - 1) - k)   # E|A∩B| = k^2/(n-1) for independent random k-subsets
    assert ind["knn_jaccard_mean"] == pytest.approx(expected, rel=0.25)
    assert ind["linear_cka"] < 0.1 and ind["mutual_knn"] < 0.05
    assert np.isnan(ind["knn_jaccard"]).sum() == n - 500 and ind["sampling"]["knn_points"] == 500


def test_compare_rejects_mismatched_rows():
    with pytest.raises(InputError):
        drain(M.compare(np.zeros((10, 3)), np.zeros((11, 3))))
