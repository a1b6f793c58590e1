"""Nearest neighbours in the original embedding space: exact (chunked matrix products + top-k on
the chosen device, memory bounded for any N) and approximate (an IVF index of our own for
cosine and euclidean, HNSW via hnswlib, or pynndescent) with its recall measured against exact
search on a sample.

Score convention, one for every metric: **larger is closer**. ``scores`` (stored in the
workspace as ``similarities``) are

* ``cosine``:    s_ij = <z_i, z_j> / (||z_i|| ||z_j||)          (cosine similarity, in [-1, 1])
* ``dot``:       s_ij = <z_i, z_j>                              (inner product)
* ``euclidean``: s_ij = -||z_i - z_j||_2                        (negative Euclidean distance)

Neighbours are sorted by descending score. For all-points graphs a point is never its own
neighbour (it is excluded by index, so an exact duplicate elsewhere still counts).
:func:`scores_to_distances` turns scores into the non-negative distances UMAP wants.

Exact search is the brute-force definition computed blockwise; approximate search is an
inverted file (k-means lists, Jegou, Douze & Schmid, TPAMI 2011; :mod:`explorer.neighbors.ivf`),
Malkov & Yashunin, "Efficient and robust approximate nearest neighbor search using Hierarchical
Navigable Small World graphs", TPAMI 2018 (hnswlib), or Dong, Charikar & Li, "Efficient
k-nearest neighbor graph construction for generic similarity measures", WWW 2011 (NN-descent,
pynndescent). recall@k = |approx_k(i) ∩ exact_k(i)| / k averaged over a random sample of rows.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Tuple

import numpy as np

from explorer.core.errors import InputError
from explorer.core.jobs import Job, Progress, drain, scaled

__all__ = [
    "METRICS", "KnnParams", "KnnResult", "knn_graph", "knn_graph_exact", "knn_search",
    "recall_at_k", "scores_to_distances", "exact_rows",
]

METRICS = ("cosine", "euclidean", "dot")
METHODS = ("auto", "exact", "approx")
APPROX = ("auto", "ivf", "hnsw", "nndescent")


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise InputError(f"Unknown metric {metric!r}; use one of {', '.join(METRICS)}.")


def _as_matrix(Z: Any, name: str = "vectors") -> np.ndarray:
    Z = np.asarray(Z)
    if Z.ndim != 2 or Z.shape[0] == 0 or Z.shape[1] == 0:
        raise InputError(f"The {name} must be a non-empty (N, D) array, got shape {Z.shape}.")
    if not np.issubdtype(Z.dtype, np.number):
        raise InputError(f"The {name} must be numeric, got dtype {Z.dtype}.")
    Z = np.ascontiguousarray(Z, dtype=np.float32)
    if not np.isfinite(Z).all():
        raise InputError(f"The {name} contain NaN or infinite values.")
    return Z


@dataclass(frozen=True)
class KnnParams:
    """Parameters of an all-points k-NN graph.

    ``method``: "exact", "approx" or "auto" (approximate when the exact cost N*N*D exceeds
    ``auto_flops`` on a CPU, 1000x that on a GPU; 1e11 = about 28k x 128 or 16k x 384, where
    the exact search takes about a second on 2 cores; above it IVF wins: 70k x 128 took 1.7 s at
    measured recall 0.998, and 100k x 384 6-7 s at 0.99+, against ~25 s exact). ``device``: None/"auto", "cpu", "cuda", ...
    ``memory_mb`` bounds the score block held at once by exact search (None: 512 MB on a CPU,
    up to 4 GB on a GPU). ``approx``: "auto"
    (IVF for cosine and euclidean, else HNSW if hnswlib is installed, else NN-descent), "ivf",
    "hnsw" or "nndescent". ``target_recall``: the approximate search widens its search (IVF
    ``nprobe`` lists, hnswlib's beam ``ef``) until recall@k measured on ``recall_sample`` rows
    reaches it. With ``approx="auto"`` the target is always met: when the approximate search
    cannot reach it, or (IVF) would cost more than exact search at the width that does, the
    graph is searched exactly (``info["fallback"]`` says why). Only an explicit ``approx``
    with a cap (``max_ef`` for HNSW, ``max_nprobe`` for IVF) or NN-descent may return less,
    and then :attr:`KnnResult.below_target` is True. ``nlist``: IVF lists (None: 2 sqrt(N))."""

    k: int = 15
    metric: str = "cosine"
    method: str = "auto"
    device: Optional[str] = None
    memory_mb: Optional[int] = None
    auto_flops: float = 1e11
    target_recall: float = 0.99
    recall_sample: int = 1000
    hnsw_m: int = 16
    ef_construction: int = 100
    max_ef: int = 800
    seed: int = 0
    approx: str = "auto"
    nlist: Optional[int] = None
    max_nprobe: Optional[int] = None


@dataclass
class KnnResult:
    """``indices`` (N, k) int64 and ``scores`` (N, k) float32 (larger is closer, see module
    docstring), the method that ran ("exact", "hnsw" or "nndescent"), the measured recall@k
    (1.0 for exact; for approx the mean over ``info['recall_sample']`` random rows) and the
    wall time."""

    indices: np.ndarray
    scores: np.ndarray
    metric: str
    method: str
    recall: float
    seconds: float
    info: dict = field(default_factory=dict)

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])

    @property
    def target_recall(self) -> Optional[float]:
        t = self.info.get("target_recall")
        return None if t is None else float(t)

    @property
    def below_target(self) -> bool:
        """True when the measured recall is under the asked target (only an explicit
        approximate method with a cap can return such a graph)."""
        t = self.target_recall
        return t is not None and float(self.recall) < t

    def warning(self) -> Optional[str]:
        """One sentence when :attr:`below_target`, else None."""
        if not self.below_target:
            return None
        wrong = 1.0 - float(self.recall)
        return (f"{self.method} {self.k}-NN recall is {self.recall:.3f}, below the target "
                f"{self.target_recall:g}: about {wrong:.0%} of the neighbours are wrong; use "
                f"the automatic method or exact search for the asked recall.")

    @property
    def similarities(self) -> np.ndarray:
        return self.scores

    def distances(self) -> np.ndarray:
        return scores_to_distances(self.scores, self.metric)

    def attrs(self) -> dict:
        return {"k": self.k, "metric": self.metric, "method": self.method,
                "recall": float(self.recall), "seconds": float(self.seconds), "info": self.info}


def scores_to_distances(scores: np.ndarray, metric: str) -> np.ndarray:
    """Non-negative distances, increasing as scores decrease: cosine 1 - s; euclidean -s;
    dot max(s) - s (a constant shift, to which UMAP's fuzzy set is invariant per row since it
    subtracts each row's nearest distance rho_i)."""
    _check_metric(metric)
    s = np.asarray(scores, dtype=np.float32)
    if metric == "cosine":
        return np.maximum(1.0 - s, 0.0).astype(np.float32)
    if metric == "euclidean":
        return np.maximum(-s, 0.0).astype(np.float32)
    return (s.max() - s).astype(np.float32)


# --------------------------------------------------------------------------- exact, torch

def _prepare(Zt, metric: str):
    """Returns (database matrix, per-column bias or None) so that the ranking score is
    Q @ D.T + bias. Cosine: rows normalised; euclidean: argmax of 2<q,z> - ||z||^2."""
    import torch

    if metric == "cosine":
        return torch.nn.functional.normalize(Zt, dim=1, eps=1e-12), None
    if metric == "euclidean":
        return Zt, -(Zt * Zt).sum(1)
    return Zt, None


def _block_rows(n_db: int, memory_mb: float, cap: int = 4096) -> int:
    return int(max(1, min(cap, (memory_mb * 2**20) // (4 * max(n_db, 1)))))


def _device_budget_mb(dev, memory_mb: Optional[float]) -> float:
    """Score-block budget: ``memory_mb`` where given; else 512 MB on a CPU and, on a GPU, a
    quarter of its free memory up to 4 GB (a 128-row block of 1M columns leaves a GPU idle)."""
    if memory_mb is not None:
        return float(memory_mb)
    if dev.type == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(dev)
        return float(max(512, min(4096, free / 4 / 2**20)))
    return 512.0


def knn_search(Q: np.ndarray, Z: np.ndarray, k: int, metric: str = "cosine", device=None,
               memory_mb: Optional[float] = None, self_offset: Optional[int] = None,
               exclude_self: bool = False) -> Job:
    """Exact k-NN of each row of ``Q`` (M, D) among rows of ``Z`` (N, D), as a job returning
    ``(indices (M, k) int64, scores (M, k) float32)``. With ``exclude_self`` row ``i`` of Q is
    row ``self_offset + i`` of Z and is not its own neighbour. Score blocks are at most
    ``memory_mb`` (queries x database tiles; default 512 MB on a CPU, more on a GPU), so
    memory is bounded for any N."""
    import torch

    from explorer.core.device import resolve_device

    _check_metric(metric)
    dev = resolve_device(None if device is None else str(device))
    M, N = Q.shape[0], Z.shape[0]
    kk = min(k, N - 1 if exclude_self else N)
    if kk < k:
        raise InputError(f"k={k} neighbours were asked for, but there are only {N} points.")
    with torch.no_grad():
        Zt = torch.from_numpy(Z).to(dev)
        D, bias = _prepare(Zt, metric)
        Qt = torch.from_numpy(Q).to(dev)
        Qp = torch.nn.functional.normalize(Qt, dim=1, eps=1e-12) if metric == "cosine" else Qt
        alpha = 2.0 if metric == "euclidean" else 1.0
        # column tiles only when one row block of all N columns would not fit
        memory_mb = _device_budget_mb(dev, memory_mb)
        budget = int(memory_mb * 2**20)
        cols = N if N * 4 * 64 <= budget else int(max(k + 1, budget // (4 * 64)))
        rows = _block_rows(cols, memory_mb, 8192 if dev.type == "cuda" else 4096)
        out_i = np.empty((M, k), dtype=np.int64)
        out_s = np.empty((M, k), dtype=np.float32)
        for r0 in range(0, M, rows):
            r1 = min(M, r0 + rows)
            q = Qp[r0:r1]
            best_v = best_i = None
            for c0 in range(0, N, cols):
                c1 = min(N, c0 + cols)
                if bias is None:
                    S = q @ D[c0:c1].T
                else:
                    S = torch.addmm(bias[c0:c1].unsqueeze(0), q, D[c0:c1].T, alpha=alpha)
                if exclude_self:
                    lo, hi = max(r0 + self_offset, c0), min(r1 + self_offset, c1)
                    if lo < hi:
                        ar = torch.arange(lo, hi, device=dev)
                        S[ar - self_offset - r0, ar - c0] = -math.inf
                kc = min(k, c1 - c0)
                v, i = S.topk(kc, dim=1)
                i = i + c0
                if best_v is None:
                    best_v, best_i = v, i
                else:
                    v = torch.cat([best_v, v], 1)
                    i = torch.cat([best_i, i], 1)
                    best_v, p = v.topk(k, dim=1)
                    best_i = i.gather(1, p)
            if metric == "euclidean":  # exact distances of the chosen pairs, not the expansion
                diff = Qt[r0:r1].unsqueeze(1) - Zt[best_i]
                best_v = -diff.norm(dim=2)
                best_v, p = best_v.sort(dim=1, descending=True, stable=True)
                best_i = best_i.gather(1, p)
            out_i[r0:r1] = best_i.cpu().numpy()
            out_s[r0:r1] = best_v.float().cpu().numpy()
            yield Progress(r1, M, f"exact {metric} k-NN")
    return out_i, out_s


def knn_graph_exact(Z: np.ndarray, k: int, metric: str = "cosine", device=None,
                    memory_mb: Optional[float] = None, tile: Optional[int] = None) -> Job:
    """Exact all-points k-NN graph (self excluded) as a job -> (indices (N, k) int64,
    scores (N, k) float32, descending).

    On a CPU: :func:`explorer.neighbors.blocks.exact_self_knn`, which multiplies only the tiles on and
    above the block diagonal (the score matrix of a self-search is symmetric) and merges each
    tile into the running top-k with one numba pass, the tiles spread over the cores; ``tile``
    rows per tile (default 512 up to 256 dimensions, else 2048; fewer when ``memory_mb`` is
    small). On a GPU: row blocks of :func:`knn_search` (its matrix
    products and top-k are fast there). Euclidean scores are recomputed as exact distances of
    the chosen pairs."""
    from explorer.core.device import resolve_device

    _check_metric(metric)
    dev = resolve_device(None if device is None else str(device))
    N = Z.shape[0]
    if not 1 <= k < N:
        raise InputError(f"k={k} neighbours were asked for, but there are only {N} points.")
    if dev.type != "cpu":
        return (yield from knn_search(Z, Z, k, metric, dev, memory_mb, self_offset=0, exclude_self=True))
    from explorer.neighbors.blocks import exact_self_knn

    idx, sc = yield from exact_self_knn(Z, k, metric, memory_mb=_device_budget_mb(dev, memory_mb), block=tile)
    if metric == "euclidean":
        idx, sc = _sorted_exact(Z, idx, metric)
    return idx, sc


def _sorted_exact(Z: np.ndarray, idx: np.ndarray, metric: str) -> Tuple[np.ndarray, np.ndarray]:
    """Exact float32 scores of the pairs (i, idx[i, j]), each row sorted by descending score
    (stable, so equal scores keep their order)."""
    sc = _rescore(Z, idx, metric)
    order = np.argsort(-sc, axis=1, kind="stable")
    return np.take_along_axis(idx, order, 1), np.take_along_axis(sc, order, 1)


def exact_rows(Z: np.ndarray, rows: np.ndarray, k: int, metric: str,
               device=None) -> Tuple[np.ndarray, np.ndarray]:
    """Exact neighbours of ``Z[rows]`` among ``Z`` with each row's own index excluded:
    (indices (m, k) int64, scores (m, k) float32). Used to measure recall."""
    from explorer.core.device import resolve_device

    rows = np.asarray(rows, dtype=np.int64)
    if resolve_device(None if device is None else str(device)).type == "cpu" and len(Z) > k:
        from explorer.neighbors.blocks import exact_rows_knn

        idx, rank = exact_rows_knn(Z, rows, k, metric)
        if metric == "euclidean":  # ranking score <q, z> - |z|^2 / 2 -> minus the distance
            q2 = np.einsum("ij,ij->i", Z[rows], Z[rows], dtype=np.float64)[:, None]
            return idx, (-np.sqrt(np.maximum(q2 - 2.0 * rank, 0.0))).astype(np.float32)
        return idx, rank
    idx, sc = drain(knn_search(np.ascontiguousarray(Z[rows]), Z, k + 1, metric, device))
    out_i, out_s = _drop_self(idx, sc, rows, k)
    return out_i, out_s


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean over rows of |approx_i ∩ exact_i| / k (both (m, k) index arrays)."""
    k = exact.shape[1]
    hits = [len(np.intersect1d(a, e, assume_unique=False)) for a, e in zip(approx, exact)]
    return float(np.mean(hits) / k)


# --------------------------------------------------------------------------- approximate

def _hnsw_available() -> bool:
    try:
        import hnswlib  # noqa: F401

        return True
    except ImportError:
        return False


def _drop_self(idx: np.ndarray, dist: np.ndarray, rows: np.ndarray, k: int):
    """From (m, k+1) results remove each row's own index (or the last column if absent)."""
    is_self = idx == rows[:, None]
    none = ~is_self.any(1)
    is_self[none, -1] = True
    # stable: keep the order of the remaining columns
    keep = ~is_self
    return idx[keep].reshape(len(rows), k), dist[keep].reshape(len(rows), k)


def _hnsw_graph(Z, p: KnnParams, sample_rows, exact_sample, explicit: bool = True):
    import hnswlib
    import torch

    space = {"cosine": "cosine", "euclidean": "l2", "dot": "ip"}[p.metric]
    N, d = Z.shape
    index = hnswlib.Index(space=space, dim=d)
    index.init_index(max_elements=N, M=p.hnsw_m, ef_construction=p.ef_construction,
                     random_seed=p.seed)
    threads = max(1, torch.get_num_threads())
    index.set_num_threads(threads)
    # hnswlib holds the GIL while it works: small blocks keep the GUI's event loop breathing
    step = 2048
    for s in range(0, N, step):
        index.add_items(Z[s:s + step], np.arange(s, min(N, s + step)))
        yield Progress(min(N, s + step), 2 * N, "building HNSW index")
    # widen the beam until the measured recall on the sample reaches the target
    ef = max(2 * (p.k + 1), 32)
    while True:
        index.set_ef(ef)
        parts = []
        for s in range(0, len(sample_rows), 256):
            parts.append(index.knn_query(Z[sample_rows[s:s + 256]], k=p.k + 1))
            yield Progress(N, 2 * N, f"measuring HNSW recall (ef={ef})")
        li = np.concatenate([a for a, _ in parts])
        ld = np.concatenate([b for _, b in parts])
        si, _ = _drop_self(li.astype(np.int64), ld, sample_rows, p.k)
        rec = recall_at_k(si, exact_sample)
        if rec >= p.target_recall or ef >= p.max_ef:
            break
        ef = min(p.max_ef, int(ef * 1.5))  # x1.5 steps: each step costs one sample query, an
        # overshoot costs a whole-graph query at a wider beam (measured: ef 48 vs 64 ~ 25% time)
    if not explicit and rec < p.target_recall:
        return None, {"library": "hnswlib", "ef": int(ef), "sample_recall_at_final_ef": rec,
                      "reason": f"HNSW reached recall {rec:.3f} < {p.target_recall:g} at ef {ef} (max_ef)"}
    out_i = np.empty((N, p.k), np.int64)
    qstep = 1024  # small blocks: hnswlib's query holds the GIL, and the GUI's event loop must not wait
    for s in range(0, N, qstep):
        rows = np.arange(s, min(N, s + qstep))
        li, ld = index.knn_query(Z[rows], k=p.k + 1)
        out_i[rows], _ = _drop_self(li.astype(np.int64), ld, rows, p.k)
        yield Progress(N + rows[-1] + 1, 2 * N, f"querying HNSW (ef={ef})")
    # the index's own settings (what it was built with), not the parameters asked for
    return out_i, {"library": "hnswlib", "ef": int(ef), "M": int(index.M),
                   "ef_construction": int(index.ef_construction), "sample_recall_at_final_ef": rec}


# Relative cost of one (query, candidate) score in the IVF search against one in the exact
# self-search, which multiplies each symmetric pair once, in large cache-friendly tiles: IVF
# gathers each list's members and runs one small product per list. Measured on isotropic
# Gaussian data, 2 shared cores, IVF search vs exact self k-NN in the same process: 1.7 at
# 100k x 384 (nprobe 48 of 632), 3.7 and 7.4 at 40k x 384 (nprobe 80 and 20 of 400: small
# lists cost more per pair). 3 is the middle; IVF is chosen by ``auto`` only when
# N * scanned * IVF_PAIR_COST < N^2 / 2, i.e. when a query scans under 1/6 of the points at
# the nprobe that reaches the target (clustered data: 1-5%; isotropic data: 80-95%).
IVF_PAIR_COST = 3.0


def _join_index(Z, p: KnnParams):
    """The IVF index of the all-points graph: ``p.nlist`` lists as asked, or else sqrt(N) lists
    split until none holds more than twice the mean (:class:`IvfIndex` ``balance``): at 1M x 128
    blobs, 1,000 lists cost a third of the assignment of 2,000 and the same join."""
    from explorer.neighbors.ivf import IvfIndex

    if p.nlist is not None:
        return IvfIndex(Z, p.metric, nlist=p.nlist, seed=p.seed)
    return IvfIndex(Z, p.metric, nlist=max(8, min(4096, round(math.sqrt(Z.shape[0])))), seed=p.seed,
                    balance=2.0)


def _ivf_graph(Z, p: KnnParams, sample_rows, exact_sample, explicit: bool, index=None):
    """IVF (:class:`explorer.neighbors.ivf.IvfIndex`): k-means lists, then, from the sample's exact
    neighbours, the smallest ``nprobe`` (at least 4) whose recall on the sample reaches the aim
    (the target plus min(0.005, half the gap to 1), a margin for the rows outside the sample)
    and the share of the points a query then scans (:meth:`IvfIndex.recall_curve`; no trial
    searches). Automatic
    choice (``explicit`` False): when that scan costs more than exact search (isotropic data,
    where the lists carry no structure), returns (None, info) and the caller searches exactly.
    Explicit choice: searches with that nprobe, capped at ``p.max_nprobe`` (the recall may then
    fall short; the result says so). Rows that saw fewer than k candidates are searched exactly."""
    if index is None:
        index = _join_index(Z, p)
    yield from scaled(index.train(), 0.0, 0.1)
    curve = index.join_curve(sample_rows, exact_sample)
    aim = min(1.0, p.target_recall + min(0.005, (1.0 - p.target_recall) / 2))
    need = curve.nprobe_for(aim)
    frac = curve.fraction_scanned(need)
    info = {"library": "explorer IVF", "nlist": int(index.nlist), "nprobe_needed": int(need),
            "predicted_fraction_scanned": round(frac, 4),
            "predicted_ivf_cost_vs_exact": round(frac * IVF_PAIR_COST * 2.0, 3)}
    if not explicit and frac * IVF_PAIR_COST * 2.0 >= 1.0:
        info["reason"] = (f"IVF would need nprobe {need} of {index.nlist} lists (a query scanning "
                          f"{frac:.0%} of the points) to reach recall {p.target_recall:g}, "
                          f"which costs more than exact search")
        return None, info
    nprobe = max(need, min(index.nlist, 4))  # 4 lists cost little and add margin
    if p.max_nprobe is not None:
        nprobe = max(1, min(nprobe, int(p.max_nprobe)))
    yield from scaled(index.assign(1), 0.1, 0.2)  # each point's own list
    idx, _ = yield from scaled(index.self_join(p.k, nprobe), 0.2, 1.0, f"IVF join (nprobe={nprobe})")
    short = np.flatnonzero((idx < 0).any(1))
    if len(short):
        idx[short], _ = exact_rows(Z, short, p.k, p.metric)
    info.update({"nprobe": int(nprobe), "predicted_sample_recall": curve.recall(nprobe),
                 "rows_searched_exactly": int(len(short))})
    return idx, info


def _nndescent_graph(Z, p: KnnParams):
    from explorer.core.resources import setup_numba_cache

    setup_numba_cache()
    from pynndescent import NNDescent

    yield Progress(0, 1, "NN-descent")
    nnd = NNDescent(Z, metric=p.metric, n_neighbors=p.k + 1, random_state=p.seed,
                    low_memory=True, verbose=False)
    li, ld = nnd.neighbor_graph
    rows = np.arange(Z.shape[0])
    out_i, _ = _drop_self(li.astype(np.int64), ld, rows, p.k)
    yield Progress(1, 1, "NN-descent")
    return out_i, {"library": "pynndescent"}


def _rescore(Z: np.ndarray, idx: np.ndarray, metric: str) -> np.ndarray:
    """Exact scores of the pairs (i, idx[i, j]) in float32, order preserved."""
    from explorer.neighbors.blocks import pair_scores

    return pair_scores(Z, idx, metric)


def _choose_method(N: int, d: int, p: KnnParams, dev) -> str:
    if p.method == "exact":
        return "exact"
    if p.method == "approx":
        return "approx"
    budget = p.auto_flops * (1000.0 if dev.type == "cuda" else 1.0)
    return "approx" if float(N) * N * d > budget else "exact"


def knn_graph(Z: np.ndarray, params: KnnParams = KnnParams()) -> Job:
    """All-points k-NN graph of ``Z`` (N, D), self excluded, as a job returning :class:`KnnResult`.

    Exact: blockwise brute force (definition above). Approximate (see :class:`KnnParams`):
    IVF, HNSW or NN-descent; its recall@k is measured against exact search on
    ``params.recall_sample`` random rows and reported, never assumed. The automatic method
    always reaches ``params.target_recall`` (falling back to exact search when the approximate
    one cannot, or would cost more); an explicit one may not, and the result then says so
    (:attr:`KnnResult.below_target`, :meth:`KnnResult.warning`)."""
    from explorer.core.device import resolve_device

    p = params
    _check_metric(p.metric)
    if p.method not in METHODS:
        raise InputError(f"Unknown k-NN method {p.method!r}; use one of {', '.join(METHODS)}.")
    if p.approx not in APPROX:
        raise InputError(f"Unknown approximate k-NN method {p.approx!r}; use one of {', '.join(APPROX)}.")
    Z = _as_matrix(Z)
    N, d = Z.shape
    if not 1 <= p.k < N:
        raise InputError(f"k must be between 1 and N-1 = {N - 1}, got {p.k}.")
    dev = resolve_device(p.device)
    t0 = time.perf_counter()
    method = _choose_method(N, d, p, dev)
    if method == "exact":
        idx, sc = yield from knn_graph_exact(Z, p.k, p.metric, dev, p.memory_mb)
        return KnnResult(idx, sc, p.metric, "exact", 1.0, time.perf_counter() - t0,
                         {"device": str(dev), "n": N, "dim": d, "target_recall": float(p.target_recall)})
    rng = np.random.default_rng(p.seed)
    m = min(N, p.recall_sample)
    sample_rows = np.sort(rng.choice(N, size=m, replace=False))
    lib = p.approx
    if lib == "auto":
        lib = "ivf" if p.metric in ("cosine", "euclidean") else ("hnsw" if _hnsw_available() else "nndescent")
    if lib == "ivf" and p.metric == "dot":
        raise InputError("IVF lists need a cosine or euclidean metric; for dot use approx='hnsw' or 'nndescent'.")
    if lib == "hnsw" and not _hnsw_available():
        raise InputError("HNSW needs hnswlib: pip install 'embedding-explorer[ann]'.")
    explicit = p.approx != "auto"
    index = None
    yield Progress(0, None, "exact neighbours of the recall sample")
    if lib == "ivf" and p.metric == "cosine":
        # the index's normalised rows serve the exact search too (cosine = their dot product):
        # no second normalised copy of the vectors (512 MB at 1M x 128)
        index = _join_index(Z, p)
        exact_sample, _ = exact_rows(index.D, sample_rows, p.k, "dot")
    else:
        exact_sample, _ = exact_rows(Z, sample_rows, p.k, p.metric)
    if lib == "ivf":
        idx, info = yield from _ivf_graph(Z, p, sample_rows, exact_sample, explicit, index)
    elif lib == "hnsw":
        idx, info = yield from _hnsw_graph(Z, p, sample_rows, exact_sample, explicit)
    else:
        idx, info = yield from _nndescent_graph(Z, p)
    info.update({"recall_sample": int(m), "n": N, "dim": d, "target_recall": float(p.target_recall)})
    if idx is not None:
        idx, sc = _sorted_exact(Z, idx, p.metric)
        rec = recall_at_k(idx[sample_rows], exact_sample)
        if explicit or rec >= p.target_recall:
            return KnnResult(idx, sc, p.metric, lib, rec, time.perf_counter() - t0, info)
        info["reason"] = f"{lib} reached recall {rec:.3f} < {p.target_recall:g}"
    # automatic choice that cannot deliver the target (cheaply): exact search
    idx, sc = yield from knn_graph_exact(Z, p.k, p.metric, dev, p.memory_mb)
    fb = {"device": str(dev), "n": N, "dim": d, "target_recall": float(p.target_recall),
          "fallback": info.pop("reason", f"{lib} below the target"), "tried": {lib: info}}
    return KnnResult(idx, sc, p.metric, "exact", 1.0, time.perf_counter() - t0, fb)
