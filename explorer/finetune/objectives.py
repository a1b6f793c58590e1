"""Fine-tuning objectives: small module-level loss functions, each citing its paper.

Shapes: z1, z2 (B, D) are the embeddings (or projections) of two augmented views of the same
B items; logits (B, C); labels (B,) int64. Each function returns a 0-d tensor, or
(total, parts) where parts maps each term's name to a detached 0-d tensor for the live panel
(converted to float only when reported, so a GPU step does not wait on it).

    OBJECTIVES   name -> Objective(needs_labels, two_views, uses_projector, description)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from explorer.metrics.sigreg import sigreg

__all__ = ["OBJECTIVES", "Objective", "Projector", "nt_xent", "vicreg", "lejepa_sigreg",
           "invariance", "cross_entropy"]


@dataclass(frozen=True)
class Objective:
    name: str
    needs_labels: bool
    two_views: bool
    uses_projector: bool
    description: str


OBJECTIVES = {
    "linear": Objective("linear", True, False, False,
                        "linear probe: frozen encoder, a new linear head trained with cross-entropy"),
    "ce": Objective("ce", True, False, False, "supervised cross-entropy through the encoder"),
    "simclr": Objective("simclr", False, True, True, "SimCLR / InfoNCE (NT-Xent) between two views"),
    "vicreg": Objective("vicreg", False, True, True, "VICReg: invariance + variance + covariance"),
    "sigreg": Objective("sigreg", False, True, True,
                        "LeJEPA: invariance between views + lambda * SIGReg (isotropic Gaussian)"),
    "invariance": Objective("invariance", False, True, True,
                            "invariance only (MSE between views): a baseline that collapses"),
}


class Projector(nn.Module):
    """SSL projector head kept apart from the encoder: Linear-BN-ReLU-Linear (SimCLR/VICReg
    style), (B, in_dim) -> (B, out_dim). ``hidden=0`` gives a single Linear; ``batchnorm=False``
    drops the BatchNorm (which rescales the batch, and so by itself resists collapse)."""

    def __init__(self, in_dim: int, hidden: int = 256, out_dim: int = 128, batchnorm: bool = True) -> None:
        super().__init__()
        if hidden:
            self.net = nn.Sequential(nn.Linear(in_dim, hidden),
                                     nn.BatchNorm1d(hidden) if batchnorm else nn.Identity(),
                                     nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))
        else:
            self.net = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy -log softmax(logits)_y. logits (B, C), labels (B,)."""
    return F.cross_entropy(logits.float(), labels)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """NT-Xent / InfoNCE of SimCLR (Chen et al., "A Simple Framework for Contrastive Learning
    of Visual Representations", ICML 2020, eq. 1): with u the 2B L2-normalised rows of
    [z1; z2] and s_ij = u_i.u_j / temperature,

        loss = mean_i -log( exp(s_{i,p(i)}) / sum_{k != i} exp(s_ik) ),

    p(i) the other view of item i; the mean runs over all 2B anchors."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    b = z1.shape[0]
    sim = z @ z.t() / temperature
    sim = sim.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(sim, target)


def _off_diagonal(m: torch.Tensor) -> torch.Tensor:
    n = m.shape[0]
    return m.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def vicreg(z1: torch.Tensor, z2: torch.Tensor, inv_weight: float = 25.0, var_weight: float = 25.0,
           cov_weight: float = 1.0, gamma: float = 1.0, eps: float = 1e-4):
    """VICReg (Bardes, Ponce & LeCun, "VICReg: Variance-Invariance-Covariance Regularization
    for Self-Supervised Learning", ICLR 2022), standard weights 25/25/1:

        inv = mean ||z1 - z2||^2 / D  (MSE over items and dimensions)
        var = (v1 + v2) / 2,  v = mean_j relu(gamma - sqrt(Var(z_j) + eps))  (Var with ddof=1)
        cov = c1 + c2,        c = sum_{i != j} C_ij^2 / D,  C the covariance (ddof=1)
        total = inv_weight * inv + var_weight * var + cov_weight * cov

    exactly as in the official code (facebookresearch/vicreg, ``main_vicreg.py``).
    Returns (total, {"inv", "var", "cov"}) (parts as detached tensors)."""
    z1, z2 = z1.float(), z2.float()
    b, d = z1.shape
    inv = F.mse_loss(z1, z2)
    var = 0.0
    cov = 0.0
    for z in (z1, z2):
        zc = z - z.mean(0)
        std = torch.sqrt(zc.var(0) + eps)
        var = var + torch.mean(F.relu(gamma - std)) / 2
        c = (zc.t() @ zc) / (b - 1)
        cov = cov + _off_diagonal(c).pow(2).sum() / d
    total = inv_weight * inv + var_weight * var + cov_weight * cov
    return total, {"inv": inv.detach(), "var": var.detach(), "cov": cov.detach()}


def invariance(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between the two views, mean over items and dimensions."""
    return F.mse_loss(z1.float(), z2.float())


def lejepa_sigreg(z1: torch.Tensor, z2: torch.Tensor, lambda_: float = 0.05, num_directions: int = 256,
                  seed: int = 0, generator=None):
    """LeJEPA objective (Balestriero & LeCun 2025) for V = 2 views:

        pred   = mean over views v, items, dims of (z_v - c)^2,  c = (z1 + z2) / 2
                 (each view predicts the centre of the views' embeddings)
        sig    = mean over views of SIGReg(z_v)   (:func:`explorer.metrics.sigreg.sigreg`)
        total  = (1 - lambda) * pred + lambda * sig

    as in the official ``LeJEPA`` loss (convex combination; lambda = 0.05 in the paper).
    Directions from ``seed`` or ``generator`` (shared by both views).
    Returns (total, {"pred", "sigreg"}) (parts as detached tensors)."""
    z1, z2 = z1.float(), z2.float()
    c = (z1 + z2) / 2
    pred = ((z1 - c) ** 2 + (z2 - c) ** 2).mean() / 2
    if generator is not None:
        state = generator.get_state()
        s1 = sigreg(z1, num_directions, generator=generator)
        generator.set_state(state)
        s2 = sigreg(z2, num_directions, generator=generator)
    else:
        s1 = sigreg(z1, num_directions, seed)
        s2 = sigreg(z2, num_directions, seed)
    sig = (s1 + s2) / 2
    total = (1 - lambda_) * pred + lambda_ * sig
    return total, {"pred": pred.detach(), "sigreg": sig.detach()}
