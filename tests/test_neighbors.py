"""Exact and approximate k-NN checked against brute force written here in float64."""

import json

import numpy as np
import pytest

from explorer.core.errors import InputError
from explorer.core.jobs import drain
from explorer.neighbors import METRICS, KnnParams, VectorIndex, knn_graph, query, recall_at_k
from references import brute_knn64, run_steps


@pytest.fixture(scope="module")
def Z():
    rng = np.random.default_rng(3)
    # varied norms so dot differs from cosine
    return (rng.normal(size=(600, 24)) * rng.uniform(0.5, 2.0, size=(600, 1))).astype(np.float32)


@pytest.mark.parametrize("metric", METRICS)
def test_exact_graph_matches_float64_brute_force(Z, metric):
    r = drain(knn_graph(Z, KnnParams(k=7, metric=metric, method="exact")))
    bi, bs = brute_knn64(Z, Z, 7, metric, self_rows=np.arange(len(Z)))
    assert r.method == "exact" and r.recall == 1.0
    assert r.indices.dtype == np.int64 and r.scores.dtype == np.float32 and r.indices.shape == (600, 7)
    np.testing.assert_array_equal(r.indices, bi)
    np.testing.assert_allclose(r.scores, bs, rtol=1e-5, atol=1e-5)
    assert not (r.indices == np.arange(600)[:, None]).any()


@pytest.mark.parametrize("metric", METRICS)
def test_chunked_equals_one_block(Z, metric):
    one = drain(knn_graph(Z, KnnParams(k=5, metric=metric, method="exact", memory_mb=512)))
    # 0.05 MB: 64-row blocks over 200-column tiles, so both row and column tiling run
    tiny = drain(knn_graph(Z, KnnParams(k=5, metric=metric, method="exact", memory_mb=0.05)))
    np.testing.assert_array_equal(one.indices, tiny.indices)
    np.testing.assert_allclose(one.scores, tiny.scores, rtol=1e-6, atol=1e-6)


def _hnsw():
    try:
        import hnswlib  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("approx", ["ivf", pytest.param("hnsw", marks=pytest.mark.skipif(
    not _hnsw(), reason="hnswlib (the [ann] extra) is not installed"))])
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_approx_recall_is_measured_not_assumed(metric, approx):
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(20, 32)) * 3
    X = (centers[rng.integers(0, 20, 3000)] + rng.normal(size=(3000, 32))).astype(np.float32)
    r = drain(knn_graph(X, KnnParams(k=10, metric=metric, method="approx", approx=approx, recall_sample=400)))
    assert r.method == approx
    bi, _ = brute_knn64(X, X, 10, metric, self_rows=np.arange(len(X)))
    hits = np.mean([len(set(a) & set(b)) for a, b in zip(r.indices, bi)]) / 10
    assert hits >= 0.95
    assert abs(r.recall - hits) < 0.03  # a sample estimate of the true recall
    assert not (r.indices == np.arange(len(X))[:, None]).any()
    assert recall_at_k(bi, bi) == 1.0


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("half", [False, True])
def test_single_queries_exact(Z, metric, half):
    vi = VectorIndex(Z, metric, half=half)
    rng = np.random.default_rng(1)
    for i in rng.choice(len(Z), 10, replace=False):
        idx, sc = vi.query(index=int(i), k=6)
        bi, bs = brute_knn64(Z, Z[i:i + 1], 6, metric, self_rows=np.array([i]))
        np.testing.assert_array_equal(idx, bi[0])
        np.testing.assert_allclose(sc, bs[0], rtol=1e-5, atol=1e-5)
    q = rng.normal(size=24).astype(np.float32)
    idx, _ = vi.query(q, k=6, exclude=[3])
    bi, _ = brute_knn64(Z, q[None], 7, metric)
    np.testing.assert_array_equal(idx, [j for j in bi[0] if j != 3][:6])


