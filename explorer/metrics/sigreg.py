"""Differentiable SIGReg (LeJEPA's isotropic-Gaussian regulariser), for training and diagnostics.

Balestriero & LeCun, "LeJEPA: Provable and Scalable Self-Supervised Learning Without the
Heuristics" (2025). SIGReg projects the embeddings on M random unit directions and measures,
for each 1-D projection, the Epps-Pulley distance between its empirical characteristic function
and that of N(0, 1):

    T = N * integral |phi_N(t) - exp(-t^2/2)|^2 exp(-t^2/2) dt,   phi_N(t) = mean_j exp(i t x_j),

the integral by the trapezoid rule on t in [0, t_max] (17 nodes on [0, 3] by default, the
official implementation's values) and doubled, since the integrand is even. SIGReg is the mean of
T over the directions. (The first public release of the official code defined its class twice
and lacked the factor N; this follows the corrected definition.)

Everything here is plain torch, differentiable, on the input's device, in its dtype (float32 or
float64; float16/bfloat16 inputs are computed in float32 with autocast disabled). The
non-differentiable float64 diagnostic in :mod:`explorer.metrics.collapse` draws its directions
the same way, so both give the same number for the same seed.
"""

from __future__ import annotations

from typing import Optional

import torch

__all__ = ["epps_pulley", "sigreg", "sigreg_directions", "trapezoid_nodes"]


def trapezoid_nodes(n_points: int = 17, t_max: float = 3.0, dtype=torch.float64, device=None):
    """Nodes t_k = k t_max / (n_points - 1) and weights w_k = 2 * trapezoid_k * exp(-t_k^2/2)
    (trapezoid weights on [0, t_max], doubled for the whole line, times the Gaussian window).
    Returns two (n_points,) tensors."""
    if n_points < 2 or t_max <= 0:
        raise ValueError(f"need n_points >= 2 and t_max > 0, got {n_points}, {t_max}")
    t = torch.linspace(0.0, float(t_max), int(n_points), dtype=dtype, device=device)
    dt = float(t_max) / (n_points - 1)
    trap = torch.full_like(t, dt)
    trap[0] = trap[-1] = dt / 2
    return t, 2 * trap * torch.exp(-t * t / 2)


def _work_dtype(x: torch.Tensor) -> torch.dtype:
    return x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32


def epps_pulley(x: torch.Tensor, n_points: int = 17, t_max: float = 3.0) -> torch.Tensor:
    """Epps-Pulley statistic of each column of ``x``: (N,) -> 0-d tensor, (N, M) -> (M,).

    T_m = N * sum_k w_k [ (mean_j cos(t_k x_jm) - exp(-t_k^2/2))^2 + (mean_j sin(t_k x_jm))^2 ]
    with the nodes and weights of :func:`trapezoid_nodes`. Differentiable; no standardisation of
    x (LeJEPA trains the raw projections towards N(0, 1)). For N(0, 1) samples its expectation
    is sum_k w_k (1 - exp(-t_k^2)) = 1.0525 with the defaults, whatever N.
    Memory: N * M * n_points elements of x's dtype.
    """
    if x.dim() not in (1, 2):
        raise ValueError(f"epps_pulley expects (N,) or (N, M), got shape {tuple(x.shape)}")
    if x.shape[0] < 1:
        raise ValueError("epps_pulley needs at least one sample")
    one_d = x.dim() == 1
    with torch.autocast(device_type=x.device.type, enabled=False):
        X = x.reshape(x.shape[0], -1).to(_work_dtype(x))
        n = X.shape[0]
        t, w = trapezoid_nodes(n_points, t_max, X.dtype, X.device)
        xt = X.unsqueeze(-1) * t                                  # (N, M, K)
        T = epps_pulley_from_ecf(torch.cos(xt).mean(0), torch.sin(xt).mean(0), n, t, w)
    return T[0] if one_d else T


def epps_pulley_from_ecf(c: torch.Tensor, s: torch.Tensor, n: int, t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The statistic from the empirical characteristic function: ``c``/``s`` (M, K) are the
    means over the N samples of cos(t_k x) and sin(t_k x) at the K nodes ``t`` with weights
    ``w`` (see :func:`trapezoid_nodes`): T_m = N sum_k w_k [(c_mk - exp(-t_k^2/2))^2 + s_mk^2].
    The one definition both the differentiable SIGReg and the chunked diagnostics use."""
    err = (c - torch.exp(-t * t / 2)) ** 2 + s ** 2
    return n * (err * w).sum(-1)


def sigreg_directions(d: int, num_directions: int = 256, seed: int = 0,
                      generator: Optional[torch.Generator] = None, dtype=torch.float32, device=None) -> torch.Tensor:
    """(d, M) random unit directions: Gaussian columns drawn in float64 on the CPU (by
    ``generator``, or ``torch.Generator().manual_seed(seed)``), normalised, then moved to
    ``device``/``dtype`` -- identical on every device for a given seed."""
    g = generator if generator is not None else torch.Generator().manual_seed(int(seed))
    A = torch.randn(int(d), int(num_directions), generator=g, dtype=torch.float64)
    A = A / A.norm(dim=0, keepdim=True)
    return A.to(device=device, dtype=dtype)


def sigreg(z: torch.Tensor, num_directions: int = 256, seed: int = 0,
           generator: Optional[torch.Generator] = None, n_points: int = 17, t_max: float = 3.0) -> torch.Tensor:
    """SIGReg of embeddings ``z`` (N, D): mean over M = ``num_directions`` random unit
    directions a_m of :func:`epps_pulley` (z a_m). Returns a differentiable 0-d tensor.

    The directions come from ``seed`` (fixed: the same directions every call) or from a CPU
    ``generator`` (advance it to draw new directions each training step, as LeJEPA does).
    Works on any device, float32 or float64 (lower precisions are computed in float32).
    Isotropic standard Gaussian data give about 1.05 for any N; a collapsed batch (all rows
    equal to c) gives about N * sum_k w_k |exp(i t_k c.a) - exp(-t_k^2/2)|^2, growing with N.
    """
    if z.dim() != 2:
        raise ValueError(f"sigreg expects (N, D) embeddings, got shape {tuple(z.shape)}")
    with torch.autocast(device_type=z.device.type, enabled=False):
        Z = z.to(_work_dtype(z))
        A = sigreg_directions(Z.shape[1], num_directions, seed, generator, Z.dtype, Z.device)
        return epps_pulley(Z @ A, n_points, t_max).mean()
