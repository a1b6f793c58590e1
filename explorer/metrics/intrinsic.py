"""Intrinsic dimension from nearest-neighbour distances: TwoNN and the Levina-Bickel MLE.

Both need the Euclidean distances of each point to its nearest neighbours (self excluded).
:func:`neighbor_distances` computes them exactly: candidates from a float32 Gram matrix of the
centred points, then the distances of the candidates recomputed in float64 and re-sorted.
It is O(m^2 d) in the number m of points, so the diagnostics run it on a random subsample
(``max_points``); intrinsic dimension is a property of the distribution, estimated as well from
a few thousand points (with the known downward bias of both estimators when the dimension is
large compared with log m).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from explorer.metrics.collapse import _pair_sample, as_tensor, pair_products

__all__ = ["neighbor_distances", "distances_from_products", "twonn_from_distances", "twonn_dimension",
           "mle_from_distances", "mle_dimension"]


def neighbor_distances(Z, k: int, device=None, block: int = 2048, extra: int = 8) -> np.ndarray:
    """Sorted Euclidean distances (float64) of every row of Z (m, d) to its k nearest other
    rows: (m, k). Exact up to ties: ``k + extra`` candidates per row are selected from the
    Gram matrix of the centred rows (float32 for large m^2 d, see
    :func:`explorer.metrics.collapse.pair_products`) and their distances recomputed in
    float64 from the coordinates."""
    import torch

    with torch.no_grad():
        X = as_tensor(Z, device)
        if k >= X.shape[0]:
            raise ValueError(f"k={k} neighbours need more than {X.shape[0]} points")
        return distances_from_products(pair_products(X), k, block, extra)


def distances_from_products(pp: dict, k: int, block: int = 1024, extra: int = 8) -> np.ndarray:
    """:func:`neighbor_distances` from a :func:`~explorer.metrics.collapse.pair_products`
    result (reuses its Gram matrix)."""
    import torch

    Xc, Gc, sq = pp["Xc"], pp["Gc"], pp["sq"]
    m = Xc.shape[0]
    if k >= m:
        raise ValueError(f"k={k} neighbours need more than {m} points")
    kk = min(m - 1, k + extra)
    out = np.empty((m, k), dtype=np.float64)
    for i in range(0, m, block):
        j = min(m, i + block)
        D2 = sq[i:j, None] + sq[None, :] - 2 * Gc[i:j]
        ar = torch.arange(i, j, device=Xc.device)
        D2[ar - i, ar] = float("inf")
        _, cand = D2.topk(kk, dim=1, largest=False)
        exact = torch.empty(j - i, kk, dtype=torch.float64, device=Xc.device)
        for c in range(kk):                                  # one (block, d) difference at a time
            exact[:, c] = torch.linalg.vector_norm(Xc[i:j] - Xc[cand[:, c]], dim=1)
        out[i:j] = exact.sort(dim=1).values[:, :k].cpu().numpy()
    return out


def twonn_from_distances(dist: np.ndarray, discard_fraction: float = 0.1) -> float:
    """TwoNN (Facco, d'Errico, Rodriguez & Laio, "Estimating the intrinsic dimension of datasets
    by a minimal neighborhood information", Sci. Rep. 2017): mu_i = r_2(i) / r_1(i); with the
    mu_i sorted ascending and F_i = i / N, the dimension is the slope of the least-squares line
    through the origin of -log(1 - F_i) against log(mu_i), fitted on the smallest
    (1 - discard_fraction) N ratios (the paper discards the largest 10%). Points with r_1 = 0
    (duplicates) are dropped. ``dist`` (n, >=2) sorted neighbour distances. NaN if < 3 remain."""
    d = np.asarray(dist, dtype=np.float64)
    r1, r2 = d[:, 0], d[:, 1]
    ok = r1 > 0
    mu = np.sort(r2[ok] / r1[ok])
    n = mu.size
    if n < 3:
        return float("nan")
    F = np.arange(1, n + 1) / n
    keep = int(np.floor(n * (1 - discard_fraction)))
    keep = max(2, min(keep, n - 1))  # F = 1 at the last point: -log(0)
    x = np.log(mu[:keep])
    y = -np.log(1 - F[:keep])
    den = (x * x).sum()
    return float((x * y).sum() / den) if den > 0 else float("nan")


def twonn_dimension(Z, max_points: Optional[int] = 4096, seed: int = 0, device=None) -> float:
    """TwoNN intrinsic dimension of Z (n, d) on a random subsample of ``max_points`` rows
    (all rows when n is smaller); see :func:`twonn_from_distances`."""
    idx = _pair_sample(len(Z), max_points, seed)
    X = Z if idx is None else Z[idx]
    return twonn_from_distances(neighbor_distances(X, 2, device))


def mle_from_distances(dist: np.ndarray, k: int = 20) -> float:
    """Levina & Bickel, "Maximum Likelihood Estimation of Intrinsic Dimension", NIPS 2004:
    m_k(x) = [ 1/(k-1) sum_{j=1}^{k-1} log(T_k(x) / T_j(x)) ]^{-1} with T_j the distance to the
    j-th neighbour, and the estimate the mean of m_k(x) over points. Points with T_1 = 0 or a
    zero sum are dropped. ``dist`` (n, >=k) sorted distances. NaN if none remain."""
    d = np.asarray(dist, dtype=np.float64)[:, :k]
    ok = d[:, 0] > 0
    d = d[ok]
    if d.shape[0] == 0:
        return float("nan")
    s = np.log(d[:, -1:] / d[:, :-1]).sum(1) / (k - 1)
    s = s[s > 0]
    if s.size == 0:
        return float("nan")
    return float(np.mean(1.0 / s))


def mle_dimension(Z, k: int = 20, max_points: Optional[int] = 4096, seed: int = 0,
                  device=None) -> float:
    """Levina-Bickel MLE intrinsic dimension (k=20) of Z (n, d) on a random subsample of
    ``max_points`` rows; see :func:`mle_from_distances`."""
    idx = _pair_sample(len(Z), max_points, seed)
    X = Z if idx is None else Z[idx]
    return mle_from_distances(neighbor_distances(X, k, device), k)
