"""Tags (FiftyOne's sample tags), free of Qt: named sets of items the user marks by hand.

Tagging the selection "odd" adds those items to the tag; the tags are shown to the rest of the
app as one metadata column, ``tags`` (each item's tag names, sorted, joined by ", "; "" when it
has none), so the map colours, filters and exports by them like any column, and the search
finds them with ``tag:odd``. They are kept in the workspace (group :data:`~explorer.store.TAGS`,
one record per dataset, keyed by the dataset's fingerprint) and in saved sessions.

::

    tag_items(session, "odd", session.selection.indices)   # the column "tags" appears
    save_tags(session.workspace, session.dataset, session.tags)
    load_tags(session.workspace, dataset)   -> Tags
"""

from __future__ import annotations

from typing import Iterable, Optional

import numpy as np

from explorer.core.errors import InputError
from explorer.core.events import Signal

COLUMN = "tags"
MAX_NAME = 100


def check_name(name: str) -> str:
    """A tag name as stored: trimmed; refused (one sentence) when empty, too long or holding
    a comma (the column joins names with commas)."""
    name = (name or "").strip()
    if not name:
        raise InputError("A tag needs a name.")
    if len(name) > MAX_NAME:
        raise InputError(f"A tag name can have at most {MAX_NAME} characters.")
    if "," in name or "\n" in name or "\x00" in name:
        raise InputError(f"A tag name cannot contain a comma or a line break: {name[:40]!r}.")
    return name


class Tags:
    """Tag name -> sorted unique item indices (int64) among ``n`` items; ``changed()`` fires on
    every real change."""

    def __init__(self, n: int = 0) -> None:
        self.n = int(n)
        self._sets: dict[str, np.ndarray] = {}
        self.changed = Signal()

    @property
    def names(self) -> list:
        return list(self._sets)

    def __len__(self) -> int:
        return len(self._sets)

    def __contains__(self, name: str) -> bool:
        return name in self._sets

    def indices(self, name: str) -> np.ndarray:
        if name not in self._sets:
            raise InputError(f"There is no tag {name!r}.")
        return self._sets[name].copy()

    def mask(self, name: str) -> np.ndarray:
        m = np.zeros(self.n, bool)
        m[self.indices(name)] = True
        return m

    def _checked(self, indices) -> np.ndarray:
        idx = np.unique(np.asarray(indices if indices is not None else [], np.int64).ravel())
        if idx.size and (idx[0] < 0 or idx[-1] >= self.n):
            raise InputError(f"A tag names item {int(idx[-1] if idx[-1] >= self.n else idx[0])}, "
                             f"but there are {self.n:,} items.")
        return idx

    def add(self, name: str, indices) -> int:
        """Tag ``indices`` with ``name`` (created if new); returns how many items were new to it."""
        name = check_name(name)
        idx = self._checked(indices)
        old = self._sets.get(name, np.zeros(0, np.int64))
        new = np.union1d(old, idx)
        if name in self._sets and new.size == old.size:
            return 0
        self._sets[name] = new
        self.changed.emit()
        return int(new.size - old.size)

    def remove(self, name: str, indices) -> int:
        """Untag ``indices``; a tag left with no item goes. Returns how many were untagged."""
        if name not in self._sets:
            return 0
        old = self._sets[name]
        new = np.setdiff1d(old, self._checked(indices))
        if new.size == old.size:
            return 0
        if new.size:
            self._sets[name] = new
        else:
            del self._sets[name]
        self.changed.emit()
        return int(old.size - new.size)

    def delete(self, name: str) -> None:
        if self._sets.pop(name, None) is not None:
            self.changed.emit()

    def reset(self, n: int) -> None:
        """Another dataset of ``n`` items: no tags."""
        had = bool(self._sets)
        self.n = int(n)
        self._sets.clear()
        if had:
            self.changed.emit()

    def merge(self, other: Iterable[tuple[str, np.ndarray]]) -> None:
        """Union with ``(name, indices)`` pairs (a saved session, the workspace's record)."""
        changed = False
        for name, idx in other:
            name = check_name(name)
            idx = self._checked(idx)
            old = self._sets.get(name, np.zeros(0, np.int64))
            new = np.union1d(old, idx)
            if name not in self._sets or new.size != old.size:
                self._sets[name] = new
                changed = True
        if changed:
            self.changed.emit()

    def items(self) -> list:
        return [(k, v.copy()) for k, v in self._sets.items()]

    def column(self) -> np.ndarray:
        """(n,) object array: each item's tag names, sorted and joined by ", " ("" for none)."""
        names = sorted(self._sets)
        if len(names) > 62:  # too many for a bit code: item by item
            per: list[list[str]] = [[] for _ in range(self.n)]
            for name in names:
                for i in self._sets[name].tolist():
                    per[i].append(name)
            return np.array([", ".join(p) for p in per], dtype=object)
        code = np.zeros(self.n, np.int64)  # one bit per tag; few distinct combinations in practice
        for b, name in enumerate(names):
            code[self._sets[name]] |= 1 << b
        uniq, inv = np.unique(code, return_inverse=True)
        text = np.array([", ".join(n for b, n in enumerate(names) if u >> b & 1) for u in uniq.tolist()], dtype=object)
        return text[inv]

    def to_list(self) -> list:
        """As a session stores them: ``[{"name", "indices": [...]}, ...]``."""
        return [{"name": k, "indices": [int(i) for i in v]} for k, v in self._sets.items()]

    def from_list(self, data: Optional[list]) -> None:
        self.merge((d["name"], d.get("indices", [])) for d in (data or []))


