"""PCA and map trust on the inputs the first tests left out (found by mutation testing): wide
embeddings (the randomised path above 8192 dimensions), blockwise accumulation, two or three
rows, constant data, and the per-point trust of large k (chunked) and of duplicate points.
Every expectation is computed here in float64 numpy, or by sets."""

import numpy as np
import pytest

from explorer.maps import pca, projection_trust


def numpy_pca(X, c):
    X64 = np.asarray(X, np.float64)
    Xc = X64 - X64.mean(0)
    _, S, Vt = np.linalg.svd(Xc, full_matrices=False)
    var = S ** 2 / max(len(X) - 1, 1)
    W = Vt[:c] * np.sign(Vt[np.arange(c), np.abs(Vt[:c]).argmax(1)])[:, None]
    return W, var[:c], var[:c] / var.sum(), Xc @ W.T


def check_against_numpy(r, X, c, rtol=1e-6, atol=1e-6):
    W, var, ratio, coords = numpy_pca(X, c)
    np.testing.assert_allclose(r.components, W, atol=1e-5)
    np.testing.assert_allclose(r.explained_variance, var, rtol=rtol, atol=atol)
    np.testing.assert_allclose(r.explained_variance_ratio, ratio, rtol=rtol, atol=atol)
    np.testing.assert_allclose(r.coords, coords, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(r.mean, np.asarray(X, np.float64).mean(0), rtol=1e-6, atol=1e-6)
    assert r.coords.dtype == np.float32 and r.coords.shape == (len(X), c)


def test_pca_accumulates_in_blocks_like_one_pass():
    rng = np.random.default_rng(3)
    X = (rng.normal(size=(1000, 12)) * np.linspace(3, 0.5, 12) + 7).astype(np.float32)
    for block in (64, 999, 1000, 4096):
        check_against_numpy(pca(X, 3, block_rows=block), X, 3)


def test_pca_of_two_and_three_rows():
    X = np.array([[0.0, 0.0, 0.0], [3.0, 4.0, 0.0]], np.float32)
    r = pca(X, 1)
    # two points: all the variance (|x1-x0|^2 / 2 with N-1 = 1) on the line joining them
    assert r.explained_variance[0] == pytest.approx(12.5, rel=1e-6)
    np.testing.assert_allclose(r.explained_variance_ratio, [1.0], rtol=1e-6)
    np.testing.assert_allclose(r.coords[:, 0], [-2.5, 2.5], rtol=1e-6)
    X3 = np.array([[1.0, 0.0], [0.0, 2.0], [4.0, 1.0]], np.float32)
    check_against_numpy(pca(X3, 2), X3, 2)


def test_pca_of_constant_data_is_all_zero():
    X = np.full((20, 4), 3.0, np.float32)
    r = pca(X, 2)
    np.testing.assert_array_equal(r.coords, np.zeros((20, 2), np.float32))
    np.testing.assert_array_equal(r.explained_variance, [0.0, 0.0])
    np.testing.assert_array_equal(r.explained_variance_ratio, [0.0, 0.0])
    assert r.explained_variance_ratio.shape == (2,) and r.explained_variance_ratio.dtype == np.float64
    np.testing.assert_allclose(r.mean, [3.0] * 4)


def test_pca_of_data_with_little_variance():
    # a total variance well below 1 still gives ratios that sum to 1 over all components
    X = (np.random.default_rng(12).normal(size=(300, 3)) * [0.02, 0.01, 0.005]).astype(np.float32)
    r = pca(X, 3)
    check_against_numpy(r, X, 3, rtol=1e-5, atol=1e-12)
    assert r.explained_variance_ratio.sum() == pytest.approx(1.0, rel=1e-6)


def test_pca_of_wide_embeddings_takes_the_randomised_path_and_agrees():
    # D > 8192: no D x D covariance; a clear spectrum the randomised SVD resolves exactly
    rng = np.random.default_rng(4)
    N, D = 60, 8200
    basis = np.linalg.qr(rng.normal(size=(D, 3)))[0].T          # (3, D) orthonormal
    X = rng.normal(size=(N, 3)) * [30.0, 10.0, 3.0] @ basis + rng.normal(size=(N, D)) * 0.01 + 2.0
    X = X.astype(np.float32)
    r = pca(X, 2)
    check_against_numpy(r, X, 2, rtol=1e-4, atol=1e-6)


def set_trust(hk, Y, k):
    D = ((Y[:, None] - Y[None]) ** 2).sum(-1) + np.eye(len(Y)) * 1e18
    lk = np.argsort(D, axis=1, kind="stable")[:, :k]
    return np.array([len(set(hk[i, :k]) & set(lk[i])) / k for i in range(len(Y))])


def test_trust_with_large_k_is_chunked_and_still_exact():
    # step = 4e6 // k^2 = 44 rows per chunk for k = 300: 400 points need ten chunks
    rng = np.random.default_rng(5)
    N, k = 400, 300
    Y = rng.normal(size=(N, 2))
    hk = np.stack([rng.permutation(np.delete(np.arange(N), i))[:k] for i in range(N)])
    got = projection_trust(hk, Y)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, set_trust(hk, Y, k), rtol=1e-6)
    # only the first k columns count
    np.testing.assert_allclose(projection_trust(hk, Y, k=20), set_trust(hk, Y, 20), rtol=1e-6)


