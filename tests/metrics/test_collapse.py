"""Collapse diagnostics against independent float64 numpy formulas and analytic cases."""

import math

import numpy as np
import pytest
import torch

from explorer.core.errors import InputError
from explorer.core.jobs import drain
from explorer.metrics import collapse as C
from explorer.metrics import intrinsic as I
from explorer.metrics import probes as P
from explorer.metrics.diagnose import DiagnoseParams, diagnose, diagnose_cached, to_json


def rng(seed=0):
    return np.random.default_rng(seed)


def l2n(Z):
    return Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)


def ref_ep(x, n_points=17, t_max=3.0):
    """Epps-Pulley by the definition: N * 2 * trapezoid_[0,t_max] |phi_N - phi|^2 phi."""
    t = np.linspace(0, t_max, n_points)
    phiN = np.exp(1j * np.outer(x, t)).mean(0)
    phi = np.exp(-t ** 2 / 2)
    f = np.abs(phiN - phi) ** 2 * phi
    return len(x) * 2 * np.sum((f[1:] + f[:-1]) / 2 * np.diff(t))


# ------------------------------------------------------------------ spectrum, RankMe, alpha

@pytest.mark.parametrize("shape", [(300, 20), (15, 40)])
def test_covariance_spectrum_matches_numpy(shape):
    Z = rng(1).standard_normal(shape) * rng(2).uniform(0.1, 3, shape[1]) + 2.0
    w = C.covariance_eigenvalues(Z.astype(np.float32))
    ref = np.sort(np.linalg.eigvalsh(np.cov(l2n(Z.astype(np.float32).astype(np.float64)).T, ddof=1)))[::-1]
    ref = np.maximum(ref, 0)
    assert w.shape == (shape[1],)
    np.testing.assert_allclose(w, ref, rtol=1e-6, atol=1e-12)
    k = int(np.argmax(np.cumsum(ref) / ref.sum() >= 0.99)) + 1
    assert C.dims_for_variance(w, 0.99) == k


def test_gram_float32_path_matches_float64(monkeypatch):
    Z = rng(3).standard_normal((3000, 24)) * 0.01 + 50.0          # large mean, small spread
    monkeypatch.setattr(C, "FLOAT64_BELOW", 0)                     # force the blocked float32 path
    monkeypatch.setattr(C, "GRAM_BLOCK", 512)
    G = C.gram(torch.from_numpy(Z.astype(np.float32)), center=True).numpy()
    Zc = Z.astype(np.float32).astype(np.float64)
    Zc = Zc - Zc.mean(0)
    np.testing.assert_allclose(G, Zc.T @ Zc, rtol=2e-4, atol=1e-6 * np.abs(Zc.T @ Zc).max())


def test_rankme_matches_formula_and_isotropic_gaussian():
    Z = rng(4).standard_normal((4000, 32))
    s = np.linalg.svd(Z, compute_uv=False)
    p = s / s.sum() + 1e-7
    ref = float(np.exp(-(p * np.log(p)).sum()))
    assert C.rankme(Z) == pytest.approx(ref, rel=1e-9)
    assert 0.97 * 32 < C.rankme(Z) <= 32.01
    # rank one: RankMe ~ 1
    R1 = np.outer(rng(5).standard_normal(500), rng(6).standard_normal(32))
    assert C.rankme(R1) == pytest.approx(1.0, abs=0.01)


def test_alpha_req():
    lam = np.arange(1, 201, dtype=float) ** -1.5
    assert C.alpha_req_from_eigenvalues(lam) == pytest.approx(1.5, abs=1e-9)
    Z = rng(7).standard_normal((2000, 64)) * np.arange(1, 65) ** -0.8
    w = np.sort(np.linalg.eigvalsh(np.cov(l2n(Z).T)))[::-1]
    keep = w > 1e-6 * w[0]
    i = np.arange(1, 65)[keep]
    ref = -np.polyfit(np.log(i), np.log(w[keep]), 1)[0]
    assert C.alpha_req(Z) == pytest.approx(ref, rel=1e-6)
    assert C.alpha_req(Z) > 1.0 > C.alpha_req(rng(8).standard_normal((4000, 64)))


