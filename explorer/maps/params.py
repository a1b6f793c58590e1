"""What makes a map and what a map is: :class:`MapParams` (a frozen parameter object, validated
by :func:`_validate`), :class:`Layout` (coordinates and what happened) and :data:`STATS`, the
counts of real computations shared by every stage of :mod:`explorer.maps`."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

from explorer.core.errors import InputError

__all__ = ["MapParams", "Layout", "STATS"]

#: counts of real computations (not cache hits), for tests and the GUI's status line
STATS: Counter = Counter()


@dataclass(frozen=True)
class MapParams:
    """Everything that makes a map. ``method``: "umap" or "pca". UMAP fields follow
    umap-learn's names and defaults (``n_epochs=None``: 500 up to 10k points, else 200).
    ``seed=None`` lets the optimisation run on all cores (numba parallel; faster, not bit
    reproducible); ``parallel=None`` means exactly that. Above ``max_fit_points`` UMAP is fitted
    on a random sample of that many points and the other points are placed block by block with
    UMAP's ``transform`` procedure (:mod:`explorer.maps.stream`). 100k: fitting costs per point
    about 5x what placing does (k-NN graph + 200 epochs against 30 epochs on a fixed map;
    measured at 300k x 128 in benchmarks/bench_1m.py), and the fit's memory grows with it.
    ``knn_method`` is passed to :func:`explorer.neighbors.knn_graph`.

    ``optimizer``: "fast" runs UMAP's SGD in :mod:`explorer.maps.sgd` (same objective,
    schedules and graph; float32, batched negative samples; several times faster, see there);
    "umap-learn" runs umap-learn's own epoch kernel, so that a seeded map is bit-identical to
    ``umap.UMAP(..., precomputed_knn=...)``. Either way a seeded map (``parallel`` False)
    is deterministic: the same parameters give the same coordinates."""

    method: str = "umap"
    n_components: int = 2
    n_neighbors: int = 15
    min_dist: float = 0.1
    spread: float = 1.0
    metric: str = "cosine"
    n_epochs: Optional[int] = None
    seed: Optional[int] = 0
    init: str = "spectral"
    learning_rate: float = 1.0
    repulsion_strength: float = 1.0
    negative_sample_rate: int = 5
    set_op_mix_ratio: float = 1.0
    local_connectivity: float = 1.0
    parallel: Optional[bool] = None
    max_fit_points: int = 100_000
    optimizer: str = "fast"
    knn_method: str = "auto"
    device: Optional[str] = None

    def layout_dict(self) -> dict:
        """The parameters that define the layout (not where it ran)."""
        d = asdict(self)
        d.pop("device")
        if self.method == "pca":
            return {"method": "pca", "n_components": self.n_components}
        return d


@dataclass
class Layout:
    """``coords`` (N, c) float32, the parameters that made it and what happened (``info``:
    timings, graph method and recall, sample size if fitted on a sample, PCA variance...)."""

    coords: np.ndarray
    method: str
    params: dict
    info: dict = field(default_factory=dict)


def _validate(p: MapParams, n: int) -> None:
    if p.method not in ("umap", "pca"):
        raise InputError(f"Unknown map method {p.method!r}; use umap or pca.")
    if p.n_components not in (2, 3):
        raise InputError(f"Maps have 2 or 3 dimensions, got {p.n_components}.")
    if p.method == "umap":
        if not 2 <= p.n_neighbors < n:
            raise InputError(f"n_neighbors must be between 2 and N-1 = {n - 1}, got {p.n_neighbors}.")
        if not 0.0 <= p.min_dist <= p.spread:
            raise InputError(f"min_dist must be between 0 and spread={p.spread}, got {p.min_dist}.")
        if p.init not in ("spectral", "pca", "random"):
            raise InputError(f"Unknown UMAP init {p.init!r}; use spectral, pca or random.")
        if p.optimizer not in ("fast", "umap-learn"):
            raise InputError(f"Unknown UMAP optimizer {p.optimizer!r}; use fast or umap-learn.")
        if p.n_epochs is not None and p.n_epochs < 1:
            raise InputError(f"n_epochs must be positive, got {p.n_epochs}.")
