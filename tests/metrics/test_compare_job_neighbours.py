"""The comparison job's own neighbour path (sampled query points, knn_points, mutual_k < knn_k)
against float64 numpy brute force written here."""

import math

import numpy as np
import pytest

from explorer.core.jobs import drain
from explorer.metrics import compare as M


def cosine_knn(Z, rows, k):
    """k cosine nearest neighbours of Z[rows] among all rows of Z, self excluded (float64)."""
    U = Z.astype(np.float64)
    U = U / np.linalg.norm(U, axis=1, keepdims=True)
    S = U[rows] @ U.T
    S[np.arange(len(rows)), rows] = -np.inf
    return np.argsort(-S, 1, kind="stable")[:, :k]


def overlaps(a, b):
    return np.array([len(set(x) & set(y)) for x, y in zip(a, b)], dtype=np.float64)


def related_pair(n, seed):
    r = np.random.default_rng(seed)
    X = r.standard_normal((n, 16)).astype(np.float32)
    Y = (X @ r.standard_normal((16, 10)) + 1.5 * r.standard_normal((n, 10))).astype(np.float32)
    return X, Y


def test_sampled_mutual_knn_and_jaccard_match_brute_force():
    n, q, k, mk = 900, 150, 30, 7
    X, Y = related_pair(n, seed=11)
    res = drain(M.compare(X, Y, M.CompareParams(knn_points=q, knn_k=k, mutual_k=mk, seed=3)))
    rows = res["knn_rows"]
    assert rows.shape == (q,) and len(np.unique(rows)) == q and rows.min() >= 0 and rows.max() < n
    assert res["sampling"]["knn_points"] == q
    a, b = cosine_knn(X, rows, k), cosine_knn(Y, rows, k)
    mutual = overlaps(a[:, :mk], b[:, :mk]) / mk
    assert res["mutual_knn"] == pytest.approx(mutual.mean(), abs=1e-12)
    assert 0.05 < mutual.mean() < 0.95                     # neither trivial value
    inter = overlaps(a, b)
    jac = inter / (2 * k - inter)
    assert res["knn_jaccard_mean"] == pytest.approx(jac.mean(), rel=1e-9)
    np.testing.assert_allclose(res["knn_jaccard"][rows], jac, rtol=1e-6)
    rest = np.setdiff1d(np.arange(n), rows)
    assert np.isnan(res["knn_jaccard"][rest]).all()
    assert res["sampling"]["mutual_knn_se"] == pytest.approx(mutual.std(ddof=1) / math.sqrt(q), rel=1e-9)
    assert res["sampling"]["knn_jaccard_mean_se"] == pytest.approx(jac.std(ddof=1) / math.sqrt(q), rel=1e-6)


def test_all_points_mutual_knn_matches_brute_force():
    n, k, mk = 400, 20, 5
    X, Y = related_pair(n, seed=12)
    res = drain(M.compare(X, Y, M.CompareParams(knn_points=None, knn_k=k, mutual_k=mk)))
    rows = np.arange(n)
    a, b = cosine_knn(X, rows, k), cosine_knn(Y, rows, k)
    assert res["mutual_knn"] == pytest.approx((overlaps(a[:, :mk], b[:, :mk]) / mk).mean(), abs=1e-12)
    inter = overlaps(a, b)
    np.testing.assert_allclose(res["knn_jaccard"], inter / (2 * k - inter), rtol=1e-6)
    assert res["sampling"]["mutual_knn_se"] == 0.0 and res["sampling"]["knn_points"] == n
    # the standalone function agrees with the job
    assert M.mutual_knn(X, Y, k=mk) == pytest.approx(res["mutual_knn"], abs=1e-12)


def test_mutual_k_above_knn_k_is_refused():
    from explorer.core.errors import InputError

    X, Y = related_pair(100, seed=13)
    with pytest.raises(InputError, match="mutual_k"):
        drain(M.compare(X, Y, M.CompareParams(knn_k=5, mutual_k=6)))
