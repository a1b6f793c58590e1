"""Blockwise k-NN on the CPU: matrix-product tiles and one fused top-k merge.

Two engines share the merge kernel:

* :func:`exact_self_knn` - the exact all-points graph. For cosine and dot the score matrix of a
  self-search is symmetric, and for euclidean it is symmetric up to a per-column term
  (rank by <z_i, z_j> - ||z_j||^2 / 2), so only the panels on and above the block diagonal are
  multiplied: each panel G = D_I D_J^T feeds the running top-k of rows I (read along rows) and
  of rows J (read along columns). Half the multiply-adds of a plain search.
* :func:`ivf_self_knn` - the approximate graph of an inverted-file index (Jegou, Douze & Schmid,
  "Product quantization for nearest neighbor search", TPAMI 2011, the IVF part): k-means lists,
  every point probes its ``nprobe`` nearest lists, and the search runs list by list, so each
  step is one product (points probing list c) x (members of c). ``nprobe`` is widened until
  recall@k measured on a sample reaches the target (see :func:`explorer.neighbors.knn_graph`).

The merge (:func:`_merge_kernels`) scans a score block once and keeps, per query, the k best
(score, index) pairs in descending order; a block's row is only looked at element by element
when its maximum beats the query's current k-th score, which after the first blocks is rare.
Each (query, candidate) pair is scanned at most once by both engines, so no duplicates arise.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import numba
import numpy as np

from explorer.core.parallel import run_rows

from explorer.jobs import Job, Progress
from explorer.resources import setup_numba_cache

__all__ = ["exact_self_knn", "ivf_self_knn", "IvfIndex", "IvfCurve", "pair_scores"]

_CHUNK = 256
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
            hits = 0
            for u in range(row.shape[0]):
                hits += row[u] + b > thr[u]
            if hits == 0:
                continue
            for u in range(n):
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
        n = np.linalg.norm(Z.astype(np.float64), axis=1)
        D = (Z / np.maximum(n, 1e-12)[:, None]).astype(np.float32)
        return np.ascontiguousarray(D), None
    if metric == "euclidean":
        return Z, (-0.5 * np.einsum("ij,ij->i", Z, Z, dtype=np.float64)).astype(np.float32)
    return Z, None


def _empty_top(n: int, k: int) -> Tuple[np.ndarray, np.ndarray]:
    return np.full((n, k), _FLOOR, np.float32), np.full((n, k), -1, np.int64)


def exact_self_knn(Z: np.ndarray, k: int, metric: str, memory_mb: float = 256,
                   block: int = 2048) -> Job:
    """Exact all-points k-NN (self excluded) on the CPU as a job -> (indices (N, k) int64,
    ranking scores (N, k) float32, descending). Ranking scores are the cosine / dot value, or
    <z_i, z_j> - ||z_j||^2/2 for euclidean (the caller converts). Panels are ``block`` rows by
    twice as many columns, both shrunk so that one tile fits in ``memory_mb``."""
    import torch

    K = _merge_kernels()
    N, d = Z.shape
    D, bias = _ranking_matrix(Z, metric)
    use_bias = bias is not None
    zero = np.zeros(1, np.float32)
    top_v, top_i = _empty_top(N, k)
    Dt = torch.from_numpy(D)
    ids = np.arange(N, dtype=np.int64)
    # tiles that stay in the last-level cache: measured 175-200 GFLOPS for 1-4k square tiles
    # at d=384 on 2 cores against 108 for a 2048 x 16384 panel (output written to memory)
    B = int(max(1, min(block, N, math.sqrt(memory_mb * 2**20 / 8))))
    W = 2 * B
    buf = torch.empty(B * W)
    done, total = 0, N * (N + 1) / 2.0
    with torch.no_grad():
        for i0 in range(0, N, B):
            i1 = min(N, i0 + B)
            DI = Dt[i0:i1]
            for j0 in range(i0, N, W):
                j1 = min(N, j0 + W)
                out = buf[:(i1 - i0) * (j1 - j0)].view(i1 - i0, j1 - j0)
                torch.mm(DI, Dt[j0:j1].T, out=out)
                G = out.numpy()
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


def pair_scores(Z: np.ndarray, idx: np.ndarray, metric: str) -> np.ndarray:
    """Exact scores (float64 sums, stored as float32) of the pairs (i, idx[i, j]): cosine
    similarity, negative euclidean distance or dot product, as in :mod:`explorer.neighbors`."""
    out = np.empty(idx.shape, np.float32)
    code = {"cosine": 0, "euclidean": 1, "dot": 2}[metric]
    _parallel(_merge_kernels()["pairs"], len(Z), (np.ascontiguousarray(Z, dtype=np.float32),
                                                   np.ascontiguousarray(idx, dtype=np.int64), code, out))
    return out


# --------------------------------------------------------------------------- IVF


class IvfIndex:
    """k-means lists over the ranking matrix of ``Z`` and, for every point, its ``max_probe``
    nearest lists (by the same score that ranks neighbours). Built by :meth:`build` (a job), or
    in two steps: :meth:`train` (the k-means lists, on a sample) and :meth:`assign` (every
    point's nearest lists), between which :meth:`recall_curve` predicts, from a sample's exact
    neighbours, the recall and the cost of every ``nprobe`` without searching."""

    def __init__(self, Z: np.ndarray, metric: str, nlist: Optional[int] = None, seed: int = 0,
                 iters: int = 6, max_probe: int = 48):
        if metric not in ("cosine", "euclidean"):
            raise ValueError("IVF lists are defined for cosine and euclidean")
        self.metric = metric
        self.N, self.d = Z.shape
        self.D, self.bias = _ranking_matrix(Z, metric)
        self.nlist = int(nlist or max(8, min(4096, round(2.0 * math.sqrt(self.N)))))
        self.nlist = min(self.nlist, self.N)
        self.seed = seed
        self.iters = iters
        self.max_probe = int(min(max_probe, self.nlist))

    @staticmethod
    def _scores(X, C, c_bias):
        import torch

        return X @ C.T if c_bias is None else torch.addmm(c_bias.unsqueeze(0), X, C.T)

    def build(self) -> Job:
        yield from self.train()
        yield from self.assign()
        return self

    def train(self) -> Job:
        """k-means (``iters`` Lloyd steps) on max(24 nlist, 8000) random points; sets the
        centroids and ``est_sizes`` (each list's share of the training points times N)."""
        import torch

        rng = np.random.default_rng(self.seed)
        N, nl = self.N, self.nlist
        Dt = torch.from_numpy(self.D)
        m = min(N, max(24 * nl, 8_000))
        train = Dt[torch.from_numpy(np.sort(rng.choice(N, m, replace=False)))]
        C = train[torch.from_numpy(rng.choice(m, nl, replace=False))].clone()
        with torch.no_grad():
            for it in range(self.iters):
                cb = None if self.metric == "cosine" else -0.5 * (C * C).sum(1)
                a = self._scores(train, C, cb).argmax(1)
                S = torch.zeros_like(C).index_add_(0, a, train)
                cnt = torch.bincount(a, minlength=nl).to(C.dtype)
                empty = cnt == 0
                if bool(empty.any()):  # re-seed empty lists with random training points
                    S[empty] = train[torch.from_numpy(rng.choice(m, int(empty.sum()), replace=False))]
                    cnt[empty] = 1
                C = S / cnt[:, None]
                if self.metric == "cosine":
                    C = torch.nn.functional.normalize(C, dim=1)
                yield Progress(it + 1, self.iters + 1, "k-means lists")
            self._C = C
            self._cb = None if self.metric == "cosine" else -0.5 * (C * C).sum(1)
            a = self._scores(train, C, self._cb).argmax(1)
            self.est_sizes = torch.bincount(a, minlength=nl).double().numpy() * (N / m)
        self.centroids = C.numpy()
        return self

    def _list_scores(self, rows: np.ndarray):
        import torch

        with torch.no_grad():
            return self._scores(torch.from_numpy(self.D[rows]), self._C, self._cb)

    def recall_curve(self, rows: np.ndarray, exact: np.ndarray) -> "IvfCurve":
        """From the exact neighbours ``exact`` (m, k) of the points ``rows``: for each pair the
        rank of the neighbour's list in the query's probe order. A search with ``nprobe`` p finds
        an exact neighbour exactly when that rank is below p (the probed lists are scanned
        exactly), so recall(p) on these rows is known for every p at once, as is the number of
        points a query scans (from ``est_sizes``). Call after :meth:`train`."""
        m, k = exact.shape
        order = self._list_scores(np.asarray(rows)).argsort(dim=1, descending=True).numpy()
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(self.nlist)[None, :].repeat(m, 0), 1)
        nb = np.unique(exact.ravel())
        own = np.empty(self.N, np.int64)
        own[nb] = self._list_scores(nb).argmax(1).numpy()
        ranks = np.take_along_axis(rank, own[exact], 1)
        scanned = np.cumsum(self.est_sizes[order], axis=1).mean(0)  # points scanned per query, by p
        return IvfCurve(np.sort(ranks.ravel()), scanned, self.nlist, self.N)

    def assign(self, max_probe: Optional[int] = None) -> Job:
        """Every point's ``max_probe`` nearest lists (``probes``) and the lists' members."""
        import torch

        if max_probe is not None:
            self.max_probe = int(min(max(1, max_probe), self.nlist))
        N = self.N
        Dt = torch.from_numpy(self.D)
        probes = np.empty((N, self.max_probe), np.int32)
        step = 8192
        with torch.no_grad():
            for s in range(0, N, step):
                sc = self._scores(Dt[s:s + step], self._C, self._cb)
                probes[s:s + step] = sc.topk(self.max_probe, dim=1).indices.numpy()
                yield Progress(min(N, s + step), N, "assigning points to lists")
        self.probes = probes
        own = probes[:, 0].astype(np.int64)
        order = np.argsort(own, kind="stable")
        self.members = np.split(order, np.cumsum(np.bincount(own, minlength=self.nlist))[:-1])
        return self

    def search(self, rows: np.ndarray, k: int, nprobe: int, cancel_every: int = 64) -> Job:
        """Approximate k-NN (self excluded) of the points ``rows`` (sorted int64) among all
        points, each probing its ``nprobe`` nearest lists: job -> (indices (m, k), ranking
        scores (m, k)), index -1 (score -3e38) where fewer than k candidates were seen."""
        import torch

        K = _merge_kernels()
        nprobe = int(min(nprobe, self.max_probe))
        m = len(rows)
        top_v, top_i = _empty_top(m, k)
        lists = self.probes[rows, :nprobe].ravel().astype(np.int64)
        local = np.repeat(np.arange(m, dtype=np.int64), nprobe)
        order = np.argsort(lists, kind="stable")
        lists, local = lists[order], local[order]
        starts = np.searchsorted(lists, np.arange(self.nlist + 1))
        Dt = torch.from_numpy(self.D)
        use_bias = self.bias is not None
        zero = np.zeros(1, np.float32)
        with torch.no_grad():
            for c in range(self.nlist):
                s0, s1 = starts[c], starts[c + 1]
                mem = self.members[c]
                if s1 > s0 and len(mem):
                    q_local = local[s0:s1]
                    q_global = rows[q_local]
                    G = (Dt[torch.from_numpy(q_global)] @ Dt[torch.from_numpy(mem)].T).numpy()
                    bc = self.bias[mem] if use_bias else zero
                    _parallel(K["rows"], s1 - s0, (G, q_local, q_global, mem, bc, use_bias, True,
                                                   top_v, top_i))
                if c % cancel_every == 0:
                    yield Progress(c + 1, self.nlist, f"IVF search (nprobe={nprobe})")
        return top_i, top_v


class IvfCurve:
    """Recall and cost of an IVF search for every ``nprobe``, predicted on a sample (see
    :meth:`IvfIndex.recall_curve`): ``ranks`` the sorted list ranks of the sample's exact
    neighbours, ``scanned[p - 1]`` the mean number of points a query scans with nprobe p."""

    def __init__(self, ranks: np.ndarray, scanned: np.ndarray, nlist: int, n: int):
        self.ranks, self.scanned, self.nlist, self.n = ranks, scanned, nlist, n

    def recall(self, nprobe: int) -> float:
        return float(np.searchsorted(self.ranks, nprobe, side="left") / len(self.ranks))

    def nprobe_for(self, target: float) -> int:
        """The smallest nprobe whose predicted recall reaches ``target`` (at most nlist)."""
        need = int(math.ceil(min(1.0, target) * len(self.ranks) - 1e-9))
        if need <= 0:
            return 1
        return int(min(self.nlist, self.ranks[need - 1] + 1))

    def fraction_scanned(self, nprobe: int) -> float:
        return float(self.scanned[max(1, min(nprobe, self.nlist)) - 1] / self.n)


def ivf_self_knn(index: IvfIndex, k: int, nprobe: int) -> Job:
    """All-points search of a built :class:`IvfIndex` -> (indices, ranking scores)."""
    return index.search(np.arange(index.N, dtype=np.int64), k, nprobe)

