"""Embeddings too big for memory: a workspace record read a block of rows at a time
(:class:`explorer.store.LazyArray`), mapped by a PCA fitted on a sample and applied to every
row in one streaming pass, and searched by an exact block scan.

    Z = Workspace("big.h5").lazy("embeddings", key, "vectors")    # nothing read yet
    layout = drain(pca_sampled_job(Z, MapParams(method="pca")))   # coords (N, 2) float32

Memory: the sample (``sample`` rows, float64 covariance D x D), one block of rows and the
(N, c) coordinates; never the (N, D) matrix. 10M x 768 float16 on disk is 15 GB; its PCA map
is 80 MB.
"""

from __future__ import annotations

import os
import time
from typing import Optional

import numpy as np

from explorer.core.errors import InputError
from explorer.core.jobs import Job, Progress
from explorer.store import ArraySource

__all__ = ["is_out_of_core", "sample_rows", "pca_sampled_job", "scan_neighbors", "OUT_OF_CORE_ROWS",
           "PCA_SAMPLE", "BLOCK_ROWS"]

#: A record with more rows than this is opened out of core in the app (10M x 768 float32
#: would be 30 GB); below it, the vectors are read into memory as before.
OUT_OF_CORE_ROWS = int(os.environ.get("EXPLORER_OUT_OF_CORE_ROWS", 2_000_000))
#: Rows the PCA is fitted on (the subspace of a 768-d embedding agrees with the full-data
#: PCA to about 1e-3 at this size for well-separated leading eigenvalues).
PCA_SAMPLE = 100_000
#: Rows read per step of a streaming pass.
BLOCK_ROWS = 65536


def is_out_of_core(vectors) -> bool:
    """True for vectors read from disk on demand (an :class:`~explorer.store.ArraySource`)."""
    return isinstance(vectors, ArraySource)


def sample_rows(n: int, size: int, seed: int = 0, runs: int = 512) -> np.ndarray:
    """``min(n, size)`` increasing row indices: ``runs`` contiguous runs at random places
    spread over ``[0, n)``. Runs, not single rows, because a chunked file is read chunk by
    chunk: 200k scattered rows of a 10M-row file would touch every chunk (the whole file);
    512 runs touch about 1/25 of it, and still cover every part of the file (class-sorted data
    included)."""
    size = int(min(n, size))
    if size >= n:
        return np.arange(n, dtype=np.int64)
    runs = int(max(1, min(runs, size)))
    rng = np.random.default_rng(seed)
    if n // runs < -(-size // runs):  # strata too small for the runs: plain random rows
        return np.sort(rng.choice(n, size, replace=False)).astype(np.int64)
    edges = np.linspace(0, n, runs + 1).astype(np.int64)  # one run inside each of ``runs`` strata
    lens = np.full(runs, size // runs, dtype=np.int64)
    lens[: size % runs] += 1
    out = []
    for lo, hi, m in zip(edges[:-1], edges[1:], lens):
        m = int(min(m, hi - lo))  # a stratum holds at least n // runs >= size // runs rows
        s0 = int(rng.integers(lo, hi - m + 1))
        out.append(np.arange(s0, s0 + m, dtype=np.int64))
    return np.concatenate(out)


def pca_sampled_job(Z, params=None, sample: int = PCA_SAMPLE, block_rows: int = BLOCK_ROWS) -> Job:
    """Job -> :class:`explorer.maps.params.Layout`: exact PCA (Pearson 1901; covariance of the
    centred rows, ``eigh``, the sign of each component fixed by its largest loading, as
    :func:`explorer.maps.pca.pca`) fitted on :func:`sample_rows` ``sample`` rows of ``Z`` (all
    of them when N <= sample, then it is the exact PCA of Z), then every row projected in
    blocks of ``block_rows`` read from disk. ``info`` says the sample size and the variance
    ratios (of the sample's total variance). Yields the coordinates placed so far as partial
    results (rows not yet placed are NaN)."""
    from explorer.maps.params import Layout, MapParams
    from explorer.maps.pca import pca

    params = params or MapParams(method="pca")
    t0 = time.perf_counter()
    N = len(Z)
    c = int(params.n_components)
    rows = sample_rows(N, sample, int(getattr(params, "seed", 0)))
    yield Progress(0, N, f"PCA: reading a {len(rows):,}-row sample")
    S = Z.take(rows) if isinstance(Z, ArraySource) else np.asarray(Z[rows])
    S = np.ascontiguousarray(S, dtype=np.float32)
    if not np.isfinite(S).all():
        raise InputError("The vectors contain NaN or infinite values.")
    fit = pca(S, c, params.device)
    t_fit = time.perf_counter() - t0
    W = fit.components.astype(np.float64)  # (c, D)
    mu = fit.mean.astype(np.float64)
    Wf, off = W.T.astype(np.float32), (mu @ W.T).astype(np.float32)
    coords = np.full((N, c), np.nan, dtype=np.float32)
    last = time.monotonic()
    for a in range(0, N, block_rows):
        X = Z[a:a + block_rows]
        coords[a:a + len(X)] = np.asarray(X, dtype=np.float32) @ Wf - off
        now = time.monotonic()
        if now - last > 1.0 or a + block_rows >= N:
            last = now
            yield Progress(min(N, a + block_rows), N, f"PCA: placing {min(N, a + block_rows):,}/{N:,} points",
                           partial=coords)
    info = {"explained_variance_ratio": [float(x) for x in fit.explained_variance_ratio],
            "explained_variance": [float(x) for x in fit.explained_variance],
            "fitted_on_sample": int(len(rows)) if len(rows) < N else 0,
            "out_of_core": True, "seconds": time.perf_counter() - t0, "fit_seconds": t_fit}
    return Layout(coords, "pca", params.layout_dict(), info)


def scan_neighbors(Z, q: np.ndarray, k: int = 10, metric: str = "cosine", exclude: Optional[int] = None,
                   block_rows: int = BLOCK_ROWS) -> Job:
    """Job -> (indices (k,), scores (k,)): the exact k nearest rows of ``Z`` to one query ``q``
    (D,), read block by block from disk (cosine similarity or negative squared euclidean
    distance, highest first; ``exclude`` a row, e.g. the query's own)."""
    q = np.asarray(q, dtype=np.float64).reshape(-1)
    if metric not in ("cosine", "euclidean"):
        raise InputError(f"Unknown metric {metric!r}; use cosine or euclidean.")
    if metric == "cosine":
        q = q / max(np.linalg.norm(q), 1e-12)
    N = len(Z)
    best_i = np.zeros(0, np.int64)
    best_s = np.zeros(0, np.float64)
    for a in range(0, N, block_rows):
        X = np.asarray(Z[a:a + block_rows], dtype=np.float64)
        if metric == "cosine":
            s = (X @ q) / np.maximum(np.linalg.norm(X, axis=1), 1e-12)
        else:
            s = -((X - q) ** 2).sum(1)
        idx = np.arange(a, a + len(X), dtype=np.int64)
        if exclude is not None and a <= exclude < a + len(X):
            s[exclude - a] = -np.inf
        kk = min(k, len(s))
        top = np.argpartition(-s, kk - 1)[:kk]
        best_i = np.concatenate([best_i, idx[top]])
        best_s = np.concatenate([best_s, s[top]])
        keep = np.lexsort((best_i, -best_s))[:k]
        best_i, best_s = best_i[keep], best_s[keep]
        yield Progress(min(N, a + block_rows), N, f"exact search: {min(N, a + block_rows):,}/{N:,} rows")
    return best_i, best_s.astype(np.float32)