def test_std_l2_normalized_and_dead_dims():
    Z = rng(9).standard_normal((3000, 64))
    ref = l2n(Z).std(0, ddof=1).mean()
    assert C.std_l2_normalized(Z) == pytest.approx(ref, rel=1e-9)
    assert C.std_l2_normalized(Z) == pytest.approx(1 / 8, rel=0.03)
    E = np.tile(rng(10).standard_normal(64), (100, 1))
    assert C.std_l2_normalized(E) < 1e-7
    Z[:, :5] = 3.0
    assert C.dead_dims(Z) == 5
    assert C.dead_dims(E) == 64


# ------------------------------------------------------------------ SIGReg

def test_epps_pulley_matches_definition():
    x = rng(11).standard_normal((400, 3)) * np.array([1.0, 2.0, 0.5]) + np.array([0, 0.3, 0])
    got = C.epps_pulley(x)
    ref = [ref_ep(x[:, j]) for j in range(3)]
    np.testing.assert_allclose(got, ref, rtol=1e-9)


def test_sigreg_matches_definition():
    Z = rng(12).standard_normal((500, 10)) * 1.5 + 0.2
    A = C.random_directions(10, 32, seed=3, dtype=torch.float64).numpy()
    assert np.allclose(np.linalg.norm(A, axis=0), 1)
    P_ = Z @ A
    ref = np.mean([ref_ep(P_[:, m]) for m in range(32)])
    assert C.sigreg(Z, num_directions=32, seed=3) == pytest.approx(ref, rel=1e-7)
    Zs = (Z - Z.mean(0)) / math.sqrt(Z.var(0, ddof=1).mean())
    Ps = Zs @ A
    ref_s = np.mean([ref_ep(Ps[:, m]) for m in range(32)])
    assert C.sigreg_standardized(Z, num_directions=32, seed=3) == pytest.approx(ref_s, rel=1e-7)
    # the defaults are LeJEPA's 256 directions (seed 0), for both forms
    A = C.random_directions(10, 256, seed=0, dtype=torch.float64).numpy()
    P_, Ps = Z @ A, Zs @ A
    assert C.sigreg(Z) == pytest.approx(np.mean([ref_ep(P_[:, m]) for m in range(256)]), rel=1e-7)
    assert C.sigreg_standardized(Z) == pytest.approx(np.mean([ref_ep(Ps[:, m]) for m in range(256)]), rel=1e-7)


def test_gaussian_reference_by_sampling():
    x = rng(13).standard_normal((600, 2000))
    T = np.array(C.epps_pulley(x))
    se = T.std() / math.sqrt(T.size)
    assert abs(T.mean() - C.sigreg_gaussian_reference()) < 4 * se
    Tc = np.array(C.epps_pulley(x - x.mean(0)))
    assert abs(Tc.mean() - C.sigreg_gaussian_reference(centered=True)) < 4 * Tc.std() / math.sqrt(Tc.size) + 0.01
    # the exact integral over the real line is close to the 17-point quadrature
    assert C.sigreg_gaussian_reference() == pytest.approx(math.sqrt(2 * math.pi) - math.sqrt(2 * math.pi / 3), abs=0.01)


def test_sigreg_gaussian_vs_uniform():
    ref = C.sigreg_gaussian_reference()
    G = rng(14).standard_normal((4000, 16))
    assert abs(C.sigreg(G) - ref) < 0.35
    U = rng(15).uniform(-math.sqrt(3), math.sqrt(3), (4000, 2))   # unit variance, not Gaussian
    assert C.sigreg(U) > 5 * ref
    assert C.sigreg_standardized(U) > 5 * C.sigreg_gaussian_reference(centered=True)
    # raw SIGReg sees scale, standardised does not
    assert C.sigreg(5 * G) > 20 * ref
    assert C.sigreg_standardized(5 * G + 3) == pytest.approx(C.sigreg_standardized(G), rel=1e-4)


