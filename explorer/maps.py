"""Maps of an embedding space: exact PCA, UMAP on our own k-NN graph, aligned layouts
(Procrustes, AlignedUMAP), per-point projection trust, and the staged workspace cache
embeddings -> k-NN graph -> layout.

UMAP is McInnes, Healy & Melville, "UMAP: Uniform Manifold Approximation and Projection for
Dimension Reduction", arXiv:1802.03426 (2018), computed with umap-learn's own kernels in
umap-learn's own order, so that ``umap.UMAP(..., precomputed_knn=(knn_indices, knn_dists),
force_approximation_algorithm=True, random_state=seed)`` in a notebook reproduces our layout
(``Layout.info['reproduce']`` spells the call out). Differences from calling ``UMAP.fit``:
the k-NN graph is ours (exact or measured-recall approximate, shared with the neighbour panel
and diagnostics), the optimisation runs epoch by epoch so the job reports progress, shows the
layout as it forms and can be cancelled between epochs, and the numba kernels are compiled
with ``cache=True`` so a fresh process does not recompile them (TRAPS.md #2).
"""

from __future__ import annotations

import time
import types
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence, Tuple

import numpy as np

from explorer.errors import InputError
from explorer.jobs import Job, Progress, drain
from explorer.neighbors import KnnParams, KnnResult, _as_matrix, knn_graph, knn_search, scores_to_distances
from explorer.store import EMBEDDINGS, KNN, LAYOUTS, jsonable

__all__ = [
    "MapParams", "Layout", "PcaResult", "pca", "pca_job", "umap_layout", "make_layout",
    "procrustes_align", "aligned_umap", "projection_trust", "knn_key", "layout_key",
    "cached_knn", "cached_layout", "warmup", "STATS",
]

#: counts of real computations (not cache hits), for tests and the GUI's status line
STATS: Counter = Counter()


# --------------------------------------------------------------------------- PCA

@dataclass
class PcaResult:
    """``coords`` (N, c) float32 scores, ``components`` (c, D) orthonormal rows, ``mean`` (D,),
    ``explained_variance`` (c,) and ``explained_variance_ratio`` (c,) (of the total variance)."""

    coords: np.ndarray
    components: np.ndarray
    mean: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray


def pca(Z: np.ndarray, n_components: int = 2, device=None, block_rows: int = 65536) -> PcaResult:
    """Exact PCA (Pearson 1901; Hotelling 1933): eigenvectors of the sample covariance
    C = (X - mu)^T (X - mu) / (N - 1), accumulated blockwise in float64 on the device (CPU
    float64 where the device has none, e.g. MPS) and diagonalised with ``eigh``. Variance
    ratios are lambda_i / trace(C). Sign convention: each component's largest-magnitude loading
    is positive, so the same data always gives the same picture. For D > 8192 (covariance
    too large) falls back to ``torch.svd_lowrank`` with 10 power iterations and oversampling.
    ``Z`` (N, D) -> coords (N, n_components)."""
    import torch

    from explorer.device import resolve_device

    Z = _as_matrix(Z)
    N, D = Z.shape
    c = int(n_components)
    if not 1 <= c <= min(N, D):
        raise InputError(f"PCA needs 1 <= components <= min(N, D) = {min(N, D)}, got {c}.")
    dev = resolve_device(None if device is None else str(device))
    fdev = dev if dev.type == "cuda" else torch.device("cpu")
    with torch.no_grad():
        mean = torch.zeros(D, dtype=torch.float64, device=fdev)
        for s in range(0, N, block_rows):
            mean += torch.from_numpy(Z[s:s + block_rows]).to(fdev, torch.float64).sum(0)
        mean /= N
        if D <= 8192:
            C = torch.zeros(D, D, dtype=torch.float64, device=fdev)
            for s in range(0, N, block_rows):
                X = torch.from_numpy(Z[s:s + block_rows]).to(fdev, torch.float64) - mean
                C.addmm_(X.T, X)
            C /= max(N - 1, 1)
            evals, evecs = torch.linalg.eigh(C)
            total = float(torch.diagonal(C).sum())
            order = torch.argsort(evals, descending=True)[:c]
            var = evals[order].clamp_min(0)
            W = evecs[:, order].T.contiguous()  # (c, D)
        else:
            X = torch.from_numpy(Z).to(fdev, torch.float32)
            U, S, V = torch.svd_lowrank(X, q=c + 20, niter=10, M=mean.float().unsqueeze(0))
            var = (S[:c].double() ** 2) / max(N - 1, 1)
            W = V[:, :c].T.double()
            total = float(((X.double() - mean) ** 2).sum() / max(N - 1, 1))
        big = W.abs().argmax(1)
        sign = torch.sign(W[torch.arange(c, device=fdev), big])
        sign[sign == 0] = 1
        W = W * sign[:, None]
        coords = torch.empty(N, c, dtype=torch.float32)
        Wf = W.to(torch.float64)
        for s in range(0, N, block_rows):
            X = torch.from_numpy(Z[s:s + block_rows]).to(fdev, torch.float64) - mean
            coords[s:s + block_rows] = (X @ Wf.T).float().cpu()
    var_np = var.cpu().numpy()
    return PcaResult(coords.numpy(), W.cpu().numpy(), mean.cpu().numpy(), var_np,
                     var_np / total if total > 0 else np.zeros_like(var_np))


