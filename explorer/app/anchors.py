"""Anchors for relative representations (Moschella et al., "Relative representations enable
zero-shot latent space communication", ICLR 2023): each item as its cosine similarity to the
same K anchor items, so models of different widths (or rotated copies) live in one K-dimensional
space and compare directly.

:class:`Anchors` is the observable choice (which items of the open dataset are the anchors);
every map marks them. :func:`relative_compare_job` compares every pair of models on their
relative representations with the measures of :func:`explorer.metrics.compare.compare`.
"""

from __future__ import annotations

from itertools import combinations
from typing import Optional, Sequence

import numpy as np

from explorer.core.errors import InputError
from explorer.core.events import Signal
from explorer.core.jobs import Job, Progress

__all__ = ["Anchors", "pick_anchors", "relative_compare_job"]


class Anchors:
    """The anchor items of a dataset of ``n`` items: ``indices`` (sorted, unique) and how they
    were chosen; ``changed()`` fires when they change (empty: no anchors)."""

    def __init__(self) -> None:
        self.indices = np.zeros(0, np.int64)
        self.n = 0
        self.how = ""
        self.changed = Signal()

    def set(self, indices, n: int, how: str = "") -> None:
        idx = np.unique(np.asarray(indices, np.int64).ravel())
        if idx.size and (idx[0] < 0 or idx[-1] >= n):
            raise InputError(f"Anchor indices must lie between 0 and {n - 1}.")
        self.indices, self.n, self.how = idx, int(n), how
        self.changed.emit()

    def clear(self) -> None:
        if self.indices.size or self.n:
            self.indices, self.n, self.how = np.zeros(0, np.int64), 0, ""
            self.changed.emit()

    def __len__(self) -> int:
        return int(self.indices.size)


def pick_anchors(n: int, k: Optional[int] = None, labels=None, selection=None, seed: int = 0) -> tuple:
    """(indices, how): the current ``selection`` when given (at least 2 items), else ``k`` items
    at random, stratified by ``labels`` when there are any (unlabelled items, -1, form a class)."""
    from explorer.metrics.representations import choose_anchors

    if selection is not None:
        idx = np.unique(np.asarray(selection, np.int64))
        if idx.size < 2:
            raise InputError("Select at least two items to use them as anchors.")
        return idx, f"the {idx.size:,} selected items"
    if k is None:
        raise InputError("Choose how many anchors to draw.")
    idx = choose_anchors(n, int(k), labels, seed=seed)
    return idx, f"{len(idx):,} items at random" + (", stratified by label" if labels is not None else "")


def relative_compare_job(names: Sequence[str], vectors: Sequence[np.ndarray], anchors, params=None) -> Job:
    """Job -> {"anchors": (K,) indices, "pairs": [{"a", "b", <every key of compare>}]}: each
    model's vectors as cosine similarities to the anchor rows, then every pair compared."""
    from explorer.metrics.compare import COMPARE_KEYS, CompareParams, compare
    from explorer.metrics.representations import relative_representation

    if len(vectors) < 2:
        raise InputError("Comparing needs at least two models.")
    n = vectors[0].shape[0]
    for name, Z in zip(names, vectors):
        if Z.shape[0] != n:
            raise InputError(f"{name} has {Z.shape[0]} rows but {names[0]} has {n}; compare embeddings of the same items.")
    anchors = np.asarray(anchors, np.int64)
    rel = [relative_representation(Z, anchors) for Z in vectors]
    pairs = list(combinations(range(len(rel)), 2))
    p = params or CompareParams(knn_k=min(50, n - 1), mutual_k=min(10, n - 1))
    rows = []
    for step, (a, b) in enumerate(pairs):
        yield Progress(step, len(pairs), f"{names[a]} vs {names[b]} on {len(anchors)} anchors")
        r = yield from compare(rel[a], rel[b], p)
        rows.append({"a": names[a], "b": names[b], **{k: r[k] for k in COMPARE_KEYS}})
    yield Progress(len(pairs), len(pairs), "done")
    return {"anchors": anchors, "pairs": rows}
