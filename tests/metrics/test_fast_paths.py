"""The blocked / float32 / sampled paths that make the diagnostics and the comparison fast,
each against an independent float64 numpy formula on data that stresses it (large offsets,
constant columns, zero rows, several blocks)."""

import math

import numpy as np
import pytest
import torch

from explorer.core.errors import InputError
from explorer.core.jobs import drain
from explorer.metrics import collapse as C
from explorer.metrics import compare as M
from explorer.metrics import intrinsic as I
from explorer.metrics.diagnose import DiagnoseParams, diagnose


def rng(s=0):
    return np.random.default_rng(s)


def l2n(Z):
    return Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)


def stress(n=2500, d=40, seed=0, zero_row=False):
    r = rng(seed)
    Z = r.standard_normal((n, d)) * r.uniform(0.01, 3, d) + r.uniform(-50, 50, d)
    if zero_row:
        Z[10] = 0.0                                 # a zero row (norm clamped at 1e-12)
    else:
        Z[:, 3] = 7.25                              # a constant column
    return Z.astype(np.float32)


@pytest.mark.parametrize("block", [None, 97])
def test_row_pass_matches_float64(block):
    Z = stress(zero_row=block is not None)
    Z64 = Z.astype(np.float64)
    y = rng(1).integers(-1, 4, len(Z))
    A = C.random_directions(Z.shape[1], 8, seed=2)
    r = C.row_pass(torch.from_numpy(Z), block=block, directions=(A, (3.0, 17)),
                   groups=torch.from_numpy(y), n_groups=4)
    np.testing.assert_allclose(r["mean"].numpy(), Z64.mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(r["var"].numpy(), Z64.var(0, ddof=1), rtol=1e-9, atol=1e-20)
    assert r["magnitude"] == np.abs(Z64).max()
    if block is None:
        assert r["var"][3] == 0.0                   # constant column: exactly no variance
    U = l2n(Z64)
    np.testing.assert_allclose(r["unit_var"].numpy(), U.var(0, ddof=1), rtol=1e-9, atol=1e-20)
    np.testing.assert_allclose(r["unit_mean"].numpy(), U.mean(0), rtol=1e-10, atol=1e-15)
    assert r["unit_sq"] == pytest.approx((U * U).sum(), rel=1e-12)
    for g in range(4):
        np.testing.assert_allclose(r["group_sums"][g].numpy(), U[y == g].sum(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r["projections"].numpy(), Z64 @ A.double().numpy(), rtol=1e-4, atol=1e-3)
    cos = U @ U.T
    iu = np.triu_indices(len(Z), 1)
    assert C.mean_cosine(Z) == pytest.approx(2 * cos[iu].sum() / (len(Z) * (len(Z) - 1)), abs=1e-12)


def test_ecf_float32_accuracy():
    """float32 projections: the statistic within 1e-4 of the float64 definition (the complex
    power recurrence keeps the error of exp(i t_k x) at about k eps)."""
    x = rng(3).standard_normal((20000, 4)) * np.array([1.0, 0.5, 2.0, 1.0]) + np.array([0, 0.2, 0, 0])
    T32 = C.epps_pulley(torch.from_numpy(x.astype(np.float32)))
    x32 = x.astype(np.float32).astype(np.float64)
    t = np.linspace(0, 3, 17)
    ref = []
    for j in range(4):
        phiN = np.exp(1j * np.outer(x32[:, j], t)).mean(0)
        f = np.abs(phiN - np.exp(-t ** 2 / 2)) ** 2 * np.exp(-t ** 2 / 2)
        ref.append(len(x) * 2 * np.sum((f[1:] + f[:-1]) / 2 * np.diff(t)))
    np.testing.assert_allclose(np.asarray(T32), ref, rtol=1e-4, atol=1e-4)


def test_pair_products_float32_path(monkeypatch):
    monkeypatch.setattr(C, "FLOAT64_BELOW", 0)          # force the float32 m x m product
    X = (rng(4).standard_normal((600, 3)) @ rng(5).standard_normal((3, 30)) * 0.1 + 20.0)
    pp = C.pair_products(torch.from_numpy(X.astype(np.float32)))
    X64 = X.astype(np.float32).astype(np.float64)
    U = l2n(X64)
    np.testing.assert_allclose(pp["cos"].numpy(), np.clip(U @ U.T, -1, 1), atol=2e-6)
    iu = np.triu_indices(600, 1)
    D2 = np.maximum(2 - 2 * (U @ U.T)[iu], 0)
    assert C._uniformity_from_cos(pp["cos"]) == pytest.approx(np.log(np.mean(np.exp(-2 * D2))), rel=1e-5)
    D = np.sqrt(((X64[:, None] - X64[None]) ** 2).sum(-1))
    np.fill_diagonal(D, np.inf)
    ref = np.sort(D, 1)[:, :10]
    np.testing.assert_allclose(I.distances_from_products(pp, 10), ref, rtol=1e-9)


def test_gram_normalize_blocked(monkeypatch):
    monkeypatch.setattr(C, "FLOAT64_BELOW", 0)
    monkeypatch.setattr(C, "GRAM_BLOCK", 300)
    Z = stress(n=1000, d=24)
    w = C.covariance_eigenvalues(Z)
    ref = np.maximum(np.sort(np.linalg.eigvalsh(np.cov(l2n(Z.astype(np.float64)).T, ddof=1)))[::-1], 0)
    np.testing.assert_allclose(w, ref, rtol=1e-4, atol=1e-6 * ref[0])
    s = C.singular_values(Z)
    np.testing.assert_allclose(s, np.linalg.svd(Z.astype(np.float64), compute_uv=False), rtol=1e-4, atol=1e-4 * s[0])


def test_cross_moments_float32_blocked(monkeypatch):
    monkeypatch.setattr(M, "FLOAT64_BELOW", 0)
    monkeypatch.setattr(M, "MOMENT_BLOCK", 333)
    X = stress(n=1200, d=20, seed=6)
    Y = (X[:, :12] * 2 + rng(7).standard_normal((1200, 12)) + 100).astype(np.float32)
    m = M.cross_moments(X, Y)
    Xc = X.astype(np.float64) - X.astype(np.float64).mean(0)
    Yc = Y.astype(np.float64) - Y.astype(np.float64).mean(0)
    for key, ref in (("xx", Xc.T @ Xc), ("yy", Yc.T @ Yc), ("xy", Xc.T @ Yc)):
        np.testing.assert_allclose(m[key].numpy(), ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())
    np.testing.assert_allclose(m["nx"].numpy(), (Xc ** 2).sum(1), rtol=1e-10)
    lin = np.linalg.norm(Xc.T @ Yc) ** 2 / (np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Yc.T @ Yc))
    assert M._linear_from_moments(m)["linear_cka"] == pytest.approx(lin, rel=1e-5)


def test_diagnose_row_cap_uses_the_stated_rows():
    Z = rng(8).standard_normal((3000, 16)) * np.linspace(0.2, 2, 16)
    res = drain(diagnose(Z, params=DiagnoseParams(max_rows_covariance=700)))
    assert res["sampling"]["covariance_rows"] == 700
    rows = np.sort(np.random.default_rng(0).choice(3000, 700, replace=False))
    ref = np.sort(np.linalg.eigvalsh(np.cov(l2n(Z[rows]).T, ddof=1)))[::-1]
    np.testing.assert_allclose(res["spectrum"], np.maximum(ref, 0), rtol=1e-8, atol=1e-15)
    s = np.linalg.svd(Z[rows], compute_uv=False)
    p = s / s.sum() + 1e-7
    assert res["rankme"] == pytest.approx(float(np.exp(-(p * np.log(p)).sum())), rel=1e-9)
    # statistics that the docstring says are exact use all 3000 points
    assert res["std_l2_normalized"] == pytest.approx(l2n(Z).std(0, ddof=1).mean(), rel=1e-9)
    assert res["sigreg"] == pytest.approx(C.sigreg(Z), rel=1e-9)
    assert res["sampling"]["sigreg_points"] == 3000


def test_diagnose_centroids_match_formula():
    r = rng(9)
    y = r.integers(0, 5, 1500)
    Z = r.standard_normal((5, 12))[y] * 2 + r.standard_normal((1500, 12))
    res = drain(diagnose(Z, y, DiagnoseParams(per_class_max_classes=3)))
    top = np.sort(np.argsort(-np.bincount(y), kind="stable")[:3])
    cent = l2n(np.stack([l2n(Z)[y == c].mean(0) for c in top]))
    np.testing.assert_allclose(res["class_centroid_cosine"]["matrix"], cent @ cent.T, atol=1e-12)
    assert res["class_centroid_cosine"]["classes"] == [str(c) for c in top]


def test_finiteness_check():
    big = np.full((4, 3), 3e38, dtype=np.float32)       # finite, but its float32 sum overflows
    assert C.as_tensor(big).shape == (4, 3)
    for bad in (np.inf, -np.inf, np.nan):
        Z = np.ones((4, 3), dtype=np.float32)
        Z[2, 1] = bad
        with pytest.raises(InputError):
            C.as_tensor(Z)


def test_compare_sampled_means_report_standard_errors():
    r = rng(10)
    X = r.standard_normal((1200, 12)).astype(np.float32)
    Y = (X + 0.7 * r.standard_normal((1200, 12))).astype(np.float32)
    full = drain(M.compare(X, Y, M.CompareParams(knn_points=None)))
    part = drain(M.compare(X, Y, M.CompareParams(knn_points=300)))
    rows = part["knn_rows"]
    jac = full["knn_jaccard"][rows].astype(np.float64)      # per-point values are exact
    np.testing.assert_allclose(part["knn_jaccard"][rows], jac, rtol=1e-6)
    assert part["sampling"]["knn_jaccard_mean_se"] == pytest.approx(jac.std(ddof=1) / math.sqrt(300), rel=1e-5)
    assert full["sampling"]["knn_jaccard_mean_se"] == 0.0
    assert abs(part["knn_jaccard_mean"] - full["knn_jaccard_mean"]) < 4 * part["sampling"]["knn_jaccard_mean_se"]
    assert abs(part["mutual_knn"] - full["mutual_knn"]) < 4 * part["sampling"]["mutual_knn_se"] + 1e-9


def test_one_sigreg_definition_for_diagnostic_and_training():
    """collapse.py (chunked, float64 sums) and sigreg.py (differentiable) share the nodes,
    weights and random directions: the same seed gives the same directions and the same value."""
    from explorer.metrics import sigreg as SR

    for seed in (0, 7):
        np.testing.assert_array_equal(C.random_directions(20, 16, seed=seed, dtype=torch.float64).numpy(),
                                      SR.sigreg_directions(20, 16, seed=seed, dtype=torch.float64).numpy())
    t, w = C.epps_pulley_weights()
    np.testing.assert_allclose(t, np.linspace(0, 3, 17), rtol=0, atol=1e-15)
    trap = np.full(17, 3 / 16)
    trap[[0, -1]] = 3 / 32
    np.testing.assert_allclose(w, 2 * trap * np.exp(-t ** 2 / 2), rtol=1e-14)
    Z = torch.from_numpy(rng(11).standard_normal((700, 20)) * 1.3 + 0.1)
    assert C.sigreg(Z, num_directions=16, seed=7) == pytest.approx(
        float(SR.sigreg(Z, num_directions=16, seed=7)), rel=1e-10)