# --------------------------------------------------------------------------- params, results

@dataclass(frozen=True)
class MapParams:
    """Everything that makes a map. ``method``: "umap" or "pca". UMAP fields follow
    umap-learn's names and defaults (``n_epochs=None``: 500 up to 10k points, else 200).
    ``seed=None`` lets the optimisation run on all cores (numba parallel; faster, not bit
    reproducible); ``parallel=None`` means exactly that. Above ``max_fit_points`` UMAP is fitted
    on a random sample and the other points are placed with UMAP's ``transform`` procedure.
    ``knn_method`` is passed to :func:`explorer.neighbors.knn_graph`.

    ``optimizer``: "fast" runs UMAP's SGD in :mod:`explorer.layout_sgd` (same objective,
    schedules and graph; float32, batched negative samples; several times faster, see there);
    "umap-learn" runs umap-learn's own epoch kernel, so that a seeded map is bit-identical to
    ``umap.UMAP(..., precomputed_knn=...)``. Either way a seeded map (``parallel`` False)
    is deterministic: the same parameters give the same coordinates."""

    method: str = "umap"
    n_components: int = 2
    n_neighbors: int = 15
    min_dist: float = 0.1
    spread: float = 1.0
    metric: str = "cosine"
    n_epochs: Optional[int] = None
    seed: Optional[int] = 0
    init: str = "spectral"
    learning_rate: float = 1.0
    repulsion_strength: float = 1.0
    negative_sample_rate: int = 5
    set_op_mix_ratio: float = 1.0
    local_connectivity: float = 1.0
    parallel: Optional[bool] = None
    max_fit_points: int = 200_000
    optimizer: str = "fast"
    knn_method: str = "auto"
    device: Optional[str] = None

    def layout_dict(self) -> dict:
        """The parameters that define the layout (not where it ran)."""
        d = asdict(self)
        d.pop("device")
        if self.method == "pca":
            return {"method": "pca", "n_components": self.n_components}
        return d


@dataclass
class Layout:
    """``coords`` (N, c) float32, the parameters that made it and what happened (``info``:
    timings, graph method and recall, sample size if fitted on a sample, PCA variance...)."""

    coords: np.ndarray
    method: str
    params: dict
    info: dict = field(default_factory=dict)


def _validate(p: MapParams, n: int) -> None:
    if p.method not in ("umap", "pca"):
        raise InputError(f"Unknown map method {p.method!r}; use umap or pca.")
    if p.n_components not in (2, 3):
        raise InputError(f"Maps have 2 or 3 dimensions, got {p.n_components}.")
    if p.method == "umap":
        if not 2 <= p.n_neighbors < n:
            raise InputError(f"n_neighbors must be between 2 and N-1 = {n - 1}, got {p.n_neighbors}.")
        if not 0.0 <= p.min_dist <= p.spread:
            raise InputError(f"min_dist must be between 0 and spread={p.spread}, got {p.min_dist}.")
        if p.init not in ("spectral", "pca", "random"):
            raise InputError(f"Unknown UMAP init {p.init!r}; use spectral, pca or random.")
        if p.optimizer not in ("fast", "umap-learn"):
            raise InputError(f"Unknown UMAP optimizer {p.optimizer!r}; use fast or umap-learn.")
        if p.n_epochs is not None and p.n_epochs < 1:
            raise InputError(f"n_epochs must be positive, got {p.n_epochs}.")


def pca_job(Z: np.ndarray, params: MapParams = MapParams(method="pca")) -> Job:
    """PCA as a job (it is cheap: one progress step) -> :class:`Layout`."""
    t0 = time.perf_counter()
    yield Progress(0, 1, "PCA")
    r = pca(Z, params.n_components, params.device)
    STATS["layout"] += 1
    yield Progress(1, 1, "PCA", partial=r.coords)
    return Layout(r.coords, "pca", params.layout_dict(), {
        "explained_variance_ratio": [float(x) for x in r.explained_variance_ratio],
        "explained_variance": [float(x) for x in r.explained_variance],
        "seconds": time.perf_counter() - t0})


# --------------------------------------------------------------------------- UMAP kernels

_KERNELS: dict = {}