@pytest.mark.parametrize("metric", METRICS)
def test_compressed_prefilter_keeps_near_ties_exact(metric):
    # many near-duplicates around the k-th place: the int8 ranking alone mis-orders them
    rng = np.random.default_rng(2)
    base = rng.normal(size=64).astype(np.float32)
    # 1 - cos of the near-duplicates ~ 5e-4 with gaps ~ 1e-6: far below int8's resolution
    # (~1e-2), far above float32's (~1e-7)
    X = np.concatenate([base + 3e-2 * rng.normal(size=(40, 64)), rng.normal(size=(500, 64))]).astype(np.float32)
    vi = VectorIndex(X, metric, half=True)
    assert vi.compressed
    idx, sc = vi.query(base, k=20)
    bi, bs = brute_knn64(X, base[None], 20, metric)
    np.testing.assert_array_equal(idx, bi[0])
    np.testing.assert_allclose(sc, bs[0], rtol=1e-5, atol=1e-5)
    # the int8 scores alone (per-row max-abs scaling, written here) do not order them, so the
    # exact rescoring is what is tested
    R = X.astype(np.float64)
    if metric == "cosine":
        R = R / np.linalg.norm(R, axis=1, keepdims=True)
    scale = np.abs(R).max(1, keepdims=True) / 127
    approx = (np.rint(R / scale) * scale) @ base.astype(np.float64)
    if metric == "euclidean":
        approx = approx - 0.5 * (R * R).sum(1)
    assert not np.array_equal(np.argsort(-approx, kind="stable")[:20], bi[0])
    idx2, _ = query(X, base, k=20, metric=metric)
    np.testing.assert_array_equal(idx2, bi[0])


@pytest.mark.parametrize("metric", METRICS)
def test_compressed_intervals_contain_exact_scores(metric):
    # the proof obligation of the pre-ranking: lo_i <= exact score_i <= hi_i for every point,
    # checked in float64 on heavy-tailed rows (a large max-abs entry makes int8 coarse)
    rng = np.random.default_rng(4)
    X = (rng.standard_t(2, size=(3000, 48)) * rng.uniform(0.1, 10, size=(3000, 1))).astype(np.float32)
    vi = VectorIndex(X, metric, half=True)
    R = X.astype(np.float64)
    if metric == "cosine":
        R = R / np.linalg.norm(R, axis=1, keepdims=True)
    for q in rng.standard_t(2, size=(5, 48)).astype(np.float32):
        qp = q / np.linalg.norm(q) if metric == "cosine" else q
        qp = qp.astype(np.float32)
        lo, hi = vi._intervals(qp, float(np.linalg.norm(qp.astype(np.float64))) * (1 + 1e-6))
        exact = R @ qp.astype(np.float64)
        if metric == "euclidean":
            exact = exact - 0.5 * (R * R).sum(1)
            # the float32 bias (||z||^2 / 2) itself is rounded: allow its rounding
            slack = 1e-6 * (R * R).sum(1)
        else:
            slack = 0.0
        assert (lo <= exact + slack).all() and (exact - slack <= hi).all()
        # and the bound is useful: the interval is a small fraction of the Cauchy-Schwarz range
        cs = np.linalg.norm(qp.astype(np.float64)) * np.linalg.norm(R, axis=1)
        assert np.median((hi - lo) / cs) < 0.1
        idx, _ = vi.query(q, k=15)
        np.testing.assert_array_equal(idx, brute_knn64(X, q[None], 15, metric)[0][0])


def test_bad_input_is_one_sentence():
    with pytest.raises(InputError, match="metric"):
        drain(knn_graph(np.zeros((5, 2), np.float32), KnnParams(k=2, metric="manhattan")))
    with pytest.raises(InputError, match="k must be"):
        drain(knn_graph(np.ones((5, 2), np.float32), KnnParams(k=5)))
    with pytest.raises(InputError, match="NaN"):
        drain(knn_graph(np.full((5, 2), np.nan, np.float32), KnnParams(k=2)))


