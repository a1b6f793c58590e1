"""Similarity of two embeddings of the same n items: X (n, d1) from model A, Y (n, d2) from B.

Global measures (one number each): linear CKA, debiased linear CKA, RBF CKA, mutual k-NN,
orthogonal Procrustes similarity, SVCCA. Local measure: the Jaccard overlap of each point's k
nearest neighbours in A and in B (Embedding Comparator). :func:`compare` computes them all as a
job.

Cost: the linear measures are computed in feature space from the d x d second moments
(O(n d^2), float64 accumulation), never from n x n Gram matrices. RBF CKA needs n x n kernels,
so it uses a random subsample (``rbf_max_points``). The neighbour measures need exact k-NN in
each space, O(n^2 d) for all points; by default they are computed for ``knn_points`` random
query points whose neighbours are searched among *all* n points (so each sampled point's value
is exact and the mean is an unbiased estimate of the all-points mean), and for every point when
``knn_points=None`` (the per-point overlap map).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from explorer.core.errors import InputError
from explorer.core.jobs import Job, Progress
from explorer.metrics.collapse import FLOAT64_BELOW, as_tensor

__all__ = ["CompareParams", "compare", "linear_cka", "debiased_cka", "rbf_cka", "mutual_knn",
           "procrustes_similarity", "svcca", "knn_jaccard", "overlap_count", "cross_moments",
           "COMPARE_KEYS"]

COMPARE_KEYS = ("linear_cka", "debiased_cka", "rbf_cka", "mutual_knn", "procrustes_similarity",
                "svcca", "knn_jaccard_mean")


# --------------------------------------------------------------------------- moments

def _pair(X, Y, device=None):
    A = as_tensor(X, device, name="first embeddings")
    B = as_tensor(Y, A.device, name="second embeddings")
    if A.shape[0] != B.shape[0]:
        raise InputError(f"The two embeddings must describe the same items; they have {A.shape[0]} and {B.shape[0]} rows.")
    return A, B


#: Rows per block of :func:`cross_moments`.
MOMENT_BLOCK = 4096


def cross_moments(X, Y, device=None) -> dict:
    """Second moments of the column-centred X (n, d1) and Y (n, d2), float64:
    ``xx`` = Xc^T Xc (d1, d1), ``yy`` (d2, d2), ``xy`` = Xc^T Yc (d1, d2), the row norms
    ``nx``/``ny`` = ||xc_i||^2 (n,), the column sums ``sx``/``sy`` of the centred data (zero up
    to rounding) and n. Each row block is centred in float64, then [Xc Yc] (m, d1 + d2) goes
    through ONE product with itself (BLAS syrk on the CPU: the three blocks for the flops of
    one and a half general products), in float32 summed in float64 when n (d1 + d2)^2 > 2e9,
    else in float64."""
    import torch

    from explorer.metrics.collapse import _syrk

    with torch.no_grad():
        A, B = _pair(X, Y, device)
        n = A.shape[0]
        mx = A.sum(0, dtype=torch.float64) / n
        my = B.sum(0, dtype=torch.float64) / n
        d1, d2 = A.shape[1], B.shape[1]
        big = n * (d1 + d2) ** 2 > FLOAT64_BELOW
        G = torch.zeros(d1 + d2, d1 + d2, dtype=torch.float64, device=A.device)
        nx = torch.empty(n, dtype=torch.float64, device=A.device)
        ny = torch.empty_like(nx)
        sx = torch.zeros(d1, dtype=torch.float64, device=A.device)
        sy = torch.zeros(d2, dtype=torch.float64, device=A.device)
        rows = min(n, MOMENT_BLOCK)
        cat = torch.empty(rows, d1 + d2, dtype=torch.float32 if big else torch.float64, device=A.device)
        for i in range(0, n, rows):
            a = A[i:i + rows].double() - mx
            b = B[i:i + rows].double() - my
            m = a.shape[0]
            nx[i:i + m] = (a * a).sum(1)
            ny[i:i + m] = (b * b).sum(1)
            sx += a.sum(0)
            sy += b.sum(0)
            c = cat[:m]
            c[:, :d1] = a
            c[:, d1:] = b
            G += _syrk(c)
        return {"xx": G[:d1, :d1].contiguous(), "yy": G[d1:, d1:].contiguous(),
                "xy": G[:d1, d1:].contiguous(), "nx": nx, "ny": ny, "sx": sx, "sy": sy, "n": n}


def _hsic1(tr_kl: float, sum_k: float, sum_l: float, rows_kl: float, n: int) -> float:
    """Unbiased HSIC (Song et al. 2012, eq. 5) from its four terms for kernels with zeroed
    diagonals K~, L~: tr(K~L~), 1^T K~ 1, 1^T L~ 1, 1^T K~ L~ 1."""
    return (tr_kl + sum_k * sum_l / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * rows_kl) / (n * (n - 3))


def _linear_from_moments(m: dict) -> dict:
    import torch

    xx, yy, xy, nx, ny, sx, sy, n = (m[k] for k in ("xx", "yy", "xy", "nx", "ny", "sx", "sy", "n"))
    f_xy = float((xy ** 2).sum())
    f_xx = float((xx ** 2).sum())
    f_yy = float((yy ** 2).sum())
    lin = f_xy / math.sqrt(f_xx * f_yy) if f_xx > 0 and f_yy > 0 else float("nan")
    # debiased: K = Xc Xc^T, K~ = K - diag(K); (K~ 1)_i = x_i . s_x - ||x_i||^2
    out = {"linear_cka": lin}
    if n >= 4:
        def terms(tr, nk, nl, sk, sl, rk, rl):
            return _hsic1(tr - float((nk * nl).sum()), float(sk @ sk) - float(nk.sum()),
                          float(sl @ sl) - float(nl.sum()), float((rk * rl).sum()), n)
        # row sums need the data; s_x is ~0 for centred data so (K~1)_i = -||x_i||^2 + x_i.s_x;
        # x_i.s_x is below rounding and dropped (s_x = 0 exactly in exact arithmetic)
        rx, ry = -nx, -ny
        h_xy = terms(f_xy, nx, ny, sx, sy, rx, ry)
        h_xx = terms(f_xx, nx, nx, sx, sx, rx, rx)
        h_yy = terms(f_yy, ny, ny, sy, sy, ry, ry)
        out["debiased_cka"] = h_xy / math.sqrt(h_xx * h_yy) if h_xx > 0 and h_yy > 0 else float("nan")
    else:
        out["debiased_cka"] = float("nan")
    nuc = float(torch.linalg.svdvals(xy).sum())
    tx, ty = float(torch.trace(xx)), float(torch.trace(yy))
    out["procrustes_similarity"] = nuc / math.sqrt(tx * ty) if tx > 0 and ty > 0 else float("nan")
    return out


def linear_cka(X, Y, device=None) -> float:
    """Linear CKA (Kornblith, Norouzi, Lee & Hinton, "Similarity of Neural Network
    Representations Revisited", ICML 2019): for column-centred X (n, d1), Y (n, d2),
    ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F). 1 for Y = c X Q with Q orthogonal."""
    return _linear_from_moments(cross_moments(X, Y, device))["linear_cka"]


def debiased_cka(X, Y, device=None) -> float:
    """Debiased linear CKA (Kornblith et al. 2019, sec. 3 / their code's ``debiased=True``):
    CKA with HSIC replaced by the unbiased estimator of Song et al. ("Feature Selection via
    Dependence Maximization", JMLR 2012, eq. 5),
    HSIC_1(K, L) = [tr(K~L~) + 1^T K~ 1 1^T L~ 1 / ((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1] / (n(n-3)),
    K = X X^T, L = Y Y^T, K~ and L~ with zeroed diagonals. Every term is computed in feature
    space (O(n d^2)). X is centred first (HSIC_1 is invariant to it)."""
    return _linear_from_moments(cross_moments(X, Y, device))["debiased_cka"]


def procrustes_similarity(X, Y, device=None) -> float:
    """Orthogonal Procrustes similarity: ||X^T Y||_* (nuclear norm) for column-centred X, Y
    scaled to unit Frobenius norm, = max over orthogonal Q of <X, Y Q>_F; in [0, 1], 1 for a
    rotated (and rescaled) copy. (Procrustes distance = 2 - 2 x this; Ding et al. 2021.)"""
    return _linear_from_moments(cross_moments(X, Y, device))["procrustes_similarity"]


def _eigh_desc(M):
    import scipy.linalg

    from explorer.core.parallel import single_blas

    with single_blas():
        w, V = scipy.linalg.eigh(M.cpu().numpy(), driver="evd", check_finite=False)
    return w[::-1].copy(), V[:, ::-1].copy()


def _svcca_from_moments(m: dict, keep: float = 0.99) -> float:
    n = m["n"]
    ks, parts = [], []
    for key in ("xx", "yy"):
        w, V = _eigh_desc(m[key])
        w = np.maximum(w, 0)
        tot = w.sum()
        if tot <= 0:
            return float("nan")
        k = int(np.searchsorted(np.cumsum(w) / tot, keep - 1e-12) + 1)
        k = max(1, min(k, n - 1, int((w > w[0] * 1e-12).sum())))
        ks.append(k)
        parts.append((w[:k], V[:, :k]))
    (wx, Vx), (wy, Vy) = parts
    cxy = Vx.T @ m["xy"].cpu().numpy() @ Vy
    M = cxy / np.sqrt(wx)[:, None] / np.sqrt(wy)[None, :]
    rho = np.clip(np.linalg.svd(M, compute_uv=False), 0, 1)
    return float(rho.mean())


def svcca(X, Y, keep: float = 0.99, device=None) -> float:
    """SVCCA (Raghu, Gilmer, Yosinski & Sohl-Dickstein, NeurIPS 2017): project each centred
    matrix on its top principal directions keeping ``keep`` (99%) of its variance (the SVD
    step), then the mean of the min(k1, k2) canonical correlations between the two projections
    (CCA computed as the singular values of Lx^{-1/2} Vx^T Cxy Vy Ly^{-1/2}). In [0, 1]; note
    CCA overfits (values near 1) when n is not much larger than the kept dimensions."""
    return _svcca_from_moments(cross_moments(X, Y, device), keep)


# --------------------------------------------------------------------------- RBF CKA

def rbf_cka(X, Y, sigma_fraction: float = 0.8, max_points: Optional[int] = 2000, seed: int = 0,
            device=None) -> float:
    """RBF-kernel CKA (Kornblith et al. 2019): K_ij = exp(-||x_i - x_j||^2 / (2 sigma^2)) with
    sigma = ``sigma_fraction`` x the median distance between distinct points (the paper uses
    0.2-0.8), the same for Y, and CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with the biased
    HSIC tr(K H L H) (H the centring matrix). O(m^2 d) in float64 on a random subsample of
    ``max_points`` rows (the same rows of X and Y)."""
    import torch

    with torch.no_grad():
        A, B = _pair(X, Y, device)
        n = A.shape[0]
        if max_points is not None and n > max_points:
            idx = torch.from_numpy(np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False)))
            A, B = A[idx.to(A.device)], B[idx.to(A.device)]

        def centred_kernel(M):
            M = M.double()
            M = M - M.mean(0)
            sq = (M * M).sum(1)
            D2 = (sq[:, None] + sq[None, :] - 2 * M @ M.T).clamp_min(0)
            D2.fill_diagonal_(0)
            m = D2.shape[0]
            iu = torch.triu_indices(m, m, 1, device=M.device)
            med = float(np.median(D2[iu[0], iu[1]].sqrt().cpu().numpy()))  # numpy: mean of the two middle values
            if med <= 0:
                return None
            K = torch.exp(-D2 / (2 * (sigma_fraction * med) ** 2))
            K = K - K.mean(0, keepdim=True)
            return K - K.mean(1, keepdim=True)

        Kc, Lc = centred_kernel(A), centred_kernel(B)
        if Kc is None or Lc is None:
            return float("nan")
        hxy = float((Kc * Lc).sum())
        return hxy / math.sqrt(float((Kc * Kc).sum()) * float((Lc * Lc).sum()))


# --------------------------------------------------------------------------- neighbourhoods

def overlap_count(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """|A_i ∩ B_i| for each row of two (q, k) index arrays whose rows hold distinct indices."""
    S = np.sort(np.concatenate([A, B], axis=1), axis=1)
    return (S[:, 1:] == S[:, :-1]).sum(1)


def knn_jaccard(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Per-point Jaccard overlap |A_i ∩ B_i| / |A_i ∪ B_i| of two neighbour lists (q, k)
    (the Embedding Comparator's neighbourhood similarity). (q,) float64 in [0, 1]."""
    inter = overlap_count(A, B).astype(np.float64)
    return inter / (A.shape[1] + B.shape[1] - inter)


def _neighbours(Z, rows: Optional[np.ndarray], k: int, device, method: str) -> Job:
    """Job -> (q, k) indices of the k cosine nearest neighbours (self excluded) of Z[rows]
    among all rows (rows=None: every row)."""
    from explorer import neighbors as nb

    Zf = np.ascontiguousarray(Z, dtype=np.float32)
    if rows is None:
        if method == "exact":
            idx, _ = yield from nb.knn_graph_exact(Zf, k, "cosine", device)
            return idx
        res = yield from nb.knn_graph(Zf, nb.KnnParams(k=k, metric="cosine", method=method,
                                                       device=None if device is None else str(device)))
        return res.indices
    Q = np.ascontiguousarray(Zf[rows])
    idx, _ = yield from nb.knn_search(Q, Zf, k + 1, "cosine", device)
    is_self = idx == rows[:, None]
    none = ~is_self.any(1)
    is_self[none, -1] = True
    return idx[~is_self].reshape(len(rows), k)


def mutual_knn(X, Y, k: int = 10, max_points: Optional[int] = None, seed: int = 0,
               device=None) -> float:
    """Mutual k-NN alignment (Huh, Cheung, Wang & Isola, "The Platonic Representation
    Hypothesis", ICML 2024): mean over points of |N_X(i) ∩ N_Y(i)| / k, N(i) the k nearest
    neighbours of i (self excluded) by cosine similarity, i.e. on L2-normalised rows, exact.
    With ``max_points`` the mean is over that many random points (neighbours still among all)."""
    from explorer.core.jobs import drain

    A, B = _pair(X, Y)
    n = A.shape[0]
    rows = None if max_points is None or n <= max_points else np.sort(
        np.random.default_rng(seed).choice(n, max_points, replace=False))
    ia = drain(_neighbours(A.cpu().numpy(), rows, k, device, "exact"))
    ib = drain(_neighbours(B.cpu().numpy(), rows, k, device, "exact"))
    return float(overlap_count(ia, ib).mean() / k)


@dataclass(frozen=True)
class CompareParams:
    """Parameters of :func:`compare`."""

    device: Optional[str] = None
    seed: int = 0
    knn_k: int = 50                      # Jaccard neighbourhood size (Embedding Comparator)
    mutual_k: int = 10                   # mutual k-NN (Huh et al. 2024)
    knn_points: Optional[int] = 2000     # query points for the neighbour measures; None: all
    knn_method: str = "exact"            # for all points: "exact" or explorer.neighbors' "auto"/"hnsw"/...
    rbf_max_points: Optional[int] = 2000
    rbf_sigma_fraction: float = 0.8
    svcca_keep: float = 0.99


def compare(Za, Zb, params: CompareParams = CompareParams()) -> Job:
    """Job: every similarity measure between Za (n, d1) and Zb (n, d2) (rows = the same items).

    Returns {"linear_cka", "debiased_cka", "rbf_cka", "mutual_knn", "procrustes_similarity",
    "svcca", "knn_jaccard_mean": floats; "knn_jaccard": (n,) float32 per-point Jaccard (NaN for
    points not among the sampled queries); "knn_rows": (q,) int64 the points computed;
    "sampling": what was sampled, with the standard errors ``knn_jaccard_mean_se`` and
    ``mutual_knn_se`` of the two sampled means (0 when every point is used); "timings";
    "n", "dims"}."""
    import torch

    from explorer.core.device import resolve_device

    p = params
    if p.mutual_k > p.knn_k:
        raise InputError(f"mutual_k ({p.mutual_k}) cannot exceed knn_k ({p.knn_k}).")
    dev = resolve_device(p.device)
    timings: dict = {}
    t0 = [time.perf_counter()]

    def lap(name):
        now = time.perf_counter()
        timings[name] = round(now - t0[0], 4)
        t0[0] = now

    A, B = _pair(Za, Zb, dev)
    n = A.shape[0]
    if n <= p.knn_k + 1:
        raise InputError(f"Comparing neighbourhoods of k={p.knn_k} needs more than {p.knn_k + 1} points; there are {n}.")
    total = 5
    yield Progress(0, total, "second moments")
    m = cross_moments(A, B)
    out: dict[str, Any] = {"n": int(n), "dims": [int(A.shape[1]), int(B.shape[1])]}
    out.update(_linear_from_moments(m))
    lap("linear")
    out["svcca"] = _svcca_from_moments(m, p.svcca_keep)
    del m
    lap("svcca")
    yield Progress(1, total, "RBF CKA")
    out["rbf_cka"] = rbf_cka(A, B, p.rbf_sigma_fraction, p.rbf_max_points, p.seed)
    lap("rbf_cka")
    yield Progress(2, total, "neighbours in A")
    rows = None
    if p.knn_points is not None and n > p.knn_points:
        rows = np.sort(np.random.default_rng(p.seed).choice(n, p.knn_points, replace=False))
    An, Bn = A.cpu().numpy(), B.cpu().numpy()
    ia = yield from _neighbours(An, rows, p.knn_k, dev, p.knn_method)
    yield Progress(3, total, "neighbours in B")
    ib = yield from _neighbours(Bn, rows, p.knn_k, dev, p.knn_method)
    lap("knn")
    jac = knn_jaccard(ia, ib)
    out["knn_jaccard_mean"] = float(jac.mean())
    out["mutual_knn"] = float(overlap_count(ia[:, :p.mutual_k], ib[:, :p.mutual_k]).mean() / p.mutual_k)
    per_point = np.full(n, np.nan, dtype=np.float32)
    knn_rows = np.arange(n) if rows is None else rows
    per_point[knn_rows] = jac
    out["knn_jaccard"] = per_point
    out["knn_rows"] = knn_rows.astype(np.int64)
    mutual = overlap_count(ia[:, :p.mutual_k], ib[:, :p.mutual_k]) / p.mutual_k
    q = int(knn_rows.size)

    def se(v):  # standard error of a mean over q sampled points (0 when every point is used)
        return 0.0 if rows is None or q < 2 else float(np.std(v, ddof=1) / math.sqrt(q))

    out["sampling"] = {"knn_points": q, "rbf_points": int(min(n, p.rbf_max_points or n)),
                       "knn_method": "exact" if rows is not None else p.knn_method,
                       "knn_jaccard_mean_se": se(jac), "mutual_knn_se": se(mutual)}
    lap("overlap")
    out["device"] = str(dev)
    out["timings"] = timings
    yield Progress(total, total, "done")
    return out
