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


def test_all_points_through_the_chosen_engine_match_brute_force_and_report_each_step():
    # knn_points=None with a method other than "exact" goes through explorer.neighbors'
    # knn_graph (cosine, the chosen method): the job must still give the brute-force answer
    # (recall is measured there, and at n = 300 the automatic choice is exact), say which
    # method it used, and report its five steps and their timings
    n, k, mk = 300, 12, 4
    X, Y = related_pair(n, seed=14)
    job = M.compare(X, Y, M.CompareParams(knn_points=None, knn_k=k, mutual_k=mk, knn_method="auto"))
    steps = []
    try:
        while True:
            steps.append(next(job))
    except StopIteration as stop:
        res = stop.value
    own = [(p.done, p.total, p.message) for p in steps if p.total == 5]  # (the engine's own steps between)
    assert own == [(0, 5, "second moments"), (1, 5, "RBF CKA"), (2, 5, "neighbours in A"),
                   (3, 5, "neighbours in B"), (5, 5, "done")]
    rows = np.arange(n)
    a, b = cosine_knn(X, rows, k), cosine_knn(Y, rows, k)
    inter = overlaps(a, b)
    np.testing.assert_allclose(res["knn_jaccard"], inter / (2 * k - inter), rtol=1e-6)
    assert res["mutual_knn"] == pytest.approx((overlaps(a[:, :mk], b[:, :mk]) / mk).mean(), abs=1e-12)
    assert res["sampling"]["knn_method"] == "auto"
    assert set(res["timings"]) == {"linear", "svcca", "rbf_cka", "knn", "overlap"}


def test_standalone_mutual_knn_on_sampled_points_uses_the_jobs_sample():
    # mutual_knn(max_points=q, seed=s) averages over q random points: the same points as the
    # comparison job's knn_rows for that seed, checked by brute force on those rows
    n, q, mk = 700, 90, 6
    X, Y = related_pair(n, seed=15)
    rows = drain(M.compare(X, Y, M.CompareParams(knn_points=q, knn_k=mk, mutual_k=mk, seed=4)))["knn_rows"]
    want = (overlaps(cosine_knn(X, rows, mk), cosine_knn(Y, rows, mk)) / mk).mean()
    everyone = (overlaps(cosine_knn(X, np.arange(n), mk), cosine_knn(Y, np.arange(n), mk)) / mk).mean()
    got = M.mutual_knn(X, Y, k=mk, max_points=q, seed=4)
    assert got == pytest.approx(want, abs=1e-12) and abs(want - everyone) > 1e-6
    assert M.mutual_knn(X, Y, k=mk, max_points=n + 5, seed=4) == pytest.approx(everyone, abs=1e-12)
