"""Blockwise exact k-NN on the CPU: matrix-product tiles and one fused top-k merge.

* :func:`exact_self_knn` - the exact all-points graph. For cosine and dot the score matrix of a
  self-search is symmetric, and for euclidean it is symmetric up to a per-column term
  (rank by <z_i, z_j> - ||z_j||^2 / 2), so only the tiles on and above the block diagonal are
  multiplied: each tile G = D_I D_J^T feeds the running top-k of rows I (read along rows) and
  of rows J (read along columns). Half the multiply-adds of a plain search. The tiles are
  spread over the cores by :func:`run_pairs` (also the IVF join's scheduler).
* :func:`pair_scores` - exact scores of given (query, neighbour) pairs.

The merge (:func:`_merge_kernels`, also used by the IVF search of :mod:`explorer.neighbors.ivf`)
scans a score block once and keeps, per query, the k best (score, index) pairs in descending
order; a block's row is only looked at element by element when its maximum beats the query's
current k-th score, which after the first blocks is rare. Each (query, candidate) pair is
scanned at most once by both engines, so no duplicates arise.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import math
import threading
import time
from typing import Optional, Tuple

import numba
import numpy as np

from explorer.core.parallel import pool, run_rows, run_tasks, single_blas, workers

from explorer.core.jobs import Job, Progress
from explorer.core.resources import setup_numba_cache

__all__ = ["exact_self_knn", "exact_rows_knn", "pair_scores"]

_CHUNK = 64  # elements counted at once; a chunk with a hit is read again one by one
_FLOOR = np.float32(-3.0e38)  # 'nothing yet': finite, so comparisons stay plain


# The kernels live at module level: numba's disk cache keys a function by its code and its
# globals, and a closure over another jitted function (an inner ``insert``) got a new key in
# every process, so it was compiled again on every start (measured: 3 s of a first map).
setup_numba_cache()


@numba.njit(cache=True, nogil=True, boundscheck=False, inline="always")
def _insert(top_v, top_i, q, v, idx):  # pragma: no cover - numba
    k = top_v.shape[1]
    j = k - 1
    while j > 0 and top_v[q, j - 1] < v:
        top_v[q, j] = top_v[q, j - 1]
        top_i[q, j] = top_i[q, j - 1]
        j -= 1
    top_v[q, j] = v
    top_i[q, j] = idx


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _rows(G, qrow, qid, cids, bias, use_bias, selfcheck, top_v, top_i, r0, r1):  # pragma: no cover
    k = top_v.shape[1]
    nc = G.shape[1]
    for r in range(r0, r1):
        q = qrow[r]
        me = qid[r]
        t = top_v[q, k - 1]
        row = G[r]
        for c in range(0, nc, _CHUNK):
            e = min(nc, c + _CHUNK)
            seg = row[c:e]  # a fresh 1-D slice indexed from 0: this count vectorises
            hits = 0
            if use_bias:
                bseg = bias[c:e]
                for u in range(seg.shape[0]):
                    hits += seg[u] + bseg[u] > t
            else:
                for u in range(seg.shape[0]):
                    hits += seg[u] > t
            if hits == 0:
                continue
            for u in range(c, e):
                v = row[u] + bias[u] if use_bias else row[u]
                if v > t:
                    j = cids[u]
                    if selfcheck and j == me:
                        continue
                    _insert(top_v, top_i, q, v, j)
                    t = top_v[q, k - 1]


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _cols(G, rids, cids, bias, use_bias, top_v, top_i, c0, c1):  # pragma: no cover
    k = top_v.shape[1]
    nr = G.shape[0]
    W = 512
    thr = np.empty(W, np.float32)
    for cs in range(c0, c1, W):
        ce = min(c1, cs + W)
        for u in range(cs, ce):
            thr[u - cs] = top_v[cids[u], k - 1]
        n = ce - cs
        for r in range(nr):
            b = bias[r] if use_bias else np.float32(0.0)
            row = G[r, cs:ce]
            for s0 in range(0, n, _CHUNK):
                s1 = min(n, s0 + _CHUNK)
                seg = row[s0:s1]
                tseg = thr[s0:s1]
                hits = 0
                for u in range(seg.shape[0]):
                    hits += seg[u] + b > tseg[u]
                if hits == 0:
                    continue
                for u in range(s0, s1):
                    v = row[u] + b
                    if v > thr[u]:
                        q = cids[cs + u]
                        _insert(top_v, top_i, q, v, rids[r])
                        thr[u] = top_v[q, k - 1]


@numba.njit(cache=True, nogil=True, boundscheck=False, fastmath=True)
def _pairs(Z, idx, metric, out, r0, r1):  # pragma: no cover - numba
    # exact float32 scores of the pairs (i, idx[i, j]), accumulated in float64:
    # metric 0 cosine, 1 euclidean (negative distance), 2 dot
    d = Z.shape[1]
    for i in range(r0, r1):
        zi = Z[i]
        ni = 0.0
        if metric == 0:
            for u in range(d):
                ni += np.float64(zi[u]) * zi[u]
        for c in range(idx.shape[1]):
            zj = Z[idx[i, c]]
            acc = 0.0
            if metric == 1:
                for u in range(d):
                    diff = np.float64(zi[u]) - zj[u]
                    acc += diff * diff
                out[i, c] = -np.sqrt(acc)
            else:
                nj = 0.0
                for u in range(d):
                    acc += np.float64(zi[u]) * zj[u]
                    nj += np.float64(zj[u]) * zj[u]
                if metric == 0:
                    acc = acc / max(np.sqrt(ni * nj), 1e-12)
                out[i, c] = acc


def _merge_kernels():
    """numba kernels (compiled once, cached on disk, GIL released):

    ``rows(G, qrow, qid, cids, bias, use_bias, selfcheck, top_v, top_i, r0, r1)``: for rows
    r0..r1 of the block, the query kept in row qrow[r] of the top-k arrays (dataset index
    qid[r]) considers candidates cids[c] with score G[r, c] (+ bias[c]), skipping itself when
    ``selfcheck``.
    ``cols(G, rids, cids, bias, use_bias, top_v, top_i, c0, c1)``: for columns c0..c1, query
    cids[c] considers candidates rids[r] with score G[r, c] (+ bias[r]); read in row order.
    """
    return {"rows": _rows, "cols": _cols, "pairs": _pairs}


def _parallel(fn, n: int, args, min_per_thread: int = 64) -> None:
    """``fn(*args, lo, hi)`` over [0, n) split across the kernel pool's threads."""
    run_rows(fn, n, *args, min_rows=min_per_thread)


