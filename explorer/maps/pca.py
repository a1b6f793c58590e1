"""Exact PCA of an embedding (the linear map)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from explorer.core.errors import InputError
from explorer.core.jobs import Job, Progress
from explorer.maps.params import STATS, Layout, MapParams
from explorer.neighbors.search import _as_matrix

__all__ = ["PcaResult", "pca", "pca_job"]


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

    from explorer.core.device import resolve_device

    Z = _as_matrix(Z)
    N, D = Z.shape
    c = int(n_components)
    if not 1 <= c <= min(N, D):
        raise InputError(f"PCA needs 1 <= components <= min(N, D) = {min(N, D)}, got {c}.")
    dev = resolve_device(None if device is None else str(device))
    fdev = dev if dev.type == "cuda" else torch.device("cpu")
    # float64 blocks small enough to stay in cache (a 65536-row float64 block is 64 MB at D=128:
    # 1M x 128 took 4.0 s, in 8192-row blocks 2.2 s)
    step = max(1, min(block_rows, (8 << 20) // (8 * max(D, 1))))
    with torch.no_grad():
        if D <= 8192:
            # one pass: each block's mean and centred scatter, merged into the running ones
            # (Chan, Golub & LeVeque 1979), so the data is read once and centred in float64
            mean = torch.zeros(D, dtype=torch.float64, device=fdev)
            C = torch.zeros(D, D, dtype=torch.float64, device=fdev)
            n = 0
            for s in range(0, N, step):
                X = torch.from_numpy(Z[s:s + step]).to(fdev, torch.float64)
                nb = X.shape[0]
                mb = X.mean(0)
                X -= mb
                C.addmm_(X.T, X)
                delta = mb - mean
                C.addr_(delta, delta, alpha=n * nb / (n + nb))
                mean += delta * (nb / (n + nb))
                n += nb
            C /= max(N - 1, 1)
            evals, evecs = torch.linalg.eigh(C)
            total = float(torch.diagonal(C).sum())
            order = torch.argsort(evals, descending=True)[:c]
            var = evals[order].clamp_min(0)
            W = evecs[:, order].T.contiguous()  # (c, D)
        else:
            mean = torch.zeros(D, dtype=torch.float64, device=fdev)
            for s in range(0, N, block_rows):
                mean += torch.from_numpy(Z[s:s + block_rows]).to(fdev, torch.float64).sum(0)
            mean /= N
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
        for s in range(0, N, step):
            X = torch.from_numpy(Z[s:s + step]).to(fdev, torch.float64)
            X -= mean
            coords[s:s + step] = (X @ Wf.T).float().cpu()
    var_np = var.cpu().numpy()
    return PcaResult(coords.numpy(), W.cpu().numpy(), mean.cpu().numpy(), var_np,
                     var_np / total if total > 0 else np.zeros_like(var_np))


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
