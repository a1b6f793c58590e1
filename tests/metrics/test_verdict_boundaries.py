"""The collapse verdict at its boundaries: a few dead dimensions, the dead-dimension count and
the numerical-rank fraction exactly at their thresholds, and n - 1 < d (where the rank cannot
exceed n - 1). The thresholds are written here from the rules of ``Thresholds``'s docstring,
not read from the code."""

import math

import numpy as np
import pytest

from explorer.core.jobs import drain
from explorer.metrics.diagnose import DiagnoseParams, Thresholds, diagnose, verdict

NONE, DIM, COMPLETE = "no collapse detected", "dimensional collapse", "complete collapse"


def healthy(n=3000, d=64, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d))


def metrics(d=64, n=1000, ratio=1.0, cos=0.0, k99=50, rank=None, dead=0):
    """A metrics dict of :func:`verdict`'s inputs: std of the L2-normalised rows given as
    ``ratio`` / sqrt(d)."""
    return {"n": n, "dim": d, "std_l2_normalized": ratio / math.sqrt(d), "mean_cosine": cos,
            "dims_99": k99, "dims_90": max(1, k99 // 2), "dead_dims": dead,
            "numerical_rank": min(d, n - 1) if rank is None else rank, "rankme": 10.0}


@pytest.mark.parametrize("dead, label", [(0, NONE), (1, NONE), (3, NONE), (6, NONE), (7, DIM)])
def test_dead_dimensions_of_healthy_data(dead, label):
    """64 dimensions: dimensional collapse from 10% dead = 6.4, i.e. from 7 dead dimensions."""
    Z = healthy(d=64, seed=dead)
    Z[:, :dead] = 2.5                                   # constant columns: dead
    res = drain(diagnose(Z, params=DiagnoseParams(pair_points=500)))
    assert res["dead_dims"] == dead
    assert res["verdict"]["label"] == label
    if label == DIM:
        assert res["verdict"]["summary"].endswith(f"; {dead} dead dimensions)")


def test_dead_dimension_count_at_the_threshold():
    """d = 100: 10% is exactly 10 dead dimensions, which is collapse; 9 is not."""
    assert verdict(metrics(d=100, dead=9))["label"] == NONE
    assert verdict(metrics(d=100, dead=10))["label"] == DIM
    # d = 4: 10% is 0.4, but a single dead dimension is the least that counts
    assert verdict(metrics(d=4, n=500, k99=4, dead=0))["label"] == NONE
    assert verdict(metrics(d=4, n=500, k99=4, dead=1))["label"] == DIM


def test_numerical_rank_fraction_uses_min_of_d_and_n_minus_1():
    # n - 1 = 10 < d = 64: 30% of 10 = 3 eigenvalues needed; 3 is enough, 2 is collapse
    assert verdict(metrics(d=64, n=11, k99=3, rank=3))["label"] == NONE
    assert verdict(metrics(d=64, n=11, k99=2, rank=2))["label"] == DIM
    # n large: 30% of d = 64 is 19.2
    assert verdict(metrics(d=64, n=1000, k99=20, rank=20))["label"] == NONE
    assert verdict(metrics(d=64, n=1000, k99=19, rank=19))["label"] == DIM


def test_complete_collapse_thresholds():
    # std ratio exactly 0.1 is not below 0.1 (d = 100: 0.01 x sqrt(100) = 0.1)
    assert verdict(metrics(d=100, ratio=0.1))["label"] == NONE
    assert verdict(metrics(d=100, ratio=0.0999))["label"] == COMPLETE
    # mean cosine exactly 0.99 is not above it
    assert verdict(metrics(cos=0.99))["label"] == NONE
    v = verdict(metrics(cos=0.995))
    assert v["label"] == COMPLETE and "mean cosine 0.995" in v["summary"]
    # one dimension carrying 99% of the variance is complete collapse, two are not
    assert verdict(metrics(k99=1))["label"] == COMPLETE
    assert verdict(metrics(k99=2))["label"] == NONE


def test_fewer_points_than_dimensions():
    """n - 1 < d: 20 Gaussian points in 64 dimensions span 19 directions, the most they can:
    no collapse. The same 20 points on a 4-dimensional subspace: 4 < 30% of 19 = 5.7."""
    r = np.random.default_rng(3)
    full = drain(diagnose(r.standard_normal((20, 64))))
    assert full["numerical_rank"] == 19
    assert full["verdict"]["label"] == NONE
    low = drain(diagnose(r.standard_normal((20, 4)) @ r.standard_normal((4, 64))))
    assert low["numerical_rank"] == 4
    assert low["verdict"]["label"] == DIM
    six = drain(diagnose(r.standard_normal((20, 6)) @ r.standard_normal((6, 64))))
    assert six["numerical_rank"] == 6 and six["verdict"]["label"] == NONE


def test_thresholds_are_the_ones_given():
    th = Thresholds(dead_fraction=0.5)
    assert verdict(metrics(d=100, dead=10), th)["label"] == NONE
    assert verdict(metrics(d=100, dead=50), th)["label"] == DIM
    assert verdict(metrics(cos=0.9), Thresholds(complete_mean_cosine=0.8))["label"] == COMPLETE


def test_evidence_quotes_the_dimensions_for_90_and_99_percent():
    m = metrics(d=16, n=500, k99=12)
    m["dims_90"] = 7
    assert "99% of the variance in 12 of 16 dimensions, 90% in 7" in verdict(m)["evidence"]


def test_a_constant_offset_with_rounding_noise_is_all_dead_dimensions():
    # coordinates 1e6 + 1e-6 noise (float64): the noise is below 1e-10 of the data's magnitude,
    # the rounding of a constant, so every dimension is dead and the collapse is complete
    Z = 1e6 + 1e-6 * np.random.default_rng(3).standard_normal((300, 8))
    r = drain(diagnose(Z))
    assert r["dead_dims"] == 8 and r["verdict"]["label"] == COMPLETE


def test_numerical_rank_of_no_eigenvalues_is_zero():
    from explorer.metrics.diagnose import numerical_rank

    assert numerical_rank([]) == 0 and numerical_rank([0.0, 0.0]) == 0
    assert numerical_rank([4.0, 1e-3, 1e-6]) == 2  # above 1e-5 x the largest


def test_alignment_and_twonn_in_the_diagnosis_match_their_formulas():
    # alignment (Wang & Isola 2020) of positive pairs and TwoNN (Facco et al. 2017), written
    # here in float64 from the papers; n = 400 is below pair_points, so every row is used
    from scipy.spatial.distance import cdist

    r = np.random.default_rng(5)
    Z = r.standard_normal((400, 5)) @ r.standard_normal((5, 20))  # 5-dimensional data in 20-D
    P = Z + 0.3 * r.standard_normal(Z.shape)
    from references import run_steps

    steps, res = run_steps(diagnose(Z, positives=P))
    own = [p for p in steps if p.total == steps[-1].total]  # the diagnosis's own stages, one bar
    assert [p.done for p in own] == list(range(len(own))) and own[-1].done == own[-1].total == 8
    assert all(isinstance(p.message, str) and p.message for p in own)
    assert {"covariance spectrum", "alignment", "intrinsic dimension"} <= {p.message for p in own}
    U = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    V = P / np.linalg.norm(P, axis=1, keepdims=True)
    assert res["alignment"] == pytest.approx(np.mean(np.sum((U - V) ** 2, axis=1)), rel=1e-6)
    D = cdist(Z, Z)
    np.fill_diagonal(D, np.inf)
    D.sort(axis=1)
    mu = np.sort(D[:, 1] / D[:, 0])
    N = len(mu)
    keep = int(np.floor(0.9 * N))
    x, y = np.log(mu[:keep]), -np.log(1 - np.arange(1, keep + 1) / N)
    assert res["twonn_dimension"] == pytest.approx((x @ y) / (x @ x), rel=1e-4)
    assert 3.5 < res["twonn_dimension"] < 6.5  # near the true 5
    assert "alignment" in res["timings"] and "intrinsic" in res["timings"]


def test_twonn_is_nan_when_no_ratio_carries_information():
    # every point's second neighbour as near as its first (a lattice): log(mu) = 0, no slope
    from explorer.metrics.intrinsic import twonn_from_distances

    d = np.repeat(np.arange(1.0, 9.0)[:, None], 2, axis=1)
    assert np.isnan(twonn_from_distances(d))
    assert np.isnan(twonn_from_distances(d[:2]))  # fewer than 3 points