def test_sigreg_agrees_with_training_version_if_present():
    sr = pytest.importorskip("explorer.metrics.sigreg")
    x = torch.from_numpy(rng(16).standard_normal((300, 4)))
    np.testing.assert_allclose(sr.epps_pulley(x).detach().double().numpy(), C.epps_pulley(x.numpy()), rtol=1e-5)


# ------------------------------------------------------------------ pairwise

def test_uniformity_alignment_cosine():
    Z = rng(17).standard_normal((300, 8))
    U = l2n(Z)
    iu = np.triu_indices(300, 1)
    D2 = ((U[:, None] - U[None]) ** 2).sum(-1)[iu]
    assert C.uniformity(Z) == pytest.approx(np.log(np.mean(np.exp(-2 * D2))), rel=1e-9)
    cos = (U @ U.T)[iu]
    assert C.mean_cosine(Z) == pytest.approx(cos.mean(), abs=1e-12)
    h = C.cosine_histogram(Z, bins=20)
    ref, _ = np.histogram(cos, bins=20, range=(-1, 1))
    assert sum(h["counts"]) == len(cos)
    assert np.abs(np.array(h["counts"]) - ref).sum() <= 2          # bin-edge rounding only
    Zp = Z + 0.1 * rng(18).standard_normal(Z.shape)
    assert C.alignment(Z, Zp) == pytest.approx(np.mean(((l2n(Z) - l2n(Zp)) ** 2).sum(1)), rel=1e-9)
    E = np.ones((50, 8))
    assert C.uniformity(E) == pytest.approx(0.0, abs=1e-12)
    assert C.mean_cosine(E) == pytest.approx(1.0)
    # subsample: value close to all pairs
    Zb = rng(19).standard_normal((3000, 8))
    assert C.uniformity(Zb, max_points=1000) == pytest.approx(C.uniformity(Zb, max_points=None), abs=0.05)


def test_bad_input():
    with pytest.raises(InputError):
        C.rankme(np.zeros(5))
    with pytest.raises(InputError):
        C.rankme(np.array([[1.0, np.nan], [0, 1]]))


# ------------------------------------------------------------------ intrinsic dimension

def _ref_dists(X, k):
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    np.fill_diagonal(D, np.inf)
    return np.sort(D, 1)[:, :k]


def test_neighbor_distances_and_estimators():
    X = rng(20).standard_normal((400, 5)) @ rng(21).standard_normal((5, 30)) + 100.0
    d = I.neighbor_distances(X, 20)
    ref = _ref_dists(X, 20)
    np.testing.assert_allclose(d, ref, rtol=1e-9)
    # TwoNN by its definition
    mu = np.sort(ref[:, 1] / ref[:, 0])
    F = np.arange(1, 401) / 400
    x, y = np.log(mu[:360]), -np.log(1 - F[:360])
    assert I.twonn_from_distances(d) == pytest.approx((x @ y) / (x @ x), rel=1e-9)
    m = 1 / (np.log(ref[:, -1:] / ref[:, :-1]).sum(1) / 19)
    assert I.mle_from_distances(d, 20) == pytest.approx(m.mean(), rel=1e-9)


def test_intrinsic_dimension_of_a_manifold():
    # a 3-dimensional manifold (curved) embedded in 40 dimensions
    t = rng(22).uniform(0, 1, (3000, 3))
    feats = np.concatenate([t, np.sin(3 * t), np.cos(2 * t[:, :1] + t[:, 1:2])], 1)
    X = feats @ rng(23).standard_normal((feats.shape[1], 40))
    assert I.twonn_dimension(X) == pytest.approx(3, rel=0.2)
    assert I.mle_dimension(X) == pytest.approx(3, rel=0.2)


# ------------------------------------------------------------------ probes

def _blobs(n=1200, d=16, c=4, sep=2.5, seed=24):
    r = rng(seed)
    y = r.integers(0, c, n)
    centers = r.standard_normal((c, d)) * sep
    return centers[y] + r.standard_normal((n, d)), y


