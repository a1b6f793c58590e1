"""The linear probe (issue 15): solved to convergence, scikit-learn's objective and C, the same
number every time, with its split sizes and a Wilson interval.

References are independent: scikit-learn's ``LogisticRegression`` (lbfgs, tightened to
convergence) on a ``StandardScaler`` fitted on the training rows only, and the Wilson bounds
found as the roots of their defining equation with a bracketing solver.
"""

import math

import numpy as np
import pytest

from explorer.metrics import probes as P


def _overlapping(n, d, k, sep, seed, scales=True, offset=5.0):
    """k Gaussian classes whose means are ``sep`` apart (per unit noise): they overlap, so no
    probe separates them; anisotropic feature scales and an offset make standardising matter."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    means = rng.normal(size=(k, d)) * sep
    scale = np.geomspace(0.2, 20.0, d) if scales else np.ones(d)
    X = (means[y] + rng.normal(size=(n, d))) * scale + offset
    return X, y


def _sklearn(X, y, tr, te, C):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    sc = StandardScaler().fit(X[tr])
    clf = LogisticRegression(C=C, tol=1e-10, max_iter=100_000).fit(sc.transform(X[tr]), y[tr])
    return clf, sc


DATASETS = [  # n, d, classes, separation, seed, C
    (300, 8, 3, 0.5, 0, 1.0),       # the size
    (1000, 20, 5, 0.3, 1, 1.0),
    (500, 16, 2, 0.4, 2, 1.0),      # binary: scikit-learn's one-vector form
    (2000, 64, 10, 0.25, 3, 1.0),
    (800, 32, 4, 0.4, 4, 0.01),     # strong regularisation
    (600, 40, 3, 0.12, 5, 100.0),   # weak regularisation, d close to n / 15
]


@pytest.mark.parametrize("n,d,k,sep,seed,C", DATASETS)
def test_within_one_point_of_sklearn(n, d, k, sep, seed, C):
    X, y = _overlapping(n, d, k, sep, seed)
    tr, te = P.split_indices(n, 0.2, 0)
    r = P.linear_probe(X, y, C=C)
    clf, sc = _sklearn(X, y, tr, te, C)
    ref = clf.score(sc.transform(X[te]), y[te])
    assert clf.score(sc.transform(X[tr]), y[tr]) < 0.97  # not separable: the optimum is finite
    assert r["converged"] and r["C"] == C
    assert abs(r["accuracy"] - ref) <= 0.01, (r["accuracy"], ref)
    assert (r["n_train"], r["n_test"]) == (len(tr), len(te)) == (n - round(0.2 * n), round(0.2 * n))
    assert P.linear_probe_accuracy(X, y, C=C) == r["accuracy"]


def test_weights_are_sklearns_solution():
    # the same convex objective, so the same minimiser (scikit-learn's multinomial coef_ is
    # centred over classes, as the penalised softmax optimum is)
    import torch

    from explorer.core.jobs import drain

    X, y = _overlapping(400, 12, 4, 0.5, 7)
    tr, te = P.split_indices(400, 0.2, 0)
    r = drain(P.linear_probe_job(X, y))
    clf, sc = _sklearn(X, y, tr, te, 1.0)
    W = r["W"].numpy()
    b = r["b"].numpy()
    np.testing.assert_allclose(W, clf.coef_, atol=2e-4)
    np.testing.assert_allclose(b - b.mean(), clf.intercept_ - clf.intercept_.mean(), atol=2e-4)
    np.testing.assert_allclose(r["mu"].numpy(), sc.mean_, rtol=1e-12)
    np.testing.assert_allclose(r["sd"].numpy(), sc.scale_, rtol=1e-12)
    assert isinstance(r["W"], torch.Tensor)


def test_test_rows_standardised_with_train_statistics_only():
    # the test rows come from a shifted distribution: statistics taken from them would undo
    # the shift (and lift the accuracy); the training statistics must be used as they are
    from sklearn.preprocessing import StandardScaler

    X, y = _overlapping(1000, 10, 3, 0.6, 8, scales=False, offset=0.0)
    tr, te = P.split_indices(1000, 0.2, 0)
    X[te] = X[te] + 1.5
    r = P.linear_probe(X, y)
    clf, sc = _sklearn(X, y, tr, te, 1.0)
    ref = clf.score(sc.transform(X[te]), y[te])
    assert abs(r["accuracy"] - ref) <= 0.01
    for leak in (X[te], X):  # test-row statistics, all-row statistics
        leaky = clf.score(StandardScaler().fit(leak).transform(X[te]), y[te])
        assert abs(leaky - ref) > 0.03  # the check above can tell them apart


def test_same_call_same_number():
    X, y = _overlapping(300, 8, 3, 0.5, 0)
    a = P.linear_probe(X, y)
    b = P.linear_probe(X, y)
    assert a == b


def _wilson_by_root(correct, n, z=1.959963984540054):
    """Wilson's bounds are the p with |phat - p| = z sqrt(p (1 - p) / n)."""
    from scipy.optimize import brentq

    ph = correct / n

    def f(p):
        return (ph - p) ** 2 - z * z * p * (1 - p) / n

    # f < 0 strictly between the two roots, which bracket phat (a root itself at 0 or n)
    lo = 0.0 if correct == 0 else brentq(f, 0.0, min(ph, 1 - 1e-12), xtol=1e-14)
    hi = 1.0 if correct == n else brentq(f, max(ph, 1e-12), 1.0, xtol=1e-14)
    return lo, hi


