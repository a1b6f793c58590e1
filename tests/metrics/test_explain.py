"""How-to-read texts and the explanations of values that seem to disagree
(explorer.metrics.explain), on embeddings built here in numpy with a known structure: a complete
collapse whose classes a linear probe still separates, a rank-3 dimensional collapse that still
separates its classes, XOR clusters (kNN beats a linear probe), and a class signal hidden in one
low-variance coordinate (the probe beats kNN without collapse). Each premise is first checked
with scikit-learn / numpy float64, independently of the code under test."""

from __future__ import annotations

import math

import numpy as np
import pytest

from explorer.core.jobs import drain
from explorer.metrics.diagnose import DiagnoseParams, diagnose
from explorer.metrics.explain import (COMPARE_DISAGREEMENTS, COMPARE_READING, DISAGREEMENTS, READING,
                                      compare_disagreements, compare_readings, disagreements, readings)

PARAMS = DiagnoseParams(device="cpu", pair_points=1000)


def _sk_probe(Z, y, seed=0):
    """Held-out accuracy of scikit-learn's standardised logistic regression (C = 1)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    a, b, ya, yb = train_test_split(np.asarray(Z, np.float64), y, test_size=0.25, random_state=seed, stratify=y)
    sc = StandardScaler().fit(a)
    return LogisticRegression(C=1.0, max_iter=5000).fit(sc.transform(a), ya).score(sc.transform(b), yb)


def _knn32(Z, y, k=20, seed=0):
    """Held-out accuracy of a majority vote of the k nearest neighbours by cosine, computed in
    float32 as a search by cosine similarity on float32 embeddings does (ties: lowest index)."""
    from sklearn.model_selection import train_test_split

    a, b, ya, yb = train_test_split(np.asarray(Z, np.float32), y, test_size=0.25, random_state=seed, stratify=y)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    nb = np.argsort(-(b @ a.T), axis=1, kind="stable")[:, :k]
    votes = np.array([np.bincount(ya[r], minlength=y.max() + 1).argmax() for r in nb])
    return float((votes == yb).mean())


def _collapsed(n=800, d=32, classes=4, eps=1e-5, seed=0):
    """Every point = one shared unit vector + eps x (its class's direction + 0.2 noise): the
    points all face the same way (complete collapse) but the classes differ by ~eps."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n // classes)
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    centres = rng.standard_normal((classes, d))
    Z = u + eps * (centres[y] + 0.2 * rng.standard_normal((n, d)))
    return Z.astype(np.float32), y


def test_complete_collapse_with_a_high_probe_is_explained():
    Z, y = _collapsed()
    # the premise, checked independently: all cosines are 1 to within float32 rounding, a
    # standardised logistic regression separates the classes, cosine kNN is near chance (25%)
    U = Z.astype(np.float64) / np.linalg.norm(Z.astype(np.float64), axis=1, keepdims=True)
    assert (U @ U.T).min() > 1 - 1e-8
    assert _sk_probe(Z, y) > 0.9
    assert _knn32(Z, y) < 0.45
    m = drain(diagnose(Z, y, PARAMS))
    assert m["verdict"]["label"] == "complete collapse"
    notes = disagreements(m)
    assert "probe_despite_collapse" in notes and "knn_below_probe" in notes
    assert f"{100 * m['linear_probe_accuracy']:.1f}%" in notes["probe_despite_collapse"]
    assert "chance" in notes["knn_below_probe"] and "25.0%" in notes["knn_below_probe"]  # 1/4 classes
    # the residual variance is spread over many directions: dims_99 is explained too
    d = Z.shape[1]
    assert m["dims_99"] >= 0.3 * d
    assert "variance_left_is_tiny" in notes
    total = float(np.linalg.eigvalsh(np.cov(U.T)).clip(0).sum())          # float64 reference
    assert f"{total:.2g}" in notes["variance_left_is_tiny"]
    assert list(notes) == [k for k in DISAGREEMENTS if k in notes]     # display order


def test_dimensional_collapse_that_still_separates_the_classes():
    rng = np.random.default_rng(1)
    n, d, classes = 800, 64, 4
    y = np.repeat(np.arange(classes), n // classes)
    low = 3.0 * rng.standard_normal((classes, 3))[y] + 0.3 * rng.standard_normal((n, 3))
    Z = (low @ rng.standard_normal((3, d)) + rng.standard_normal(d)).astype(np.float32)
    assert np.linalg.matrix_rank(Z.astype(np.float64) - Z.mean(0), tol=1e-3) == 3
    assert _knn32(Z, y) > 0.9
    m = drain(diagnose(Z, y, PARAMS))
    assert m["verdict"]["label"] == "dimensional collapse"
    notes = disagreements(m)
    assert "separates_despite_dimensional" in notes
    assert f"only {m['dims_99']} directions" in notes["separates_despite_dimensional"]
    assert "probe_despite_collapse" not in notes and "variance_left_is_tiny" not in notes


def test_xor_clusters_knn_above_probe():
    rng = np.random.default_rng(2)
    n, d = 800, 16
    corner = rng.integers(0, 4, n)
    sx, sy = np.where(corner % 2, 1.0, -1.0), np.where(corner // 2, 1.0, -1.0)
    y = (sx * sy > 0).astype(int)                         # XOR: no hyperplane separates it
    Z = 0.3 * rng.standard_normal((n, d))
    Z[:, 0] += 3 * sx
    Z[:, 1] += 3 * sy
    Z[:, 2] += 3.0                                         # off the origin, so cosine sees the corners
    assert _knn32(Z, y) > 0.9 and _sk_probe(Z, y) < 0.7
    m = drain(diagnose(Z.astype(np.float32), y, PARAMS))
    notes = disagreements(m)
    assert "knn_above_probe" in notes and "knn_below_probe" not in notes
    assert m["knn_accuracy"] - m["linear_probe_accuracy"] >= 0.2


def test_signal_in_a_small_coordinate_probe_above_knn_without_collapse():
    rng = np.random.default_rng(3)
    n, d = 800, 32
    y = np.repeat([0, 1], n // 2)
    Z = rng.standard_normal((n, d))
    Z[:, 0] = np.where(y == 1, 0.05, -0.05) + 0.005 * rng.standard_normal(n)
    assert _sk_probe(Z, y) > 0.95 and _knn32(Z, y) < 0.7
    m = drain(diagnose(Z.astype(np.float32), y, PARAMS))
    assert m["verdict"]["label"] == "no collapse detected"
    notes = disagreements(m)
    assert "knn_below_probe" in notes
    assert "rounding" not in notes["knn_below_probe"]     # not the collapsed-space explanation
    assert "probe_despite_collapse" not in notes


def test_isotropic_gaussian_needs_no_explanation():
    rng = np.random.default_rng(4)
    Z = rng.standard_normal((1000, 32)).astype(np.float32)
    y = rng.integers(0, 5, 1000)                           # random labels: both probes near chance
    m = drain(diagnose(Z, y, PARAMS))
    assert m["verdict"]["label"] == "no collapse detected"
    assert disagreements(m) == {}


def _dict(**kw):
    base = {"n": 2000, "dim": 128, "verdict": {"label": "no collapse detected"}}
    base.update(kw)
    return base


def test_few_dims_but_healthy_and_sigreg_rules():
    m = _dict(dims_99=17, numerical_rank=110, sigreg=445.0, sigreg_gaussian_reference=1.05,
              per_class_effective_rank={str(i): 3.0 for i in range(10)})
    notes = disagreements(m)
    assert set(notes) == {"few_dims_but_healthy", "sigreg_not_gaussian"}
    assert "17 of 128" in notes["few_dims_but_healthy"] and "110 of 128" in notes["few_dims_but_healthy"]
    assert "10 classes" in notes["few_dims_but_healthy"]
    # 30% of 128 = 38.4: 39 directions for 99% is not "few"; SIGReg at 9x its reference is not flagged
    assert disagreements(_dict(dims_99=39, sigreg=9.0, sigreg_gaussian_reference=1.0)) == {}
    # a completely collapsed model's SIGReg is not the thing to explain
    assert "sigreg_not_gaussian" not in disagreements(_dict(verdict={"label": "complete collapse"}, sigreg=700.0,
                                                            sigreg_gaussian_reference=1.05))


def test_rankme_uncentred_and_dead_dims_rules():
    notes = disagreements(_dict(rankme=1.0, dims_99=87))
    assert "rankme_uncentred" in notes and "(1.0)" in notes["rankme_uncentred"]
    assert "rankme_uncentred" not in disagreements(_dict(rankme=24.7, dims_99=87))
    notes = disagreements(_dict(verdict={"label": "dimensional collapse"}, dead_dims=20, dims_99=60))
    assert "dead_dims_with_spread_variance" in notes and "20 of 128" in notes["dead_dims_with_spread_variance"]


def test_missing_values_are_skipped():
    assert disagreements({}) == {}
    assert disagreements(_dict(knn_accuracy=None, linear_probe_accuracy=0.9, rankme=float("nan"))) == {}
    assert readings({}) == {}


def test_readings_quote_the_reference_values():
    d = 128
    m = _dict(std_l2_normalized=0.06947, rankme=24.7, dims_99=17, knn_accuracy=0.98, linear_probe_accuracy=0.99,
              sigreg=445.0, sigreg_gaussian_reference=1.0525, mean_cosine=0.35,
              per_class_effective_rank={str(i): 3.0 for i in range(10)})
    r = readings(m)
    assert set(r) == {k for k in READING if k in m}
    assert f"{1 / math.sqrt(d):.4f}" in r["std_l2_normalized"]
    assert f"{0.06947 * math.sqrt(d):.3g}" in r["std_l2_normalized"]
    assert "10.0%" in r["knn_accuracy"] and "10.0%" in r["linear_probe_accuracy"]
    assert "1.05" in r["sigreg"]
    assert all(t.strip() for t in r.values())


def test_compare_readings_quote_chance():
    r = compare_readings(n=1797, mutual_k=10)
    assert set(r) == set(COMPARE_READING)
    assert f"{10 / 1796:.3f}" in r["mutual_knn"]


def test_compare_healthy_against_its_collapsed_copy():
    """B = one shared vector + 1e-5 x A: centred, B is A scaled, so CKA is 1, but B's cosine
    neighbours are arbitrary, so mutual kNN is at chance."""
    from explorer.metrics.compare import CompareParams, compare

    rng = np.random.default_rng(5)
    n, d = 600, 16
    A = (rng.standard_normal((6, d))[rng.integers(0, 6, n)] + 0.3 * rng.standard_normal((n, d)))
    u = rng.standard_normal(d)
    B = u / np.linalg.norm(u) + 1e-5 * A
    Ac, Bc = A - A.mean(0), B - B.mean(0)
    cka64 = np.linalg.norm(Ac.T @ Bc) ** 2 / (np.linalg.norm(Ac.T @ Ac) * np.linalg.norm(Bc.T @ Bc))
    assert cka64 > 0.99
    row = drain(compare(A.astype(np.float32), B.astype(np.float32), CompareParams(knn_points=None)))
    assert row["mutual_knn"] <= 3 * 10 / (n - 1)
    diag_b = {"verdict": {"label": "complete collapse"}}
    notes = compare_disagreements(row, n, 10, [None, diag_b], ["A", "B"])
    assert "collapsed_model" in notes and notes["collapsed_model"].startswith("B is completely collapsed")
    assert "neighbours_at_chance" in notes
    assert f"{row['mutual_knn']:.3f}" in notes["neighbours_at_chance"]
    assert list(notes) == [k for k in COMPARE_DISAGREEMENTS if k in notes]


@pytest.mark.parametrize("row, keys", [
    ({"linear_cka": 0.635, "svcca": 0.837, "mutual_knn": 0.005}, {"neighbours_at_chance", "svcca_above_cka"}),
    ({"linear_cka": 0.2, "svcca": 0.3, "mutual_knn": 0.6}, {"knn_above_cka"}),
    ({"linear_cka": 0.8, "debiased_cka": 0.5, "svcca": 0.85, "mutual_knn": 0.4}, {"cka_biased"}),
    ({"linear_cka": 0.9, "debiased_cka": 0.88, "svcca": 0.95, "mutual_knn": 0.5}, set()),
])
def test_compare_rules(row, keys):
    assert set(compare_disagreements(row, 1797, 10)) == keys
