"""SIGReg and the fine-tuning losses against independent float64 formulas written here."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from explorer.finetune.objectives import invariance, lejepa_sigreg, nt_xent, vicreg  # noqa: E402
from explorer.metrics.sigreg import epps_pulley, sigreg  # noqa: E402


def ep_numpy(x, n_points=17, t_max=3.0):
    """Epps-Pulley by complex arithmetic and numpy's trapezoid rule, doubled."""
    x = np.asarray(x, np.float64)
    t = np.linspace(0, t_max, n_points)
    phi = np.exp(1j * np.outer(t, x)).mean(1)
    integrand = np.abs(phi - np.exp(-t ** 2 / 2)) ** 2 * np.exp(-t ** 2 / 2)
    return len(x) * 2 * np.trapezoid(integrand, t)


def test_epps_pulley_matches_formula():
    rng = np.random.default_rng(0)
    x = np.stack([rng.normal(size=200), rng.uniform(-2, 2, 200), rng.exponential(size=200)], 1)
    got = epps_pulley(torch.from_numpy(x)).numpy()
    want = [ep_numpy(x[:, j]) for j in range(3)]
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert float(epps_pulley(torch.from_numpy(x[:, 1]))) == pytest.approx(want[1], rel=1e-10)
    got32 = epps_pulley(torch.from_numpy(x).float()).numpy()
    np.testing.assert_allclose(got32, want, rtol=1e-4)


def test_sigreg_matches_formula_and_gaussian_value():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(300, 16)) * np.linspace(0.5, 2, 16)
    g = torch.Generator().manual_seed(7)
    A = torch.randn(16, 64, generator=g, dtype=torch.float64).numpy()
    A /= np.linalg.norm(A, axis=0)
    want = np.mean([ep_numpy(z @ A[:, m]) for m in range(64)])
    got = float(sigreg(torch.from_numpy(z), 64, seed=7))
    assert got == pytest.approx(want, rel=1e-9)
    # expectation for N(0, I): sum_k w_k (1 - exp(-t_k^2)), trapezoid on [0, 3] doubled
    t = np.linspace(0, 3, 17)
    ref = 2 * np.trapezoid(np.exp(-t ** 2 / 2) * (1 - np.exp(-t ** 2)), t)
    vals = [float(sigreg(torch.randn(500, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(s))))
            for s in range(8)]
    assert np.mean(vals) == pytest.approx(ref, rel=0.1)
    collapsed = torch.ones(500, 32, dtype=torch.float64)
    assert float(sigreg(collapsed)) > 50 * ref


def test_sigreg_gradient():
    z = torch.randn(20, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: sigreg(v, 8, seed=3), (z,))


def test_nt_xent_matches_formula():
    rng = np.random.default_rng(2)
    z1, z2 = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    T = 0.3
    u = np.concatenate([z1, z2])
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    n = 12
    losses = []
    for i in range(n):
        p = (i + 6) % 12
        den = sum(math.exp(u[i] @ u[k] / T) for k in range(n) if k != i)
        losses.append(-math.log(math.exp(u[i] @ u[p] / T) / den))
    got = float(nt_xent(torch.from_numpy(z1), torch.from_numpy(z2), T))
    assert got == pytest.approx(np.mean(losses), rel=1e-5)


def test_vicreg_matches_formula():
    rng = np.random.default_rng(3)
    z1, z2 = rng.normal(size=(10, 5)) * 0.3, rng.normal(size=(10, 5)) * 2
    inv = np.mean((z1 - z2) ** 2)
    var = 0.0
    cov = 0.0
    for z in (z1, z2):
        std = np.sqrt(z.var(0, ddof=1) + 1e-4)
        var += np.mean(np.maximum(0, 1 - std)) / 2
        C = np.cov(z, rowvar=False)
        cov += (C ** 2).sum() - (np.diag(C) ** 2).sum()
    cov /= 5
    total, parts = vicreg(torch.from_numpy(z1), torch.from_numpy(z2))
    assert float(total) == pytest.approx(25 * inv + 25 * var + cov, rel=1e-5)
    assert float(parts["inv"]) == pytest.approx(inv, rel=1e-5)
    assert float(parts["var"]) == pytest.approx(var, rel=1e-5)
    assert float(parts["cov"]) == pytest.approx(cov, rel=1e-5)


def test_lejepa_and_invariance_match_formula():
    rng = np.random.default_rng(4)
    z1, z2 = rng.normal(size=(50, 6)), rng.normal(size=(50, 6)) + 0.5
    c = (z1 + z2) / 2
    pred = np.mean(((z1 - c) ** 2 + (z2 - c) ** 2) / 2)
    g = torch.Generator().manual_seed(5)
    A = torch.randn(6, 32, generator=g, dtype=torch.float64).numpy()
    A /= np.linalg.norm(A, axis=0)
    sig = np.mean([(ep_numpy(z1 @ A[:, m]) + ep_numpy(z2 @ A[:, m])) / 2 for m in range(32)])
    lam = 0.3
    total, parts = lejepa_sigreg(torch.from_numpy(z1), torch.from_numpy(z2), lam, 32, seed=5)
    assert float(total) == pytest.approx((1 - lam) * pred + lam * sig, rel=1e-4)
    assert float(invariance(torch.from_numpy(z1), torch.from_numpy(z2))) == pytest.approx(np.mean((z1 - z2) ** 2))


def _directions(g, d, m):
    A = torch.randn(d, m, generator=g, dtype=torch.float64).numpy()
    return A / np.linalg.norm(A, axis=0)


def test_lejepa_with_a_generator_gives_both_views_the_same_directions():
    """The fine-tune job's path: directions from a CPU generator, the SAME for the two views,
    and a fresh draw at the next call (LeJEPA resamples them every step). Reference: the
    directions drawn here from an identically seeded generator."""
    rng = np.random.default_rng(9)
    z1, z2 = rng.normal(size=(60, 5)), rng.normal(size=(60, 5)) * 1.5 + 0.3
    c = (z1 + z2) / 2
    pred = np.mean(((z1 - c) ** 2 + (z2 - c) ** 2) / 2)
    lam, m = 0.4, 24
    ref_g = torch.Generator().manual_seed(21)
    g = torch.Generator().manual_seed(21)
    for step in range(2):
        A = _directions(ref_g, 5, m)               # one draw per step, shared by both views
        sig = np.mean([(ep_numpy(z1 @ A[:, j]) + ep_numpy(z2 @ A[:, j])) / 2 for j in range(m)])
        total, parts = lejepa_sigreg(torch.from_numpy(z1), torch.from_numpy(z2), lam, m, generator=g)
        assert float(parts["sigreg"]) == pytest.approx(sig, rel=1e-4), step
        assert float(total) == pytest.approx((1 - lam) * pred + lam * sig, rel=1e-4), step
    # the first step equals the seed= path with the same seed
    _, p_seed = lejepa_sigreg(torch.from_numpy(z1), torch.from_numpy(z2), lam, m, seed=21)
    _, p_gen = lejepa_sigreg(torch.from_numpy(z1), torch.from_numpy(z2), lam, m,
                             generator=torch.Generator().manual_seed(21))
    assert float(p_gen["sigreg"]) == pytest.approx(float(p_seed["sigreg"]), rel=1e-6)
