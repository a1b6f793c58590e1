"""The approximate all-points graph of an inverted-file index (Jegou, Douze & Schmid, "Product
quantization for nearest neighbor search", TPAMI 2011, the IVF part): k-means lists, every point
probes its ``nprobe`` nearest lists, and the search runs list by list, so each step is one
product (points probing list c) x (members of c), merged into the running top-k by the kernels
of :mod:`explorer.neighbors.blocks`. ``nprobe`` is widened until recall@k measured on a sample
reaches the target (see :func:`explorer.neighbors.search.knn_graph`).
"""

from __future__ import annotations

import math
from typing import Optional

import numba
import numpy as np

from explorer.core.jobs import Job, Progress
from explorer.core.parallel import run_tasks, workers
from explorer.neighbors.blocks import _empty_top, _merge_kernels, _ranking_matrix, gemm_nt, run_pairs

__all__ = ["IvfIndex", "IvfCurve", "ivf_self_knn"]


class IvfIndex:
    """k-means lists over the ranking matrix of ``Z`` and, for every point, its ``max_probe``
    nearest lists (by the same score that ranks neighbours). Built by :meth:`build` (a job), or
    in two steps: :meth:`train` (the k-means lists, on a sample) and :meth:`assign` (every
    point's nearest lists), between which :meth:`recall_curve` predicts, from a sample's exact
    neighbours, the recall and the cost of every ``nprobe`` without searching."""

    def __init__(self, Z: np.ndarray, metric: str, nlist: Optional[int] = None, seed: int = 0,
                 iters: int = 6, max_probe: int = 48, balance: float = 0.0):
        if metric not in ("cosine", "euclidean"):
            raise ValueError("IVF lists are defined for cosine and euclidean")
        self.metric = metric
        self.N, self.d = Z.shape
        self.D, self.bias = _ranking_matrix(Z, metric)
        self._owns_D = self.D is not Z  # a copy of ours (cosine) may be reordered in place
        self.nlist = int(nlist or max(8, min(4096, round(2.0 * math.sqrt(self.N)))))
        self.nlist = min(self.nlist, self.N)
        self.seed = seed
        self.iters = iters
        self.max_probe = int(min(max_probe, self.nlist))
        #: with balance b > 0, :meth:`train` splits every list holding more than b times the
        #: mean share of the points in two (2-means), until none does: in high dimensions the
        #: centroid nearest a cluster's centre takes most of it (1 to 9,698 points per list at
        #: 1M x 128 blobs, nlist 1000), and a list's cost in a join grows with its size squared
        self.balance = float(balance)

    @staticmethod
    def _scores(X, C, c_bias):
        """Scores of rows X for centroids C (CPU tensors) as a tensor, the product in numpy
        (:func:`explorer.neighbors.blocks.gemm_nt`)."""
        import torch

        S = gemm_nt(X.numpy(), C.numpy())
        if c_bias is not None:
            S += c_bias.numpy()[None, :]
        return torch.from_numpy(S)

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
            if self.balance > 0:
                C = self._split_big_lists(train, C, self.balance * m / nl, rng)
                nl = self.nlist = int(C.shape[0])
            self._C = C
            self._cb = None if self.metric == "cosine" else -0.5 * (C * C).sum(1)
            a = self._scores(train, C, self._cb).argmax(1)
            self.est_sizes = torch.bincount(a, minlength=nl).double().numpy() * (N / m)
        self.centroids = C.numpy()
        return self

    def _split_big_lists(self, train, C, limit: float, rng, rounds: int = 8, steps: int = 4):
        """Split each list with more than ``limit`` training points in two by 2-means of its
        points, and again, for at most ``rounds`` rounds -> the new centroids."""
        import torch

        for _ in range(rounds):
            cb = None if self.metric == "cosine" else -0.5 * (C * C).sum(1)
            a = self._scores(train, C, cb).argmax(1)
            cnt = torch.bincount(a, minlength=C.shape[0])
            big = torch.nonzero(cnt > limit).flatten().tolist()
            if not big:
                break
            added = []
            for c in big:
                pts = train[a == c]
                two = pts[torch.from_numpy(rng.choice(len(pts), 2, replace=False))].clone()
                for _ in range(steps):
                    tb = None if self.metric == "cosine" else -0.5 * (two * two).sum(1)
                    side = self._scores(pts, two, tb).argmax(1)
                    for h in (0, 1):
                        if bool((side == h).any()):
                            two[h] = pts[side == h].mean(0)
                    if self.metric == "cosine":
                        two = torch.nn.functional.normalize(two, dim=1)
                C[c] = two[0]
                added.append(two[1])
            C = torch.cat([C, torch.stack(added)])
        return C

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
        N, P = self.N, self.max_probe
        Dt = torch.from_numpy(self.D)
        probes = np.empty((N, P), np.int32)
        step = 8192

        def block(s):
            sc = self._scores(Dt[s:s + step], self._C, self._cb)
            if P == 1:  # numpy's argmax: a third of the time of torch's top-1
                probes[s:s + step, 0] = sc.numpy().argmax(1)
            else:
                probes[s:s + step] = sc.topk(P, dim=1).indices.numpy()

        # a few blocks at a time, one per thread (each its own product and selection)
        group = step * workers()
        with torch.no_grad():
            for g in range(0, N, group):
                run_tasks(block, range(g, min(N, g + group), step))
                yield Progress(min(N, g + group), N, "assigning points to lists")
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

        nprobe = int(min(nprobe, self.max_probe))
        rows = np.asarray(rows, dtype=np.int64)
        Dt = torch.from_numpy(self.D)
        Qt = Dt if len(rows) == self.N else Dt[torch.from_numpy(rows)]
        qrows = rows if len(rows) == self.N else None
        zero = np.zeros(1, np.float32)

        def members(c):
            mem = self.members[c]
            return mem, Dt[torch.from_numpy(mem)], (self.bias[mem] if self.bias is not None else zero)

        return (yield from scan_probed_lists(Qt, self.probes[rows, :nprobe], self.nlist, members, k,
                                             self.bias is not None, self_ids=rows if qrows is None else qrows,
                                             label=f"IVF search (nprobe={nprobe})", cancel_every=cancel_every))

    # ---------------------------------------------------------------- the all-points graph
    def list_ranks(self) -> np.ndarray:
        """(nlist, nlist) int32: ``R[a, b]`` the rank of list b among the lists ordered by the
        score of their centroid for list a's centroid (a itself first, rank 0)."""
        import torch

        with torch.no_grad():
            S = self._scores(self._C, self._C, self._cb)
            S.fill_diagonal_(float("inf"))
            order = S.argsort(dim=1, descending=True).numpy()
        nl = self.nlist
        R = np.empty((nl, nl), np.int32)
        np.put_along_axis(R, order, np.arange(nl, dtype=np.int32)[None, :].repeat(nl, 0), 1)
        return R

    def join_curve(self, rows: np.ndarray, exact: np.ndarray) -> "IvfCurve":
        """The recall and cost of :meth:`self_join` for every ``nprobe``, from the exact
        neighbours ``exact`` (m, k) of the points ``rows``, as :meth:`recall_curve` does for a
        search. The join computes the pairs of lists (a, b) with ``min(R[a, b], R[b, a]) <
        nprobe`` (:meth:`list_ranks`) exactly, so the pair (query i, neighbour j) is found
        exactly when that rank of (list of i, list of j) is below nprobe. Call after
        :meth:`train`."""
        R = self.list_ranks()
        M = np.minimum(R, R.T)
        own_q = self._list_scores(np.asarray(rows)).argmax(1).numpy()
        nb = np.unique(exact.ravel())
        own = np.empty(self.N, np.int64)
        own[nb] = self._list_scores(nb).argmax(1).numpy()
        ranks = M[own_q[:, None], own[exact]]
        # pairs of points computed (each unordered pair once) when nprobe = p: the pairs of lists
        # with M below p, weighted by the product of their sizes, plus each list with itself
        s = self.est_sizes
        a, b = np.triu_indices(self.nlist, 1)
        pairs = np.bincount(M[a, b], weights=s[a] * s[b], minlength=self.nlist)
        cost = np.cumsum(pairs) + 0.5 * float((s * s).sum())
        return IvfCurve(np.sort(ranks.ravel()), 2.0 * cost / self.N, self.nlist, self.N)

    def self_join(self, k: int, nprobe: int, block: int = 2048) -> Job:
        """Approximate all-points k-NN (self excluded) as a join of lists: every pair of lists
        (a, b) with ``min(R[a, b], R[b, a]) < nprobe`` (:meth:`list_ranks`; a list with itself
        always) is multiplied once, (members of a) x (members of b), and feeds the running top-k
        of both sides, as the exact engine's symmetric tiles do: half the products of a search
        in which every point probes its own lists. Needs the lists (:meth:`assign`, any
        ``max_probe``). Job -> (indices (N, k), ranking scores (N, k)), -1 (score -3e38) where
        fewer than k candidates were seen. A list longer than ``block`` is taken in blocks.

        The rows are first put in list order (in place where the index owns its matrix, as
        for cosine; else in a permuted copy), so that every product reads two contiguous
        slices, and the running top-k is kept in list order too, so that the merges read and
        write it row after row instead of at random."""
        K = _merge_kernels()
        N, nl = self.N, self.nlist
        M = self.list_ranks()
        M = np.minimum(M, M.T)
        top_v, top_i = _empty_top(N, k)  # rows in list order (pos), neighbours as original ids
        use_bias = self.bias is not None
        sizes = np.array([len(m) for m in self.members], np.int64)
        at = np.concatenate([[0], np.cumsum(sizes)])
        perm = np.concatenate(self.members).astype(np.int64) if N else np.zeros(0, np.int64)
        in_place = self._owns_D
        if in_place:
            _permute_rows(self.D, perm)
            D = self.D
        else:
            D = self.D[perm]
        bias = self.bias[perm] if use_bias else np.zeros(1, np.float32)
        pos = np.arange(N, dtype=np.int64)
        RB = int(max(1, min(block, sizes.max() if nl else 1)))  # rows (and columns) of one product at most

        def blocks(lo, hi):
            return [(r, min(hi, r + RB)) for r in range(lo, hi, RB)]

        def multiply(a, b, buf):
            # one pair of lists: its products, merged into the top-k of a's rows and (a != b)
            # of b's rows; touches no other list's rows
            for r0, r1 in blocks(at[a], at[a + 1]):
                for c0, c1 in blocks(at[b], at[b + 1]):
                    G = gemm_nt(D[r0:r1], D[c0:c1], buf[:(r1 - r0) * (c1 - c0)].reshape(r1 - r0, c1 - c0))
                    K["rows"](G, pos[r0:r1], perm[r0:r1], perm[c0:c1], bias[c0:c1], use_bias, a == b,
                              top_v, top_i, 0, r1 - r0)
                    if a != b:
                        K["cols"](G, perm[r0:r1], pos[c0:c1], bias[r0:r1], use_bias, top_v, top_i, 0, c1 - c0)

        # each list with itself first: every point's top-k then holds its own list's best, so
        # the pairs of lists that follow rarely beat it (the merge's cheap path); then each
        # pair of lists once, feeding both sides
        pairs = [(a, a) for a in range(nl)]
        for a in range(nl):
            pairs.extend((a, int(b)) for b in np.flatnonzero(M[a, a + 1:] < nprobe) + a + 1)
        work = np.array([sizes[a] * sizes[b] for a, b in pairs], np.float64)
        try:
            yield from run_pairs(pairs, multiply, RB * RB, work, f"IVF join (nprobe={nprobe})")
        finally:  # also when the job is closed half-way: the index's rows go back in order
            if in_place:
                inv = np.empty_like(perm)
                inv[perm] = np.arange(N, dtype=np.int64)
                _permute_rows(self.D, inv)
        out_i, out_v = np.empty_like(top_i), np.empty_like(top_v)
        out_i[perm], out_v[perm] = top_i, top_v
        return out_i, out_v


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _permute_rows(D, perm):  # pragma: no cover - numba
    """In place: row i of D becomes the old row perm[i] (cycle by cycle, one spare row)."""
    n = perm.shape[0]
    seen = np.zeros(n, np.bool_)
    spare = np.empty(D.shape[1], D.dtype)
    for s in range(n):
        if seen[s]:
            continue
        spare[:] = D[s]
        i = s
        while True:
            seen[i] = True
            j = perm[i]
            if j == s:
                D[i] = spare
                break
            D[i] = D[j]
            i = j


