"""How far a map can be trusted, point by point."""

from __future__ import annotations

from typing import Optional

import numpy as np

from explorer.core.errors import InputError

__all__ = ["projection_trust"]


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
