"""Bookmarks (TensorBoard projector's saved states), free of Qt: named views to come back to.

A bookmark holds what is on screen: the model, the map (PCA/UMAP), the camera (the map's
data range), the colouring, the selection and focus, the search and the charts with their
brushes. Bookmarks are kept in order, stepped through with next/previous (wrapping), renamed and
deleted, and saved in the session file (so they travel with an exported session).

The GUI captures and applies them; :func:`check` says in one sentence why a bookmark cannot be
restored in the current session (its model is gone, or its selection does not fit the dataset).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

from explorer.core.errors import InputError
from explorer.core.events import Signal


@dataclass
class Bookmark:
    name: str
    model: Optional[str] = None
    method: str = "pca"
    camera: Optional[list] = None  # [x0, x1, y0, y1] of the map, data units
    color_by: str = "label"
    selection: list = field(default_factory=list)
    focus: Optional[int] = None
    search: str = ""
    charts: dict = field(default_factory=lambda: {"columns": [], "brushes": []})
    n_items: Optional[int] = None  # the dataset's size when it was saved

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: v for k, v in d.items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict) -> "Bookmark":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


def check(b: Bookmark, session) -> Optional[str]:
    """None when ``b`` can be restored in ``session``, else one sentence saying why not."""
    if session.dataset is None:
        return f"Bookmark “{b.name}” needs its dataset; open it first."
    if b.n_items is not None and b.n_items != len(session.dataset):
        return (f"Bookmark “{b.name}” was saved on {b.n_items:,} items and the open dataset has "
                f"{len(session.dataset):,}; it belongs to another dataset.")
    if b.model is not None and b.model not in session.models:
        return f"Bookmark “{b.name}” shows the model “{b.model}”, which is no longer open; open it again to restore this view."
    return None


class Bookmarks:
    """An ordered list of :class:`Bookmark` with a cursor for next/previous; ``changed()`` fires
    when the list changes."""

    def __init__(self) -> None:
        self._items: list[Bookmark] = []
        self.cursor: int = -1  # the bookmark last saved or restored
        self.changed = Signal()

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self):
        return iter(list(self._items))

    @property
    def names(self) -> list:
        return [b.name for b in self._items]

    def index(self, name: str) -> int:
        for i, b in enumerate(self._items):
            if b.name == name:
                return i
        raise InputError(f"There is no bookmark {name!r}.")

    def get(self, name: str) -> Bookmark:
        return self._items[self.index(name)]

    def add(self, b: Bookmark) -> Bookmark:
        """Add ``b`` (one with the same name is replaced, in place)."""
        name = (b.name or "").strip()
        if not name:
            raise InputError("A bookmark needs a name.")
        if len(name) > 200:
            raise InputError("A bookmark name can have at most 200 characters.")
        b.name = name
        try:
            i = self.index(name)
            self._items[i] = b
        except InputError:
            self._items.append(b)
            i = len(self._items) - 1
        self.cursor = i
        self.changed.emit()
        return b

    def remove(self, name: str) -> None:
        i = self.index(name)
        del self._items[i]
        if self.cursor >= len(self._items):
            self.cursor = len(self._items) - 1
        self.changed.emit()

    def rename(self, old: str, new: str) -> None:
        new = (new or "").strip()
        if not new:
            raise InputError("A bookmark needs a name.")
        i = self.index(old)
        if new != old and new in self.names:
            raise InputError(f"There is already a bookmark {new!r}.")
        self._items[i].name = new
        self.changed.emit()

    def step(self, delta: int) -> Bookmark:
        """The next (``delta`` 1) or previous (-1) bookmark, wrapping; moves the cursor."""
        if not self._items:
            raise InputError("There are no bookmarks; save one first (Bookmarks > Add bookmark).")
        self.cursor = (self.cursor + delta) % len(self._items) if self.cursor >= 0 else (0 if delta > 0 else len(self._items) - 1)
        return self._items[self.cursor]

    def to_list(self) -> list:
        return [b.to_dict() for b in self._items]

    def load(self, data: Optional[list]) -> None:
        """Replace the list with a session's bookmarks."""
        self._items = [Bookmark.from_dict(d) for d in (data or [])]
        self.cursor = -1
        self.changed.emit()
