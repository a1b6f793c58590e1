"""The pieces of a UMAP of more points than fit in a UMAP (issue 22): reading rows of a memory
map block by block, the search of a fitted sample, and the placement of the other points in
bounded memory; :func:`explorer.maps.umap.streamed_umap` puts them together (fit a random
sample, place the rest block by block). Also the streamed PCA of a memory map.

UMAP's ``transform`` (McInnes, Healy & Melville, arXiv:1802.03426; umap-learn's
``UMAP.transform``) places a new point x by (1) its k nearest fitted points, (2) their fuzzy
membership weights w_j = exp(-(d_j - rho) / sigma) (``smooth_knn_dist`` with local
connectivity lc - 1, ``compute_membership_strengths`` bipartite), (3) the w-weighted mean of
their map positions as the start (a neighbour with w = 1 is taken as is), and (4) n_epochs
(30 above 10k new points, 100 below; ``n_epochs // 3`` when given) of UMAP's SGD with the fitted
map held fixed: edge j pulls the point every w_max / w_j epochs (edges under w_max / n_epochs
dropped), each pull followed by ``negative_sample_rate`` pushes from random fitted points, at
learning rate ``learning_rate / 4`` falling linearly to 0.

With the fitted map held fixed the new points never interact, so each point's optimisation
is independent of every other's. :func:`_place` therefore runs all epochs of one point at a
time, with its own random stream seeded by (seed, row index), and the result of a point does
not depend on which block or thread placed it: blockwise placement equals the unblocked one
exactly. Two choices differ from umap-learn, both so that a point's result depends only on the
point: w_max is 1 (the largest possible membership; umap-learn takes the largest over the
whole batch, which for a large batch is within a few percent of 1), and the random streams
(splitmix64-seeded xorshift32 per point instead of one state per edge).

Memory: the sample (S, D), its map and its neighbour index, one block of queries and
the (N, c) float32 output; nothing of size N x k or N x k x D is kept. The neighbours of a
block in the sample come from an IVF index of the sample (:mod:`explorer.neighbors.ivf`) whose
``nprobe`` is chosen from the exact neighbours of calibration rows (recall measured, reported
in ``info``); where the lists carry no structure (isotropic data, TRAPS.md #10) hnswlib, else
exact search.
"""

from __future__ import annotations

import ctypes
import mmap
import time
from typing import Optional

import numba
import numpy as np

from explorer.core.errors import InputError
from explorer.core.jobs import Job, Progress, scaled
from explorer.maps.params import STATS, Layout, MapParams
from explorer.maps.sgd import _powb, power_table
from explorer.core.resources import setup_numba_cache

__all__ = ["streamed_pca", "place_points", "SampleSearch", "read_rows"]

setup_numba_cache()


# --------------------------------------------------------------------------- reading rows

_LIBC = None


def _drop_pages(Z: np.ndarray, s: int, e: int) -> None:
    """Tell the kernel this process no longer needs rows s..e of a memory-mapped array, so
    they stop counting in its resident set (the file stays in the page cache)."""
    global _LIBC
    if not isinstance(Z, np.memmap) or e <= s:
        return
    try:
        if _LIBC is None:
            _LIBC = ctypes.CDLL(None, use_errno=True)
        row = Z.strides[0]
        page = mmap.PAGESIZE
        a0 = Z.ctypes.data + s * row
        a1 = Z.ctypes.data + e * row
        a0 -= a0 % page
        _LIBC.madvise(ctypes.c_void_p(a0), ctypes.c_size_t(a1 - a0), 4)  # MADV_DONTNEED
    except Exception:  # pragma: no cover - not Linux: the pages stay counted
        pass


def read_rows(Z: np.ndarray, s: int, e: int) -> np.ndarray:
    """Rows s..e of ``Z`` as a C-contiguous float32 copy (pages of a memory-mapped ``Z``
    released after the copy), checked finite."""
    X = np.array(Z[s:e], dtype=np.float32, order="C", copy=True)  # a copy, never a view of a map
    _drop_pages(Z, s, e)
    if not np.isfinite(X).all():
        bad = s + int(np.flatnonzero(~np.isfinite(X).all(1))[0])
        raise InputError(f"The vectors contain NaN or infinite values (row {bad}).")
    return X


