"""UMAP on our own k-NN graph, and :func:`make_layout` (PCA or UMAP of an embedding).

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
from typing import Optional, Tuple

import numpy as np

from explorer.core.errors import InputError
from explorer.core.jobs import Job, Progress
from explorer.maps.params import STATS, Layout, MapParams, _validate
from explorer.maps.pca import pca_job
from explorer.neighbors.search import KnnParams, KnnResult, _as_matrix, knn_graph, knn_search, scores_to_distances

__all__ = ["umap_layout", "make_layout"]

_KERNELS: dict = {}


def _kernels() -> dict:
    """umap-learn's numba kernels re-jitted with ``cache=True`` (umap-learn itself compiles them
    without a disk cache, so every fresh process paid the compile). Falls back to umap's own
    dispatchers if re-jitting fails."""
    if _KERNELS:
        return _KERNELS
    from explorer.core.resources import setup_numba_cache

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
    hands the same inputs to :func:`explorer.maps.sgd.optimize_fast` (all cores when
    ``parallel``, else one thread, seeded from ``rng_state``)."""
    if optimizer == "fast":
        import torch

        from explorer.maps.sgd import optimize_fast

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
        from explorer.core.resources import setup_numba_cache

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
