"""Collapse diagnostics of one embedding matrix ``Z`` (n, d): spectrum, RankMe, alpha-ReQ,
std of L2-normalised embeddings, SIGReg / Epps-Pulley, uniformity, alignment, cosine statistics.

Every function takes a numpy array or a torch tensor, computes with torch on the device it is
given (``device=None``: where the tensor already lives, CPU for numpy) and returns Python floats
or numpy arrays. Second moments (Gram / covariance matrices) are accumulated in float64:
float32 row blocks of at most ``GRAM_BLOCK`` rows are multiplied and their partial sums added in
float64 (plain float64 when the matrix is small), and eigenvalues are computed in float64.

Shapes: ``Z`` (n, d) with n points of dimension d. "L2-normalised rows" means
``z_i / max(||z_i||_2, 1e-12)`` (as ``torch.nn.functional.normalize``).
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np

from explorer.core.errors import InputError

__all__ = [
    "as_tensor", "l2_normalize", "gram", "covariance_eigenvalues", "covariance_spectrum",
    "dims_for_variance", "per_dim_std", "dead_dims", "rankme", "rankme_from_singular_values",
    "singular_values", "alpha_req", "alpha_req_from_eigenvalues", "std_l2_normalized",
    "epps_pulley_weights", "epps_pulley", "random_directions", "sigreg", "sigreg_standardized",
    "sigreg_gaussian_reference", "uniformity", "alignment", "mean_cosine", "cosine_histogram",
    "effective_rank",
]

#: Row block of the float32 Gram products whose partial sums are added in float64.
GRAM_BLOCK = 8192
#: Below this many multiply-adds (n * d * d) second moments are computed in float64 directly.
FLOAT64_BELOW = 2e9
#: RankMe's epsilon (Garrido et al. 2023, official code).
RANKME_EPS = 1e-7


# --------------------------------------------------------------------------- helpers

def as_tensor(Z: Any, device=None, dtype=None, name: str = "embeddings"):
    """``Z`` as a 2-D torch tensor (no copy when possible). Raises InputError for a wrong shape,
    an empty matrix or non-finite values."""
    import torch

    if isinstance(Z, torch.Tensor):
        t = Z.detach()
    else:
        a = np.asarray(Z)
        if a.dtype == np.float16 or not np.issubdtype(a.dtype, np.floating):
            a = a.astype(np.float32)
        t = torch.from_numpy(np.ascontiguousarray(a))
    if t.ndim != 2:
        raise InputError(f"The {name} must be a 2-D matrix (points x dimensions); got shape {tuple(t.shape)}.")
    if t.shape[0] < 2 or t.shape[1] < 1:
        raise InputError(f"The {name} need at least 2 points and 1 dimension; got shape {tuple(t.shape)}.")
    if t.dtype not in (torch.float32, torch.float64):
        t = t.float()
    if device is not None:
        t = t.to(device)
    if dtype is not None:
        t = t.to(dtype)
    # NaN/inf propagate into a plain sum (0.05 s for 100k x 2048 vs 1.3 s for isfinite().all(),
    # measured); only a non-finite sum (NaN/inf present, or an overflow) needs the full check
    if not bool(torch.isfinite(t.sum())) and not bool(torch.isfinite(t).all()):
        raise InputError(f"The {name} contain NaN or infinite values.")
    return t


def l2_normalize(Z):
    """Rows divided by their L2 norm (norm clamped at 1e-12): (n, d) -> (n, d)."""
    import torch

    return torch.nn.functional.normalize(Z, dim=1, eps=1e-12)


def _use_float64(n: int, d: int) -> bool:
    return n * d * d <= FLOAT64_BELOW


def _syrk(b):
    """b^T b (d, d) as float64 for one row block b (m, d). On the CPU numpy's matmul, which
    calls BLAS syrk for ``a.T @ a`` (half the multiply-adds of a general product: 2.3 s vs
    4.2 s for 25,600 x 2048 float32, measured); elsewhere torch."""
    import torch

    if b.device.type == "cpu":
        a = np.ascontiguousarray(b.numpy())
        return torch.from_numpy(a.T @ a).double()
    return (b.T @ b).double()


def unit_rows(b):
    """Rows of b divided by max(||row||_2, 1e-12), computed in float64: (m, d) -> (m, d)."""
    import torch

    b64 = b.double()
    return b64 / torch.linalg.vector_norm(b64, dim=1, keepdim=True).clamp_min(1e-12)


#: Rows converted to float64 at a time inside a Gram block (keeps temporaries in cache).
_SUB_BLOCK = 1024


def gram(X, center: bool = False, normalize: bool = False):
    """X^T X (d, d) in float64 for X (n, d), optionally of the L2-normalised rows
    (``normalize``: rows divided by max(||x_i||, 1e-12) in float64) and/or of the column-centred
    rows.

    Small problems (n d^2 <= 2e9) are computed in float64; larger ones in float32 blocks of
    ``GRAM_BLOCK`` rows whose products (BLAS syrk on the CPU) are summed in float64; each row is
    normalised and centred in float64 before the cast, so a large mean cancels nothing. Never
    materialises a normalised or centred copy of the whole matrix: rows go through a float64
    buffer of ``_SUB_BLOCK`` rows into a preallocated block buffer."""
    import torch

    n, d = X.shape
    dev = X.device
    small = _use_float64(n, d)
    S = min(n, _SUB_BLOCK)
    t64 = torch.empty(S, d, dtype=torch.float64, device=dev)
    w = mu = None
    if normalize or center:
        w = torch.empty(n, dtype=torch.float64, device=dev)
        s1 = torch.zeros(d, dtype=torch.float64, device=dev)
        for i in range(0, n, S):
            t = t64[:min(S, n - i)]
            t.copy_(X[i:i + S])
            if normalize:
                w[i:i + t.shape[0]] = 1.0 / torch.linalg.vector_norm(t, dim=1).clamp_min_(1e-12)
            else:
                w[i:i + t.shape[0]] = 1.0
            s1 += w[i:i + t.shape[0]] @ t
        mu = s1 / n if center else None
    R = min(n, GRAM_BLOCK)
    blk = torch.empty(R, d, dtype=torch.float64 if small else torch.float32, device=dev)
    G = torch.zeros(d, d, dtype=torch.float64, device=dev)
    for i in range(0, n, R):
        m = min(R, n - i)
        if not (normalize or center) and not small:
            G += _syrk(X[i:i + m].float())
            continue
        for j in range(0, m, S):
            t = t64[:min(S, m - j)]
            t.copy_(X[i + j:i + j + t.shape[0]])
            if normalize:
                t *= w[i + j:i + j + t.shape[0], None]
            if center:
                t -= mu
            blk[j:j + t.shape[0]].copy_(t)
        G += _syrk(blk[:m])
    return G


def _eigvalsh_desc(M) -> np.ndarray:
    """Eigenvalues of a symmetric float64 matrix, descending (numpy float64)."""
    import torch

    if M.device.type == "cpu":
        import scipy.linalg

        from explorer.core.parallel import single_blas

        # one BLAS thread: the tridiagonal reduction is memory-bound, and with busy cores
        # OpenBLAS's spinning threads made a 2048 x 2048 solve 7x slower (measured)
        with single_blas():
            w = scipy.linalg.eigh(M.numpy(), eigvals_only=True, driver="evd", check_finite=False)
    else:
        w = torch.linalg.eigvalsh(M).cpu().numpy()
    return np.ascontiguousarray(w[::-1], dtype=np.float64)


def _second_moment_eigenvalues(X, center: bool, normalize: bool = False) -> np.ndarray:
    """Eigenvalues (descending, float64, length d, clipped at 0) of X^T X, of the L2-normalised
    rows when ``normalize``, centred or not, through the smaller of the (d, d) and (n, n) Gram
    matrices."""
    import torch

    n, d = X.shape
    if n < d:
        Xd = unit_rows(X) if normalize else X.double()
        if center:
            Xd = Xd - Xd.mean(0)
        w = _eigvalsh_desc(Xd @ Xd.T)
        w = np.concatenate([w, np.zeros(d - n)])
    else:
        w = _eigvalsh_desc(gram(X, center=center, normalize=normalize))
    return np.maximum(w, 0.0)


# --------------------------------------------------------------------------- spectrum

def covariance_eigenvalues(Z, device=None, normalize: bool = True) -> np.ndarray:
    """Eigenvalues (= singular values, the matrix being PSD) of the covariance (ddof=1) of the
    rows of Z, L2-normalised first when ``normalize`` (Jing et al., "Understanding Dimensional
    Collapse in Contrastive Self-supervised Learning", ICLR 2022).

    Z (n, d) -> (d,) float64, descending, >= 0."""
    import torch

    with torch.no_grad():
        X = as_tensor(Z, device)
        return _second_moment_eigenvalues(X, center=True, normalize=normalize) / (X.shape[0] - 1)


def dims_for_variance(eigenvalues: Sequence[float], fraction: float) -> int:
    """Smallest k such that the k largest eigenvalues hold at least ``fraction`` of their sum
    (0 when the sum is 0: no variance at all)."""
    w = np.sort(np.asarray(eigenvalues, dtype=np.float64))[::-1]
    total = w.sum()
    if total <= 0:
        return 0
    c = np.cumsum(w) / total
    return int(min(len(w), np.searchsorted(c, fraction - 1e-12) + 1))


#: Size of the float64 blocks of the O(n d) passes, in elements (4 MB: stays in cache).
ROW_BLOCK_ELEMENTS = 1 << 19
#: Rows per block when re-reading the (n, M) SIGReg projections.
ROW_BLOCK = 2048


class _ShiftedMoments:
    """Column mean and variance (ddof=1) from sums of shifted values: with K the first row seen,
    s1 = sum (x - K), s2 = sum (x - K)^2 (float64) and var = (s2 - s1^2 / n) / (n - 1). The
    shift by an actual data row keeps the cancellation small (exactly 0 for a constant column);
    sums are taken as matrix-vector products of preallocated float64 blocks (torch.var_mean's
    per-element Welford update was 10x slower on the CPU, measured)."""

    def __init__(self):
        self.n, self.K, self.s1, self.s2 = 0, None, None, None

    def add(self, buf, ones) -> None:
        """Add the rows of the float64 block ``buf`` (m, d) (modified: shifted and squared in
        place); ``ones`` a float64 vector of at least m ones."""
        if self.K is None:
            self.K = buf[0].clone()
            self.s1 = self.K.new_zeros(self.K.shape)
            self.s2 = self.K.new_zeros(self.K.shape)
        m = buf.shape[0]
        buf -= self.K
        self.s1 += ones[:m] @ buf
        self.s2 += ones[:m] @ buf.mul_(buf)
        self.n += m

    def mean(self):
        return self.K + self.s1 / self.n

    def var(self):
        return ((self.s2 - self.s1 * self.s1 / self.n) / max(self.n - 1, 1)).clamp_min_(0)


def row_pass(X, block: Optional[int] = None, raw: bool = True, unit: bool = True,
             directions=None, groups=None, n_groups: int = 0) -> dict:
    """One blocked pass over the rows of X (n, d) computing the O(n d) statistics the
    diagnostics need, each block copied to a preallocated float64 buffer (no temporary larger
    than one block):

    * ``raw``: ``mean`` (d,) and ``var`` (d,) (ddof=1) of the raw coordinates, ``magnitude``
      max |z_ij|;
    * ``unit``: the same (``unit_mean``, ``unit_var``) for the L2-normalised rows
      u_i = z_i / max(||z_i||, 1e-12), and ``unit_sq`` = sum_i ||u_i||^2;
    * ``groups`` (n,) int64 in [-1, n_groups): ``group_sums`` (n_groups, d) float64 sums of
      u_i per group (rows with -1 skipped);
    * ``directions`` = (A (d, M), (t_max, n_points)): ``projections`` X A (n, M) in X's dtype
      and ``ecf`` = (C, S), their characteristic-function sums (see :class:`_EcfSums`).
    """
    import torch

    n, d = X.shape
    dev = X.device
    B = block or int(min(8192, max(16, ROW_BLOCK_ELEMENTS // max(d, 1))))
    B = min(B, n)
    out: dict = {"n": n}
    buf = torch.empty(B, d, dtype=torch.float64, device=dev)
    tmp = torch.empty_like(buf)
    ones = torch.ones(B, dtype=torch.float64, device=dev)
    mr, mu = _ShiftedMoments(), _ShiftedMoments()
    mag, usq = 0.0, 0.0
    gs = None
    if groups is not None and unit:
        gs = torch.zeros(n_groups, d, dtype=torch.float64, device=dev)
        groups = torch.as_tensor(groups, device=dev)
    P = A = None
    if directions is not None:
        A, (t_max, n_points) = directions
        A = A.to(device=dev, dtype=X.dtype)
        P = torch.empty(n, A.shape[1], dtype=X.dtype, device=dev)
    for i in range(0, n, B):
        b = X[i:i + B]
        m = b.shape[0]
        if P is not None:
            torch.matmul(b, A, out=P[i:i + m])
        if not (raw or unit):
            continue
        x, t = buf[:m], tmp[:m]
        x.copy_(b)
        if raw:
            lo, hi = torch.aminmax(b)
            mag = max(mag, float(-lo), float(hi))
        if unit:
            sq = torch.mul(x, x, out=t).sum(1)
            nrm = sq.sqrt().clamp_min_(1e-12)
            usq += float((sq / (nrm * nrm)).sum())
            torch.div(x, nrm[:, None], out=t)
            if gs is not None:
                g = groups[i:i + m]
                keep = g >= 0
                gs.index_add_(0, g[keep], t[keep])
            mu.add(t, ones)
        if raw:
            mr.add(x, ones)
    if raw:
        out.update(mean=mr.mean(), var=mr.var(), magnitude=mag)
    if unit:
        out.update(unit_mean=mu.mean(), unit_var=mu.var(), unit_sq=usq)
    if gs is not None:
        out["group_sums"] = gs
    if P is not None:
        e = _EcfSums(P.shape[1], t_max, n_points, dev)
        for i in range(0, n, ROW_BLOCK):
            e.add(P[i:i + ROW_BLOCK])
        out["projections"] = P
        out["ecf"] = e.result(n)
    return out


def per_dim_std(Z, device=None, normalize: bool = False) -> np.ndarray:
    """Standard deviation (ddof=1) of each dimension: Z (n, d) -> (d,) float64, of the
    L2-normalised rows when ``normalize`` (blocked float64 pass, see :func:`row_pass`)."""
    import torch

    with torch.no_grad():
        X = as_tensor(Z, device)
        r = row_pass(X, raw=not normalize, unit=normalize)
        return (r["unit_var"] if normalize else r["var"]).sqrt().cpu().numpy()


def dead_dims(Z=None, device=None, rel: float = 1e-6, stds: Optional[np.ndarray] = None,
              magnitude: Optional[float] = None) -> int:
    """Number of "dead" dimensions: std (ddof=1) of the raw coordinate below ``rel`` times the
    largest std over dimensions, or below 1e-10 times the data's magnitude max |z_ij| (the
    rounding noise of a constant column). All d are dead when every coordinate is constant.
    Give ``stds`` (d,) and ``magnitude`` to reuse computed values."""
    s = per_dim_std(Z, device) if stds is None else np.asarray(stds, np.float64)
    if magnitude is None:
        magnitude = float(as_tensor(Z, device).abs().amax()) if Z is not None else 0.0
    floor = 1e-10 * magnitude
    m = s.max()
    if m <= floor:
        return int(s.size)
    return int(((s < rel * m) | (s <= floor)).sum())


def covariance_spectrum(Z, device=None) -> dict:
    """Jing et al. 2022 spectrum summary: ``eigenvalues`` (d,) of the covariance (ddof=1) of
    the L2-normalised rows (descending), ``dims_90`` / ``dims_99`` (dimensions needed for 90% /
    99% of the variance) and ``dead_dims`` (raw std below 1e-6 of the largest)."""
    w = covariance_eigenvalues(Z, device)
    return {"eigenvalues": w, "dims_90": dims_for_variance(w, 0.90),
            "dims_99": dims_for_variance(w, 0.99), "dead_dims": dead_dims(Z, device)}


# --------------------------------------------------------------------------- RankMe, alpha-ReQ

def singular_values(Z, device=None) -> np.ndarray:
    """Singular values of the *uncentred* Z (n, d) -> (min(n, d),) float64 descending, from
    the eigenvalues of the smaller Gram matrix."""
    import torch

    with torch.no_grad():
        X = as_tensor(Z, device)
        w = _second_moment_eigenvalues(X, center=False)[: min(X.shape)]
        return np.sqrt(w)


def rankme_from_singular_values(s: Sequence[float], eps: float = RANKME_EPS) -> float:
    """RankMe = exp(-sum_k p_k log p_k), p_k = s_k / sum(s) + eps (Garrido et al., "RankMe:
    Assessing the downstream performance of pretrained self-supervised representations by their
    rank", ICML 2023). 0.0 for an all-zero matrix."""
    s = np.asarray(s, dtype=np.float64)
    tot = s.sum()
    if tot <= 0:
        return 0.0
    p = s / tot + eps
    return float(np.exp(-(p * np.log(p)).sum()))


def rankme(Z, device=None) -> float:
    """RankMe (Garrido et al. 2023) of Z (n, d): singular values s of the uncentred Z,
    p_k = s_k / sum(s) + 1e-7, RankMe = exp(-sum p_k log p_k). Close to min(n, d) for isotropic
    data, 1 for rank-one data."""
    return rankme_from_singular_values(singular_values(Z, device))


def effective_rank(Z, device=None, center: bool = True) -> float:
    """Effective rank (Roy & Vetterli 2007; RankMe's formula with its epsilon) of Z (n, d),
    column-centred by default: the spread within a group of points."""
    import torch

    with torch.no_grad():
        X = as_tensor(Z, device)
        w = _second_moment_eigenvalues(X, center=center)[: min(X.shape)]
        return rankme_from_singular_values(np.sqrt(w))


def alpha_req_from_eigenvalues(eigenvalues: Sequence[float], min_rank: int = 1,
                               max_rank: Optional[int] = None, floor: float = 1e-6) -> float:
    """alpha-ReQ (Agrawal et al., "alpha-ReQ: Assessing Representation Quality in Self-Supervised
    Learning by measuring eigenspectrum decay", NeurIPS 2022): the exponent alpha of a power law
    lambda_i ~ i^(-alpha), fitted by least squares of log(lambda_i) on log(i) over the 1-based
    ranks i = min_rank .. max_rank (default: all), keeping only eigenvalues above ``floor``
    times the largest (the numerical / finite-sample floor). NaN when fewer than 2 remain."""
    w = np.sort(np.asarray(eigenvalues, dtype=np.float64))[::-1]
    if w.size == 0 or w[0] <= 0:
        return float("nan")
    hi = w.size if max_rank is None else min(w.size, int(max_rank))
    ranks = np.arange(1, w.size + 1)
    keep = (ranks >= min_rank) & (ranks <= hi) & (w > floor * w[0])
    if keep.sum() < 2:
        return float("nan")
    slope = np.polyfit(np.log(ranks[keep]), np.log(w[keep]), 1)[0]
    return float(-slope)


def alpha_req(Z, device=None, min_rank: int = 1, max_rank: Optional[int] = None) -> float:
    """alpha-ReQ of Z (n, d), fitted on the eigenvalues of the covariance (ddof=1) of the
    L2-normalised rows (the spectrum shown by the diagnostics); see
    :func:`alpha_req_from_eigenvalues`. Near 0 for a flat (isotropic) spectrum, large for a
    fast decay (few dimensions used)."""
    return alpha_req_from_eigenvalues(covariance_eigenvalues(Z, device), min_rank, max_rank)


def std_l2_normalized(Z, device=None) -> float:
    """Mean over dimensions of the std (ddof=1) of z / ||z||_2 (Chen & He, "Exploring Simple
    Siamese Representation Learning", CVPR 2021, sec. 4.1): about 1/sqrt(d) for embeddings
    spread over the sphere, 0 for complete collapse. Z (n, d)."""
    return float(per_dim_std(Z, device, normalize=True).mean())


# --------------------------------------------------------------------------- SIGReg

def epps_pulley_weights(n_points: int = 17, t_max: float = 3.0):
    """Nodes t_k = k t_max / (n_points - 1) and the weights w_k of LeJEPA's Epps-Pulley
    quadrature: trapezoid weights on [0, t_max] doubled (integral over [-t_max, t_max] of an
    even integrand) times the Gaussian window exp(-t^2/2). Returns float64 numpy (t, w).
    One definition: :func:`explorer.metrics.sigreg.trapezoid_nodes` (the differentiable
    training version), so both SIGReg implementations integrate on the same nodes."""
    import torch

    from explorer.metrics.sigreg import trapezoid_nodes

    t, w = trapezoid_nodes(n_points, t_max, dtype=torch.float64)
    return t.numpy(), w.numpy()


class _EcfSums:
    """Running sums over rows of exp(i t_k x) for the columns of P (rows added block by block),
    t_k = k h, h = t_max / (n_points - 1), k = 0 .. n_points - 1.

    exp(i t_k x) = z^k with z = exp(i h x): one cos and one sin per entry and then complex
    products, in P's precision (complex64 for float32), each power summed in float64. The
    rounding error of z^k grows like k eps (the Chebyshev recurrence for cos(k h x) used before
    grows like k^2 eps / (h x) near x = 0: 100x larger sums' error for float32, measured).
    Blocks of about 2^18 entries stay in cache."""

    def __init__(self, M: int, t_max: float, n_points: int, device):
        import torch

        self.h = t_max / (n_points - 1)
        self.K = n_points
        self.rows = max(1, (1 << 18) // max(M, 1))
        self.Z = torch.zeros(n_points, M, dtype=torch.complex128, device=device)

    def add(self, P) -> None:
        import torch

        for i in range(0, P.shape[0], self.rows):
            x = P[i:i + self.rows]
            hx = x * self.h
            z1 = torch.complex(torch.cos(hx), torch.sin(hx))
            z = z1.clone()
            for k in range(1, self.K):
                self.Z[k] += z.sum(0, dtype=torch.complex128)
                if k + 1 < self.K:
                    z.mul_(z1)

    def result(self, n: int):
        """(C, S): float64 (n_points, M) sums of cos(t_k x) and sin(t_k x) over all rows."""
        self.Z[0] = n
        return self.Z.real.clone(), self.Z.imag.clone()


def _ecf_sums(P, t_max: float, n_points: int):
    """Sums over rows of cos(t_k x) and sin(t_k x) for P (n, M) and the evenly spaced
    t_k = k t_max / (n_points - 1) (see :class:`_EcfSums`). Returns float64 (n_points, M)
    tensors (C, S)."""
    e = _EcfSums(P.shape[1], t_max, n_points, P.device)
    e.add(P)
    return e.result(P.shape[0])


def _ep_from_sums(C, S, n: int, n_points: int, t_max: float) -> "torch.Tensor":
    """Epps-Pulley statistic (M,) from the characteristic-function sums (n_points, M)."""
    import torch

    from explorer.metrics.sigreg import epps_pulley_from_ecf

    t, w = epps_pulley_weights(n_points, t_max)
    tt = torch.from_numpy(t).to(C.device)
    ww = torch.from_numpy(w).to(C.device)
    return epps_pulley_from_ecf((C / n).T, (S / n).T, n, tt, ww)


def epps_pulley(x, n_points: int = 17, t_max: float = 3.0) -> np.ndarray:
    """Epps-Pulley statistic of each 1-D sample (column) of x (N,) or (N, M), as in LeJEPA
    (Balestriero & LeCun, "LeJEPA: Provable and Scalable Self-Supervised Learning Without the
    Heuristics", 2025; corrected official code):

        T = N * integral |phi_N(t) - exp(-t^2/2)|^2 exp(-t^2/2) dt,

    phi_N(t) = mean_j exp(i t x_j) the empirical characteristic function, the integral taken
    by the trapezoid rule on [0, t_max] with ``n_points`` nodes and doubled. Returns (M,)
    float64 (a 0-d array for 1-D x). Not differentiable (diagnostic, float64 accumulation)."""
    import torch

    with torch.no_grad():
        X = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x, dtype=np.float64))
        one_d = X.ndim == 1
        X = X.reshape(X.shape[0], -1).double()
        N = X.shape[0]
        C, S = _ecf_sums(X, t_max, n_points)
        T = _ep_from_sums(C, S, N, n_points, t_max).cpu().numpy()
    return T[0] if one_d else T


