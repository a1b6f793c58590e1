"""Blockwise exact k-NN on the CPU: matrix-product tiles and one fused top-k merge.

* :func:`exact_self_knn` - the exact all-points graph. For cosine and dot the score matrix of a
  self-search is symmetric, and for euclidean it is symmetric up to a per-column term
  (rank by <z_i, z_j> - ||z_j||^2 / 2), so only the panels on and above the block diagonal are
  multiplied: each panel G = D_I D_J^T feeds the running top-k of rows I (read along rows) and
  of rows J (read along columns). Half the multiply-adds of a plain search.
* :func:`pair_scores` - exact scores of given (query, neighbour) pairs.

The merge (:func:`_merge_kernels`, also used by the IVF search of :mod:`explorer.neighbors.ivf`)
scans a score block once and keeps, per query, the k best (score, index) pairs in descending
order; a block's row is only looked at element by element when its maximum beats the query's
current k-th score, which after the first blocks is rare. Each (query, candidate) pair is
scanned at most once by both engines, so no duplicates arise.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import numba
import numpy as np

from explorer.core.parallel import run_rows, run_tasks, workers

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


def gemm_nt(A: np.ndarray, B: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """``A @ B.T`` in float32 through numpy's BLAS, the engine's one CPU product. On the 2-core
    AMD machine of the benchmarks numpy's OpenBLAS ran the engine's shapes at 68-139 GFLOP/s
    where torch's CPU build (MKL) reached 30-116: 0.97-2.7x as fast (``benchmarks/bench_gemm.py``)."""
    return np.matmul(A, B.T, out=out)


def _empty_top(n: int, k: int) -> Tuple[np.ndarray, np.ndarray]:
    return np.full((n, k), _FLOOR, np.float32), np.full((n, k), -1, np.int64)


def exact_self_knn(Z: np.ndarray, k: int, metric: str, memory_mb: float = 256,
                   block: int = 2048) -> Job:
    """Exact all-points k-NN (self excluded) on the CPU as a job -> (indices (N, k) int64,
    ranking scores (N, k) float32, descending). Ranking scores are the cosine / dot value, or
    <z_i, z_j> - ||z_j||^2/2 for euclidean (the caller converts). Panels are ``block`` rows by
    twice as many columns, both shrunk so that one tile fits in ``memory_mb``."""
    K = _merge_kernels()
    N, d = Z.shape
    D, bias = _ranking_matrix(Z, metric)
    use_bias = bias is not None
    zero = np.zeros(1, np.float32)
    top_v, top_i = _empty_top(N, k)
    ids = np.arange(N, dtype=np.int64)
    # tiles that stay in the last-level cache: measured 175-200 GFLOPS for 1-4k square tiles
    # at d=384 on 2 cores against 108 for a 2048 x 16384 panel (output written to memory)
    B = int(max(1, min(block, N, math.sqrt(memory_mb * 2**20 / 8))))
    W = 2 * B
    buf = np.empty(B * W, np.float32)
    done, total = 0, N * (N + 1) / 2.0
    for i0 in range(0, N, B):
        i1 = min(N, i0 + B)
        DI = D[i0:i1]
        for j0 in range(i0, N, W):
            j1 = min(N, j0 + W)
            G = gemm_nt(DI, D[j0:j1], buf[:(i1 - i0) * (j1 - j0)].reshape(i1 - i0, j1 - j0))
            bc = bias[j0:j1] if use_bias else zero
            _parallel(K["rows"], i1 - i0, (G, ids[i0:i1], ids[i0:i1], ids[j0:j1], bc, use_bias, j0 == i0,
                                           top_v, top_i))
            # the columns of this tile right of the diagonal block are queries too
            off = (i1 - i0) if j0 == i0 else 0
            if j1 - j0 > off:
                br = bias[i0:i1] if use_bias else zero
                _parallel(K["cols"], j1 - j0 - off, (G[:, off:], ids[i0:i1], ids[j0 + off:j1], br,
                                                     use_bias, top_v, top_i))
            done += (i1 - i0) * (j1 - j0)
            yield Progress(min(done, total), total, f"exact {metric} k-NN")
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
