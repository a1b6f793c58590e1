"""The dataset contract every format implements.

A :class:`Dataset` is N items of one kind ("image", "text" or "vector") with optional integer
labels, a metadata table (every column can colour, filter and search the map), string ids and a
content fingerprint. Items are read lazily: nothing but the index is loaded on open.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

KINDS = ("image", "text", "vector")


@dataclass(eq=False)
class Dataset:
    """Base class. Subclasses fill the fields and override the item accessors.

    Attributes
    ----------
    name: short display name.   source: the file or folder it came from.
    kind: "image", "text" or "vector".
    labels: int64 (N,) class codes, -1 where unknown; or None.
    label_names: names of the label codes (``label_names[labels[i]]``).
    metadata: column name -> (N,) array (numbers, or object arrays of str).
    ids: (N,) object array of str, stable per item (relative path, row number, id column).
    skipped: (what, why) for items that could not be read and were left out.
    options: the choices that opened it (HDF5 key, text column...), to reopen it the same way.
    """

    name: str
    source: Path
    kind: str
    n: int
    labels: Optional[np.ndarray] = None
    label_names: list = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    ids: Optional[np.ndarray] = None
    skipped: list = field(default_factory=list)
    options: dict = field(default_factory=dict)
    format: str = ""

    def __len__(self) -> int:
        return self.n

    # -- items ---------------------------------------------------------------------------
    def image(self, i: int, size: Optional[int] = None) -> np.ndarray:
        """Item ``i`` as uint8 (H, W, 3) RGB; resized (shorter side to ``size``, centre crop
        to size x size) when ``size`` is given. Image datasets only."""
        raise TypeError(f"{self.name} holds {self.kind} items, not images.")

    def images(self, indices, size: int) -> np.ndarray:
        """A batch as uint8 (B, size, size, 3). Subclasses may override for speed."""
        return np.stack([self.image(int(i), size) for i in indices])

    def text(self, i: int) -> str:
        """Item ``i`` as text (text datasets), or a one-line description otherwise."""
        if self.labels is not None and self.labels[i] >= 0 and self.label_names:
            return f"{self.ids[i] if self.ids is not None else i} ({self.label_names[self.labels[i]]})"
        return str(self.ids[i] if self.ids is not None else i)

    def texts(self, indices) -> list:
        return [self.text(int(i)) for i in indices]

    def vectors(self, indices=None) -> np.ndarray:
        """float32 (B, D) rows (vector datasets)."""
        raise TypeError(f"{self.name} holds {self.kind} items, not vectors.")

    def thumbnail(self, i: int, size: int = 96) -> Optional[np.ndarray]:
        """uint8 (h, w, 3) small picture for hover and galleries; None for non-images."""
        if self.kind != "image":
            return None
        return self.image(i, size)

    def fingerprint(self) -> str:
        """Hex digest that changes when the items change (files' paths, sizes, mtimes and,
        for files up to 64 MiB, contents)."""
        raise NotImplementedError

    # -- labels and metadata ------------------------------------------------------------
    def label_of(self, i: int) -> Optional[str]:
        if self.labels is None or self.labels[i] < 0:
            return None
        return str(self.label_names[self.labels[i]])

    def columns(self) -> dict[str, np.ndarray]:
        """Every column the GUI can colour/filter/search by: "label" first, then metadata."""
        cols: dict[str, np.ndarray] = {}
        if self.labels is not None:
            names = np.array(list(self.label_names) + [""], dtype=object)
            cols["label"] = names[self.labels]
        cols.update(self.metadata)
        return cols

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "source": str(self.source), "kind": self.kind, "n": self.n,
                "classes": len(self.label_names), "columns": list(self.metadata),
                "skipped": len(self.skipped), "format": self.format}

    def subset(self, rows) -> "Dataset":
        """The items ``rows`` (dataset indices, increasing) as a dataset of their own: same
        kind and item readers, labels, metadata and ids cut to those rows. Used to leave out
        items that could not be read, so every view sees only real rows."""
        return SubsetDataset(self, rows)


class SubsetDataset(Dataset):
    """A view on some rows of another dataset (see :meth:`Dataset.subset`)."""

    def __init__(self, parent: Dataset, rows) -> None:
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(rows) and (rows.min() < 0 or rows.max() >= parent.n):
            raise IndexError(f"rows out of range for {parent.n} items")
        super().__init__(
            name=parent.name, source=parent.source, kind=parent.kind, n=len(rows),
            labels=None if parent.labels is None else parent.labels[rows],
            label_names=list(parent.label_names),
            metadata={k: np.asarray(v)[rows] for k, v in parent.metadata.items()},
            ids=None if parent.ids is None else parent.ids[rows],
            skipped=parent.skipped, options=parent.options, format=parent.format)
        self.parent, self.rows = parent, rows

    def _map(self, indices) -> np.ndarray:
        return self.rows[np.asarray(indices, dtype=np.int64).reshape(-1)]

    def image(self, i: int, size: Optional[int] = None) -> np.ndarray:
        return self.parent.image(int(self.rows[int(i)]), size)

    def images(self, indices, size: int) -> np.ndarray:
        return self.parent.images(self._map(indices), size)

    def read_images(self, indices, size: int):
        reader = getattr(self.parent, "read_images", None)
        if reader is None:
            out = self.images(indices, size)
            return out, np.ones(len(out), dtype=bool)
        return reader(self._map(indices), size)

    def text(self, i: int) -> str:
        return self.parent.text(int(self.rows[int(i)]))

    def texts(self, indices) -> list:
        return self.parent.texts(self._map(indices))

    def vectors(self, indices=None) -> np.ndarray:
        return self.parent.vectors(self.rows if indices is None else self._map(indices))

    def thumbnail(self, i: int, size: int = 96) -> Optional[np.ndarray]:
        return self.parent.thumbnail(int(self.rows[int(i)]), size)

    @property
    def decodes_files(self) -> bool:
        return getattr(self.parent, "files", None) is not None or bool(
            getattr(self.parent, "decodes_files", False))

    def fingerprint(self) -> str:
        """The parent's fingerprint and the rows kept."""
        import hashlib

        h = hashlib.sha256(self.parent.fingerprint().encode())
        h.update(b"subset")
        h.update(np.ascontiguousarray(self.rows).tobytes())
        return h.hexdigest()