def random_directions(d: int, num_directions: int = 256, seed: int = 0, device=None,
                      dtype=None):
    """(d, M) matrix of M random unit directions (Gaussian columns drawn in float64 on the CPU
    with ``torch.Generator().manual_seed(seed)``, normalised), the same on every device. One
    definition: :func:`explorer.metrics.sigreg.sigreg_directions`, so the diagnostic and the
    training regulariser use the same directions for the same seed."""
    import torch

    from explorer.metrics.sigreg import sigreg_directions

    return sigreg_directions(d, num_directions, seed, dtype=dtype or torch.float32, device=device)


def _sigreg_both(Z, num_directions: int = 256, seed: int = 0, n_points: int = 17,
                 t_max: float = 3.0, device=None, standardized: bool = True, stats=None):
    """(raw SIGReg, standardised SIGReg or None). One blocked pass over Z computes the
    projections Z A (stored, (n, M) in Z's dtype), their characteristic-function sums and the
    column means/variances; the standardised statistic then reads only the stored projections
    ((P - mu A) / s computed in float64 per block, then cast to Z's dtype, as before).
    ``stats``: a :func:`row_pass` result that already has ``projections`` and ``ecf``."""
    import torch

    with torch.no_grad():
        X = as_tensor(Z, device)
        n, d = X.shape
        A = random_directions(d, num_directions, seed, X.device, X.dtype)
        r = stats if stats is not None else row_pass(X, raw=standardized, unit=False,
                                                     directions=(A, (t_max, n_points)))
        raw = float(_ep_from_sums(*r["ecf"], n, n_points, t_max).mean())
        if not standardized:
            return raw, None
        scale = math.sqrt(float(r["var"].mean()))
        if scale <= 0:
            return raw, float("nan")
        P = r["projections"]
        shift = r["mean"] @ A.double()                                  # (M,)
        e = _EcfSums(P.shape[1], t_max, n_points, X.device)
        for i in range(0, n, ROW_BLOCK):
            e.add(((P[i:i + ROW_BLOCK].double() - shift) / scale).to(P.dtype))
        return raw, float(_ep_from_sums(*e.result(n), n, n_points, t_max).mean())


