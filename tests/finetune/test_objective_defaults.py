"""The fine-tuning objectives at their documented defaults and edges, against formulas written
here: the projector's layers, cross-entropy, NT-Xent's default temperature, LeJEPA's default
lambda / directions / seed, SIGReg's nodes and input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from explorer.finetune.objectives import (  # noqa: E402
    OBJECTIVES, Projector, cross_entropy, lejepa_sigreg, nt_xent)
from explorer.metrics.sigreg import epps_pulley, sigreg, sigreg_directions, trapezoid_nodes  # noqa: E402


def ep_numpy(x, n_points=17, t_max=3.0):
    x = np.asarray(x, np.float64)
    t = np.linspace(0, t_max, n_points)
    phi = np.exp(1j * np.outer(t, x)).mean(1)
    return len(x) * 2 * np.trapezoid(np.abs(phi - np.exp(-t ** 2 / 2)) ** 2 * np.exp(-t ** 2 / 2), t)


def directions(d, m, seed):
    A = torch.randn(d, m, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).numpy()
    return A / np.linalg.norm(A, axis=0)


def test_projector_layers_by_hand():
    torch.manual_seed(0)
    x = torch.randn(16, 6, dtype=torch.float64)
    p = Projector(6).double().train()
    assert p(x).shape == (16, 128)
    l1, bn, _, l2 = p.net
    assert (l1.in_features, l1.out_features, l2.in_features, l2.out_features) == (6, 256, 256, 128)
    h = x.numpy() @ l1.weight.detach().numpy().T + l1.bias.detach().numpy()
    h = (h - h.mean(0)) / np.sqrt(h.var(0) + bn.eps)              # batch statistics (training)
    h = np.maximum(h, 0)
    ref = h @ l2.weight.detach().numpy().T + l2.bias.detach().numpy()
    np.testing.assert_allclose(p(x).detach().numpy(), ref, rtol=1e-6, atol=1e-8)
    # no BatchNorm: Linear-ReLU-Linear
    q = Projector(6, hidden=8, out_dim=3, batchnorm=False).double()
    a, ident, _, b = q.net
    assert isinstance(ident, torch.nn.Identity)
    ref = np.maximum(x.numpy() @ a.weight.detach().numpy().T + a.bias.detach().numpy(), 0)
    ref = ref @ b.weight.detach().numpy().T + b.bias.detach().numpy()
    np.testing.assert_allclose(q(x).detach().numpy(), ref, rtol=1e-6, atol=1e-8)
    # hidden=0: a single linear map
    s = Projector(6, hidden=0, out_dim=4).double()
    assert isinstance(s.net, torch.nn.Linear) and s(x).shape == (16, 4)


def test_cross_entropy_by_formula():
    rng = np.random.default_rng(0)
    logits, y = rng.normal(size=(7, 4)), rng.integers(0, 4, 7)
    lse = np.log(np.exp(logits).sum(1))
    ref = np.mean(lse - logits[np.arange(7), y])
    got = cross_entropy(torch.from_numpy(logits), torch.from_numpy(y))
    assert float(got) == pytest.approx(ref, rel=1e-5)


def test_nt_xent_default_temperature_is_0_1():
    rng = np.random.default_rng(1)
    z1, z2 = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    u = np.concatenate([z1, z2])
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    losses = []
    for i in range(10):
        den = sum(math.exp(u[i] @ u[k] / 0.1) for k in range(10) if k != i)
        losses.append(-math.log(math.exp(u[i] @ u[(i + 5) % 10] / 0.1) / den))
    assert float(nt_xent(torch.from_numpy(z1), torch.from_numpy(z2))) == pytest.approx(np.mean(losses), rel=1e-5)


def test_lejepa_defaults_lambda_0_05_256_directions_seed_0():
    rng = np.random.default_rng(2)
    z1, z2 = rng.normal(size=(40, 4)), rng.normal(size=(40, 4)) * 0.7
    c = (z1 + z2) / 2
    pred = np.mean(((z1 - c) ** 2 + (z2 - c) ** 2) / 2)
    A = directions(4, 256, 0)
    sig = np.mean([(ep_numpy(z1 @ A[:, m]) + ep_numpy(z2 @ A[:, m])) / 2 for m in range(256)])
    total, parts = lejepa_sigreg(torch.from_numpy(z1), torch.from_numpy(z2))
    assert float(parts["pred"]) == pytest.approx(pred, rel=1e-5)
    assert float(parts["sigreg"]) == pytest.approx(sig, rel=1e-4)
    assert float(total) == pytest.approx(0.95 * pred + 0.05 * sig, rel=1e-4)
    assert not parts["pred"].requires_grad and not parts["sigreg"].requires_grad


def test_objective_table():
    assert {k: (o.needs_labels, o.two_views, o.uses_projector) for k, o in OBJECTIVES.items()} == {
        "linear": (True, False, False), "ce": (True, False, False), "simclr": (False, True, True),
        "vicreg": (False, True, True), "sigreg": (False, True, True), "invariance": (False, True, True)}


def test_sigreg_defaults_and_directions():
    A = sigreg_directions(5)
    assert A.shape == (5, 256) and A.dtype == torch.float32
    np.testing.assert_allclose(A.double().numpy(), directions(5, 256, 0), rtol=1e-6, atol=1e-7)
    z = np.random.default_rng(3).normal(size=(50, 5))
    ref = np.mean([ep_numpy(z @ A64) for A64 in directions(5, 256, 0).T])
    assert float(sigreg(torch.from_numpy(z))) == pytest.approx(ref, rel=1e-9)
    # a generator gives its own draw; seed is then ignored
    g = torch.Generator().manual_seed(8)
    np.testing.assert_allclose(sigreg_directions(5, 7, seed=3, generator=g, dtype=torch.float64).numpy(),
                               directions(5, 7, 8), rtol=1e-12)


def test_trapezoid_nodes_and_edges():
    t, w = trapezoid_nodes(2, 1.0)
    np.testing.assert_allclose(t.numpy(), [0.0, 1.0])
    np.testing.assert_allclose(w.numpy(), [2 * 0.5, 2 * 0.5 * math.exp(-0.5)])
    t, w = trapezoid_nodes()
    assert t.dtype == torch.float64 and len(t) == 17 and float(t[-1]) == 3.0
    h = 3.0 / 16
    trap = np.full(17, h)
    trap[[0, -1]] = h / 2
    np.testing.assert_allclose(w.numpy(), 2 * trap * np.exp(-np.linspace(0, 3, 17) ** 2 / 2), rtol=1e-12)
    for bad in ((1, 3.0), (17, 0.0), (17, -1.0)):
        with pytest.raises(ValueError):
            trapezoid_nodes(*bad)


def test_epps_pulley_inputs():
    x = np.array([0.3])
    assert float(epps_pulley(torch.from_numpy(x))) == pytest.approx(ep_numpy(x), rel=1e-10)
    h = torch.tensor([[0.1, -0.5], [1.2, 0.4], [-0.7, 0.0]], dtype=torch.float16)
    got = epps_pulley(h)
    assert got.dtype == torch.float32
    ref = [ep_numpy(h.double().numpy()[:, j]) for j in range(2)]
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-4)
    with pytest.raises(ValueError):
        epps_pulley(torch.zeros(2, 2, 2))
    with pytest.raises(ValueError):
        epps_pulley(torch.zeros(0, 3))
    with pytest.raises(ValueError):
        sigreg(torch.zeros(5))
    # half-precision embeddings are computed in float32
    zh = torch.from_numpy(np.random.default_rng(4).normal(size=(30, 3))).half()
    s = sigreg(zh, 16, seed=1)
    assert s.dtype == torch.float32
    ref = np.mean([ep_numpy(zh.double().numpy() @ a) for a in directions(3, 16, 1).T])
    assert float(s) == pytest.approx(ref, rel=1e-4)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_nt_xent_on_cuda_matches_cpu():
    z1, z2 = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    cpu = float(nt_xent(z1, z2, 0.2))
    assert float(nt_xent(z1.cuda(), z2.cuda(), 0.2)) == pytest.approx(cpu, rel=1e-5)
