"""Compiling the numba kernels of a first map ahead of time (TRAPS.md #2)."""

from __future__ import annotations

import time

import numpy as np

from explorer.core.jobs import Job, Progress
from explorer.maps.params import MapParams
from explorer.maps.umap import make_layout

__all__ = ["warmup"]


def warmup(n: int = 600, seed: int = 0) -> Job:
    """Compile (and cache on disk) the numba kernels a first map needs: our cached UMAP kernels
    (fuzzy set, the fast SGD on one and on all threads, transform path), the exact and IVF k-NN
    kernels and, when hnswlib is missing, pynndescent. Run it in the background at start-up (TRAPS.md #2). -> dict of seconds."""
    from explorer.core.resources import setup_numba_cache

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