def sigreg(Z, num_directions: int = 256, seed: int = 0, n_points: int = 17, t_max: float = 3.0,
           device=None) -> float:
    """SIGReg (LeJEPA, Balestriero & LeCun 2025): mean over M random unit directions a_m
    (fixed seed) of the Epps-Pulley statistic (:func:`epps_pulley`) of the projections
    Z a_m, on the embeddings as they are (what LeJEPA trains towards N(0, I)). Z (n, d).
    For isotropic standard Gaussian data its expectation is
    :func:`sigreg_gaussian_reference` (1.0525, independent of n)."""
    return _sigreg_both(Z, num_directions, seed, n_points, t_max, device, standardized=False)[0]


def sigreg_standardized(Z, num_directions: int = 256, seed: int = 0, n_points: int = 17,
                        t_max: float = 3.0, device=None) -> float:
    """SIGReg of (Z - mean) / s with one global scale s = sqrt(mean over dimensions of the
    variance (ddof=1)), so the mean per-dimension variance is 1: tests the shape of the
    distribution whatever its scale. NaN when Z is constant. Its Gaussian value is
    ``sigreg_gaussian_reference(centered=True)`` (about 0.57), as the centring removes part of
    the sampling noise."""
    return _sigreg_both(Z, num_directions, seed, n_points, t_max, device)[1]


