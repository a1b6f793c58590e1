"""Collapse metrics through their parameters and corner cases (found by mutation testing): the
temperature of uniformity, alignment's exponent, dead-dimension thresholds, alpha-ReQ's rank
window, RankMe of nothing, the spectrum without normalisation or with fewer rows than
dimensions, SIGReg's quadrature and the subsampled pairwise statistics. References: float64
numpy written here."""

import math

import numpy as np
import pytest
import torch

from explorer.metrics import collapse as C


def rng(s):
    return np.random.default_rng(s)


def l2n(Z):
    return Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)


def ep64(x, n_points=17, t_max=3.0):
    t = np.linspace(0, t_max, n_points)
    g = np.abs(np.exp(1j * np.outer(t, x)).mean(1) - np.exp(-t ** 2 / 2)) ** 2 * np.exp(-t ** 2 / 2)
    return len(x) * 2 * np.sum((g[1:] + g[:-1]) / 2 * np.diff(t))


def eig_desc(M):
    return np.clip(np.sort(np.linalg.eigvalsh(M))[::-1], 0, None)


def test_uniformity_temperature_and_alignment_exponent():
    Z = rng(1).standard_normal((120, 6)) + 0.5
    U = l2n(Z)
    iu = np.triu_indices(120, 1)
    D2 = ((U[:, None] - U[None]) ** 2).sum(-1)[iu]
    for t in (0.5, 2.0, 5.0):
        assert C.uniformity(Z, t=t) == pytest.approx(np.log(np.mean(np.exp(-t * D2))), rel=1e-9)
    Zp = Z + 0.3 * rng(2).standard_normal(Z.shape)
    d = np.linalg.norm(l2n(Z) - l2n(Zp), axis=1)
    for a in (1.0, 2.0, 3.0):
        assert C.alignment(Z, Zp, alpha=a) == pytest.approx(np.mean(d ** a), rel=1e-9)


def test_pairwise_statistics_on_a_subsample_use_those_rows():
    Z = rng(3).standard_normal((400, 5))
    rows = np.sort(rng(7).choice(400, 150, replace=False))
    U = l2n(Z[rows])
    iu = np.triu_indices(150, 1)
    D2 = ((U[:, None] - U[None]) ** 2).sum(-1)[iu]
    assert C.uniformity(Z, max_points=150, seed=7) == pytest.approx(np.log(np.mean(np.exp(-2 * D2))), rel=1e-9)
    cos = (U @ U.T)[iu]
    h = C.cosine_histogram(Z, bins=8, max_points=150, seed=7)
    ref, edges = np.histogram(cos, bins=8, range=(-1, 1))
    np.testing.assert_allclose(h["edges"], edges)
    assert sum(h["counts"]) == len(cos) and np.abs(np.array(h["counts"]) - ref).sum() <= 2
    # n not above max_points: every pair
    assert C.uniformity(Z[:150], max_points=150) == pytest.approx(C.uniformity(Z[:150], max_points=None), rel=1e-12)


