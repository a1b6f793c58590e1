"""Truncation curves, backward compatibility and relative representations, against numpy and
scikit-learn written here (issue 19)."""

import json

import numpy as np
import pytest

from explorer.cli import main
from explorer.core.jobs import drain
from explorer.metrics.representations import (choose_anchors, compatibility, relative_representation,
                                              truncation_curve, truncation_dims)


def _rankme64(Z):
    s = np.linalg.svd(Z.astype(np.float64), compute_uv=False)
    p = s / s.sum() + 1e-7
    return float(np.exp(-(p * np.log(p)).sum()))


def test_truncation_dims():
    assert truncation_dims(128) == [8, 16, 32, 64, 128]
    assert truncation_dims(100) == [8, 16, 32, 64, 100]
    assert truncation_dims(5) == [5]


def test_truncation_curve_on_a_matryoshka_like_space():
    """Class information only in the first 8 dimensions, noise after: the accuracy is already
    there at m = 8, and the first-m RankMe matches the float64 SVD of the first m columns."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    r = np.random.default_rng(0)
    y = r.integers(0, 4, 600)
    Z = r.standard_normal((600, 64)).astype(np.float32)
    Z[:, :8] += 4 * np.eye(4, 8)[y]
    rows = drain(truncation_curve(Z, y, seed=0))
    assert [row["dims"] for row in rows] == [8, 16, 32, 64]
    for row in rows:
        assert row["rankme"] == pytest.approx(_rankme64(Z[:, :row["dims"]]), rel=1e-3)
    assert rows[0]["knn_accuracy"] > 0.9 and rows[0]["linear_probe_accuracy"] > 0.9
    # the probe's accuracy at m = 8 against scikit-learn on the same split (80/20, seed 0)
    from explorer.metrics.probes import split_indices

    tr, te = split_indices(600, 0.2, 0)
    sc = StandardScaler().fit(Z[tr, :8])
    ref = LogisticRegression(C=1.0, max_iter=5000).fit(sc.transform(Z[tr, :8]), y[tr]).score(sc.transform(Z[te, :8]), y[te])
    assert rows[0]["linear_probe_accuracy"] == pytest.approx(ref, abs=1 / len(te) + 1e-9)
    # without labels: no accuracies
    assert drain(truncation_curve(Z, None, dims=[4]))[0]["knn_accuracy"] is None


def _topk_ref(Q, G, yq, yg, k):
    Qn = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    Gn = G / np.linalg.norm(G, axis=1, keepdims=True)
    order = np.argsort(-(Qn @ Gn.T), axis=1)[:, :k]
    return float(np.mean([(yg[o] == t).any() for o, t in zip(order, yq)]))


def test_compatibility_against_brute_force():
    r = np.random.default_rng(1)
    y = r.integers(0, 5, 400)
    old = (r.standard_normal((400, 16)) + 2 * np.eye(5, 16)[y]).astype(np.float32)
    Q, _ = np.linalg.qr(r.standard_normal((16, 16)))
    rotated = (old @ Q).astype(np.float32)  # a new model in another basis: not compatible
    better = (old + 1.5 * np.eye(5, 16)[y]).astype(np.float32)  # same space, better separated
    res = compatibility(old, better, y, seed=3)
    perm = np.random.default_rng(3).permutation(400)
    q, g = np.sort(perm[:80]), np.sort(perm[80:])
    for qn, A in (("old", old), ("new", better)):
        for gn, B in (("old", old), ("new", better)):
            for k in (1, 5):
                assert res["pairs"][f"{qn}-vs-{gn}"][f"top{k}"] == pytest.approx(_topk_ref(A[q], B[g], y[q], y[g], k))
    assert res["compatible"] is True
    assert compatibility(old, rotated, y, seed=3)["compatible"] is False
    with pytest.raises(Exception, match="same space"):
        compatibility(old, old[:, :8], y)


def test_anchors_stratified_and_relative_representation_is_basis_free():
    r = np.random.default_rng(2)
    y = np.repeat([0, 1, 2], [500, 300, 200])
    a = choose_anchors(1000, 10, y, seed=0)
    assert len(set(a.tolist())) == 10 and np.bincount(y[a]).tolist() == [5, 3, 2]
    Z = r.standard_normal((1000, 12)).astype(np.float32)
    Q, _ = np.linalg.qr(r.standard_normal((12, 12)))
    R1 = relative_representation(Z, a)
    Zn = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    np.testing.assert_allclose(R1, Zn @ Zn[a].T, atol=1e-5)
    # a rotated, rescaled copy has the same relative representation
    np.testing.assert_allclose(relative_representation(3 * Z @ Q, a), R1, atol=1e-4)


def test_cli_truncation_compatibility_and_relative_compare(tmp_path, capsys):
    r = np.random.default_rng(4)
    y = r.integers(0, 3, 300)
    Z = (r.standard_normal((300, 32)) + 3 * np.eye(3, 32)[y]).astype(np.float32)
    Q, _ = np.linalg.qr(r.standard_normal((32, 32)))
    np.save(tmp_path / "z.npy", Z)
    np.save(tmp_path / "zr.npy", (Z @ Q).astype(np.float32))
    np.save(tmp_path / "y.npy", y)
    assert main(["truncation", "--vectors", str(tmp_path / "z.npy"), "--labels", str(tmp_path / "y.npy"),
                 "--json", "--quiet"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["dims"] for row in rows] == [8, 16, 32]
    assert main(["compatibility", "--old", str(tmp_path / "z.npy"), "--new", str(tmp_path / "zr.npy"),
                 "--labels", str(tmp_path / "y.npy"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["compatible"] is False
    # a rotated copy compared through 50 anchors: identical relative representations
    assert main(["compare", "--vectors", str(tmp_path / "z.npy"), str(tmp_path / "zr.npy"), "--anchors", "50",
                 "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["linear_cka"] == pytest.approx(1.0, abs=1e-4) and len(out["anchors"]) == 50
    # bad input: one line, exit 2
    assert main(["compatibility", "--old", str(tmp_path / "z.npy"), "--new", str(tmp_path / "z.npy"),
                 "--labels", str(tmp_path / "y.npy"), "--query-fraction", "1.5"]) == 2