def test_trust_with_duplicate_points_excludes_the_point_itself():
    # groups of 6 identical layout points: the k-d tree may return 3 group members without the
    # point itself; trust must still count k = 2 neighbours other than the point
    N, k = 24, 2
    Y = np.repeat(np.arange(4, dtype=np.float64)[:, None] * 10.0, 6, axis=0) @ np.ones((1, 2))
    group = np.arange(N) // 6
    # neighbours in another group -> no layout neighbour is one
    other = np.stack([np.flatnonzero(group == (group[i] + 1) % 4)[:k] for i in range(N)])
    np.testing.assert_array_equal(projection_trust(other, Y), np.zeros(N, np.float32))
    # a point's own index among its "neighbours" is never one of its layout neighbours
    selfish = np.stack([[i, other[i, 0]] for i in range(N)])
    np.testing.assert_array_equal(projection_trust(selfish, Y), np.zeros(N, np.float32))
    # all five group mates as neighbours (k = 5): the layout's five are exactly those, whichever
    # five of the six tied points the tree returned
    mates = np.stack([np.flatnonzero((group == group[i]) & (np.arange(N) != i)) for i in range(N)])
    np.testing.assert_array_equal(projection_trust(mates, Y), np.ones(N, np.float32))


def test_trust_k_from_one_to_n_minus_one():
    from explorer.core.errors import InputError

    N = 10
    Y = np.random.default_rng(0).normal(size=(N, 2))
    others = np.stack([np.roll(np.delete(np.arange(N), i), i) for i in range(N)])   # (N, N-1)
    for k in (1, 2, N - 1):
        np.testing.assert_allclose(projection_trust(others, Y, k=k), set_trust(others, Y, k), rtol=1e-6)
    np.testing.assert_array_equal(projection_trust(others, Y), np.ones(N, np.float32))  # k = N - 1: all
    for bad in (0, -1, N):                 # k = N: more neighbours than other points
        with pytest.raises(InputError):
            projection_trust(np.hstack([others, others[:, :1]]), Y, k=bad)
    with pytest.raises(InputError):
        projection_trust(others, Y, k=N)   # more columns asked than given
    with pytest.raises(InputError):
        projection_trust(others[:9], Y)


def test_pca_defaults_to_two_components_and_honours_the_device():
    import torch

    from explorer.core.errors import InputError

    X = (np.random.default_rng(9).normal(size=(50, 6)) * [3, 2, 1, 1, 1, 1]).astype(np.float32)
    r = pca(X)
    assert r.coords.shape == (50, 2) and r.components.shape == (2, 6)
    check_against_numpy(r, X, 2)
    check_against_numpy(pca(X, 2, device="cpu"), X, 2)
    with pytest.raises(InputError):
        pca(X, device="no-such-device")
    if torch.cuda.is_available():
        check_against_numpy(pca(X, 2, device="cuda"), X, 2)
    else:
        with pytest.raises(InputError):
            pca(X, device="cuda")
    for bad in (0, 7):
        with pytest.raises(InputError):
            pca(X, bad)


def test_pca_of_data_far_from_the_origin_centres_in_float64():
    # a mean of 3e4 and a spread of 0.5: a float32 running mean would be off by ~1e-3 and show
    # in the coordinates and as extra variance
    r = np.random.default_rng(10)
    X = (r.normal(size=(20000, 4)) * [0.5, 0.3, 0.2, 0.1] + 3e4).astype(np.float32)
    check_against_numpy(pca(X, 2, block_rows=4096), X, 2, rtol=1e-7, atol=1e-9)


def test_wide_pca_of_two_and_three_rows():
    # the randomised path (D > 8192) with N - 1 = 1 and 2 in the variances and the total
    X = np.zeros((2, 8200), np.float32)
    X[1, :3] = [3.0, 4.0, 0.0]
    r = pca(X, 1)
    assert r.explained_variance[0] == pytest.approx(12.5, rel=1e-6)
    np.testing.assert_allclose(r.explained_variance_ratio, [1.0], rtol=1e-6)
    np.testing.assert_allclose(np.abs(r.coords[:, 0]), [2.5, 2.5], rtol=1e-6)
    X3 = np.random.default_rng(1).normal(size=(3, 8200)).astype(np.float32)
    _, var, ratio, _ = numpy_pca(X3, 2)
    r3 = pca(X3, 2)
    np.testing.assert_allclose(r3.explained_variance, var, rtol=1e-5)
    np.testing.assert_allclose(r3.explained_variance_ratio, ratio, rtol=1e-5)