def tag_mask(column, name: str) -> np.ndarray:
    """(N,) bool: the items whose ``tags`` column holds tag ``name`` (exact, case-insensitive)."""
    s = np.char.lower(np.asarray(column).astype(str))
    padded = np.char.add(np.char.add(", ", s), ",")
    return np.char.find(padded, f", {name.strip().lower()},") >= 0


def publish(session) -> None:
    """Show the session's tags as the dataset's ``tags`` column (or drop it when none are left)."""
    ds = session.dataset
    if ds is None:
        return
    if len(session.tags) == 0:
        if COLUMN in ds.metadata:
            del ds.metadata[COLUMN]
            session.columns_changed.emit(COLUMN)
        return
    session.add_column(COLUMN, session.tags.column())


def tag_items(session, name: str, indices) -> int:
    """Tag ``indices`` of the session's dataset with ``name``; the column follows. Returns how
    many items were newly tagged."""
    if session.dataset is None:
        raise InputError("Open a dataset first; tags belong to its items.")
    idx = np.asarray(indices, np.int64)
    if idx.size == 0:
        raise InputError("Nothing is selected; select the items to tag first.")
    added = session.tags.add(name, idx)
    publish(session)
    return added


# -- the workspace ---------------------------------------------------------------------------------
def tags_key(dataset) -> str:
    from explorer.store import content_key

    return content_key("tags", dataset.fingerprint(), len(dataset))


def save_tags(workspace, dataset, tags: Tags, key: Optional[str] = None) -> str:
    """Store ``tags`` of ``dataset`` in the workspace (one record, replaced); returns its key."""
    from explorer.store import TAGS

    key = key or tags_key(dataset)
    items = tags.items()
    sizes = [len(v) for _, v in items]
    arrays = {"indices": np.concatenate([v for _, v in items]) if items else np.zeros(0, np.int64),
              "offsets": np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)}
    workspace.put(TAGS, key, arrays, {"names": [k for k, _ in items], "n_items": tags.n,
                                      "dataset": str(getattr(dataset, "name", ""))})
    return key


def load_tags(workspace, dataset, key: Optional[str] = None) -> Tags:
    """The dataset's tags kept in the workspace (none when it holds no record)."""
    from explorer.store import TAGS

    key = key or tags_key(dataset)
    t = Tags(len(dataset))
    if not workspace.has(TAGS, key):
        return t
    rec = workspace.get(TAGS, key)
    names = list(rec.attrs.get("names", []))
    off = np.asarray(rec.arrays["offsets"], np.int64)
    idx = np.asarray(rec.arrays["indices"], np.int64)
    if len(off) != len(names) + 1 or int(rec.attrs.get("n_items", len(dataset))) != len(dataset):
        raise InputError(f"The workspace's tags of {getattr(dataset, 'name', 'this dataset')} do not fit it.")
    t.merge((n, idx[off[i]:off[i + 1]]) for i, n in enumerate(names))
    return t
