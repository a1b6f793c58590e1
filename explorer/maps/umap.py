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
from typing import Optional, Tuple

import numpy as np

from explorer.core.errors import InputError
from explorer.core.jobs import Job, Progress
from explorer.maps.params import STATS, Layout, MapParams, _validate
from explorer.maps.pca import pca_job
from explorer.maps.umap_kernels import _kernels
from explorer.neighbors.search import KnnParams, KnnResult, _as_matrix, knn_graph, scores_to_distances

__all__ = ["umap_layout", "make_layout"]

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
    ``params.max_fit_points`` the map is :func:`explorer.maps.umap.streamed_umap`: UMAP of
    a random sample (its own k-NN graph), the other points placed block by block with UMAP's
    transform procedure in bounded memory (``knn`` is then not used)."""
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

    if N > p.max_fit_points:
        # fit a sample, place the rest block by block in bounded memory (explorer.maps.stream)
        lay = yield from streamed_umap(Z, p)
        lay.info.update({k: v for k, v in info.items() if not k.startswith("graph_")})
        return lay
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


def make_layout(Z: np.ndarray, params: MapParams = MapParams(), knn: Optional[KnnResult] = None) -> Job:
    """PCA or UMAP of ``Z``; for UMAP the graph is computed here unless given. Above
    ``params.max_fit_points`` UMAP is :func:`explorer.maps.umap.streamed_umap` (no graph of
    all points is needed; ``Z`` may be a memory map, read block by block, as is a memory-mapped
    ``Z`` for PCA (:func:`explorer.maps.stream.streamed_pca`))."""
    streamed = params.method == "umap" and len(Z) > params.max_fit_points
    if (streamed or isinstance(Z, np.memmap)) and np.ndim(Z) == 2 and min(Z.shape) > 0:
        # no in-memory copy: blocks are read (and checked) as they are used
        from explorer.maps.stream import streamed_pca

        if not np.issubdtype(np.asarray(Z[:1]).dtype, np.number):
            raise InputError(f"The vectors must be numeric, got dtype {np.asarray(Z[:1]).dtype}.")
        _validate(params, Z.shape[0])
        if params.method == "pca":
            return (yield from streamed_pca(Z, params))
        if streamed:
            return (yield from streamed_umap(Z, params))
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
    if "strategy" not in lay.info:  # (streamed_umap says "fit on a sample, stream the rest")
        lay.info["strategy"] = f"fit every point (at most max_fit_points = {params.max_fit_points:,})"
    return lay


def streamed_umap(Z: np.ndarray, params: MapParams = MapParams(), block: int = 65536,
                  calibration: int = 2000) -> Job:
    """UMAP of ``Z`` (N, D) (an array or a read-only memory map; read ``block`` rows at a
    time) fitted on ``params.max_fit_points`` random rows, the others placed block by block
    (module docstring), as a job -> :class:`Layout`. Yields the fitted sample's map as soon as
    it exists (``partial``: (N, c) float32 with NaN for the rows not yet placed) and after
    every placed block; cancelling between blocks stops it."""
    from dataclasses import replace

    from explorer.core.jobs import scaled
    from explorer.maps.stream import (PLACEMENT_RECALL, SampleSearch, place_points, read_rows, take_rows,
                                      transform_epochs)

    from explorer.neighbors.search import KnnParams, knn_graph

    p = params
    N, D = Z.shape
    _validate(p, N)
    if p.method != "umap":
        raise InputError("streamed_umap makes UMAP maps.")
    t0 = time.perf_counter()
    S = int(min(N, p.max_fit_points))
    rng = np.random.default_rng(0 if p.seed is None else p.seed)
    fit_rows = np.sort(rng.choice(N, size=S, replace=False)) if S < N else np.arange(N)
    yield Progress(0, None, f"reading a {S:,}-point sample")
    Zs = take_rows(Z, fit_rows, block)
    timings = {"read_sample": time.perf_counter() - t0}
    t1 = time.perf_counter()
    kp = KnnParams(k=p.n_neighbors - 1, metric=p.metric, method=p.knn_method, device=p.device)
    knn_s = yield from scaled(knn_graph(Zs, kp), 0.0, 0.15, f"k-NN graph of the {S:,}-point sample")
    timings["sample_graph"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    fit = yield from scaled(umap_layout(Zs, knn_s, replace(p, max_fit_points=max(S, p.max_fit_points))),
                            0.15, 0.4, f"UMAP of the {S:,}-point sample")
    timings["sample_fit"] = time.perf_counter() - t1
    emb = fit.coords
    coords = np.full((N, emb.shape[1]), np.nan, np.float32)
    coords[fit_rows] = emb
    # partial maps are copies: whoever shows one reads it while the next block is placed
    yield Progress(0.4, 1.0, f"UMAP of the {S:,}-point sample; placing the other {N - S:,}", partial=coords.copy())
    info = {"strategy": "fit on a sample, stream the rest", "fitted_on_sample": S,
            "placed_by_transform": int(N - S), "graph_method": knn_s.method,
            "graph_recall": float(knn_s.recall), "graph_k": knn_s.k,
            "sample_fit": {k: v for k, v in fit.info.items() if k not in ("reproduce",)}, "n": N}
    if S < N:
        t1 = time.perf_counter()
        in_fit = np.zeros(N, bool)
        in_fit[fit_rows] = True
        # calibration queries: rows outside the sample, spread over the file
        outside = np.flatnonzero(~in_fit)
        cal_rows = np.sort(rng.choice(outside, size=min(len(outside), calibration), replace=False))
        del outside
        calib = take_rows(Z, cal_rows, block)
        search = SampleSearch(Zs, p.metric, p.n_neighbors, seed=0 if p.seed is None else p.seed,
                              repeatable=p.seed is not None,
                              target_recall=PLACEMENT_RECALL, exact_only=p.knn_method == "exact")
        yield from scaled(search.build(calib), 0.4, 0.45, "index of the sample")
        info["placement_neighbors"] = search.info
        timings["sample_index"] = time.perf_counter() - t1
        n_epochs = transform_epochs(N - S, p.n_epochs)
        info["transform_epochs"] = n_epochs
        t1 = time.perf_counter()
        t_search = 0.0
        done = 0
        n_blocks = (N + block - 1) // block
        info["blocks"] = n_blocks
        for bi, s in enumerate(range(0, N, block)):
            e = min(N, s + block)
            X = read_rows(Z, s, e)
            keep = np.flatnonzero(~in_fit[s:e])
            if len(keep):
                Q = X if len(keep) == e - s else np.ascontiguousarray(X[keep])
                ts = time.perf_counter()
                idx, dist = yield from search.search(Q)
                t_search += time.perf_counter() - ts
                coords[s + keep] = place_points(emb, idx, dist, p, n_epochs, rows=s + keep)
                done += len(keep)
            info["blocks_done"] = bi + 1
            yield Progress(0.45 + 0.55 * done / (N - S), 1.0,
                           f"placed {done:,} of {N - S:,} points (block {bi + 1}/{n_blocks})", partial=coords.copy())
        timings["place"] = time.perf_counter() - t1
        timings["place_search"] = t_search
        unplaced = int(np.isnan(coords[:, 0]).sum())
        if unplaced:
            info["unplaced_no_neighbours"] = unplaced
    STATS["layout"] += 1
    timings["total"] = time.perf_counter() - t0
    info["seconds"] = timings
    return Layout(coords, "umap", p.layout_dict(), info)