def sigreg_gaussian_reference(n_points: int = 17, t_max: float = 3.0, centered: bool = False) -> float:
    """Expected Epps-Pulley statistic (hence SIGReg) of samples of N(0, 1), whatever N.

    Derivation: for x_j i.i.d. N(0, 1), phi_N(t) is the mean of N i.i.d. terms e^{itx} with
    mean phi(t) = exp(-t^2/2), so E|phi_N(t) - phi(t)|^2 = Var(e^{itx}) / N
    = (1 - phi(t)^2) / N = (1 - exp(-t^2)) / N, and E[T] = sum_k w_k (1 - exp(-t_k^2)) with the
    quadrature weights of :func:`epps_pulley_weights`: 1.0525 for 17 nodes on [0, 3] (the
    integral over the whole line is sqrt(2 pi) - sqrt(2 pi / 3) = 1.0594). Every projection of
    isotropic standard Gaussian data is N(0, 1), so the mean over directions has the same
    expectation.

    ``centered=True`` gives the reference for data centred by their own sample mean (as
    :func:`sigreg_standardized` does): subtracting x_bar removes from e^{itx} its component
    along x, whose covariance with it is i t phi(t) (variance 1), so to first order in 1/N
    E|phi_N - phi|^2 = (1 - exp(-t^2) - t^2 exp(-t^2)) / N: 0.5701 for the defaults. (One global
    scale shared by all d dimensions changes this by O(1/d) only.) Both values were checked by
    sampling 4,000 samples of N = 2,000: 1.037 and 0.578."""
    t, w = epps_pulley_weights(n_points, t_max)
    e = np.exp(-t ** 2)
    return float((w * (1 - e - (t ** 2 * e if centered else 0.0))).sum())