def take_rows(Z: np.ndarray, rows: np.ndarray, block: int = 65536) -> np.ndarray:
    """``Z[rows]`` for sorted ``rows``, read block by block (bounded memory for a memory map)."""
    out = np.empty((len(rows), Z.shape[1]), np.float32)
    N = Z.shape[0]
    for s in range(0, N, block):
        e = min(N, s + block)
        a, b = np.searchsorted(rows, [s, e])
        if b > a:
            out[a:b] = Z[rows[a:b]]
        _drop_pages(Z, s, e)
    if not np.isfinite(out).all():
        raise InputError("The vectors contain NaN or infinite values.")
    return out


# --------------------------------------------------------------------------- the placement

@numba.njit(cache=True, nogil=True, fastmath=True, boundscheck=False, error_model="numpy")
def _place(emb, idx, w, out, gids, n_epochs, a, b, gamma, alpha0, nsr, seed, T, r0, r1):  # pragma: no cover
    """UMAP transform's SGD for rows r0..r1 of ``idx``/``w`` (k sample neighbours and their
    membership weights), written to ``out``; ``gids`` the global row numbers (random streams)."""
    dim = emb.shape[1]
    k = idx.shape[1]
    S = emb.shape[0]
    a32 = np.float32(a)
    att = np.float32(-2.0 * a * b)
    rep = np.float32(2.0 * gamma * b)
    thr = np.float32(1.0 / n_epochs)
    nv = np.uint64(S)
    mask = np.uint64(0xFFFFFFFF)
    cur = np.empty(dim, np.float32)
    eps = np.empty(k, np.float64)
    nxt = np.empty(k, np.float64)
    eneg = np.empty(k, np.float64)
    nneg = np.empty(k, np.float64)
    for i in range(r0, r1):
        tot = np.float32(0.0)
        for j in range(k):
            if idx[i, j] >= 0:
                tot += w[i, j]
        if tot <= 0.0:
            for d in range(dim):
                out[i, d] = np.nan
            continue
        for d in range(dim):
            cur[d] = np.float32(0.0)
        for j in range(k):  # umap.umap_.init_graph_transform
            t = idx[i, j]
            if t < 0:
                continue
            if w[i, j] == 1.0:
                for d in range(dim):
                    cur[d] = emb[t, d]
                break
            for d in range(dim):
                cur[d] += w[i, j] / tot * emb[t, d]
        for j in range(k):  # umap.umap_.make_epochs_per_sample with w_max = 1
            if idx[i, j] >= 0 and w[i, j] >= thr and w[i, j] > 0.0:
                eps[j] = 1.0 / w[i, j]
            else:
                eps[j] = -1.0
            nxt[j] = eps[j]
            eneg[j] = eps[j] / nsr
            nneg[j] = eneg[j]
        # splitmix64 of (seed, row) -> a non-zero xorshift32 state
        z = (np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(gids[i]) + np.uint64(1))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
        s = z & mask
        if s == 0:
            s = np.uint64(2463534242)
        alpha = np.float32(alpha0)
        for n in range(n_epochs):
            fn = np.float64(n)
            for j in range(k):
                if eps[j] <= 0.0 or nxt[j] > fn:
                    continue
                t = idx[i, j]
                d2 = np.float32(0.0)
                for d in range(dim):
                    diff = cur[d] - emb[t, d]
                    d2 += diff * diff
                if d2 > 0.0:
                    pb = _powb(d2, T)
                    gc = att * pb / (d2 * (a32 * pb + np.float32(1.0)))
                    for d in range(dim):
                        g = gc * (cur[d] - emb[t, d])
                        cur[d] += min(max(g, np.float32(-4.0)), np.float32(4.0)) * alpha
                nxt[j] += eps[j]
                n_neg = int((fn - nneg[j]) / eneg[j])
                for _p in range(n_neg):
                    s ^= (s << np.uint64(13)) & mask  # xorshift32 (Marsaglia 2003)
                    s ^= s >> np.uint64(17)
                    s ^= (s << np.uint64(5)) & mask
                    kk = np.int64((s * nv) >> np.uint64(32))
                    d2 = np.float32(0.0)
                    for d in range(dim):
                        diff = cur[d] - emb[kk, d]
                        d2 += diff * diff
                    if d2 > 0.0:
                        pb = _powb(d2, T)
                        gc = rep / ((np.float32(0.001) + d2) * (a32 * pb + np.float32(1.0)))
                        for d in range(dim):
                            g = gc * (cur[d] - emb[kk, d])
                            cur[d] += min(max(g, np.float32(-4.0)), np.float32(4.0)) * alpha
                nneg[j] += n_neg * eneg[j]
            alpha = np.float32(alpha0 * (1.0 - fn / n_epochs))
        for d in range(dim):
            out[i, d] = cur[d]


