"""Probes on data where the details matter: the k-NN probe's temperature (a few very close
neighbours against many far ones) and the linear probe's standardisation (test rows shifted, so
standardising them with their own statistics would undo the shift). References are written
here: a float64 DINO vote and scikit-learn's LogisticRegression on the same split."""

import numpy as np
import pytest

from explorer.metrics import probes as P


def l2n(Z):
    return Z / np.linalg.norm(Z, axis=1, keepdims=True)


def split(n, test_fraction=0.2, seed=0):
    """The held-out split the probes document: a seeded permutation, the first round(n f) held out."""
    perm = np.random.default_rng(seed).permutation(n)
    nt = max(1, int(round(n * test_fraction)))
    return np.sort(perm[nt:]), np.sort(perm[:nt])


def knn_reference(Z, y, k, weight):
    tr, te = split(len(y))
    U = l2n(Z.astype(np.float64))
    S = U[te] @ U[tr].T
    nn = np.argsort(-S, 1, kind="stable")[:, :k]
    votes = np.zeros((len(te), y.max() + 1))
    for i in range(len(te)):
        for j in nn[i]:
            votes[i, y[tr][j]] += weight(S[i, j])
    return float((votes.argmax(1) == y[te]).mean())


def tight_minority(seed=6, d=8):
    """800 diffuse points of class 0 and 40 tight groups of 5 points of class 1: a class-1
    point has a few very similar neighbours of its class among many less similar ones of class
    0, so the vote depends on how strongly similarity is weighted."""
    r = np.random.default_rng(seed)
    c = l2n(r.standard_normal((40, d)))
    Z1 = np.repeat(c, 5, 0) + 0.08 * r.standard_normal((200, d))
    Z = np.concatenate([r.standard_normal((800, d)), Z1])
    return Z, np.r_[np.zeros(800, int), np.ones(200, int)]


def test_knn_probe_temperature_weights_close_neighbours():
    Z, y = tight_minority()
    T = 0.07
    ref = knn_reference(Z, y, 20, lambda s: np.exp(s / T))
    inverted = knn_reference(Z, y, 20, lambda s: np.exp(s * T))
    flat = knn_reference(Z, y, 20, lambda s: 1.0)
    assert ref - max(inverted, flat) > 0.1          # the case separates the weightings
    assert P.knn_accuracy(Z, y, k=20, temperature=T) == pytest.approx(ref)
    # a large temperature flattens the weights towards a majority vote
    big = knn_reference(Z, y, 20, lambda s: np.exp(s / 1e3))
    assert abs(big - flat) <= 0.01
    assert P.knn_accuracy(Z, y, k=20, temperature=1e3) == pytest.approx(big)


def shifted_test_rows(seed=7, n=1000, d=12, c=3, shift=3.0):
    """Three overlapping Gaussian classes; the held-out rows moved by ``shift`` along the first
    axis (a distribution shift the probe must not hide by re-centring the test rows)."""
    r = np.random.default_rng(seed)
    y = r.integers(0, c, n)
    Z = (r.standard_normal((c, d)) * 0.8)[y] + r.standard_normal((n, d))
    _, te = split(n)
    Z[te, 0] += shift
    return Z, y


def sklearn_accuracy(Z, y, test_stats=False, weight_decay=1e-4):
    """LogisticRegression on the training rows standardised with their own mean and std
    (ddof=1); the held-out rows standardised with the TRAINING statistics (or, to show what the
    wrong choice gives, their own). The probe minimises mean CE + wd/2 ||W||^2, which is
    scikit-learn's C sum CE + 1/2 ||W||^2 with C = 1 / (wd n_train)."""
    from sklearn.linear_model import LogisticRegression

    tr, te = split(len(y))
    mu, sd = Z[tr].mean(0), Z[tr].std(0, ddof=1)
    mu_te, sd_te = (Z[te].mean(0), Z[te].std(0, ddof=1)) if test_stats else (mu, sd)
    clf = LogisticRegression(C=1.0 / (weight_decay * len(tr)), max_iter=10000, tol=1e-10)
    clf.fit((Z[tr] - mu) / sd, y[tr])
    return float(clf.score((Z[te] - mu_te) / sd_te, y[te]))


def test_linear_probe_standardises_test_rows_with_training_statistics():
    Z, y = shifted_test_rows()
    ref = sklearn_accuracy(Z, y)
    wrong = sklearn_accuracy(Z, y, test_stats=True)
    assert wrong - ref > 0.05                        # the case separates the two choices
    assert P.linear_probe_accuracy(Z, y) == pytest.approx(ref, abs=0.01)


def test_linear_probe_matches_sklearn_on_overlapping_classes():
    Z, y = shifted_test_rows(seed=8, shift=0.0)
    ref = sklearn_accuracy(Z, y)
    assert 0.6 < ref < 0.97                          # neither trivial nor hopeless
    assert P.linear_probe_accuracy(Z, y) == pytest.approx(ref, abs=0.01)