# --------------------------------------------------------------------------- pairwise

def _pair_sample(n: int, max_points: Optional[int], seed: int) -> Optional[np.ndarray]:
    if max_points is None or n <= max_points:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size=int(max_points), replace=False))


def pair_products(X) -> dict:
    """Everything the pairwise statistics of a (sub)sample X (m, d) need, from ONE m x m
    product: the Gram matrix ``Gc`` = Xc Xc^T of the column-centred rows (float64; computed in
    float32 when m^2 d > 2e9, else float64), the centred rows ``Xc`` (m, d) float64 and their
    squared norms ``sq`` (m,), and the cosine matrix ``cos`` (m, m) float64 of the raw rows,
    rebuilt as (Gc_ij + a_i + a_j + ||mu||^2) / (max(||x_i||, 1e-12) max(||x_j||, 1e-12))
    with a_i = xc_i . mu in float64 (the large terms of nearly collapsed data are added in
    float64, so the float32 product loses nothing that matters)."""
    import torch

    m, d = X.shape
    X64 = X.double()
    mu = X64.mean(0)
    Xc = X64 - mu
    sq = (Xc * Xc).sum(1)
    xs = Xc if m * m * d <= FLOAT64_BELOW else Xc.float()
    if xs.device.type == "cpu":                    # numpy's a @ a.T is BLAS syrk: half the work
        a_ = xs.numpy()
        Gc = torch.from_numpy(a_ @ a_.T).double()
    else:
        Gc = (xs @ xs.T).double()
    a = Xc @ mu
    nr = torch.linalg.vector_norm(X64, dim=1).clamp_min(1e-12)
    cos = Gc + a[:, None]
    cos += a[None, :]
    cos += float(mu @ mu)
    cos /= nr[:, None]
    cos /= nr[None, :]
    return {"Gc": Gc, "Xc": Xc, "sq": sq, "cos": cos.clamp_(-1.0, 1.0)}


