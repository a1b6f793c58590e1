"""The fast UMAP optimiser (explorer.maps.sgd) against the gradient formulas of the UMAP
paper written here in float64, and against umap-learn's own layout for quality."""

import numpy as np
import pytest

from explorer.core.jobs import drain
from explorer.maps.sgd import _power_kernel, optimize_fast, power_table


@pytest.mark.parametrize("b", [0.5, 0.8950, 1.0, 1.5])
def test_power_table_matches_float64_pow(b):
    import numba

    powb = _power_kernel()

    @numba.njit
    def run(x, T, out):
        for i in range(x.shape[0]):
            out[i] = powb(x[i], T)

    x = np.exp(np.random.default_rng(0).uniform(np.log(1e-12), np.log(1e6), 200_000)).astype(np.float32)
    x[:3] = [1.0, 2.0, 0.25]  # table nodes
    out = np.empty_like(x)
    run(x, power_table(b), out)
    ref = x.astype(np.float64) ** b
    # linear interpolation over cells 2^-7 of an octave wide: |b (b - 1)| / 8 * 2^-14, plus rounding
    assert np.max(np.abs(out / ref - 1)) < abs(b * (b - 1)) / 8 * 2.0 ** -14 + 1e-6


def _ab():
    import umap.umap_ as U

    return U.find_ab_params(1.0, 0.1)


def test_one_epoch_follows_the_umap_gradients():
    """Epoch 1 of a single edge (epoch 0 samples nothing: its first turn is at epoch 1):
    the attractive step, then 4 negative samples (rate 5), all of which hit the only tail
    vertex and push from the position after the attraction."""
    a, b = _ab()
    y0 = np.array([0.3, -0.2])
    t = np.array([1.1, 0.4])
    head = np.array([[*y0]], np.float32)
    tail = np.array([[*t]], np.float32)
    drain(optimize_fast(head, tail, np.array([0]), np.array([0]), 2, 1, np.array([1.0]), a, b, seed=3,
                        gamma=1.0, initial_alpha=1.0, negative_sample_rate=5, threads=1, move_other=False))

    def clip(v):
        return np.clip(v, -4.0, 4.0)

    y = y0.astype(np.float64)
    d2 = np.sum((y - t) ** 2)
    y = y + clip(-2 * a * b * d2 ** (b - 1) / (1 + a * d2 ** b) * (y - t))  # alpha = 1 at epoch 1
    d2 = np.sum((y - t) ** 2)
    push = clip(2 * 1.0 * b / ((0.001 + d2) * (1 + a * d2 ** b)) * (y - t))
    y = y + 4 * push  # int((1 - 1/5) / (1/5)) = 4 negative samples
    np.testing.assert_allclose(head[0], y, rtol=2e-5)
    np.testing.assert_array_equal(tail[0], np.float32(t))  # move_other=False leaves the tail


def test_attraction_moves_both_ends_symmetrically():
    a, b = _ab()
    emb = np.array([[0.0, 0.0], [2.0, 1.0]], np.float32)
    # n_vertices=1: every negative sample is vertex 0 = the head itself, which is skipped
    drain(optimize_fast(emb, emb, np.array([0]), np.array([1]), 2, 1, np.array([1.0]), a, b, seed=0,
                        gamma=1.0, initial_alpha=1.0, negative_sample_rate=5, threads=1, move_other=True))
    d = np.array([-2.0, -1.0])
    d2 = 5.0
    g = np.clip(-2 * a * b * d2 ** (b - 1) / (1 + a * d2 ** b) * d, -4, 4)
    np.testing.assert_allclose(emb[0], g, rtol=2e-5)
    np.testing.assert_allclose(emb[1], [2.0, 1.0] - g, rtol=2e-5)


@pytest.fixture(scope="module")
def blobs():
    """Four Gaussian blobs with structure inside each (a 3-D latent), 600 x 16."""
    rng = np.random.default_rng(1)
    c = rng.integers(0, 4, 600)
    A = rng.normal(size=(4, 3, 16))
    X = rng.normal(size=(4, 16))[c] * 6 + np.einsum("nl,nld->nd", rng.normal(size=(600, 3)), A[c])
    return (X + 0.1 * rng.normal(size=(600, 16))).astype(np.float32)


@pytest.mark.slow
def test_fast_layout_is_deterministic_and_as_good_as_umap_learn(blobs):
    import umap
    from sklearn.manifold import trustworthiness

    from explorer.maps import MapParams, _umap_inputs, umap_layout
    from explorer.neighbors import KnnParams, knn_graph

    knn = drain(knn_graph(blobs, KnnParams(k=14, metric="euclidean", method="exact")))
    p = MapParams(metric="euclidean", seed=4, n_epochs=200)
    one = drain(umap_layout(blobs, knn, p))
    two = drain(umap_layout(blobs, knn, p))
    assert one.info["optimizer"] == "fast" and not one.info["parallel"]
    np.testing.assert_array_equal(one.coords, two.coords)  # seeded: one thread, same map
    ki, kd = _umap_inputs(knn, 15)
    ref = umap.UMAP(n_epochs=200, random_state=4, precomputed_knn=(ki, kd),
                    force_approximation_algorithm=True).fit_transform(blobs)
    tw_ours = trustworthiness(blobs, one.coords, n_neighbors=10)
    tw_ref = trustworthiness(blobs, ref, n_neighbors=10)
    assert tw_ours >= tw_ref - 0.01
    par = drain(umap_layout(blobs, knn, MapParams(metric="euclidean", seed=None, n_epochs=200)))
    assert par.info["parallel"] and trustworthiness(blobs, par.coords, n_neighbors=10) >= tw_ref - 0.01