def transform_epochs(n_new: int, n_epochs: Optional[int]) -> int:
    """umap-learn's transform epochs: 100 up to 10k new points, else 30; n_epochs // 3 if set."""
    if n_epochs is None:
        return 100 if n_new <= 10000 else 30
    return max(1, int(n_epochs // 3.0))


def membership(idx: np.ndarray, dists: np.ndarray, k: int, local_connectivity: float) -> np.ndarray:
    """UMAP transform's membership weights (n, k) float32 of new points to their k sample
    neighbours (``smooth_knn_dist`` with local connectivity lc - 1, bipartite strengths)."""
    from explorer.maps.umap_kernels import _kernels

    K = _kernels()
    d = np.ascontiguousarray(dists, dtype=np.float32)
    sigmas, rhos = K["smooth_knn_dist"](d, float(k), local_connectivity=float(max(0.0, local_connectivity - 1.0)))
    _, _, vals, _ = K["compute_membership_strengths"](np.ascontiguousarray(idx, dtype=np.int32), d,
                                                      sigmas, rhos, False, True)
    return vals.reshape(idx.shape).astype(np.float32)


def place_points(emb_fit: np.ndarray, idx: np.ndarray, dists: np.ndarray, params: MapParams,
                 n_epochs: int, rows: Optional[np.ndarray] = None) -> np.ndarray:
    """Positions (n, c) float32 of new points with sample neighbours ``idx`` (n, k) and
    distances ``dists`` (n, k) on the fitted map ``emb_fit`` (S, c) (module docstring).
    ``rows``: the points' global row numbers (their random streams; default 0..n-1)."""
    import umap.umap_ as U

    from explorer.core.parallel import run_rows

    p = params
    a, b = U.find_ab_params(p.spread, p.min_dist)
    w = membership(idx, dists, idx.shape[1], p.local_connectivity)
    n = idx.shape[0]
    out = np.empty((n, emb_fit.shape[1]), np.float32)
    gids = np.arange(n, dtype=np.int64) if rows is None else np.ascontiguousarray(rows, dtype=np.int64)
    seed = 0 if p.seed is None else int(p.seed)
    run_rows(_place, n, np.ascontiguousarray(emb_fit, dtype=np.float32),
             np.ascontiguousarray(idx, dtype=np.int64), w, out, gids, int(n_epochs), float(a), float(b),
             float(p.repulsion_strength), float(p.learning_rate) / 4.0, float(p.negative_sample_rate),
             seed, power_table(b), min_rows=256)
    return out


# --------------------------------------------------------------------------- sample search

class SampleSearch:
    """k nearest sample points of query blocks: an IVF index of the sample (lists by k-means,
    ``nprobe`` from the exact neighbours of calibration queries), or hnswlib / exact search
    when the lists carry no structure. ``info`` says which and the measured recall."""

    def __init__(self, Zs: np.ndarray, metric: str, k: int, seed: int = 0, target_recall: float = 0.99,
                 exact_only: bool = False, repeatable: bool = True):
        self.Zs, self.metric, self.k, self.seed, self.target = Zs, metric, int(k), seed, target_recall
        self.exact_only = exact_only
        #: build an HNSW index on one thread: hnswlib's graph built on several threads depends
        #: on their timing, so a seeded map would not come out the same twice
        self.repeatable = repeatable
        self.info: dict = {}
        self.kind = "exact"

    def build(self, calib: np.ndarray) -> Job:
        """Choose and build the search from ``calib`` (m, D) queries (not in the sample)."""
        from explorer.neighbors.search import IVF_PAIR_COST, knn_search, recall_at_k

        t0 = time.perf_counter()
        S = self.Zs.shape[0]
        exact_i, exact_s = yield from knn_search(calib, self.Zs, self.k, self.metric)
        # dot: distances are (shift - score) with one shift for every block (the calibration
        # rows' largest score), so a point's distances do not depend on its block
        self.dot_shift = float(exact_s.max()) if self.metric == "dot" else 0.0
        if self.exact_only:
            self.info["reason"] = "exact search asked for"
        elif self.metric in ("cosine", "euclidean") and S >= 2000:
            from explorer.neighbors.ivf import IvfIndex

            ix = IvfIndex(self.Zs, self.metric, seed=self.seed, max_probe=64)
            yield from scaled(ix.train(), 0.0, 0.6, "sample index: k-means lists")
            yield from scaled(ix.assign(max_probe=1), 0.6, 0.9, "sample index: lists")
            self.ix = ix
            self.Dq_norm = self.metric == "cosine"
            order = self._probe_order(calib, ix.nlist).numpy()
            rank = np.empty_like(order)
            np.put_along_axis(rank, order, np.arange(ix.nlist)[None, :].repeat(len(calib), 0), 1)
            own = ix.probes[:, 0].astype(np.int64)
            ranks = np.sort(np.take_along_axis(rank, own[exact_i], 1).ravel())
            sizes = np.bincount(own, minlength=ix.nlist).astype(np.float64)
            scanned = np.cumsum(sizes[order], axis=1).mean(0)
            from explorer.neighbors.ivf import IvfCurve

            curve = IvfCurve(ranks, scanned, ix.nlist, S)
            aim = min(1.0, self.target + min(0.005, (1.0 - self.target) / 2))
            need = max(curve.nprobe_for(aim), min(ix.nlist, 4))
            frac = curve.fraction_scanned(need)
            self.info.update({"nlist": int(ix.nlist), "nprobe": int(need), "fraction_scanned": round(frac, 4)})
            if frac * IVF_PAIR_COST < 0.5:
                self.kind, self.nprobe = "ivf", int(need)
            else:
                self.info["reason"] = (f"IVF lists would need nprobe {need} of {ix.nlist} "
                                       f"(scanning {frac:.0%} of the sample)")
                del self.ix
        if self.kind != "ivf":
            try:
                import hnswlib  # noqa: F401

                self.kind = "hnsw"
            except ImportError:
                self.kind = "exact"
            if self.exact_only:
                self.kind = "exact"
            if self.kind == "hnsw":
                yield from self._build_hnsw(calib, exact_i)
        got, _ = yield from self.search(calib)
        self.info.update({"method": self.kind, "calibration_rows": int(len(calib)),
                          "recall": float(recall_at_k(got, exact_i)),
                          "build_seconds": round(time.perf_counter() - t0, 3)})
        return self

    def _probe_order(self, Q: np.ndarray, nprobe: int):
        import torch

        from explorer.neighbors.blocks import _ranking_matrix

        Dq, _ = _ranking_matrix(Q, self.metric)
        with torch.no_grad():
            sc = self.ix._scores(torch.from_numpy(np.ascontiguousarray(Dq)), self.ix._C, self.ix._cb)
            return sc.topk(int(nprobe), dim=1).indices

    def _build_hnsw(self, calib, exact_i) -> Job:
        import hnswlib
        import torch

        from explorer.neighbors.search import recall_at_k

        space = {"cosine": "cosine", "euclidean": "l2", "dot": "ip"}[self.metric]
        S = self.Zs.shape[0]
        h = hnswlib.Index(space=space, dim=self.Zs.shape[1])
        h.init_index(max_elements=S, M=16, ef_construction=100, random_seed=self.seed)
        h.set_num_threads(1 if self.repeatable else max(1, torch.get_num_threads()))
        for s in range(0, S, 8192):
            h.add_items(self.Zs[s:s + 8192], np.arange(s, min(S, s + 8192)))
            yield Progress(min(S, s + 8192), S, "sample index: HNSW")
        ef = max(2 * self.k, 32)
        while True:
            h.set_ef(ef)
            got, _ = h.knn_query(calib, k=self.k)
            if recall_at_k(got.astype(np.int64), exact_i) >= self.target or ef >= 800:
                break
            ef = min(800, int(ef * 1.5))
        self.hnsw, self.info["ef"] = h, int(ef)

    def search(self, Q: np.ndarray) -> Job:
        """-> (indices (m, k) int64 into the sample, distances (m, k) float32, ascending)."""
        from explorer.neighbors.search import knn_search

        if self.kind == "exact":
            idx, sc = yield from knn_search(Q, self.Zs, self.k, self.metric)
            return idx, self._distances(sc)
        if self.kind == "hnsw":
            idx, _ = self.hnsw.knn_query(Q, k=self.k)
            idx = idx.astype(np.int64)
        else:
            idx = self._ivf(Q)
        sc = _pair_scores(Q, self.Zs, idx, self.metric)
        o = np.argsort(-sc, axis=1, kind="stable")
        idx, sc = np.take_along_axis(idx, o, 1), np.take_along_axis(sc, o, 1)
        return idx, self._distances(sc)

    def _distances(self, sc: np.ndarray) -> np.ndarray:
        from explorer.neighbors.search import scores_to_distances

        if self.metric == "dot":
            return np.maximum(np.float32(getattr(self, "dot_shift", 0.0)) - sc, 0.0).astype(np.float32)
        return scores_to_distances(sc, self.metric)

    def _ivf(self, Q: np.ndarray) -> np.ndarray:
        """The IVF search of the query block ``Q``, list by list (one product per probed list,
        :func:`explorer.neighbors.ivf.scan_probed_lists`)."""
        import torch

        from explorer.core.jobs import drain
        from explorer.neighbors.blocks import _ranking_matrix
        from explorer.neighbors.ivf import scan_probed_lists

        ix = self.ix
        if not hasattr(self, "_sorted"):
            # the sample's rows in list order, so that a list's members are one contiguous run
            own = ix.probes[:, 0].astype(np.int64)
            order = np.argsort(own, kind="stable")
            starts = np.searchsorted(own[order], np.arange(ix.nlist + 1)).astype(np.int64)
            bias = ix.bias[order] if ix.bias is not None else np.zeros(1, np.float32)
            self._sorted = (torch.from_numpy(np.ascontiguousarray(ix.D[order])), np.ascontiguousarray(bias),
                            order, starts)
        Ds, bias, ids, starts = self._sorted
        use_bias = ix.bias is not None
        Dq, _ = _ranking_matrix(Q, self.metric)
        Qt = torch.from_numpy(np.ascontiguousarray(Dq, dtype=np.float32))
        probes = self._probe_order(Q, self.nprobe).numpy()

        def members(c):
            s, e = starts[c], starts[c + 1]
            return ids[s:e], Ds[s:e], (bias[s:e] if use_bias else bias)

        top_i, _ = drain(scan_probed_lists(Qt, probes, ix.nlist, members, self.k, use_bias))
        short = np.flatnonzero((top_i < 0).any(1))
        if len(short):  # fewer than k candidates in the probed lists: exact for those rows
            from explorer.neighbors.search import knn_search

            top_i[short], _ = drain(knn_search(np.ascontiguousarray(Q[short]), self.Zs, self.k, self.metric))
        return top_i


def _pair_scores(Q: np.ndarray, Zs: np.ndarray, idx: np.ndarray, metric: str) -> np.ndarray:
    """Exact scores (m, k) float32 of query i with sample point idx[i, j] (float64 sums), in
    blocks so that no (m, k, D) array is made."""
    out = np.empty(idx.shape, np.float32)
    step = 4096
    for s in range(0, len(Q), step):
        q = Q[s:s + step].astype(np.float64)
        nb = Zs[idx[s:s + step]].astype(np.float64)  # (<=4096, k, D): 4096*15*128*8 = 63 MB at most
        if metric == "euclidean":
            out[s:s + step] = -np.sqrt(((nb - q[:, None]) ** 2).sum(2))
        else:
            sc = np.einsum("id,ijd->ij", q, nb)
            if metric == "cosine":
                sc = sc / np.maximum(np.linalg.norm(q, axis=1)[:, None] * np.linalg.norm(nb, axis=2), 1e-12)
            out[s:s + step] = sc
    return out


# --------------------------------------------------------------------------- the job

#: recall@k the search of a block's neighbours in the sample aims at. A placed point is the
#: membership-weighted pull of its k neighbours, and one neighbour in twenty replaced by the
#: next nearest moves it little (umap-learn's own transform searches with NN-descent, which is
#: approximate too); the search is most of the placement's cost and scans about half as many
#: points at 0.95 as at 0.99 (1M x 128 blobs, benchmarks/bench_1m.py). The measured recall is
#: reported in ``info["placement_neighbors"]``.
PLACEMENT_RECALL = 0.95

def streamed_pca(Z: np.ndarray, params: MapParams = MapParams(method="pca"), block: int = 262144) -> Job:
    """Exact PCA of ``Z`` (N, D) read ``block`` rows at a time (an array or a read-only memory
    map; memory: the (D, D) covariance, one block and the (N, c) output), as a job ->
    :class:`Layout`. The same definition as :func:`explorer.maps.pca.pca` (covariance
    eigenvectors, largest loading positive): pass 1 accumulates in float64 the sum and the
    scatter of x - m0 (m0 the first block's mean, for accuracy), so that
    C = (S - N d d^T) / (N - 1) with d = mean - m0; pass 2 projects."""
    p = params
    N, D = Z.shape
    c = int(p.n_components)
    if not 1 <= c <= min(N, D):
        raise InputError(f"PCA needs 1 <= components <= min(N, D) = {min(N, D)}, got {c}.")
    t0 = time.perf_counter()
    m0 = None
    tot = np.zeros(D, np.float64)
    S = np.zeros((D, D), np.float64)
    for s in range(0, N, block):
        X = read_rows(Z, s, min(N, s + block)).astype(np.float64)
        if m0 is None:
            m0 = X.mean(0)
        X -= m0
        tot += X.sum(0)
        S += X.T @ X
        yield Progress(min(N, s + block), 2 * N, "PCA: covariance")
    d = tot / N
    C = (S - N * np.outer(d, d)) / max(N - 1, 1)
    mean = m0 + d
    evals, evecs = np.linalg.eigh(C)
    order = np.argsort(evals)[::-1][:c]
    var = np.maximum(evals[order], 0.0)
    W = evecs[:, order].T.copy()
    big = np.abs(W).argmax(1)
    sign = np.sign(W[np.arange(c), big])
    sign[sign == 0] = 1
    W *= sign[:, None]
    total = float(np.trace(C))
    coords = np.empty((N, c), np.float32)
    for s in range(0, N, block):
        e = min(N, s + block)
        coords[s:e] = ((read_rows(Z, s, e).astype(np.float64) - mean) @ W.T).astype(np.float32)
        yield Progress(N + e, 2 * N, "PCA: projecting")
    STATS["layout"] += 1
    return Layout(coords, "pca", p.layout_dict(), {
        "explained_variance_ratio": [float(x) for x in (var / total if total > 0 else var * 0)],
        "explained_variance": [float(x) for x in var], "streamed_blocks": -(-N // block),
        "seconds": time.perf_counter() - t0})