def _kernels() -> dict:
    """umap-learn's numba kernels re-jitted with ``cache=True`` (umap-learn itself compiles them
    without a disk cache, so every fresh process paid the compile). Falls back to umap's own
    dispatchers if re-jitting fails."""
    if _KERNELS:
        return _KERNELS
    from explorer.resources import setup_numba_cache

    setup_numba_cache()
    import numba
    import umap.layouts as L
    import umap.umap_ as U

    def rejit(f, tag, **kw):
        # numba's disk cache keys an entry by the function's qualified name and signature, not
        # by its flags: two variants of one umap function (serial/parallel, nogil or not,
        # umap's own) would overwrite or load each other. Each variant therefore gets its own
        # name. nogil: the GUI runs maps in a worker thread, and an epoch that held the GIL
        # stalled the event loop (measured 0.4-1.3 s per 70k-point epoch when a cached
        # non-nogil build was loaded).
        py = getattr(f, "py_func", f)
        try:
            g = types.FunctionType(py.__code__, py.__globals__, f"{py.__name__}__{tag}",
                                   py.__defaults__, py.__closure__)
            g.__qualname__ = f"{py.__qualname__}__{tag}"
            g.__module__ = py.__module__
            return numba.njit(g, cache=True, nogil=True, **kw)
        except Exception:  # pragma: no cover - numba refused; use umap's own
            return f

    _KERNELS.update(
        smooth_knn_dist=rejit(U.smooth_knn_dist, "ee", fastmath=True),
        compute_membership_strengths=rejit(U.compute_membership_strengths, "ee", fastmath=True),
        epoch_serial=rejit(L._optimize_layout_euclidean_single_epoch, "ee_serial", fastmath=True, parallel=False),
        epoch_parallel=rejit(L._optimize_layout_euclidean_single_epoch, "ee_parallel", fastmath=True, parallel=True),
    )
    return _KERNELS


def _fuzzy_graph(knn_i: np.ndarray, knn_d: np.ndarray, n_neighbors: int, set_op_mix_ratio: float,
                 local_connectivity: float):
    """umap.umap_.fuzzy_simplicial_set on a given graph (same steps, cached kernels)."""
    import scipy.sparse

    K = _kernels()
    n = knn_i.shape[0]
    knn_d = knn_d.astype(np.float32)
    sigmas, rhos = K["smooth_knn_dist"](knn_d, float(n_neighbors),
                                        local_connectivity=float(local_connectivity))
    rows, cols, vals, _ = K["compute_membership_strengths"](knn_i, knn_d, sigmas, rhos, False)
    result = scipy.sparse.coo_matrix((vals, (rows, cols)), shape=(n, n))
    result.eliminate_zeros()
    transpose = result.transpose()
    prod = result.multiply(transpose)
    result = set_op_mix_ratio * (result + transpose - prod) + (1.0 - set_op_mix_ratio) * prod
    result.eliminate_zeros()
    return result