def test_knn_accuracy_matches_reference():
    Z, y = _blobs()
    perm = np.random.default_rng(0).permutation(len(y))
    te, tr = np.sort(perm[:240]), np.sort(perm[240:])
    U = l2n(Z)
    S = U[te] @ U[tr].T
    nn = np.argsort(-S, 1)[:, :20]
    votes = np.zeros((len(te), 4))
    for i in range(len(te)):
        for j in nn[i]:
            votes[i, y[tr][j]] += np.exp(S[i, j] / 0.07)
    ref = (votes.argmax(1) == y[te]).mean()
    assert P.knn_accuracy(Z, y) == pytest.approx(ref)
    assert P.knn_accuracy(Z, np.array(["abcd"[v] for v in y])) == pytest.approx(ref)


def test_linear_probe_close_to_sklearn():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    Z, y = _blobs(sep=0.6)
    perm = np.random.default_rng(0).permutation(len(y))
    te, tr = np.sort(perm[:240]), np.sort(perm[240:])
    sc = StandardScaler().fit(Z[tr])
    clf = LogisticRegression(max_iter=1000).fit(sc.transform(Z[tr]), y[tr])
    ref = clf.score(sc.transform(Z[te]), y[te])
    assert P.linear_probe_accuracy(Z, y) == pytest.approx(ref, abs=0.04)
    assert ref > 0.5


def test_per_class_rank_and_centroids():
    Z, y = _blobs(n=600)
    er = P.per_class_effective_rank(Z, y)
    Zc = Z[y == 2] - Z[y == 2].mean(0)
    s = np.linalg.svd(Zc, compute_uv=False)
    p = s / s.sum() + 1e-7
    assert er["2"] == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-9)
    M, cls = P.class_centroid_cosine(Z, y)
    cent = np.stack([l2n(Z)[y == c].mean(0) for c in range(4)])
    np.testing.assert_allclose(M, l2n(cent) @ l2n(cent).T, atol=1e-12)


# ------------------------------------------------------------------ the job and the verdict

def test_verdicts():
    r = rng(25)
    healthy = drain(diagnose(r.standard_normal((3000, 32)).astype(np.float32)))
    assert healthy["verdict"]["label"] == "no collapse detected"
    assert healthy["rankme"] > 30
    low = r.standard_normal((3000, 5)) @ r.standard_normal((5, 64))
    res = drain(diagnose(low))
    assert res["verdict"]["label"] == "dimensional collapse"
    assert res["dims_99"] <= 5 and res["verdict"]["summary"].startswith(f"dimensional collapse ({res['dims_99']} of 64")
    rank1 = np.outer(r.standard_normal(2000), r.standard_normal(64))
    assert drain(diagnose(rank1))["verdict"]["label"] == "complete collapse"
    equal = drain(diagnose(np.ones((500, 16))))
    assert equal["verdict"]["label"] == "complete collapse"
    assert equal["std_l2_normalized"] == pytest.approx(0, abs=1e-9)
    assert equal["uniformity"] == pytest.approx(0, abs=1e-12)
    # thresholds are adjustable
    from explorer.metrics.diagnose import Thresholds

    strict = DiagnoseParams(thresholds=Thresholds(dimensional_fraction=1.01))
    assert drain(diagnose(r.standard_normal((3000, 32)), params=strict))["verdict"]["label"] == "dimensional collapse"


