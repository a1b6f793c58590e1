"""Exact k-NN under a small memory budget (found by mutation testing): the tiles stay inside the
budget and still use it, and query blocks split into column tiles with the query's own row
excluded at an offset give the float64 brute-force answer written here."""

import numpy as np
import pytest

from explorer.neighbors import METRICS, knn_graph_exact, knn_search
from references import brute_knn64, run_steps


@pytest.fixture(scope="module")
def Z():
    r = np.random.default_rng(11)
    return (r.normal(size=(600, 16)) * r.uniform(0.5, 2.0, size=(600, 1))).astype(np.float32)


def _tile_rows(step) -> int:
    import re

    return int(re.search(r"\((\d+)-row tiles\)", step.message).group(1))


@pytest.mark.parametrize("memory_mb", [0.05, 0.3])
def test_self_knn_tiles_fit_the_budget_and_use_it(Z, memory_mb):
    # one B x B float32 tile per thread of the pool, all within the budget, and as large as it
    # allows; progress counts the pairs of rows multiplied: each pair of blocks once
    from explorer.core.parallel import workers

    steps, (idx, sc) = run_steps(knn_graph_exact(Z, 5, "cosine", memory_mb=memory_mb, device="cpu"))
    B = _tile_rows(steps[0])
    budget = memory_mb * 2 ** 20
    assert workers() * 4 * B * B <= budget < workers() * 4 * (B + 1) ** 2
    sizes = np.diff(np.r_[np.arange(0, 600, B), 600]).astype(float)
    whole = (600.0 ** 2 + (sizes ** 2).sum()) / 2
    done = [s.done for s in steps]
    assert done[0] == 0 and done == sorted(done) and done[-1] == whole
    assert {s.total for s in steps} == {whole}
    bi, bs = brute_knn64(Z, Z, 5, "cosine", self_rows=np.arange(600))
    np.testing.assert_array_equal(idx, bi)


@pytest.mark.parametrize("metric", METRICS)
def test_column_tiles_with_self_excluded_at_an_offset(Z, metric):
    # 0.1 MB: a row block of all 600 columns (x 64 rows) does not fit -> column tiles of 409
    k = 6
    for lo, hi in ((0, 600), (100, 250), (430, 600)):
        steps, (idx, sc) = run_steps(knn_search(Z[lo:hi], Z, k, metric, memory_mb=0.1, self_offset=lo,
                                                exclude_self=True))
        bi, bs = brute_knn64(Z, Z[lo:hi], k, metric, self_rows=np.arange(lo, hi))
        np.testing.assert_array_equal(idx, bi)
        np.testing.assert_allclose(sc, bs, rtol=1e-5, atol=1e-5)
        assert steps[-1].done == steps[-1].total == hi - lo
        # row blocks x column tiles of float32 scores within the budget
        assert steps[0].done * 4 * 409 <= 0.1 * 2 ** 20
    # without exclusion each query is its own nearest (euclidean) neighbour
    idx, _ = next_value(knn_search(Z[:50], Z, 3, "euclidean", memory_mb=0.1))
    np.testing.assert_array_equal(idx[:, 0], np.arange(50))


def next_value(job):
    return run_steps(job)[1]


def test_knn_search_refuses_more_neighbours_than_points(Z):
    from explorer.core.errors import InputError

    with pytest.raises(InputError):
        next_value(knn_search(Z[:3], Z[:10], 10, "cosine", exclude_self=True, self_offset=0))
    idx, _ = next_value(knn_search(Z[:3], Z[:10], 10, "cosine"))
    assert idx.shape == (3, 10) and sorted(idx[0]) == list(range(10))
    with pytest.raises(InputError):
        next_value(knn_graph_exact(Z[:10], 10, "cosine"))
    with pytest.raises(InputError):
        next_value(knn_graph_exact(Z[:10], 0, "cosine"))


def test_tiles_are_as_many_rows_as_asked_and_progress_counts_each_tile(Z):
    # tile=50 under a budget that would allow more: 12 blocks of 50 rows, 78 tiles; each
    # step adds finished tiles' areas and says what it computes; the answer is unchanged
    steps, (idx, _) = run_steps(knn_graph_exact(Z, 4, "cosine", memory_mb=64, device="cpu", tile=50))
    assert {_tile_rows(s) for s in steps} == {50}
    assert {s.message for s in steps} == {"exact cosine k-NN (50-row tiles)"}
    areas = {50 * 50 * (i + 1) for i in range(78)}  # any number of whole tiles
    assert all(s.done in areas | {0} for s in steps) and steps[-1].done == 78 * 2500
    bi, _ = brute_knn64(Z, Z, 4, "cosine", self_rows=np.arange(len(Z)))
    np.testing.assert_array_equal(idx, bi)


@pytest.mark.parametrize("metric", METRICS)
def test_pair_scores_are_the_float64_scores_of_the_pairs(Z, metric):
    # the exact scores an approximate graph is reported with: cosine similarity, minus the
    # euclidean distance, or the dot product of each (row, neighbour) pair, from float64 here
    from explorer.neighbors.blocks import pair_scores

    idx = np.random.default_rng(3).integers(0, len(Z), size=(len(Z), 5))
    X = Z.astype(np.float64)
    if metric == "cosine":
        U = X / np.linalg.norm(X, axis=1, keepdims=True)
        want = np.einsum("id,ijd->ij", U, U[idx])
    elif metric == "dot":
        want = np.einsum("id,ijd->ij", X, X[idx])
    else:
        want = -np.sqrt(((X[:, None, :] - X[idx]) ** 2).sum(-1))
    got = pair_scores(Z, idx, metric)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("metric", METRICS)
def test_rows_search_in_column_tiles_sees_every_point(Z, metric):
    # the recall sample's exact search: every row a query, column tiles of 128 (the first
    # column and each tile's edges included), self excluded; float64 brute force here
    from explorer.neighbors.blocks import exact_rows_knn

    Z = Z.copy()  # point 0 made somebody's nearest neighbour, so a search that skips it fails
    big = int(np.argmax(np.linalg.norm(Z, axis=1)))
    Z[0] = 1.5 * Z[big] if metric == "dot" else Z[1] + 0.01 * np.abs(Z[1]).mean()
    rows = np.arange(len(Z))
    idx, rank = exact_rows_knn(Z, rows, 5, metric, block_rows=64, block_cols=128)
    bi, _ = brute_knn64(Z, Z, 5, metric, self_rows=rows)
    np.testing.assert_array_equal(idx, bi)
    assert (bi[:, 0] == 0).any()


def test_cosine_neighbours_do_not_depend_on_the_rows_scale(Z):
    # cosine is scale-free: rows scaled by 1e-3 .. 1e3 (norms far below and above 1) have the
    # neighbours and similarities of the unscaled rows, in the all-points and the rows search
    from explorer.neighbors.blocks import exact_rows_knn

    scale = np.geomspace(1e-3, 1e3, len(Z)).astype(np.float32)[:, None]
    bi, bs = brute_knn64(Z, Z, 5, "cosine", self_rows=np.arange(len(Z)))
    for X in (Z * 1e-3, Z * scale):
        idx, sc = next_value(knn_graph_exact(X, 5, "cosine", device="cpu"))
        np.testing.assert_array_equal(idx, bi)
        np.testing.assert_allclose(sc, bs, atol=1e-5)
        idx, sc = exact_rows_knn(X, np.arange(len(Z)), 5, "cosine")
        np.testing.assert_array_equal(idx, bi)
        np.testing.assert_allclose(sc, bs, atol=1e-5)