def test_dead_dimension_thresholds():
    Z = rng(4).standard_normal((200, 6)) * [1.0, 1.0, 1.0, 1e-3, 1e-5, 0.0]
    Z[:, 5] = 7.0
    # relative threshold 1e-6 of the largest std: only the constant column
    assert C.dead_dims(Z) == 1
    assert C.dead_dims(Z, rel=1e-4) == 2            # the 1e-5 column too
    assert C.dead_dims(Z, rel=1e-2) == 3
    s = Z.std(0, ddof=1)
    assert C.dead_dims(stds=s, magnitude=0.0) == 1
    # a std of 1e-10 x the magnitude is rounding noise of a constant column
    assert C.dead_dims(stds=np.array([1.0, 5e-7, 2e-6]), magnitude=5000.0, rel=1e-9) == 1
    assert C.dead_dims(stds=np.array([1.0, 5e-7, 2e-6]), magnitude=1.0, rel=1e-9) == 0
    # every coordinate constant (up to noise below the floor): all dead
    assert C.dead_dims(stds=np.array([1e-9, 0.0]), magnitude=1e3) == 2
    assert C.dead_dims(np.full((10, 4), 2.0)) == 4
    np.testing.assert_allclose(C.per_dim_std(Z), s, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(C.per_dim_std(Z, normalize=True), l2n(Z).std(0, ddof=1), rtol=1e-9, atol=1e-15)


def test_dims_for_variance():
    w = [4.0, 3.0, 2.0, 1.0]
    assert [C.dims_for_variance(w, f) for f in (0.3, 0.4, 0.7, 0.71, 0.9, 0.95, 1.0)] == [1, 1, 2, 3, 3, 4, 4]
    assert C.dims_for_variance([1.0, 4.0, 2.0, 3.0], 0.7) == 2     # any order
    assert C.dims_for_variance([0.0, 0.0], 0.9) == 0


def test_alpha_req_rank_window_and_floor():
    lam = np.concatenate([np.arange(1, 21, dtype=float) ** -1.0, np.arange(21, 61, dtype=float) ** -3.0 * 20 ** 2])
    i = np.arange(1, 61)

    def fit(keep):
        return -np.polyfit(np.log(i[keep]), np.log(lam[keep]), 1)[0]
    assert C.alpha_req_from_eigenvalues(lam) == pytest.approx(fit(lam > 1e-6 * lam[0]), rel=1e-9)
    assert C.alpha_req_from_eigenvalues(lam, max_rank=20) == pytest.approx(1.0, rel=1e-9)
    assert C.alpha_req_from_eigenvalues(lam, min_rank=21) == pytest.approx(3.0, rel=1e-9)
    assert C.alpha_req_from_eigenvalues(lam, min_rank=5, max_rank=40) == pytest.approx(fit((i >= 5) & (i <= 40)), rel=1e-9)
    assert C.alpha_req_from_eigenvalues(lam, floor=1e-3) == pytest.approx(fit(lam > 1e-3), rel=1e-9)
    assert math.isnan(C.alpha_req_from_eigenvalues(lam, min_rank=60))   # one rank left
    assert math.isnan(C.alpha_req_from_eigenvalues([]))
    assert math.isnan(C.alpha_req_from_eigenvalues([3.0]))             # one eigenvalue: no slope
    assert math.isnan(C.alpha_req_from_eigenvalues([1.0, 1e-6]))       # at the floor: not above it
    assert math.isnan(C.alpha_req_from_eigenvalues([100.0, 1e-5]))     # the floor is relative to the largest
    assert C.alpha_req_from_eigenvalues([100.0, 1e-3]) == pytest.approx(5 * math.log(10) / math.log(2))
    assert math.isnan(C.alpha_req_from_eigenvalues([0.0, 0.0, 0.0]))
    assert C.alpha_req_from_eigenvalues([4.0, 1.0]) == pytest.approx(2.0)
    assert math.isnan(C.alpha_req_from_eigenvalues([4.0, 1e-9]))       # below the floor
    Z = rng(5).standard_normal((500, 12)) * np.arange(1, 13) ** -1.0
    w = eig_desc(np.cov(l2n(Z).T))
    assert C.alpha_req(Z, min_rank=2, max_rank=8) == pytest.approx(-np.polyfit(np.log(np.arange(2, 9)), np.log(w[1:8]), 1)[0], rel=1e-6)


def test_rankme_and_effective_rank_formulas():
    assert C.rankme_from_singular_values([0.0, 0.0]) == 0.0
    s = np.array([3.0, 1.0, 0.0])
    for eps in (1e-7, 1e-3):
        p = s / s.sum() + eps
        assert C.rankme_from_singular_values(s, eps=eps) == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-12)
    assert C.rankme(np.zeros((5, 3))) == 0.0
    Z = rng(6).standard_normal((80, 6)) * [3, 2, 1, 1, 0.5, 0.1] + 10.0

    def er(M):
        sv = np.linalg.svd(M, compute_uv=False)
        p = sv / sv.sum() + 1e-7
        return np.exp(-(p * np.log(p)).sum())
    assert C.effective_rank(Z) == pytest.approx(er(Z - Z.mean(0)), rel=1e-9)
    assert C.effective_rank(Z, center=False) == pytest.approx(er(Z), rel=1e-9)
    assert C.rankme(Z) == pytest.approx(er(Z), rel=1e-9)
    # fewer rows than dimensions: through the n x n Gram matrix
    W = rng(7).standard_normal((5, 9)) + 2.0
    np.testing.assert_allclose(C.singular_values(W), np.linalg.svd(W, compute_uv=False), rtol=1e-9)
    assert C.effective_rank(W) == pytest.approx(er(W - W.mean(0)), rel=1e-6)