def _ranking_matrix(Z: np.ndarray, metric: str):
    """(D, bias) as float32 numpy arrays such that the ranking score of j for query i is
    <D_i, D_j> + bias_j: cosine normalised rows and no bias; dot raw rows; euclidean raw rows
    and bias -||z_j||^2 / 2 (argmax of -||z_i - z_j||^2 = 2 <z_i, z_j> - ||z_j||^2 - const)."""
    if metric == "cosine":
        # norms summed in float64 without a float64 copy of Z (1 GB at 1M x 128), then one
        # float32 product: the only N x D array made here is D itself
        n = np.sqrt(np.einsum("ij,ij->i", Z, Z, dtype=np.float64))
        inv = (1.0 / np.maximum(n, 1e-12)).astype(np.float32)
        D = np.multiply(Z, inv[:, None], dtype=np.float32)
        return np.ascontiguousarray(D), None
    if metric == "euclidean":
        return Z, (-0.5 * np.einsum("ij,ij->i", Z, Z, dtype=np.float64)).astype(np.float32)
    return Z, None


def run_pairs(pairs, fn, buf_size: int, work: np.ndarray, message: str) -> Job:
    """Run ``fn(a, b, buf)`` for every pair of blocks (IVF lists, or row blocks of the exact
    engine) in ``pairs`` on the kernel pool's threads, never two pairs that share a block at
    once (a pair writes the top-k rows of its two blocks only), so the rows need no lock;
    pairs start in about the given order. Each thread keeps its own float32 buffer of
    ``buf_size`` and runs single-threaded products (the threads are the parallelism: the
    BLAS's own threads would wait on the merges between products and spin against them).
    Progress is ``work`` done (one weight per pair); closing the job stops the threads after
    their current pair; an error in one is raised here."""
    lock = threading.Lock()
    busy: set = set()
    taken = np.zeros(len(pairs), bool)
    state = {"first": 0, "done": 0.0, "stop": False}

    def next_pair():
        with lock:
            i = state["first"]
            while i < len(pairs) and taken[i]:
                i += 1
            state["first"] = i
            while i < len(pairs):
                a, b = pairs[i]
                if not taken[i] and a not in busy and b not in busy:
                    taken[i] = True
                    busy.update((a, b))
                    return i
                i += 1
            return None if state["first"] >= len(pairs) else -1

    def worker():
        buf = np.empty(buf_size, np.float32)
        while not state["stop"]:
            i = next_pair()
            if i is None:
                return
            if i < 0:  # every pending pair shares a block with a running one
                time.sleep(0.0002)
                continue
            a, b = pairs[i]
            try:
                fn(a, b, buf)
            finally:
                with lock:
                    busy.difference_update((a, b))
                    state["done"] += work[i]

    total = float(work.sum()) or 1.0
    yield Progress(0.0, total, message)  # before any thread starts: closing here costs nothing
    nt = max(1, min(workers(), len(pairs)))
    with single_blas() if nt > 1 else contextlib.nullcontext():
        futs = [pool().submit(worker) for _ in range(nt)]
        try:
            while True:
                finished, running = concurrent.futures.wait(futs, timeout=0.1)
                for f in finished:
                    if f.exception() is not None:
                        state["stop"] = True
                        raise f.exception()
                if not running:
                    break
                yield Progress(state["done"], total, message)
        finally:
            state["stop"] = True
            concurrent.futures.wait(futs)
    yield Progress(total, total, message)


