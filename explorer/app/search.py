"""The map's search box as a small query language, free of Qt.

- ``7`` (a bare word) matches the **label** exactly (case-insensitive): label 7 has 179 of the
  1,797 digits, not the 1,399 items with a 7 anywhere in any column. A dataset without labels,
  or a word that is no label, matches the items' ids exactly, then as a substring (a file name
  fragment).
- ``col=value`` matches column ``col`` exactly (case-insensitive); ``label=7`` is the same as
  ``7``.
- ``col~text`` matches items whose ``col`` contains ``text`` (case-insensitive); ``id~cat``
  searches the ids.
- ``tag:name`` matches the items tagged ``name`` (:mod:`explorer.app.tags`).

:func:`search` returns the mask and a short description for the status line ("label = 7:
179 of 1,797"); a query naming an unknown column says which columns exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from explorer.core.errors import InputError


@dataclass
class SearchResult:
    mask: Optional[np.ndarray]  # (N,) bool, None for an empty query
    description: str  # what was matched, for the status line

    @property
    def count(self) -> int:
        return 0 if self.mask is None else int(self.mask.sum())


def _lower(values) -> np.ndarray:
    return np.char.lower(np.asarray(values).astype(str))


def _columns(dataset) -> dict:
    cols = dict(dataset.columns())
    if dataset.ids is not None:
        cols.setdefault("id", dataset.ids)
    return cols


def search(dataset, text: str) -> SearchResult:
    """Evaluate the query ``text`` over ``dataset`` (see the module docstring)."""
    text = (text or "").strip()
    if dataset is None or not text:
        return SearchResult(None, "")
    n = len(dataset)
    cols = _columns(dataset)
    if text.lower().startswith("tag:"):
        from explorer.app.tags import COLUMN, tag_mask

        name = text[4:].strip()
        if COLUMN not in cols:
            raise InputError("No item is tagged yet; tag a selection first (View > Tag selection).")
        return _result(tag_mask(cols[COLUMN], name), f"tag {name!r}", n)
    for op, exact in (("=", True), ("~", False)):
        key, sep, val = text.partition(op)
        if sep and key.strip():
            key, val = key.strip(), val.strip().lower()
            if key not in cols:
                known = ", ".join(list(cols)[:8]) or "none"
                raise InputError(f"No column {key!r} to search (columns: {known}).")
            s = _lower(cols[key])
            mask = (s == val) if exact else (np.char.find(s, val) >= 0)
            return _result(mask, f"{key} {'=' if exact else 'contains'} {val!r}", n)
    t = text.lower()
    if "label" in cols:
        mask = _lower(cols["label"]) == t
        if mask.any():
            return _result(mask, f"label = {text!r}", n)
    if "id" in cols:
        ids = _lower(cols["id"])
        mask = ids == t
        if mask.any():
            return _result(mask, f"id = {text!r}", n)
        return _result(np.char.find(ids, t) >= 0, f"id contains {text!r}", n)
    return _result(np.zeros(n, bool), f"label = {text!r}", n)


def _result(mask: np.ndarray, what: str, n: int) -> SearchResult:
    mask = np.asarray(mask, bool)
    return SearchResult(mask, f"{what}: {int(mask.sum()):,} of {n:,}")