def uniformity(Z, t: float = 2.0, max_points: Optional[int] = 4096, seed: int = 0,
               device=None) -> float:
    """Uniformity (Wang & Isola, "Understanding Contrastive Representation Learning through
    Alignment and Uniformity on the Hypersphere", ICML 2020):
    log mean_{i<j} exp(-t ||z_i - z_j||^2) on L2-normalised rows, t=2. Computed on all pairs
    of a random subsample of ``max_points`` points when n is larger (all pairs otherwise).
    0 for complete collapse, about -4 for points uniform on a high-dimensional sphere."""
    import torch

    with torch.no_grad():
        return _uniformity_from_cos(_sampled_cos(Z, device, max_points, seed), t)


def _sampled_cos(Z, device, max_points: int, seed: int):
    """(m, m) cosine matrix of all rows, or of ``max_points`` random rows when there are more."""
    import torch

    X = as_tensor(Z, device)
    idx = _pair_sample(X.shape[0], max_points, seed)
    if idx is not None:
        X = X[torch.from_numpy(idx).to(X.device)]
    return pair_products(X)["cos"]


def _uniformity_from_cos(Cos, t: float = 2.0) -> float:
    import torch

    m = Cos.shape[0]
    iu = torch.triu_indices(m, m, 1, device=Cos.device)
    v = (2 - 2 * Cos[iu[0], iu[1]].double()).clamp_min(0)
    v *= -t
    return float(torch.logsumexp(v, 0) - math.log(v.numel()))


