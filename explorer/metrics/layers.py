"""Layer sweep: one dataset embedded at several layers of one encoder in a single pass (forward
hooks on every chosen layer, each output pooled as the embedding layer would be), and the
collapse and probe metrics of each layer against depth.

Collapse often hides in the projector: SSL methods regularise the projector's output while the
backbone below it stays rich (or the reverse), so the sweep marks the first layer whose name
says projector/head (``projector_starts``).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Optional, Sequence

import numpy as np

from explorer.core.errors import InputError
from explorer.core.jobs import Job, Progress

__all__ = ["default_layers", "embed_layers", "layer_sweep", "projector_starts"]

_PROJECTOR = re.compile(r"(^|[._])(proj|projector|projection|head|heads|predictor)([._\d]|$)", re.I)


def default_layers(module) -> list:
    """The blocks worth sweeping, in model order: each top-level child's direct children, or the
    child itself when it has none (for a CNN ``features.block1..n`` then ``embed``/``head``)."""
    out = []
    for name, child in module.named_children():
        kids = [f"{name}.{k}" for k, _ in child.named_children()]
        out.extend(kids or [name])
    return out


def projector_starts(layers: Sequence[str]) -> Optional[int]:
    """Index of the first layer named like a projector/head, or None."""
    for i, name in enumerate(layers):
        if _PROJECTOR.search(name):
            return i
    return None


def _sweep_module(encoder, layers: Sequence[str]):
    import torch

    from explorer.encoders.hooks import _call, first_tensor, has_cls_token, pool, resolve_layer

    subs = [resolve_layer(encoder.module, name) for name in layers]  # InputError naming a bad layer
    has_cls = has_cls_token(encoder.module)

    class Sweep(torch.nn.Module):
        """Runs the encoder once and returns the pooled outputs of ``layers``, side by side."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.widths: list = []

        def forward(self, x):
            mask = x.get("attention_mask") if isinstance(x, dict) else None
            seen: dict = {}
            handles = []
            for i, sub in enumerate(subs):
                def hook(_m, _i, out, i=i):
                    if i not in seen:
                        seen[i] = first_tensor(out)
                handles.append(sub.register_forward_hook(hook))
            try:
                _call(self.inner, x)
            finally:
                for h in handles:
                    h.remove()
            missing = [layers[i] for i in range(len(subs)) if seen.get(i) is None]
            if missing:
                raise InputError(f"{encoder.name}: layer {missing[0]!r} did not run (or gave no tensor) "
                                 "during the forward pass.")
            outs = [pool(seen[i], encoder.pooling, has_cls, mask).float() for i in range(len(subs))]
            self.widths = [int(o.shape[1]) for o in outs]
            return torch.cat(outs, dim=1)

    return Sweep(encoder.module)


def embed_layers(dataset, encoder, layers: Sequence[str], params=None) -> Job:
    """Job -> {layer: (N, D_layer) float32} from one pass of the embedding engine over ``dataset``."""
    from explorer.embed import EmbedParams, embed

    layers = list(layers)
    if not layers:
        raise InputError(f"{encoder.name}: choose at least one layer to sweep.")
    sweep = _sweep_module(encoder, layers)
    wrapped = dataclasses.replace(encoder, module=sweep, layer=None, pooling="none",
                                  name=f"{encoder.name} [{len(layers)} layers]")
    res = yield from embed(dataset, wrapped, params or EmbedParams())
    bounds = np.cumsum([0] + sweep.widths)
    return {name: np.ascontiguousarray(res.vectors[:, bounds[i]:bounds[i + 1]]) for i, name in enumerate(layers)}


def layer_sweep(dataset, encoder, layers: Optional[Sequence[str]] = None, labels=None, params=None,
                seed: int = 0, device=None) -> Job:
    """Job -> {"layers": [rows], "projector_starts": index or None, "n": N}: one row per layer
    with its width and RankMe, dims for 99% of the variance, SIGReg and, with labels (default:
    the dataset's), the held-out k-NN and linear-probe accuracy."""
    from explorer.metrics.collapse import covariance_eigenvalues, dims_for_variance, rankme, sigreg
    from explorer.metrics.probes import knn_accuracy, linear_probe_accuracy

    layers = list(layers) if layers else default_layers(encoder.module)
    vectors = yield from embed_layers(dataset, encoder, layers, params)
    if labels is None and getattr(dataset, "labels", None) is not None:
        y = np.asarray(dataset.labels)
        labels = y if (y >= 0).sum() >= 10 and len(np.unique(y[y >= 0])) >= 2 else None
    known = None if labels is None else np.asarray(labels) >= 0
    rows = []
    for i, name in enumerate(layers):
        yield Progress(i, len(layers), f"metrics of {name}")
        Z = vectors[name]
        row = {"layer": name, "depth": i, "dim": int(Z.shape[1]), "rankme": float(rankme(Z, device)),
               "dims_99": int(dims_for_variance(covariance_eigenvalues(Z, device), 0.99)),
               "sigreg": float(sigreg(Z, seed=seed, device=device)),
               "knn_accuracy": None, "linear_probe_accuracy": None}
        if known is not None:
            Zk, yk = Z[known], np.asarray(labels)[known]
            row["knn_accuracy"] = float(knn_accuracy(Zk, yk, seed=seed, device=device))
            row["linear_probe_accuracy"] = float(linear_probe_accuracy(Zk, yk, seed=seed, device=device))
        rows.append(row)
    yield Progress(len(layers), len(layers), "done")
    return {"n": int(len(dataset)), "layers": rows, "projector_starts": projector_starts(layers)}