def test_diagnose_keys_labels_and_sampling():
    Z, y = _blobs(n=3000, d=24)
    res = drain(diagnose(Z, y, DiagnoseParams(max_rows_covariance=1000, pair_points=500)))
    for k in ("rankme", "alpha_req", "std_l2_normalized", "sigreg", "sigreg_gaussian_reference",
              "sigreg_standardized", "uniformity", "mean_cosine", "twonn_dimension", "mle_dimension",
              "dims_90", "dims_99", "dead_dims", "knn_accuracy", "linear_probe_accuracy", "spectrum",
              "cosine_histogram", "per_class_effective_rank", "class_centroid_cosine", "verdict"):
        assert k in res, k
    assert res["sampling"]["covariance_rows"] == 1000 and res["sampling"]["pair_points"] == 500
    assert len(res["spectrum"]) == 24 and res["knn_accuracy"] > 0.9
    # SIGReg on all points, by its definition: 256 Gaussian directions drawn in float64 from
    # torch.Generator().manual_seed(seed), normalised; mean Epps-Pulley of the projections
    A = torch.randn(24, 256, generator=torch.Generator().manual_seed(0), dtype=torch.float64).numpy()
    A /= np.linalg.norm(A, axis=0)
    assert res["sigreg"] == pytest.approx(np.mean([ref_ep(Z @ A[:, m]) for m in range(256)]), rel=1e-6)
    Zs = (Z - Z.mean(0)) / math.sqrt(Z.var(0, ddof=1).mean())
    assert res["sigreg_standardized"] == pytest.approx(np.mean([ref_ep(Zs @ A[:, m]) for m in range(256)]), rel=1e-6)
    import json

    json.dumps(to_json(res), allow_nan=False)


def test_diagnose_cancel_and_cache(tmp_path, monkeypatch):
    from explorer.store import Workspace

    # cancelling after the first stage runs none of the later ones
    later = []
    for name in ("covariance_eigenvalues", "singular_values", "pair_products"):
        f = getattr(C, name)
        monkeypatch.setattr(C, name, lambda *a, _f=f, _n=name, **k: (later.append(_n), _f(*a, **k))[1])
    job = diagnose(rng(26).standard_normal((500, 8)))
    next(job)
    assert next(job).message.startswith("per-dimension")
    job.close()
    assert later == []
    ws = Workspace(tmp_path / "w.h5")
    Z = rng(27).standard_normal((800, 16)).astype(np.float32)
    ws.put("embeddings", "e1", {"vectors": Z}, {"model": "m", "layer": "out"})
    # a cancelled cached run stores nothing
    job = diagnose_cached(ws, "e1", DiagnoseParams())
    for _ in range(3):
        next(job)
    job.close()
    assert ws.list("diagnostics") == []
    drain(diagnose(Z))
    assert sorted(set(later)) == ["covariance_eigenvalues", "pair_products", "singular_values"]
    a = drain(diagnose_cached(ws, "e1", DiagnoseParams()))
    assert len(ws.list("diagnostics")) == 1
    b = drain(diagnose_cached(ws, "e1", DiagnoseParams()))
    assert b.get("cached") and b["rankme"] == pytest.approx(a["rankme"])
    assert b["spectrum"] == pytest.approx(a["spectrum"]) and b["verdict"] == to_json(a)["verdict"]


def test_cached_diagnosis_keeps_the_records_names_and_the_class_centroid_matrix(tmp_path):
    # a diagnosis read back from the workspace says which model, layer and data it is of, and
    # keeps the class-centroid cosine matrix (float64 reference: centroids of the unit rows)
    from explorer.store import Workspace

    r = rng(28)
    y = np.repeat(np.array(["cat", "dog", "eel"]), 120)
    Z = (r.standard_normal((360, 12)) + 2.0 * np.eye(12)[np.repeat([0, 1, 2], 120)]).astype(np.float32)
    ws = Workspace(tmp_path / "w.h5")
    ws.put("embeddings", "e1", {"vectors": Z, "labels": y}, {"model": "m", "layer": "out", "dataset": "pets"})
    a = drain(diagnose_cached(ws, "e1", DiagnoseParams()))
    b = drain(diagnose_cached(ws, "e1", DiagnoseParams()))
    assert b.get("cached")
    for res in (a, b):
        assert (res["model"], res["layer"], res["dataset"]) == ("m", "out", "pets")
    U = Z.astype(np.float64) / np.linalg.norm(Z.astype(np.float64), axis=1, keepdims=True)
    cent = np.stack([U[y == c].mean(0) for c in ("cat", "dog", "eel")])
    cent /= np.linalg.norm(cent, axis=1, keepdims=True)
    cc = b["class_centroid_cosine"]
    assert list(cc["classes"]) == ["cat", "dog", "eel"]
    np.testing.assert_allclose(np.asarray(cc["matrix"]), cent @ cent.T, rtol=1e-9, atol=1e-12)
