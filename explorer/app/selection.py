"""Observable application state, free of Qt.

Views bind to it; nothing reaches into another widget. The shared :class:`Selection` is what
makes views linked: every map, gallery and panel reads and writes the same object, and it
emits only on real change, so two views that echo each other stop after one round.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from explorer.core.events import Signal

MODES = ("replace", "add", "subtract", "toggle")


def _as_indices(indices) -> np.ndarray:
    a = np.unique(np.asarray(indices if indices is not None else [], dtype=np.int64).ravel())
    return a


class Selection:
    """A set of item indices plus one focused item (hovered/clicked), both observable.

    ``changed(indices, source)`` fires when the set changes; ``focus_changed(index, source)``
    when the focus does. ``source`` lets a view ignore its own echo.
    """

    def __init__(self, n: int = 0) -> None:
        self.n = n
        self._indices = np.zeros(0, dtype=np.int64)
        self._focus: Optional[int] = None
        self.changed = Signal()
        self.focus_changed = Signal()

    @property
    def indices(self) -> np.ndarray:
        return self._indices

    @property
    def focus(self) -> Optional[int]:
        return self._focus

    def mask(self) -> np.ndarray:
        m = np.zeros(self.n, dtype=bool)
        m[self._indices[self._indices < self.n]] = True
        return m

    def select(self, indices, mode: str = "replace", source: object = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        new = _as_indices(indices)
        if self.n and new.size and (new.min() < 0 or new.max() >= self.n):
            raise IndexError(f"selection index out of range for {self.n} items")
        if mode == "add":
            new = np.union1d(self._indices, new)
        elif mode == "subtract":
            new = np.setdiff1d(self._indices, new)
        elif mode == "toggle":
            new = np.setxor1d(self._indices, new)
        if new.shape == self._indices.shape and np.array_equal(new, self._indices):
            return
        self._indices = new
        self.changed.emit(new, source)

    def clear(self, source: object = None) -> None:
        self.select([], "replace", source)

    def set_focus(self, index: Optional[int], source: object = None) -> None:
        index = None if index is None else int(index)
        if index == self._focus:
            return
        self._focus = index
        self.focus_changed.emit(index, source)

    def reset(self, n: int) -> None:
        """A new set of N items: clear everything."""
        self.n = n
        self.clear()
        self.set_focus(None)

    def __len__(self) -> int:
        return int(self._indices.size)


ORDERS = ("index", "label", "distance to focus")


def order_items(indices, order: str = "index", labels: Optional[np.ndarray] = None,
                vectors: Optional[np.ndarray] = None, focus: Optional[int] = None) -> np.ndarray:
    """The selected ``indices`` in the order a gallery shows them.

    "index": dataset order. "label": by label code, then index (unlabelled last).
    "distance to focus": by cosine distance to item ``focus`` in ``vectors`` (the shown model's
    original space, float64), nearest first, ties by index; falls back to index order when
    there is no focus or no vectors.
    """
    idx = np.unique(np.asarray(indices, np.int64).ravel())
    if order == "label" and labels is not None:
        code = labels[idx].astype(np.int64)
        code = np.where(code < 0, np.iinfo(np.int64).max, code)
        return idx[np.lexsort((idx, code))]
    if order == "distance to focus" and vectors is not None and focus is not None and 0 <= focus < len(vectors):
        V = np.asarray(vectors[idx], np.float64)
        f = np.asarray(vectors[focus], np.float64)
        norms = np.linalg.norm(V, axis=1) * np.linalg.norm(f)
        with np.errstate(invalid="ignore", divide="ignore"):
            dist = 1.0 - (V @ f) / norms
        dist = np.where(np.isfinite(dist), dist, np.inf)
        return idx[np.lexsort((idx, dist))]
    return idx