def alignment(Z, Z_pos, alpha: float = 2.0, device=None) -> float:
    """Alignment (Wang & Isola 2020): mean over positive pairs of ||f(x) - f(x+)||_2^alpha on
    L2-normalised rows, alpha=2. Z, Z_pos (n, d), row i of each a positive pair (two augmented
    views of the same item)."""
    import torch

    with torch.no_grad():
        A = l2_normalize(as_tensor(Z, device).double())
        B = l2_normalize(as_tensor(Z_pos, A.device, name="positive embeddings").double())
        if A.shape != B.shape:
            raise InputError(f"Positive pairs need two matrices of the same shape; got {tuple(A.shape)} and {tuple(B.shape)}.")
        return float(((A - B).norm(dim=1) ** alpha).mean())


def mean_cosine(Z, device=None) -> float:
    """Mean cosine similarity over all pairs i != j, exactly, in O(n d):
    (||sum_i u_i||^2 - sum_i ||u_i||^2) / (n (n - 1)) with u_i = z_i / ||z_i||."""
    import torch

    with torch.no_grad():
        r = row_pass(as_tensor(Z, device), raw=False)
        return mean_cosine_from_stats(r)


def mean_cosine_from_stats(r: dict) -> float:
    """:func:`mean_cosine` from a :func:`row_pass` result with ``unit`` statistics."""
    n = r["n"]
    s = r["unit_mean"] * n
    return float((float(s @ s) - r["unit_sq"]) / (n * (n - 1)))


def cosine_histogram(Z, bins: int = 50, max_points: Optional[int] = 4096, seed: int = 0,
                     device=None) -> dict:
    """Histogram of the pairwise cosine similarities (pairs i < j; all pairs of a random
    subsample of ``max_points`` points when n is larger): {"edges": (bins+1,), "counts": (bins,)}
    over [-1, 1]."""
    import torch

    with torch.no_grad():
        return _hist_from_cos(_sampled_cos(Z, device, max_points, seed), bins)


def _hist_from_cos(Cos, bins: int = 50) -> dict:
    import torch

    m = Cos.shape[0]
    iu = torch.triu_indices(m, m, 1, device=Cos.device)
    v = Cos[iu[0], iu[1]].double().clamp(-1, 1)
    counts = torch.histc(v, bins=bins, min=-1.0, max=1.0)
    edges = np.linspace(-1.0, 1.0, bins + 1)
    return {"edges": edges.tolist(), "counts": [int(c) for c in counts.cpu().numpy()]}