def _optimize(head_emb, tail_emb, head, tail, n_epochs, n_vertices, epochs_per_sample, a, b,
              rng_state, gamma, initial_alpha, negative_sample_rate, parallel, move_other,
              label="optimising layout", report_every: Optional[int] = None,
              optimizer: str = "umap-learn") -> Job:
    """umap.layouts.optimize_layout_euclidean (no densMAP), one epoch per step: same kernel,
    same state, same learning-rate schedule, so the result is identical; between epochs the
    job yields progress with the current layout and can be cancelled. ``optimizer="fast"``
    hands the same inputs to :func:`explorer.layout_sgd.optimize_fast` (all cores when
    ``parallel``, else one thread, seeded from ``rng_state``)."""
    if optimizer == "fast":
        import torch

        from explorer.layout_sgd import optimize_fast

        threads = max(1, torch.get_num_threads()) if parallel else 1
        return (yield from optimize_fast(head_emb, tail_emb, head, tail, n_epochs, n_vertices,
                                         epochs_per_sample, a, b, int(rng_state[0]) & 0xFFFFFFFF, gamma,
                                         initial_alpha, negative_sample_rate, threads, move_other,
                                         label=label, report_every=report_every))
    K = _kernels()
    fn = K["epoch_parallel"] if parallel else K["epoch_serial"]
    dim = head_emb.shape[1]
    alpha = initial_alpha
    epochs_per_negative_sample = epochs_per_sample / negative_sample_rate
    epoch_of_next_negative_sample = epochs_per_negative_sample.copy()
    epoch_of_next_sample = epochs_per_sample.copy()
    rng_state_per_sample = np.full((head_emb.shape[0], len(rng_state)), rng_state, dtype=np.int64) \
        + head_emb[:, 0].astype(np.float64).view(np.int64).reshape(-1, 1)
    z1 = np.zeros(1, dtype=np.float32)
    every = report_every or max(1, n_epochs // 50)
    for n in range(n_epochs):
        fn(head_emb, tail_emb, head, tail, n_vertices, epochs_per_sample, a, b,
           rng_state_per_sample, gamma, dim, move_other, alpha, epochs_per_negative_sample,
           epoch_of_next_negative_sample, epoch_of_next_sample, n, False, z1, z1, 0, 0, 0, 0,
           z1, z1, 0)
        alpha = initial_alpha * (1.0 - (float(n) / float(n_epochs)))
        if (n + 1) % every == 0 or n + 1 == n_epochs:
            yield Progress(n + 1, n_epochs, label, partial=head_emb)
    return head_emb


def _umap_inputs(knn: KnnResult, n_neighbors: int) -> Tuple[np.ndarray, np.ndarray]:
    """Our self-excluded graph -> umap's convention: column 0 is the point itself at distance
    0, then its n_neighbors - 1 nearest. Distances: :func:`scores_to_distances`."""
    if knn.k < n_neighbors - 1:
        raise InputError(f"The k-NN graph has k={knn.k}, UMAP with n_neighbors={n_neighbors} "
                         f"needs k >= {n_neighbors - 1}.")
    n = knn.indices.shape[0]
    m = n_neighbors - 1
    idx = np.empty((n, n_neighbors), dtype=np.int32)
    idx[:, 0] = np.arange(n)
    idx[:, 1:] = knn.indices[:, :m]
    d = np.zeros((n, n_neighbors), dtype=np.float32)
    d[:, 1:] = scores_to_distances(knn.scores[:, :m], knn.metric)
    if knn.metric == "cosine":  # umap's disconnection_distance for cosine is 2
        far = d >= 2.0
        idx[far] = -1
        d[far] = np.inf
    return idx, d


def _umap_metric(metric: str) -> str:
    return {"cosine": "cosine", "euclidean": "euclidean", "dot": "cosine"}[metric]


def umap_layout(Z: np.ndarray, knn: KnnResult, params: MapParams = MapParams()) -> Job:
    """UMAP of ``Z`` (N, D) from our k-NN graph ``knn`` (self excluded, k >= n_neighbors - 1),
    as a job -> :class:`Layout` (coords (N, n_components) float32). Above
    ``params.max_fit_points`` the fit uses a random sample and the rest is placed by
    :func:`_transform` (UMAP's transform: membership weights to the sample, weighted-mean init,
    n_epochs//3 (30 for >10k points) epochs with the sample fixed)."""
    import scipy.sparse
    from sklearn.utils import check_random_state
    import umap
    import umap.umap_ as U
    from umap.spectral import spectral_layout

    p = params
    Z = _as_matrix(Z)
    N = Z.shape[0]
    _validate(p, N)
    if knn.indices.shape[0] != N:
        raise InputError(f"The k-NN graph has {knn.indices.shape[0]} rows but there are {N} points.")
    if knn.metric != p.metric:
        raise InputError(f"The k-NN graph uses {knn.metric}, the map asks for {p.metric}.")
    t0 = time.perf_counter()
    timings = {}
    parallel = (p.seed is None) if p.parallel is None else bool(p.parallel)
    info: dict = {"graph_method": knn.method, "graph_recall": float(knn.recall), "graph_k": knn.k,
                  "graph_target_recall": knn.target_recall,
                  "parallel": parallel, "optimizer": p.optimizer, "umap_version": umap.__version__, "n": N}

    fit_rows = None
    if N > p.max_fit_points:
        rng = np.random.default_rng(0 if p.seed is None else p.seed)
        fit_rows = np.sort(rng.choice(N, size=p.max_fit_points, replace=False))
        info["fitted_on_sample"] = int(len(fit_rows))
        info["placed_by_transform"] = int(N - len(fit_rows))
        yield Progress(0, None, f"k-NN graph of a {len(fit_rows)}-point sample")
        kp = KnnParams(k=p.n_neighbors - 1, metric=p.metric, method=p.knn_method, device=p.device)
        knn_fit = yield from knn_graph(Z[fit_rows], kp)
        info["sample_graph_method"] = knn_fit.method
        info["sample_graph_recall"] = float(knn_fit.recall)
        Zfit = Z[fit_rows]
    else:
        knn_fit, Zfit = knn, Z

    yield Progress(0, None, "fuzzy simplicial set")
    knn_i, knn_d = _umap_inputs(knn_fit, p.n_neighbors)
    graph = _fuzzy_graph(knn_i, knn_d, p.n_neighbors, p.set_op_mix_ratio, p.local_connectivity)
    timings["graph"] = time.perf_counter() - t0
    a, b = U.find_ab_params(p.spread, p.min_dist)
    random_state = check_random_state(p.seed)

    # --- umap.umap_.simplicial_set_embedding, step by step
    graph = graph.tocoo()
    graph.sum_duplicates()
    n_vertices = graph.shape[1]
    default_epochs = 500 if graph.shape[0] <= 10000 else 200
    n_epochs = default_epochs if p.n_epochs is None else int(p.n_epochs)
    if n_epochs > 10:
        graph.data[graph.data < (graph.data.max() / float(n_epochs))] = 0.0
    else:
        graph.data[graph.data < (graph.data.max() / float(default_epochs))] = 0.0
    graph.eliminate_zeros()
    t1 = time.perf_counter()
    yield Progress(0, None, f"{p.init} initialisation")
    if p.init == "random":
        emb = random_state.uniform(low=-10.0, high=10.0, size=(graph.shape[0], p.n_components)).astype(np.float32)
    elif p.init == "pca":
        from sklearn.decomposition import PCA

        emb = PCA(n_components=p.n_components, random_state=random_state).fit_transform(Zfit).astype(np.float32)
        emb = U.noisy_scale_coords(emb, random_state, max_coord=10, noise=0.0001)
    else:
        emb = spectral_layout(Zfit, graph, p.n_components, random_state,
                              metric=_umap_metric(p.metric), metric_kwds={})
        emb = U.noisy_scale_coords(emb, random_state, max_coord=10, noise=0.0001)
    timings["init"] = time.perf_counter() - t1
    epochs_per_sample = U.make_epochs_per_sample(graph.data, n_epochs)
    head, tail = graph.row, graph.col
    rng_state = random_state.randint(U.INT32_MIN, U.INT32_MAX, 3).astype(np.int64)
    emb = (10.0 * (emb - np.min(emb, 0)) / (np.max(emb, 0) - np.min(emb, 0))).astype(np.float32, order="C")
    t2 = time.perf_counter()
    emb = yield from _optimize(emb, emb, head, tail, n_epochs, n_vertices, epochs_per_sample, a, b,
                               rng_state, p.repulsion_strength, p.learning_rate,
                               p.negative_sample_rate, parallel, True, optimizer=p.optimizer)
    timings["optimise"] = time.perf_counter() - t2

    if fit_rows is not None:
        rest = np.setdiff1d(np.arange(N), fit_rows)
        t3 = time.perf_counter()
        placed = yield from _transform(Z[rest], Zfit, emb, p, a, b, n_epochs, random_state_seed=p.seed,
                                       parallel=parallel, info=info)
        coords = np.empty((N, p.n_components), np.float32)
        coords[fit_rows] = emb
        coords[rest] = placed
        timings["transform"] = time.perf_counter() - t3
    else:
        coords = emb
    STATS["layout"] += 1
    timings["total"] = time.perf_counter() - t0
    info["n_epochs"] = n_epochs
    info["a"], info["b"] = float(a), float(b)
    info["seconds"] = timings
    info["reproduce"] = (
        "umap.UMAP(n_neighbors={n}, min_dist={md}, spread={sp}, n_components={c}, n_epochs={e}, "
        "init='{init}', random_state={seed}, learning_rate={lr}, repulsion_strength={rs}, "
        "negative_sample_rate={nsr}, set_op_mix_ratio={som}, local_connectivity={lc}, "
        "metric='{m}', precomputed_knn=(knn_indices, knn_dists), force_approximation_algorithm=True)"
        ".fit(vectors) with knn_indices = [self, first n_neighbors-1 graph neighbours] and "
        "knn_dists = [0, scores_to_distances(scores)] (explorer.maps._umap_inputs)").format(
        n=p.n_neighbors, md=p.min_dist, sp=p.spread, c=p.n_components, e=n_epochs, init=p.init,
        seed=p.seed, lr=p.learning_rate, rs=p.repulsion_strength, nsr=p.negative_sample_rate,
        som=p.set_op_mix_ratio, lc=p.local_connectivity, m=_umap_metric(p.metric))
    if p.optimizer == "fast":
        info["reproduce"] = (
            f"explorer.maps.make_layout(vectors, MapParams(**params)) gives these coordinates "
            f"{'exactly (seeded, one thread)' if not parallel else '(multi-threaded: up to thread timing)'}; "
            f"with optimizer='umap-learn' the same parameters run umap-learn's own kernel, "
            f"bit-identical to {info['reproduce']}")
    del scipy
    return Layout(np.ascontiguousarray(coords, dtype=np.float32), "umap", p.layout_dict(), info)


def _transform(Znew, Zfit, emb_fit, p: MapParams, a, b, fit_epochs, random_state_seed, parallel, info) -> Job:
    """UMAP's ``transform`` (umap_.py, UMAP.transform) with our neighbour search: exact when
    cheap, else HNSW/NN-descent over the fitted sample."""
    import scipy.sparse
    from sklearn.utils import check_random_state
    import umap.umap_ as U

    K = _kernels()
    M, S = Znew.shape[0], Zfit.shape[0]
    k = p.n_neighbors
    yield Progress(0, M, "placing the remaining points: neighbours in the sample")
    if float(M) * S * Zfit.shape[1] <= 1e12 or p.knn_method == "exact":
        idx, sc = yield from knn_search(Znew, Zfit, k, p.metric, p.device)
        info["transform_neighbors"] = "exact"
    else:
        idx, sc = _approx_search(Zfit, Znew, k, p.metric)
        info["transform_neighbors"] = "hnsw"
    dists = scores_to_distances(sc, p.metric).astype(np.float32, order="C")
    idx = idx.astype(np.int32)
    sigmas, rhos = K["smooth_knn_dist"](dists, float(k), local_connectivity=float(max(0.0, p.local_connectivity - 1.0)))
    rows, cols, vals, _ = K["compute_membership_strengths"](idx, dists, sigmas, rhos, False, True)
    graph = scipy.sparse.coo_matrix((vals, (rows, cols)), shape=(M, S))
    csr = graph.tocsr()
    csr.eliminate_zeros()
    emb = U.init_graph_transform(csr, emb_fit)
    n_epochs = (100 if M <= 10000 else 30) if p.n_epochs is None else int(p.n_epochs // 3.0)
    n_epochs = max(n_epochs, 1)
    graph.data[graph.data < (graph.data.max() / float(n_epochs))] = 0.0
    graph.eliminate_zeros()
    eps = U.make_epochs_per_sample(graph.data, n_epochs)
    rs = check_random_state(random_state_seed)
    rng_state = rs.randint(U.INT32_MIN, U.INT32_MAX, 3).astype(np.int64)
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    out = yield from _optimize(emb, emb_fit.astype(np.float32, copy=True), graph.row, graph.col,
                               n_epochs, S, eps, a, b, rng_state, p.repulsion_strength,
                               p.learning_rate / 4.0, p.negative_sample_rate, parallel, False,
                               label="placing the remaining points", optimizer=p.optimizer)
    return out


def _approx_search(Zdb, Zq, k, metric):
    """k nearest rows of Zdb for each row of Zq via hnswlib (exact rescoring of the results)."""
    try:
        import hnswlib
    except ImportError:
        from explorer.resources import setup_numba_cache

        setup_numba_cache()
        from pynndescent import NNDescent

        nnd = NNDescent(Zdb, metric=metric, n_neighbors=max(k, 15), low_memory=True)
        idx, _ = nnd.query(Zq, k=k)
    else:
        space = {"cosine": "cosine", "euclidean": "l2", "dot": "ip"}[metric]
        index = hnswlib.Index(space=space, dim=Zdb.shape[1])
        index.init_index(max_elements=Zdb.shape[0], M=16, ef_construction=100, random_seed=0)
        index.add_items(Zdb)
        index.set_ef(max(64, 2 * k))
        idx, _ = index.knn_query(Zq, k=k)
    idx = idx.astype(np.int64)
    nb = Zdb[idx]
    if metric == "euclidean":
        sc = -np.linalg.norm(Zq[:, None] - nb, axis=2)
    else:
        sc = np.einsum("id,ijd->ij", Zq, nb)
        if metric == "cosine":
            sc = sc / np.maximum(np.linalg.norm(Zq, axis=1)[:, None] * np.linalg.norm(nb, axis=2), 1e-12)
    o = np.argsort(-sc, axis=1, kind="stable")
    return np.take_along_axis(idx, o, 1), np.take_along_axis(sc, o, 1).astype(np.float32)


def make_layout(Z: np.ndarray, params: MapParams = MapParams(), knn: Optional[KnnResult] = None) -> Job:
    """PCA or UMAP of ``Z``; for UMAP the graph is computed here unless given."""
    Z = _as_matrix(Z)
    _validate(params, Z.shape[0])
    if params.method == "pca":
        return (yield from pca_job(Z, params))
    graph_seconds = None
    if knn is None:
        t0 = time.perf_counter()
        knn = yield from knn_graph(Z, KnnParams(k=params.n_neighbors - 1, metric=params.metric,
                                                method=params.knn_method, device=params.device))
        graph_seconds = time.perf_counter() - t0
        STATS["knn"] += 1
    lay = yield from umap_layout(Z, knn, params)
    if graph_seconds is not None:
        lay.info["graph_seconds"] = graph_seconds
    return lay


# --------------------------------------------------------------------------- alignment, trust

def procrustes_align(Y: np.ndarray, X: np.ndarray, scale: bool = True,
                     allow_reflection: bool = True) -> Tuple[np.ndarray, dict]:
    """Orthogonal Procrustes (Schoenemann 1966; Gower 1975) of layout ``Y`` (N, c) onto ``X``
    (N, c): find rotation R (c, c, orthogonal), scale s and translation t minimising
    ||s (Y - mean Y) R + t - X||_F. With Y0, X0 centred and U S V^T = svd(Y0^T X0):
    R = U V^T, s = trace(S) / ||Y0||_F^2, t = mean X. Reflections are allowed unless
    ``allow_reflection=False`` (then the last singular direction is flipped if det < 0).
    Returns (aligned Y (N, c) float32, {rotation, scale, translation, rmsd})."""
    Y = np.asarray(Y, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    if Y.shape != X.shape or Y.ndim != 2:
        raise InputError(f"Procrustes needs two layouts of the same shape, got {Y.shape} and {X.shape}.")
    my, mx = Y.mean(0), X.mean(0)
    Y0, X0 = Y - my, X - mx
    U_, S_, Vt = np.linalg.svd(Y0.T @ X0)
    if not allow_reflection and np.linalg.det(U_ @ Vt) < 0:
        U_[:, -1] *= -1
        S_ = S_.copy()
        S_[-1] *= -1
    R = U_ @ Vt
    ny = float((Y0 ** 2).sum())
    s = float(S_.sum() / ny) if (scale and ny > 0) else 1.0
    out = s * Y0 @ R + mx
    rmsd = float(np.sqrt(((out - X) ** 2).sum(1).mean()))
    return out.astype(np.float32), {"rotation": R.tolist(), "scale": s, "translation": (mx - s * my @ R).tolist(),
                                    "rmsd": rmsd}


def aligned_umap(embeddings: Sequence[np.ndarray], params: MapParams = MapParams(),
                 alignment_regularisation: float = 1e-2, alignment_window_size: int = 3) -> Job:
    """umap-learn's AlignedUMAP (McInnes 2021, umap-learn docs "AlignedUMAP") over a series of
    embeddings of the SAME points (e.g. checkpoints), relations = identity between
    neighbours in the series. AlignedUMAP builds its own graphs (it takes no precomputed k-NN)
    and has no per-epoch callback, so progress is coarse (start, end) and cancelling takes
    effect after the fit. -> list of (N, c) float32 layouts."""
    from explorer.resources import setup_numba_cache

    setup_numba_cache()
    import umap

    arrs = [_as_matrix(E, f"embedding {i}") for i, E in enumerate(embeddings)]
    if len(arrs) < 2:
        raise InputError("AlignedUMAP needs at least two embeddings of the same points.")
    n = arrs[0].shape[0]
    if any(a.shape[0] != n for a in arrs):
        raise InputError("AlignedUMAP needs embeddings of the same points (same number of rows).")
    _validate(params, n)
    rel = {i: i for i in range(n)}
    yield Progress(0, 1, f"AlignedUMAP of {len(arrs)} embeddings")
    m = umap.AlignedUMAP(n_neighbors=params.n_neighbors, min_dist=params.min_dist,
                         metric=_umap_metric(params.metric), n_components=params.n_components,
                         n_epochs=params.n_epochs or 200, random_state=params.seed,
                         alignment_regularisation=alignment_regularisation,
                         alignment_window_size=alignment_window_size)
    m.fit(arrs, relations=[rel] * (len(arrs) - 1))
    out = [np.asarray(e, dtype=np.float32) for e in m.embeddings_]
    yield Progress(1, 1, "AlignedUMAP done")
    return out


def projection_trust(high_knn: np.ndarray, coords: np.ndarray, k: Optional[int] = None) -> np.ndarray:
    """Per-point trust of a map: for point i with high-dimensional neighbours H_i (the first k
    columns of ``high_knn`` (N, >=k), self excluded) and its k nearest points L_i in the layout
    ``coords`` (N, c) (Euclidean, self excluded), trust_i = |H_i ∩ L_i| / k, in [0, 1].
    This is the per-point k-NN preservation ("neighbourhood hit"/"Q_NX(k)" per point, Lee &
    Verleysen 2009). Layout neighbours via a k-d tree (exact). -> (N,) float32."""
    from scipy.spatial import cKDTree

    H = np.asarray(high_knn)
    Y = np.asarray(coords, dtype=np.float64)
    k = H.shape[1] if k is None else int(k)
    N = Y.shape[0]
    if H.shape[0] != N or k > H.shape[1] or not 1 <= k < N:
        raise InputError(f"Trust needs a (N, >=k) neighbour array for the N={N} layout points and 1 <= k < N.")
    _, L = cKDTree(Y).query(Y, k=k + 1, workers=-1)
    L = np.asarray(L).reshape(N, k + 1)
    own = L == np.arange(N)[:, None]
    own[~own.any(1), -1] = True  # duplicates of a point may displace it; drop the farthest
    L = L[~own].reshape(N, k)
    hits = np.empty(N, np.int64)
    step = max(1, 4_000_000 // (k * k))
    for s0 in range(0, N, step):
        h, l = H[s0:s0 + step, :k], L[s0:s0 + step]
        hits[s0:s0 + step] = (h[:, :, None] == l[:, None, :]).any(2).sum(1)
    return (hits / k).astype(np.float32)


# --------------------------------------------------------------------------- staged cache

def knn_key(embedding_key: str, k: int, metric: str, method: str) -> str:
    from explorer.store import content_key

    return content_key("knn", embedding_key, int(k), metric, method)


def layout_key(embedding_key: str, params: MapParams, graph_key: Optional[str] = None) -> str:
    from explorer.store import content_key

    return content_key("layout", embedding_key, graph_key, params.layout_dict())


def _knn_from_record(rec, metric: str) -> KnnResult:
    a = rec.attrs
    return KnnResult(rec.arrays["indices"], rec.arrays["similarities"], metric, a.get("method", "exact"),
                     float(a.get("recall", 1.0)), float(a.get("seconds", 0.0)), dict(a.get("info", {})))


def cached_knn(ws, embedding_key: str, params: KnnParams, vectors: Optional[np.ndarray] = None) -> Job:
    """Stage 1 of the cache: the k-NN graph of a workspace embedding. A stored graph with the
    same embedding, metric and method and k >= params.k is reused (its first k columns);
    otherwise it is computed and stored under :func:`knn_key`. -> (key, KnnResult)."""
    best = None
    for key, attrs in ws.list(KNN):
        # a graph below the asked recall (an explicit approximate choice, or one stored by an
        # older version whose automatic IVF fell short) is reused only for the same explicit choice
        good = (float(attrs.get("recall", 1.0)) >= params.target_recall
                or (params.approx != "auto" and attrs.get("requested_approx") == params.approx))
        if (attrs.get("embedding") == embedding_key and attrs.get("metric") == params.metric
                and attrs.get("requested_method") == params.method and int(attrs.get("k", 0)) >= params.k
                and good):
            if best is None or int(attrs["k"]) < best[1]:
                best = (key, int(attrs["k"]))
    if best is not None:
        r = _knn_from_record(ws.get(KNN, best[0]), params.metric)
        if r.k > params.k:
            r = KnnResult(r.indices[:, :params.k].copy(), r.scores[:, :params.k].copy(), r.metric,
                          r.method, r.recall, r.seconds, r.info)
        return best[0], r
    if vectors is None:
        vectors = ws.get(EMBEDDINGS, embedding_key).arrays["vectors"]
    r = yield from knn_graph(vectors, params)
    STATS["knn"] += 1
    key = knn_key(embedding_key, params.k, params.metric, params.method)
    attrs = r.attrs()
    attrs.update({"embedding": embedding_key, "requested_method": params.method,
                  "requested_approx": params.approx})
    ws.put(KNN, key, {"indices": r.indices, "similarities": r.scores}, attrs)
    return key, r


def cached_layout(ws, embedding_key: str, params: MapParams = MapParams()) -> Job:
    """Stages 2-3: embeddings -> k-NN graph -> layout, each stored in the workspace. Changing
    min_dist (or any layout field) re-runs only the layout; changing n_neighbors beyond the
    stored graph's k, the metric or the k-NN method recomputes the graph too; the same
    parameters recompute nothing. -> (key, Layout)."""
    vectors = None
    graph_key = None
    knn = None
    if params.method == "umap":
        kp = KnnParams(k=params.n_neighbors - 1, metric=params.metric, method=params.knn_method,
                       device=params.device)
        # the graph key must not depend on which stored graph happens to be reused
        graph_key = knn_key(embedding_key, kp.k, kp.metric, kp.method)
    key = layout_key(embedding_key, params, graph_key)
    if ws.has(LAYOUTS, key):
        rec = ws.get(LAYOUTS, key)
        return key, Layout(rec.arrays["coords"], rec.attrs.get("params", {}).get("method", params.method),
                           rec.attrs.get("params", {}), rec.attrs.get("info", {}))
    vectors = ws.get(EMBEDDINGS, embedding_key).arrays["vectors"]
    if params.method == "umap":
        _, knn = yield from cached_knn(ws, embedding_key, kp, vectors)
    lay = yield from make_layout(vectors, params, knn)
    ws.put(LAYOUTS, key, {"coords": lay.coords},
           {"embedding": embedding_key, "params": lay.params, "info": jsonable(lay.info),
            "method": lay.method})
    return key, lay


# --------------------------------------------------------------------------- warm-up

def warmup(n: int = 600, seed: int = 0) -> Job:
    """Compile (and cache on disk) the numba kernels a first map needs: our cached UMAP kernels
    (fuzzy set, the fast SGD on one and on all threads, transform path), the exact and IVF k-NN
    kernels and, when hnswlib is missing, pynndescent. Run it in the background at start-up (TRAPS.md #2). -> dict of seconds."""
    from explorer.resources import setup_numba_cache

    cache = setup_numba_cache()
    t = {}
    t0 = time.perf_counter()
    yield Progress(0, 4, "importing umap")
    import umap  # noqa: F401

    t["import"] = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    Z = (rng.normal(size=(n, 16)) + 4 * rng.normal(size=(6, 16))[rng.integers(0, 6, n)]).astype(np.float32)
    yield Progress(1, 4, "compiling UMAP kernels")
    t1 = time.perf_counter()
    small = MapParams(n_epochs=5, seed=seed, max_fit_points=n // 2, knn_method="exact")
    yield from make_layout(Z, small)
    yield from make_layout(Z[: n // 2], MapParams(n_epochs=5, seed=None, knn_method="exact"))
    t["umap"] = time.perf_counter() - t1
    yield Progress(2, 4, "compiling pynndescent")
    from explorer.neighbors import VectorIndex, _hnsw_available

    VectorIndex(Z, "cosine", half=True).query(index=0, k=5)  # int8 scan kernels of big indexes
    from explorer.neighbors import KnnParams, knn_graph

    yield from knn_graph(Z, KnnParams(k=5, method="approx", approx="ivf", recall_sample=50))

    if not _hnsw_available():
        t2 = time.perf_counter()
        from pynndescent import NNDescent

        NNDescent(Z, n_neighbors=10, metric="cosine", low_memory=True)
        t["pynndescent"] = time.perf_counter() - t2
    yield Progress(4, 4, "warm")
    t["total"] = time.perf_counter() - t0
    t["cache_dir"] = str(cache)
    return t