def scan_probed_lists(Qt, probes: np.ndarray, nlist: int, members, k: int, use_bias: bool,
                      self_ids: Optional[np.ndarray] = None, label: str = "IVF search",
                      cancel_every: int = 64) -> Job:
    """The list-by-list scan of an IVF search: for each list c, one product (the queries, rows of
    the tensor ``Qt``, that probe c in ``probes`` (m, p)) x (c's members), merged into the
    running top-k. ``members(c)`` -> (their ids, their ranking rows as a tensor, their bias or a
    dummy). ``self_ids``: the queries' own ids, skipped as candidates (a self-search). Job ->
    (indices (m, k), ranking scores (m, k)), -1 (score -3e38) where fewer than k were seen.

    The queries are cut into one contiguous part per thread of the pool, and each thread scans
    the lists for its own part (single-threaded products), so no two threads write one
    query's row; the lists go by in chunks of ``cancel_every``, with a progress step after
    lists 0, ``cancel_every``, 2 ``cancel_every``, ..."""
    K = _merge_kernels()
    m, p = probes.shape
    top_v, top_i = _empty_top(m, k)
    lists = probes.ravel().astype(np.int64)
    local = np.repeat(np.arange(m, dtype=np.int64), p)
    order = np.argsort(lists, kind="stable")
    lists, local = lists[order], local[order]  # by list, then by query
    starts = np.searchsorted(lists, np.arange(nlist + 1))
    Qn = Qt.numpy()
    nt = max(1, min(workers(), m // 256 + 1))  # a part of 256 queries at least
    parts = np.linspace(0, m, nt + 1).astype(np.int64)

    def scan(t, c0, c1, mem):
        for c in range(c0, c1):
            if mem[c - c0] is None:
                continue
            ids, Dm, bc = mem[c - c0]
            s0, s1 = starts[c], starts[c + 1]
            a, b = s0 + np.searchsorted(local[s0:s1], parts[t:t + 2])
            if b > a:
                q = local[a:b]
                G = gemm_nt(Qn[q], Dm)
                qid = q if self_ids is None else self_ids[q]
                K["rows"](G, q, qid, ids, bc, use_bias, self_ids is not None, top_v, top_i, 0, b - a)

    ends = sorted({min(nlist, c + 1) for c in range(0, nlist, cancel_every)} | {nlist})
    c0 = 0
    for c1 in ends:
        mem = []
        for c in range(c0, c1):
            got = members(c) if starts[c + 1] > starts[c] else None
            mem.append(None if got is None or not len(got[0]) else (got[0], got[1].numpy(), got[2]))
        run_tasks(lambda t: scan(t, c0, c1, mem), range(nt))
        if (c1 - 1) % cancel_every == 0:
            yield Progress(c1, nlist, label)
        c0 = c1
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
