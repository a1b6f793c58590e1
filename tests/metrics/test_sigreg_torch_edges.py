"""The differentiable SIGReg (explorer.metrics.sigreg) on what the formula tests left open (found by
mutation testing): the shape of a 1-D statistic, non-default quadrature passed through sigreg,
half-precision inputs and the CUDA path. References: float64 numpy formulas written here."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from explorer.metrics.sigreg import epps_pulley, sigreg, sigreg_directions, trapezoid_nodes  # noqa: E402


def ep64(x, n_points=17, t_max=3.0):
    """Epps-Pulley by complex arithmetic and a hand-written trapezoid rule, doubled."""
    x = np.asarray(x, np.float64)
    t = np.linspace(0, t_max, n_points)
    g = np.abs(np.exp(1j * np.outer(t, x)).mean(1) - np.exp(-t ** 2 / 2)) ** 2 * np.exp(-t ** 2 / 2)
    return len(x) * 2 * np.sum((g[1:] + g[:-1]) / 2 * np.diff(t))


def directions64(d, m, seed):
    A = torch.randn(d, m, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).numpy()
    return A / np.linalg.norm(A, axis=0)


def test_one_dimensional_input_gives_a_scalar():
    x = np.random.default_rng(0).normal(size=50)
    T = epps_pulley(torch.from_numpy(x))
    assert T.dim() == 0 and float(T) == pytest.approx(ep64(x), rel=1e-10)
    T2 = epps_pulley(torch.from_numpy(x[:, None]))
    assert tuple(T2.shape) == (1,) and float(T2[0]) == pytest.approx(ep64(x), rel=1e-10)


def test_sigreg_passes_its_quadrature_on():
    z = np.random.default_rng(1).normal(size=(120, 6)) * [3, 1, 1, 0.2, 1, 2]
    A = directions64(6, 32, 5)
    for n_points, t_max in ((17, 3.0), (9, 2.0), (33, 5.0), (5, 1.0)):
        want = np.mean([ep64(z @ A[:, m], n_points, t_max) for m in range(32)])
        got = sigreg(torch.from_numpy(z), num_directions=32, seed=5, n_points=n_points, t_max=t_max)
        assert float(got) == pytest.approx(want, rel=1e-9), (n_points, t_max)


def test_trapezoid_nodes_by_hand():
    t, w = trapezoid_nodes(5, 2.0)
    np.testing.assert_allclose(t.numpy(), [0, 0.5, 1.0, 1.5, 2.0])
    trap = np.array([0.25, 0.5, 0.5, 0.5, 0.25])
    np.testing.assert_allclose(w.numpy(), 2 * trap * np.exp(-t.numpy() ** 2 / 2), rtol=1e-12)
    assert t.dtype == torch.float64
    for bad in ((1, 3.0), (17, 0.0), (17, -1.0)):
        with pytest.raises(ValueError):
            trapezoid_nodes(*bad)


def test_half_precision_inputs_are_computed_in_float32():
    z = np.random.default_rng(2).normal(size=(200, 8))
    z16 = torch.from_numpy(z).to(torch.bfloat16)
    zq = z16.double().numpy()                       # the values the function actually sees
    A = directions64(8, 16, 3)
    want = np.mean([ep64(zq @ A[:, m]) for m in range(16)])
    got = sigreg(z16, num_directions=16, seed=3)
    assert got.dtype == torch.float32 and float(got) == pytest.approx(want, rel=1e-4)
    # and inside an autocast region (training loops run the loss there)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = sigreg(torch.from_numpy(z).float(), num_directions=16, seed=3)
        ep_in = epps_pulley(torch.from_numpy(z[:, 0]).float())
    want32 = np.mean([ep64(z @ A[:, m]) for m in range(16)])
    assert inside.dtype == torch.float32 and float(inside) == pytest.approx(want32, rel=1e-4)
    assert ep_in.dtype == torch.float32 and float(ep_in) == pytest.approx(ep64(z[:, 0]), rel=1e-4)


def test_directions_are_unit_and_seeded_the_same_way_everywhere():
    A = sigreg_directions(5, 7, seed=11, dtype=torch.float64)
    np.testing.assert_allclose(A.numpy(), directions64(5, 7, 11), rtol=1e-12)
    g = torch.Generator().manual_seed(11)
    np.testing.assert_allclose(sigreg_directions(5, 7, seed=99, generator=g, dtype=torch.float64).numpy(),
                               directions64(5, 7, 11), rtol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_sigreg_on_cuda_matches_float64():
    z = np.random.default_rng(3).normal(size=(300, 12))
    A = directions64(12, 64, 0)
    want = np.mean([ep64(z @ A[:, m]) for m in range(64)])
    got = sigreg(torch.from_numpy(z).cuda(), num_directions=64, seed=0)
    assert got.device.type == "cuda" and float(got) == pytest.approx(want, rel=1e-9)
    ep = epps_pulley(torch.from_numpy(z).cuda())
    np.testing.assert_allclose(ep.cpu().numpy(), [ep64(z[:, j]) for j in range(12)], rtol=1e-9)