def gemm_nt(A: np.ndarray, B: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """``A @ B.T`` in float32 through numpy's BLAS, the engine's one CPU product. On the 2-core
    AMD machine of the benchmarks numpy's OpenBLAS ran the engine's shapes at 68-139 GFLOP/s
    where torch's CPU build (MKL) reached 30-116: 0.97-2.7x as fast (``benchmarks/bench_gemm.py``)."""
    return np.matmul(A, B.T, out=out)


def _empty_top(n: int, k: int) -> Tuple[np.ndarray, np.ndarray]:
    return np.full((n, k), _FLOOR, np.float32), np.full((n, k), -1, np.int64)


def exact_self_knn(Z: np.ndarray, k: int, metric: str, memory_mb: float = 256,
                   block: Optional[int] = None) -> Job:
    """Exact all-points k-NN (self excluded) on the CPU as a job -> (indices (N, k) int64,
    ranking scores (N, k) float32, descending). Ranking scores are the cosine / dot value, or
    <z_i, z_j> - ||z_j||^2/2 for euclidean (the caller converts). The rows are cut into blocks
    of ``B`` = ``block`` rows (fewer when one B x B float32 tile per thread would not fit in
    ``memory_mb``); every pair of blocks (i <= j) is one tile, multiplied once and merged into
    the top-k of both blocks, the tiles spread over the pool's threads (:func:`run_pairs`,
    never two sharing a block). The progress message names B.

    ``block`` None: 512 rows up to 256 dimensions, else 2048. Measured on 2 cores, isotropic
    rows, self 10-NN (medians of 3): 60k x 128 4.2 s with 512-row tiles, 4.8 s with 1024,
    6.3 s with 2048 (the merges read a tile that stays in the core's cache); 40k x 384 5.2 s
    with 2048, 5.4-5.7 s with 512; 20k x 768 2.3 s with 512, 2.5 s with 2048. The engine
    before (one 2048 x 4096 panel at a time, each product on the BLAS's threads, the merges on
    the pool's): 8.1 s and 6.7 s for the first two."""
    K = _merge_kernels()
    N, d = Z.shape
    D, bias = _ranking_matrix(Z, metric)
    use_bias = bias is not None
    zero = np.zeros(1, np.float32)
    top_v, top_i = _empty_top(N, k)
    ids = np.arange(N, dtype=np.int64)
    nt = max(1, workers())
    block = block or (512 if d <= 256 else 2048)
    B = int(max(1, min(block, N, math.sqrt(memory_mb * 2**20 / (4 * nt)))))
    lo = list(range(0, N, B))
    span = [(a, min(N, a + B)) for a in lo]

    def multiply(i, j, buf):
        (i0, i1), (j0, j1) = span[i], span[j]
        G = gemm_nt(D[i0:i1], D[j0:j1], buf[:(i1 - i0) * (j1 - j0)].reshape(i1 - i0, j1 - j0))
        K["rows"](G, ids[i0:i1], ids[i0:i1], ids[j0:j1], bias[j0:j1] if use_bias else zero, use_bias, i == j,
                  top_v, top_i, 0, i1 - i0)
        if i != j:  # the columns are queries too
            K["cols"](G, ids[i0:i1], ids[j0:j1], bias[i0:i1] if use_bias else zero, use_bias, top_v, top_i,
                      0, j1 - j0)

    pairs = [(i, i) for i in range(len(lo))] + [(i, j) for i in range(len(lo)) for j in range(i + 1, len(lo))]
    size = np.array([b - a for a, b in span], np.float64)
    work = np.array([size[i] * size[j] for i, j in pairs])
    yield from run_pairs(pairs, multiply, B * B, work, f"exact {metric} k-NN ({B}-row tiles)")
    return top_i, top_v


def exact_rows_knn(Z: np.ndarray, rows: np.ndarray, k: int, metric: str, block_rows: int = 256,
                   block_cols: int = 16384) -> Tuple[np.ndarray, np.ndarray]:
    """Exact k-NN of the points ``rows`` (self excluded) among all of ``Z`` on the CPU: tiles of
    ``block_rows`` x ``block_cols`` products merged into the running top-k by the rows kernel,
    so a row of a million scores is never sorted (a recall sample of 1,000 rows at 1M x 128:
    3-4 s against 10 s with a top-k of each full row). -> (indices (m, k), ranking scores
    (m, k), descending; see :func:`_ranking_matrix`)."""
    K = _merge_kernels()
    D, bias = _ranking_matrix(Z, metric)
    use_bias = bias is not None
    zero = np.zeros(1, np.float32)
    rows = np.asarray(rows, dtype=np.int64)
    m, N = len(rows), D.shape[0]
    top_v, top_i = _empty_top(m, k)
    Q = D[rows]
    cols = np.arange(N, dtype=np.int64)
    local = np.arange(m, dtype=np.int64)

    def row_block(r0):  # one thread's rows against all the points: no other thread writes them
        r1 = min(m, r0 + block_rows)
        buf = np.empty((r1 - r0) * min(N, block_cols), np.float32)
        for c0 in range(0, N, block_cols):
            c1 = min(N, c0 + block_cols)
            G = gemm_nt(Q[r0:r1], D[c0:c1], buf[:(r1 - r0) * (c1 - c0)].reshape(r1 - r0, c1 - c0))
            K["rows"](G, local[r0:r1], rows[r0:r1], cols[c0:c1], bias[c0:c1] if use_bias else zero,
                      use_bias, True, top_v, top_i, 0, r1 - r0)

    # row blocks small enough that every thread gets some
    block_rows = int(max(1, min(block_rows, -(-m // workers()))))
    run_tasks(row_block, range(0, m, block_rows))
    return top_i, top_v


def pair_scores(Z: np.ndarray, idx: np.ndarray, metric: str) -> np.ndarray:
    """Exact scores (float64 sums, stored as float32) of the pairs (i, idx[i, j]): cosine
    similarity, negative euclidean distance or dot product, as in :mod:`explorer.neighbors`."""
    out = np.empty(idx.shape, np.float32)
    code = {"cosine": 0, "euclidean": 1, "dot": 2}[metric]
    _parallel(_merge_kernels()["pairs"], len(Z), (np.ascontiguousarray(Z, dtype=np.float32),
                                                   np.ascontiguousarray(idx, dtype=np.int64), code, out))
    return out