@pytest.mark.parametrize("correct,n", [(37, 60), (0, 20), (20, 20), (573, 1000), (1, 3)])
def test_wilson_interval(correct, n):
    lo, hi = P.wilson_interval(correct, n)
    rlo, rhi = _wilson_by_root(correct, n)
    assert lo == pytest.approx(rlo, abs=1e-9) and hi == pytest.approx(rhi, abs=1e-9)
    assert lo <= correct / n <= hi


def test_result_reports_interval_of_its_accuracy():
    X, y = _overlapping(500, 10, 4, 0.4, 9)
    r = P.linear_probe(X, y)
    assert r["correct"] == round(r["accuracy"] * r["n_test"])
    rlo, rhi = _wilson_by_root(r["correct"], r["n_test"])
    assert r["ci_low"] == pytest.approx(rlo, abs=1e-9) and r["ci_high"] == pytest.approx(rhi, abs=1e-9)
    assert not math.isclose(r["ci_low"], r["ci_high"])


def test_diagnose_reports_the_probe_with_interval():
    from explorer.core.jobs import drain
    from explorer.metrics.diagnose import diagnose

    X, y = _overlapping(600, 12, 3, 0.5, 10)
    out = drain(diagnose(X.astype(np.float32), y))
    tr, te = P.split_indices(600, 0.2, 0, 10000, 2000)
    clf, sc = _sklearn(X.astype(np.float32).astype(np.float64), y, tr, te, 1.0)
    ref = clf.score(sc.transform(X.astype(np.float32).astype(np.float64)[te]), y[te])
    assert abs(out["linear_probe_accuracy"] - ref) <= 0.01
    lp = out["linear_probe"]
    assert (lp["n_train"], lp["n_test"]) == (len(tr), len(te))
    assert lp["ci_low"] <= lp["accuracy"] <= lp["ci_high"]


def test_the_fit_reports_each_iteration_and_the_loss_it_ends_at():
    # one progress step per L-BFGS iteration (partial: iteration and loss, for the live plot),
    # and the final loss is sklearn's objective at the returned weights (written here)
    import torch

    from references import run_steps

    from explorer.core.jobs import Progress

    r = np.random.default_rng(9)
    y = np.repeat(np.arange(3), 60)
    X = r.standard_normal((180, 6)) + 1.5 * np.eye(6)[y]
    job = P.fit_logistic(torch.as_tensor(X), y, 3, C=0.5, max_iter=500)
    steps = []
    try:
        while True:
            steps.append(next(job))
    except StopIteration as stop:
        W, b, info = stop.value
    assert steps and all(isinstance(p, Progress) and p.total == 500 for p in steps)
    assert [p.partial["iteration"] for p in steps] == [p.done for p in steps] == sorted(p.done for p in steps)
    assert steps[-1].message == f"linear probe (L-BFGS iteration {info['iterations']})"
    assert info["converged"] and steps[-1].partial["loss"] == pytest.approx(info["loss"], rel=1e-12)
    Wn, bn = W.numpy(), b.numpy()
    z = X @ Wn.T + bn
    z -= z.max(1, keepdims=True)
    ce = -np.mean(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(1)))
    assert info["loss"] == pytest.approx(ce + (Wn ** 2).sum() / (2 * 0.5 * len(y)), rel=1e-9)
    # stopped by max_iter before converging: the last step still says where it stopped
    steps, (_, _, info3) = run_steps(P.fit_logistic(torch.as_tensor(X), y, 3, C=0.5, max_iter=3))
    assert not info3["converged"] and info3["iterations"] == 3
    assert [(p.done, p.total, p.partial["iteration"]) for p in steps][-1] == (3, 3, 3)
    assert steps[-1].message == "linear probe (L-BFGS iteration 3)"
    assert steps[-1].partial["loss"] == pytest.approx(info3["loss"], rel=1e-12)