@pytest.mark.parametrize("shape", [(60, 7), (6, 11)])
def test_spectrum_with_and_without_normalisation(shape):
    Z = rng(8).standard_normal(shape) * np.linspace(0.2, 3, shape[1]) + 1.0
    n, d = shape
    for normalize, X in ((True, l2n(Z)), (False, Z)):
        want = eig_desc(np.cov(X.T, ddof=1))
        got = C.covariance_eigenvalues(Z, normalize=normalize)
        assert got.shape == (d,)
        np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-12)
    spec = C.covariance_spectrum(Z)
    w = eig_desc(np.cov(l2n(Z).T, ddof=1))
    c = np.cumsum(w) / w.sum()
    assert spec["dims_90"] == int(np.argmax(c >= 0.9 - 1e-12) + 1)
    assert spec["dims_99"] == int(np.argmax(c >= 0.99 - 1e-12) + 1)
    assert spec["dead_dims"] == 0


def test_sigreg_diagnostic_quadrature_and_constant_data():
    Z = rng(9).standard_normal((150, 5)) * [2, 1, 1, 0.5, 1] + 0.3
    A = torch.randn(5, 16, generator=torch.Generator().manual_seed(4), dtype=torch.float64).numpy()
    A /= np.linalg.norm(A, axis=0)
    Zs = (Z - Z.mean(0)) / math.sqrt(Z.var(0, ddof=1).mean())
    for n_points, t_max in ((9, 2.0), (33, 4.0)):
        want = np.mean([ep64(Z @ A[:, m], n_points, t_max) for m in range(16)])
        assert C.sigreg(Z, 16, 4, n_points, t_max) == pytest.approx(want, rel=1e-8)
        want_s = np.mean([ep64(Zs @ A[:, m], n_points, t_max) for m in range(16)])
        assert C.sigreg_standardized(Z, 16, 4, n_points, t_max) == pytest.approx(want_s, rel=1e-8)
        np.testing.assert_allclose(C.epps_pulley(Z, n_points, t_max), [ep64(Z[:, j], n_points, t_max) for j in range(5)], rtol=1e-9)
    assert np.ndim(C.epps_pulley(Z[:, 0])) == 0
    assert math.isnan(C.sigreg_standardized(np.full((30, 3), 2.0), 8))
    assert math.isfinite(C.sigreg(np.full((30, 3), 2.0), 8))
    # the Gaussian reference by its formula, for other quadratures
    for n_points, t_max in ((9, 2.0), (33, 4.0)):
        t = np.linspace(0, t_max, n_points)
        tr = np.full(n_points, t_max / (n_points - 1))
        tr[[0, -1]] /= 2
        w = 2 * tr * np.exp(-t ** 2 / 2)
        e = np.exp(-t ** 2)
        assert C.sigreg_gaussian_reference(n_points, t_max) == pytest.approx((w * (1 - e)).sum(), rel=1e-12)
        assert C.sigreg_gaussian_reference(n_points, t_max, centered=True) == pytest.approx((w * (1 - e - t ** 2 * e)).sum(), rel=1e-12)