def test_cancel_stops_the_work(Z, monkeypatch):
    """The exact job stops computing tiles once closed: closed at its first step (before any
    thread starts) it computes none; closed half-way, no tile starts after the close. Counts
    the tiles' products (explorer.neighbors.blocks.gemm_nt), each one pausing a little."""
    import time

    from explorer.neighbors import blocks

    calls = []
    original = blocks.gemm_nt

    def counting(*a, **kw):
        calls.append(1)
        time.sleep(0.02)
        return original(*a, **kw)

    monkeypatch.setattr(blocks, "gemm_nt", counting)
    params = KnnParams(k=3, method="exact", memory_mb=0.05, device="cpu")  # small tiles: many
    steps, _ = run_steps(knn_graph(Z, params))
    B = int(steps[-1].message.split("(")[1].split("-row")[0])
    nb = -(-600 // B)
    full = len(calls)
    assert full == nb * (nb + 1) // 2 >= 10  # each pair of row blocks once
    calls.clear()
    job = knn_graph(Z, params)
    next(job)
    job.close()
    assert calls == []
    job = knn_graph(Z, params)
    p = next(job)
    while p.done == 0:
        p = next(job)
    job.close()
    n = len(calls)
    time.sleep(0.05)
    assert 0 < len(calls) == n < full
    with pytest.raises(StopIteration):
        next(job)


def test_cli_json_matches_brute_force(tmp_path, Z, capsys):
    from explorer.cli import main

    path = tmp_path / "Z.npy"
    np.save(path, Z)
    for metric in METRICS:
        assert main(["neighbors", "--vectors", str(path), "-k", "4", "--metric", metric,
                     "--query-index", "5", "--query-index", "17", "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        for q in out["queries"]:
            bi, bs = brute_knn64(Z, Z[q["index"]:q["index"] + 1], 4, metric, self_rows=np.array([q["index"]]))
            assert q["neighbors"] == bi[0].tolist()
            np.testing.assert_allclose(q["similarities"], bs[0], rtol=1e-5, atol=1e-5)
    out_path = tmp_path / "idx.npy"
    assert main(["neighbors", "--vectors", str(path), "-k", "3", "--out", str(out_path), "--quiet"]) == 0
    bi, _ = brute_knn64(Z, Z, 3, "cosine", self_rows=np.arange(len(Z)))
    np.testing.assert_array_equal(np.load(out_path), bi)
    assert main(["neighbors", "--vectors", str(path), "-k", "3", "--query-index", "9999"]) == 2
    assert "outside" in capsys.readouterr().err


@pytest.mark.parametrize("metric", METRICS)
def test_symmetric_tiles_narrower_than_k(Z, metric):
    # tiles of 3 rows (< k) over 53 points: both the row and the transposed-tile updates run,
    # and the last tile is ragged
    from explorer.neighbors import knn_graph_exact

    X = Z[:53]
    idx, sc = drain(knn_graph_exact(X, 7, metric, tile=3))
    bi, bs = brute_knn64(X, X, 7, metric, self_rows=np.arange(len(X)))
    np.testing.assert_array_equal(idx, bi)
    np.testing.assert_allclose(sc, bs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_ivf_probing_every_list_is_exact(Z, metric):
    # nprobe = nlist: every point sees every list, so the IVF answer is brute force
    from explorer.neighbors.ivf import IvfIndex

    index = drain(IvfIndex(Z, metric, nlist=6).build())
    idx_, _ = drain(index.search(np.arange(len(Z)), 5, nprobe=6))
    bi, _ = brute_knn64(Z, Z, 5, metric, self_rows=np.arange(len(Z)))
    np.testing.assert_array_equal(idx_, bi)


@pytest.mark.parametrize("metric", METRICS)
def test_exact_neighbours_of_some_rows_are_brute_force(Z, metric):
    # the recall sample's exact neighbours (tiles merged into a running top-k): float64 brute force
    from explorer.neighbors.blocks import exact_rows_knn
    from explorer.neighbors.search import exact_rows

    rows = np.array([0, 5, 17, 40, 333, 599])
    bi, bs = brute_knn64(Z, Z[rows], 6, metric, self_rows=rows)
    idx, sc = exact_rows(Z, rows, 6, metric)
    np.testing.assert_array_equal(idx, bi)
    np.testing.assert_allclose(sc, bs, rtol=1e-4, atol=1e-4)
    tiled, _ = exact_rows_knn(Z, rows, 6, metric, block_rows=4, block_cols=5)  # ragged tiles < k
    np.testing.assert_array_equal(tiled, bi)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_ivf_join_of_every_pair_of_lists_is_exact(Z, metric):
    # nprobe = nlist: every pair of lists is multiplied, so the join is brute force
    from explorer.neighbors.ivf import IvfIndex

    index = drain(IvfIndex(Z, metric, nlist=6).train())
    drain(index.assign(1))
    idx_, _ = drain(index.self_join(5, nprobe=6))
    bi, _ = brute_knn64(Z, Z, 5, metric, self_rows=np.arange(len(Z)))
    np.testing.assert_array_equal(idx_, bi)


def test_balanced_lists_are_split_until_none_is_big_and_join_exactly():
    # one tight cluster and a wide cloud: k-means gives the cluster's points few lists and big
    # ones; with balance 1.5 no list holds more than 1.5x the mean share of the training points
    from explorer.neighbors.ivf import IvfIndex

    rng = np.random.default_rng(6)
    X = np.vstack([rng.normal(size=(3000, 16)) * 0.3, rng.normal(size=(1000, 16)) * 4]).astype(np.float32)
    plain = drain(IvfIndex(X, "euclidean", nlist=8).train())
    index = drain(IvfIndex(X, "euclidean", nlist=8, balance=1.5).train())
    assert plain.est_sizes.max() > 1.5 * len(X) / 8  # the case the split is for
    assert index.nlist > 8 and index.est_sizes.max() <= 1.5 * len(X) / 8 + 1e-6
    assert index.est_sizes.sum() == pytest.approx(len(X))
    drain(index.assign(1))
    idx_, _ = drain(index.self_join(5, nprobe=index.nlist))
    bi, _ = brute_knn64(X, X, 5, "euclidean", self_rows=np.arange(len(X)))
    np.testing.assert_array_equal(idx_, bi)


def test_ivf_join_in_small_tiles_is_the_same_join():
    # lists taken in column tiles narrower than a list, and narrower than k: same answer
    from explorer.neighbors.ivf import IvfIndex

    X = _isotropic(900, 12, seed=5)
    index = drain(IvfIndex(X, "euclidean", nlist=9).train())
    drain(index.assign(1))
    a, _ = drain(index.self_join(7, nprobe=4))
    b, _ = drain(index.self_join(7, nprobe=4, block=5))
    np.testing.assert_array_equal(a, b)


def test_ivf_join_leaves_the_index_rows_as_they_were_also_when_closed_half_way():
    # the cosine index reorders its own normalised rows in list order for the join and must
    # put them back, also when the job is closed between two lists
    from explorer.neighbors.ivf import IvfIndex

    X = _isotropic(900, 12, seed=6)
    index = drain(IvfIndex(X, "cosine", nlist=30).train())
    drain(index.assign(1))
    before = index.D.copy()
    want = X / np.linalg.norm(X.astype(np.float64), axis=1, keepdims=True)
    np.testing.assert_allclose(before, want, rtol=1e-6)
    idx, _ = drain(index.self_join(5, nprobe=30))  # every pair of lists: the exact graph
    np.testing.assert_array_equal(index.D, before)
    bi, _ = brute_knn64(X, X, 5, "cosine", self_rows=np.arange(900))
    assert np.mean(np.sort(idx, 1) == np.sort(bi, 1)) == 1.0
    job = index.self_join(5, nprobe=30)
    next(job), next(job)
    job.close()
    np.testing.assert_array_equal(index.D, before)


def _pairs_log(n_lists, fn_extra=None, pause=0.002):
    """(pairs, fn, log): every pair of ``n_lists`` lists, and a pair function that records
    (a, b, start, end, thread) of each call."""
    import threading
    import time

    pairs = [(a, a) for a in range(n_lists)] + [(a, b) for a in range(n_lists) for b in range(a + 1, n_lists)]
    log, lock = [], threading.Lock()

    def fn(a, b, buf):
        t0 = time.perf_counter()
        if fn_extra is not None:
            fn_extra(a, b)
        time.sleep(pause)
        with lock:
            log.append((a, b, t0, time.perf_counter(), threading.get_ident()))

    return pairs, fn, log


def test_ivf_join_threads_never_work_on_one_list_at_once():
    # the join's pairs of lists run on several threads without locks on the top-k rows: that
    # holds only if two pairs that share a list never run at the same time
    from explorer.core.parallel import workers
    from explorer.neighbors.blocks import run_pairs

    pairs, fn, log = _pairs_log(7)
    steps, _ = run_steps(run_pairs(pairs, fn, 4, np.arange(1.0, len(pairs) + 1), "pairs"))
    assert sorted((a, b) for a, b, *_ in log) == sorted(pairs)  # each pair once
    for i, (a, b, s0, e0, _) in enumerate(log):
        for c, d, s1, e1, _ in log[i + 1:]:
            if {a, b} & {c, d}:
                assert e0 <= s1 or e1 <= s0, f"pairs {(a, b)} and {(c, d)} overlapped"
    if workers() > 1:
        assert len({t for *_, t in log}) > 1  # and it did run on several threads
    assert steps[-1].done == steps[-1].total == len(pairs) * (len(pairs) + 1) / 2


def test_ivf_join_threads_stop_when_closed_and_pass_on_an_error():
    import time

    from explorer.neighbors.blocks import run_pairs

    pairs, fn, log = _pairs_log(12, pause=0.01)
    job = run_pairs(pairs, fn, 4, np.full(len(pairs), 3.0), "pairs")
    p = next(job)
    while p.done == 0:
        p = next(job)
    assert p.done % 3 == 0 and p.total == 3 * len(pairs)  # the work of whole pairs done
    job.close()  # returns once the running pairs are done; no pair starts after it
    n = len(log)
    time.sleep(0.05)
    assert len(log) == n < len(pairs)

    def boom(a, b):
        if (a, b) == (2, 5):
            raise ValueError("pair 2-5 failed")

    pairs, fn, log = _pairs_log(8, boom)
    with pytest.raises(ValueError, match="pair 2-5"):
        drain(run_pairs(pairs, fn, 4, np.ones(len(pairs)), "pairs"))


def _blas_threads():
    import scipy.linalg  # noqa: F401  (its own OpenBLAS, so that every read lists the same libraries)
    from threadpoolctl import threadpool_info

    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def _on_thread(fn):
    import threading

    out = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


def test_single_threaded_blas_is_undone_by_the_last_of_overlapping_users():
    # two users overlap (two joins): the BLAS's thread count comes back when the last one
    # leaves, not when the first does (else it would stay at 1 for the whole process)
    from explorer.core.parallel import single_blas

    before = _blas_threads()
    first, second = single_blas(), single_blas()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert _blas_threads() == [1] * len(before)  # the second user still holds it
    second.__exit__(None, None, None)
    assert _blas_threads() == before


def test_single_threaded_blas_holds_from_any_thread():
    # the app enters it on a job thread, after other threads (the main one, a kernel pool
    # thread still alive) have set limits: threadpoolctl >= 3.8 silently ignored such a
    # thread until this was fixed (CI read 2 threads where 1 was held)
    from threadpoolctl import threadpool_limits

    from explorer.core.parallel import pool, single_blas

    before = _blas_threads()
    if max(before, default=1) < 2:
        pytest.skip("the BLAS runs on one thread here already")
    threadpool_limits(1, user_api="blas").restore_original_limits()  # main thread had control
    pool().submit(lambda: threadpool_limits(1, user_api="blas").restore_original_limits()).result()
    held = single_blas()
    _on_thread(held.__enter__)  # a job thread enters it ...
    try:
        assert _blas_threads() == [1] * len(before)  # ... and it holds for the whole process
        assert _on_thread(_blas_threads) == [1] * len(before)
    finally:
        _on_thread(lambda: held.__exit__(None, None, None))
    assert _blas_threads() == before


def test_a_diagnosis_ending_during_a_join_leaves_the_joins_single_threaded_blas(monkeypatch):
    # a diagnosis's eigensolver limits the BLAS too; a join starting while it runs must keep
    # one thread after the eigensolver is done, and the threads come back when the join ends
    import scipy.linalg

    from explorer.core.parallel import single_blas
    from explorer.metrics.collapse import covariance_eigenvalues

    before = _blas_threads()
    join = single_blas()
    real_eigh = scipy.linalg.eigh

    def eigh_while_a_join_starts(*a, **kw):
        join.__enter__()
        return real_eigh(*a, **kw)

    monkeypatch.setattr(scipy.linalg, "eigh", eigh_while_a_join_starts)
    X = np.random.default_rng(0).normal(size=(300, 40)).astype(np.float32)
    try:
        w = covariance_eigenvalues(X, device="cpu", normalize=False)
        assert _blas_threads() == [1] * len(before)  # the join still runs on one thread
    finally:
        join.__exit__(None, None, None)
    assert _blas_threads() == before
    ref = np.linalg.eigvalsh(np.cov(X.astype(np.float64), rowvar=False))[::-1]  # 1/(n-1)
    assert np.allclose(w, ref, rtol=1e-6, atol=1e-9)


def test_ivf_rows_with_too_few_candidates_are_searched_exactly():
    # 150 lists over 300 points with k=9: a point probing 4 lists of ~2 points sees fewer than
    # k candidates; those rows must come back exact, not with -1 holes
    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 8)).astype(np.float32)
    r = drain(knn_graph(X, KnnParams(k=9, metric="euclidean", method="approx", approx="ivf", nlist=150,
                                     target_recall=0.0, recall_sample=50)))
    assert r.info["nprobe"] == 4 and r.info["rows_searched_exactly"] > 0
    assert (r.indices >= 0).all() and not (r.indices == np.arange(300)[:, None]).any()
    bi, bs = brute_knn64(X, X, 9, "euclidean", self_rows=np.arange(300))
    rows = np.flatnonzero([len(set(a) & set(b)) == 9 for a, b in zip(r.indices, bi)])
    np.testing.assert_allclose(r.scores[rows], bs[rows], rtol=1e-5, atol=1e-5)  # exact distances
    with pytest.raises(InputError, match="IVF"):
        drain(knn_graph(X, KnnParams(k=3, metric="dot", method="approx", approx="ivf")))


# --------------------------------------------------------------------------- issue 15: recall


def _brute_recall(X, idx, k):
    """recall@k of the graph ``idx`` against float64 cosine brute force, over every row."""
    bi, _ = brute_knn64(X, X, k, "cosine", self_rows=np.arange(len(X)))
    return float(np.mean([len(set(a) & set(b)) for a, b in zip(idx, bi)]) / k)


def _isotropic(n=3000, d=64, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def test_auto_reaches_target_recall_on_isotropic_data():
    # N(0, I): the IVF lists carry no structure (issue 15 saw recall 0.229 at 100k x 384);
    # auto_flops=1 sends this small case down the approximate path the big one takes
    X = _isotropic()
    r = drain(knn_graph(X, KnnParams(k=10, metric="cosine", auto_flops=1.0, recall_sample=500)))
    assert _brute_recall(X, r.indices, 10) >= 0.99
    assert r.recall >= 0.99 and not r.below_target and r.warning() is None
    assert r.method == "exact" and "exact search" in r.info["fallback"]
    assert (r.info["n"], r.info["dim"], r.info["target_recall"]) == (3000, 64, 0.99) and "ivf" in r.info["tried"]
    small = drain(knn_graph(X[:200], KnnParams(k=5, metric="cosine")))  # the cheap case: exact at once
    assert small.method == "exact" and (small.info["n"], small.info["dim"]) == (200, 64)


def test_auto_keeps_ivf_where_it_is_cheap_and_meets_the_target():
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(40, 64)) * 4
    X = (centers[rng.integers(0, 40, 3000)] + rng.normal(size=(3000, 64))).astype(np.float32)
    r = drain(knn_graph(X, KnnParams(k=10, metric="cosine", auto_flops=1.0, recall_sample=500)))
    assert r.method == "ivf" and r.info["predicted_fraction_scanned"] < 0.2
    assert _brute_recall(X, r.indices, 10) >= 0.99


@pytest.mark.parametrize("how", ["search", "join"])
def test_ivf_recall_prediction_equals_what_is_found(how):
    # the recall of every nprobe is predicted from the sample's exact neighbours. A search scans
    # each query's probed lists exactly; the all-points graph joins pairs of lists, and finds a
    # (query, neighbour) pair exactly when its pair of lists is joined. Either way the prediction
    # is the recall found on those rows.
    from explorer.neighbors.ivf import IvfIndex

    X = _isotropic(1500, 16, seed=4)
    rows = np.sort(np.random.default_rng(0).choice(len(X), 200, replace=False))
    ex, _ = brute_knn64(X, X[rows], 6, "cosine", self_rows=rows)
    index = drain(IvfIndex(X, "cosine", nlist=30).train())
    curve = index.recall_curve(rows, ex) if how == "search" else index.join_curve(rows, ex)
    drain(index.assign(30 if how == "search" else 1))
    seen = []
    for nprobe in (1, 3, 10, 30):
        got = drain(index.search(rows, 6, nprobe))[0] if how == "search" else drain(index.self_join(6, nprobe))[0][rows]
        seen.append(recall_at_k(got, ex))
        assert curve.recall(nprobe) == pytest.approx(seen[-1], abs=1e-9)
    assert seen == sorted(seen) and seen[0] < 0.9 and seen[-1] == 1.0
    assert curve.fraction_scanned(30) == pytest.approx(1.0, abs=0.02)


def test_explicit_low_recall_choice_warns(tmp_path, capsys):
    from explorer.cli import main

    X = _isotropic(2000, 32, seed=2)
    path, out = tmp_path / "Z.npy", tmp_path / "nn.npy"
    np.save(path, X)
    rc = main(["neighbors", "--vectors", str(path), "-k", "10", "--method", "approx", "--approx", "ivf",
               "--max-nprobe", "2", "--out", str(out), "--json", "--quiet"])
    cap = capsys.readouterr()
    assert rc == 0
    js = json.loads(cap.out)
    true_recall = _brute_recall(X, np.load(out), 10)
    assert true_recall < 0.6 and js["recall_below_target"] is True
    assert js["recall"] == pytest.approx(true_recall, abs=0.05) and js["target_recall"] == 0.99
    warn = [ln for ln in cap.err.splitlines() if ln.strip()]
    assert len(warn) == 1 and warn[0].startswith("warning:") and "below the target" in warn[0]
    # the same data with the default method: no warning, the target met
    rc = main(["neighbors", "--vectors", str(path), "-k", "10", "--method", "approx", "--out", str(out),
               "--json", "--quiet"])
    cap = capsys.readouterr()
    assert rc == 0 and "warning" not in cap.err and json.loads(cap.out)["recall_below_target"] is False
    assert _brute_recall(X, np.load(out), 10) >= 0.99


def test_cached_graph_below_target_is_not_reused_by_auto(tmp_path):
    # a workspace graph from an explicit low-recall choice (or from a version whose automatic
    # IVF fell short) must not feed the automatic method's maps and neighbour panel
    from explorer.maps import cached_knn
    from explorer.store import Workspace

    X = _isotropic(1500, 32, seed=6)
    ws = Workspace(tmp_path / "w.h5")
    ws.put("embeddings", "e1", {"vectors": X}, {"model": "m", "layer": "l", "dataset": "d"})
    low = KnnParams(k=8, method="approx", approx="ivf", max_nprobe=1, recall_sample=300)
    _, r1 = drain(cached_knn(ws, "e1", low))
    assert r1.below_target
    _, again = drain(cached_knn(ws, "e1", low))  # the same explicit choice: reused as it is
    np.testing.assert_array_equal(again.indices, r1.indices)
    assert again.recall == r1.recall < 0.99 and again.method == r1.method  # read back, not assumed exact
    _, r2 = drain(cached_knn(ws, "e1", KnnParams(k=8, method="approx", recall_sample=300)))
    assert not r2.below_target and _brute_recall(X, r2.indices, 8) >= 0.99


def test_the_smallest_stored_graph_that_is_big_enough_is_reused(tmp_path):
    # graphs of k = 8 and k = 12 are stored; k = 6 reads the k = 8 one (less to load), its
    # first 6 columns, which are the exact 6 neighbours
    from explorer.maps import cached_knn
    from explorer.store import Workspace

    X = _isotropic(400, 16, seed=7)
    ws = Workspace(tmp_path / "w.h5")
    ws.put("embeddings", "e1", {"vectors": X}, {"model": "m", "layer": "l", "dataset": "d"})
    k8, _ = drain(cached_knn(ws, "e1", KnnParams(k=8, method="exact")))
    k12, _ = drain(cached_knn(ws, "e1", KnnParams(k=12, method="exact")))
    assert k8 != k12 and len(ws.list("knn")) == 2
    key, r = drain(cached_knn(ws, "e1", KnnParams(k=6, method="exact")))
    assert key == k8 and r.indices.shape == (400, 6) and len(ws.list("knn")) == 2
    assert _brute_recall(X, r.indices, 6) == 1.0


def test_ivf_list_scan_reports_each_list_and_finds_the_probed_members():
    # the list-by-list scan with its defaults (no self ids: new points, as the streamed map's
    # placement asks): one progress step per list, and each query's k best among the members
    # of the lists it probes (brute force here)
    from explorer.neighbors.ivf import IvfIndex, scan_probed_lists

    X = _isotropic(600, 8, seed=12)
    Q = _isotropic(40, 8, seed=13)
    ix = drain(IvfIndex(X, "cosine", nlist=9).build())
    U = ix.D
    Qn = (Q / np.linalg.norm(Q, axis=1, keepdims=True)).astype(np.float32)
    probes = np.argsort(-(Qn @ ix._C.numpy().T), axis=1)[:, :3]
    own = ix.probes[:, 0]
    members = [np.flatnonzero(own == c) for c in range(9)]
    import torch

    Dt = torch.from_numpy(U)
    job = scan_probed_lists(torch.from_numpy(Qn), probes, 9,
                            lambda c: (members[c], Dt[torch.from_numpy(members[c])], np.zeros(1, np.float32)),
                            4, False, cancel_every=1)
    steps, (idx, _) = run_steps(job)
    assert [(s.done, s.total, s.message) for s in steps] == [(c + 1, 9, "IVF search") for c in range(9)]
    for i in range(len(Q)):
        cand = np.concatenate([members[c] for c in probes[i]])
        best = cand[np.argsort(-(U[cand].astype(np.float64) @ Qn[i]))[:4]]
        assert set(idx[i]) == set(best)


def test_ivf_join_curve_scans_everything_when_every_list_is_probed():
    # with nprobe = nlist every pair of lists is joined: a query scans all N points, and the
    # predicted recall is 1
    from explorer.neighbors.ivf import IvfIndex

    X = _isotropic(900, 12, seed=14)
    index = drain(IvfIndex(X, "cosine", nlist=30).train())
    rows = np.arange(0, 900, 9)
    ex, _ = brute_knn64(X, X[rows], 5, "cosine", self_rows=rows)
    curve = index.join_curve(rows, ex)
    assert curve.fraction_scanned(30) == pytest.approx(1.0, rel=1e-9)
    assert curve.recall(30) == 1.0
    assert all(curve.fraction_scanned(p) <= curve.fraction_scanned(p + 1) for p in range(1, 30))


def test_ivf_join_reports_its_progress_as_shares_of_the_whole_join():
    # progress counts the products done, weighted by their sizes: 0 before any thread starts,
    # never backwards, ending at the whole join (every list with itself, and each pair of
    # lists whose rank is below nprobe once)
    from explorer.neighbors.ivf import IvfIndex

    X = _isotropic(1400, 6, seed=15)
    index = drain(IvfIndex(X, "cosine", nlist=70).train())
    drain(index.assign(1))
    s = np.array([len(m) for m in index.members], np.float64)
    R = index.list_ranks()
    a, b = np.triu_indices(index.nlist, 1)
    whole = float((s * s).sum() + (s[a] * s[b])[np.minimum(R, R.T)[a, b] < 5].sum())
    steps, _ = run_steps(index.self_join(3, nprobe=5))
    done = [p.done for p in steps]
    assert done[0] == 0.0 and done == sorted(done) and done[-1] == whole
    assert {p.total for p in steps} == {whole}
    assert {p.message for p in steps} == {"IVF join (nprobe=5)"}


@pytest.mark.parametrize("approx", ["ivf", pytest.param("hnsw", marks=pytest.mark.skipif(
    not _hnsw(), reason="hnswlib (the [ann] extra) is not installed"))])
def test_approximate_graph_progress_stays_within_its_total_and_reports_its_settings(approx):
    # a progress bar never runs past its end nor gets a blank step, and the graph's info says
    # the settings the index was built with (HNSW: the M and ef_construction asked for)
    X = _isotropic(3000, 24, seed=21)
    p = KnnParams(k=8, method="approx", approx=approx, recall_sample=200, hnsw_m=8, ef_construction=60)
    steps, r = run_steps(knn_graph(X, p))
    assert steps
    for s in steps:
        assert s.done is not None and s.done >= 0
        assert s.total is None or s.done <= s.total, (s.done, s.total, s.message)
    if approx == "hnsw":
        assert (r.info["M"], r.info["ef_construction"]) == (8, 60)
    else:  # the index's own steps, before the graph maps them into its bar
        from explorer.neighbors.ivf import IvfIndex

        own, _ = run_steps(IvfIndex(X, "cosine", nlist=20).build())
        assert own and all(s.total is not None and 0 <= s.done <= s.total for s in own)
    assert _brute_recall(X, r.indices, 8) >= 0.9


def test_scores_become_distances_that_grow_as_similarity_falls():
    from explorer.neighbors import scores_to_distances

    s = np.array([[0.8, 0.5, -0.5]], np.float32)  # (largest below 1: a shift by the max would differ)
    np.testing.assert_allclose(scores_to_distances(s, "cosine"), [[0.2, 0.5, 1.5]], atol=1e-7)
    np.testing.assert_allclose(scores_to_distances(-np.array([[0.0, 2.0, 3.5]]), "euclidean"), [[0.0, 2.0, 3.5]])
    np.testing.assert_allclose(scores_to_distances(np.array([[4.0, 1.0], [2.0, 3.0]]), "dot"), [[0.0, 3.0], [2.0, 1.0]])


def test_searched_neighbours_are_integer_rows():
    from explorer.neighbors import knn_search

    Z = _isotropic(300, 8, seed=31)
    idx, sc = drain(knn_search(Z[:20], Z, 5, "cosine"))
    assert idx.dtype == np.int64 and idx.shape == (20, 5) and sc.dtype == np.float32
    assert (idx[:, 0] == np.arange(20)).all()  # each query is its own nearest row


@pytest.mark.skipif(not _hnsw(), reason="hnswlib (the [ann] extra) is not installed; pynndescent's "
                    "path compiles for ~90 s")
def test_dot_product_graphs_go_to_a_library_that_takes_them():
    # IVF handles cosine and euclidean only: "dot" goes to HNSW when hnswlib is installed
    # (else to pynndescent, which falls back to exact search below the target recall); the
    # recall is measured against exact search
    X = _isotropic(1500, 16, seed=33) * np.linspace(0.5, 2.0, 1500)[:, None].astype(np.float32)
    r = drain(knn_graph(X, KnnParams(k=5, metric="dot", method="approx", recall_sample=200)))
    used = r.method if r.method != "exact" else next(iter(r.info["tried"]))  # (exact: its fallback)
    assert used == "hnsw"
    assert 0.0 < r.recall <= 1.0 and r.indices.shape == (1500, 5)
