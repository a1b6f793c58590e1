"""Vectors held in a table: CSV/TSV of numbers and the shared in-memory vector dataset.

A ``.csv``/``.tsv`` whose item columns are all numbers is vectors, not text:

* with or without a header row: a first row of numbers is data, unless it is exactly
  ``0, 1, ..., D-1`` or ``1, ..., D`` (the column numbers pandas and numpy write as a header);
* Lightly's embeddings CSV (``filenames, embedding_0, ..., embedding_{D-1}, labels``): the
  columns named ``embedding_<k>`` (or ``emb_``/``feature_``/``dim_<k>``) are the vector, the
  file names the ids, ``labels`` the labels; any other numeric column becomes metadata;
* otherwise every numeric column is a dimension; a label column (label / labels / class) gives
  labels, an id-like column (id / filenames / filename / file / path / name / image / key,
  unique values) the ids. A column of other strings makes the table a text table instead.

Options ``label_column`` and ``id_column`` as for text tables; ``column`` (the text column)
asks for text explicitly.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from explorer.data._common import (LABEL_NAMES, chosen_column, column_array, encode_labels, find_column,
                                   fingerprint_files, str_array)
from explorer.data.base import Dataset
from explorer.core.errors import InputError

#: Column names taken as item ids in a table of vectors (case-insensitive, unique values).
ID_NAMES = ("id", "ids", "filenames", "filename", "file", "path", "name", "image", "key")
_DIM_NAME = re.compile(r"^(embedding|embeddings|emb|feature|features|feat|dim|vector|v|x)[_\-\s]?\d+$",
                       re.IGNORECASE)


class VectorTableDataset(Dataset):
    """float32 (N, D) vectors in memory with labels, ids and metadata from the same table.
    ``files`` are the files it was read from (fingerprinted, contents up to 64 MiB)."""

    def __init__(self, path: Path, fmt: str, data: np.ndarray, ids: Optional[np.ndarray],
                 labels: Optional[np.ndarray], label_names: list, metadata: dict, options: dict,
                 files: Sequence[Path] = (), name: Optional[str] = None) -> None:
        path = Path(path)
        data = np.ascontiguousarray(data, dtype=np.float32)
        if data.ndim != 2 or len(data) == 0:
            raise InputError(f"{path}: no vectors found (shape {data.shape}).")
        super().__init__(name=name or path.stem, source=path, kind="vector", n=len(data),
                         labels=labels, label_names=label_names, metadata=metadata,
                         ids=ids if ids is not None else str_array(range(len(data))),
                         options=options, format=fmt)
        self._data = data
        self.dim = int(data.shape[1])
        self._files = tuple(Path(f) for f in files) or (path,)

    def vectors(self, indices=None) -> np.ndarray:
        if indices is None:
            return self._data
        return self._data[np.asarray(indices, dtype=np.int64).reshape(-1)]

    def fingerprint(self) -> str:
        """sha256 over the format, the options and the files (name, size, mtime and contents
        up to 64 MiB)."""
        root = self._files[0].parent
        return fingerprint_files(self.format, self.options, root, self._files, contents=True)


# -- header detection --------------------------------------------------------------------------
def _floats(values: Sequence[str]) -> Optional[np.ndarray]:
    try:
        return np.asarray([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        return None


def index_header(first: Sequence[str], rest: Sequence[Sequence[str]] = ()) -> bool:
    """True when a first row of numbers is a header: the column numbers ``0..D-1`` or
    ``1..D`` (as pandas and numpy write them) above rows that are not all whole numbers
    (among the first 100). A row of integers among integer rows is data."""
    v = _floats(first)
    if v is None or len(v) < 2:
        return False
    d = len(v)
    if not (np.array_equal(v, np.arange(d)) or np.array_equal(v, np.arange(1, d + 1))):
        return False
    for row in list(rest)[:100]:
        r = _floats([x.strip() for x in row])
        if r is None or not np.all(np.mod(r[np.isfinite(r)], 1) == 0) or not np.isfinite(r).all():
            return True
    return False


def numeric_row(row: Sequence[str]) -> bool:
    return len(row) >= 2 and _floats([x.strip() for x in row]) is not None


# -- CSV / TSV of numbers --------------------------------------------------------------------------
def vectors_from_rows(path: Path, fmt: str, header: list, rows: list,
                      options: dict) -> Optional[VectorTableDataset]:
    """A :class:`VectorTableDataset` when the table ``header`` + ``rows`` (strings, as the csv
    module reads them) holds vectors; None when it is a text table."""
    if "column" in options:  # a text column was asked for (even "" = none found: an error)
        return None
    if numeric_row(header) and not index_header(header, rows):  # no header: the first row is data
        rows = [list(header)] + rows
        header = [str(k) for k in range(len(header))]
    if not rows:
        return None
    cols = {c: [r[k] if k < len(r) else "" for r in rows] for k, c in enumerate(header)}
    return _interpret(path, fmt, header, cols, len(rows), options)


def fast_vectors(path: Path, fmt: str, text: str, delimiter: str,
                 options: dict) -> Optional[VectorTableDataset]:
    """The same reading as :func:`vectors_from_rows` for a plain file (no quotes) whose rows
    are numbers except for a few string columns (ids, labels), with ``numpy.loadtxt`` doing
    the numbers: about 7x faster on 20k x 384. None when the fast path does not apply (the
    caller then reads the table with the csv module)."""
    if "column" in options or '"' in text:
        return None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) < 2:
        return None
    first = [x.strip() for x in lines[0].split(delimiter)]
    sample = [[x.strip() for x in ln.split(delimiter)] for ln in lines[1:101]]
    if numeric_row(first) and not index_header(first, sample):
        header, body = [str(k) for k in range(len(first))], lines
    else:
        header, body = first, lines[1:]
    width = len(header)
    probe = [x.strip() for x in body[0].split(delimiter)]
    if len(probe) != width or len(set(header)) != width:
        return None
    num_idx = [k for k, x in enumerate(probe) if _floats([x]) is not None]
    str_idx = [k for k in range(width) if k not in num_idx]
    if len(num_idx) < 2 or len(str_idx) > 3:
        return None
    try:
        nums = np.loadtxt(body, delimiter=delimiter, usecols=num_idx, dtype=np.float64, ndmin=2,
                          comments=None)
    except (ValueError, IndexError):
        return None
    cols: dict = {header[k]: nums[:, j] for j, k in enumerate(num_idx)}
    if str_idx:
        if any(ln.count(delimiter) != width - 1 for ln in body):
            return None
        for k in str_idx:  # split only as far as the column (ids usually come first)
            cols[header[k]] = [ln.split(delimiter, k + 1)[k].strip() for ln in body]
    return _interpret(path, fmt, header, cols, len(body), options)


def _text_values(v) -> np.ndarray:
    """A column as str (numbers that are whole written without '.0')."""
    if isinstance(v, np.ndarray):
        return str_array(str(int(x)) if np.isfinite(x) and float(x).is_integer() else str(x) for x in v)
    return str_array(v)


def _interpret(path: Path, fmt: str, header: list, cols: dict, n: int,
               options: dict) -> Optional[VectorTableDataset]:
    """Columns (float64 arrays or lists of str) -> vectors, labels, ids and metadata; None
    when a column of words makes it a text table."""

    label_col = chosen_column(path, options, "label_column", header, find_column(header, LABEL_NAMES))
    id_default = find_column([c for c in header if c != label_col], ID_NAMES)
    if id_default is not None and len(set(_text_values(cols[id_default]).tolist())) != n:
        id_default = None
    id_col = chosen_column(path, options, "id_column", header, id_default)
    rest = [c for c in header if c not in (label_col, id_col)]
    numeric = {c: cols[c] if isinstance(cols[c], np.ndarray) else _floats([v.strip() for v in cols[c]])
               for c in rest}
    if any(v is None for v in numeric.values()):
        return None  # a column of words (or blanks): a text table
    dims = [c for c in rest if _DIM_NAME.match(c.strip())]
    if len(dims) < 2:
        dims = rest
    if len(dims) < 2 or n < 1:
        return None
    data = np.stack([numeric[c] for c in dims], axis=1)
    if not np.isfinite(data).all():
        r, c = np.argwhere(~np.isfinite(data))[0]
        raise InputError(f"{path}: row {int(r) + 1}, column {dims[int(c)]!r} is not a finite number.")
    labels, names = (encode_labels(_text_values(cols[label_col]), str(path)) if label_col else (None, []))
    ids = None
    if id_col:
        ids = _text_values(cols[id_col])
        if len(set(ids.tolist())) != len(ids):
            raise InputError(f"{path}: the id column {id_col!r} has repeated values.")
    meta = {c: (np.asarray(cols[c], dtype=np.float64) if isinstance(cols[c], np.ndarray)
                else column_array(cols[c])) for c in header if c not in dims and c != label_col}
    opts = {"label_column": label_col or "", "id_column": id_col or ""}
    return VectorTableDataset(path, fmt, data, ids, labels, names, meta, opts)
