"""Join a metadata table (CSV / TSV / JSONL) onto a dataset, so every column can colour,
filter and search the map."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Optional

import numpy as np

from explorer.data._common import LABEL_NAMES, column_array, encode_labels, find_column, str_array
from explorer.data.base import Dataset
from explorer.data.text import read_table
from explorer.core.errors import InputError


def _match_ids(ds_ids: list[str], table_ids: list[str]) -> tuple[Optional[np.ndarray], list]:
    """Row of the table for each dataset id, trying exact ids, then file names, then file
    names without extension (so "cat/001.png" matches "001.png" or "001"). Returns (rows,
    []) or, if no key matches every id, (None, the unmatched ids under the best key)."""
    def base(s: str) -> str:
        return s.replace("\\", "/").rsplit("/", 1)[-1]

    def stem(s: str) -> str:
        b = base(s)
        return b.rsplit(".", 1)[0] if "." in b else b

    best: Optional[list] = None
    for key in (lambda s: s, base, stem):
        index: dict[str, int] = {}
        for r, t in enumerate(table_ids):
            index.setdefault(key(t), r)
        rows = [index.get(key(s), -1) for s in ds_ids]
        if len(set(map(key, ds_ids))) != len(ds_ids):
            continue  # two items would share a row under this key
        missing = [s for s, r in zip(ds_ids, rows) if r < 0]
        if not missing:
            return np.asarray(rows, dtype=np.int64), []
        if best is None or len(missing) < len(best):
            best = missing
    return None, best if best is not None else list(ds_ids)


TEXT_TABLES = (".csv", ".tsv", ".tab", ".jsonl", ".ndjson")
ARROW_TABLES = (".parquet", ".pq", ".arrow", ".feather", ".ipc")


def _read_metadata_table(path: Path) -> tuple[list[str], list[list]]:
    """(column names, rows) of a text table (:func:`read_table`) or a Parquet / Arrow file
    (pyarrow, the ``tables`` extra)."""
    suffix = path.suffix.lower()
    if suffix in TEXT_TABLES:
        return read_table(path)
    if suffix not in ARROW_TABLES:
        raise InputError(f"{path}: metadata must be a .csv, .tsv, .jsonl, .parquet or .arrow table or a .npy "
                         f"of labels.")
    from explorer.data.tables import _pyarrow, _read_ipc

    pa = _pyarrow()
    try:
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            table = pq.read_table(str(path))
        else:
            table = _read_ipc(path)
    except (pa.ArrowException, OSError):
        kind = "Parquet" if suffix in (".parquet", ".pq") else "Arrow"
        raise InputError(f"{path}: not a readable {kind} table.") from None
    names = [str(c) for c in table.column_names]
    columns = [table.column(k).to_pylist() for k in range(table.num_columns)]
    return names, [list(r) for r in zip(*columns)] if columns else []


def attach_metadata(dataset: Dataset, path, id_column: Optional[str] = None) -> Dataset:
    """A copy of ``dataset`` with every column of the table at ``path`` (.csv, .tsv, .jsonl;
    .parquet or .arrow with pyarrow) added as metadata.

    Rows are joined by order (the table must have exactly ``dataset.n`` rows) or, with
    ``id_column``, by matching that column against ``dataset.ids`` (exactly, else by file
    name, else by file name without extension); every dataset item must find a row, and the
    table's ids must be unique. Numeric columns become float64 arrays (NaN for blanks), others
    object arrays of str; a column whose name is already taken (or "label" when the dataset
    has labels) is renamed "<name> (<file name>)". A column named label / labels / class
    becomes the labels when the dataset has none. The dataset itself is not changed, nor its fingerprint (metadata does
    not change the items).

    A ``.npy`` file holds labels: a 1-D array of ints or strings, one per item in row order
    (see :func:`_attach_label_array`).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file.")
    if path.suffix.lower() == ".npy":
        if id_column is not None:
            raise InputError(f"{path}: a .npy of labels is joined by row order; it has no id column to join by.")
        return _attach_label_array(dataset, path)
    names, rows = _read_metadata_table(path)
    n = dataset.n
    if id_column is None:
        if len(rows) != n:
            raise InputError(f"{path}: {len(rows)} rows but the dataset {dataset.name!r} has "
                             f"{n} items (join by an id column instead?).")
        order = np.arange(n)
    else:
        if id_column not in names:
            raise InputError(f"{path}: no column named {id_column!r} (columns: "
                             f"{', '.join(names)}).")
        k = names.index(id_column)
        tids = [str(r[k]).strip() for r in rows]
        dup = next((t for t in tids if tids.count(t) > 1), None) if len(set(tids)) != len(tids) else None
        if dup is not None:
            raise InputError(f"{path}: the id column {id_column!r} repeats the id {dup!r}.")
        ds_ids = [str(i) for i in (dataset.ids if dataset.ids is not None else range(n))]
        order, missing = _match_ids(ds_ids, tids)
        if order is None:
            shown = ", ".join(repr(s) for s in missing[:3])
            raise InputError(f"{path}: {len(missing)} of the dataset's {n} items have no row "
                             f"with a matching {id_column!r} (e.g. {shown}).")
    out = copy.copy(dataset)
    out.metadata = dict(dataset.metadata)
    out.skipped = dataset.skipped  # shared on purpose: the same items
    for k, c in enumerate(names):
        if c in dataset.metadata or (c.lower() == "label" and dataset.labels is not None):
            c = f"{c} ({path.name})"  # never hide an existing column or the labels
        out.metadata[c] = column_array([rows[r][k] for r in order.tolist()])
    if dataset.labels is None:
        lab = find_column([c for c in names if c != id_column], LABEL_NAMES)
        if lab is not None:
            k = names.index(lab)
            out.labels, out.label_names = encode_labels(
                str_array(rows[r][k] for r in order.tolist()), str(path))
    out.options = dict(dataset.options)
    return out


def _attach_label_array(dataset: Dataset, path: Path) -> Dataset:
    """A copy of ``dataset`` with the labels in the ``.npy`` file ``path``: a 1-D array of
    ints, whole floats, bools or strings with ``dataset.n`` entries, in row order. They become
    the labels when the dataset has none; otherwise they are added as the column
    "label (<file name>)" so the dataset's own labels are never hidden. Object arrays are
    refused (loading them would unpickle, which can run code)."""
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError:
        raise InputError(f"{path}: the labels are stored as Python objects, which are not loaded (that could "
                         f"run code); save them with np.save(path, np.asarray(labels, dtype=str)).") from None
    except (OSError, EOFError):
        raise InputError(f"{path}: not a readable .npy file.") from None
    if not isinstance(arr, np.ndarray):
        raise InputError(f"{path}: not a single .npy array.")
    if arr.ndim != 1:
        raise InputError(f"{path}: labels must be a 1-D array with one value per item, not an array of "
                         f"shape {arr.shape}.")
    if arr.dtype.kind not in "biufUS":
        raise InputError(f"{path}: labels must be integers or strings, not {arr.dtype} values.")
    if arr.dtype.kind == "f" and not np.all(np.isnan(arr) | (arr == np.round(arr))):
        raise InputError(f"{path}: the labels are fractional numbers; class labels must be integers or strings.")
    if len(arr) != dataset.n:
        raise InputError(f"{path} holds {len(arr):,} labels but the dataset {dataset.name!r} has "
                         f"{dataset.n:,} items; they must match one to one.")
    if arr.dtype.kind == "S":
        arr = np.char.decode(arr, "utf-8", "replace")
    codes, names = encode_labels(arr, str(path))
    out = copy.copy(dataset)
    out.metadata = dict(dataset.metadata)
    out.skipped = dataset.skipped
    out.options = dict(dataset.options)
    if dataset.labels is None:
        out.labels, out.label_names = codes, list(names)
    else:
        col = np.empty(len(codes), dtype=object)
        col[:] = np.array(list(names) + [""], dtype=object)[codes]
        out.metadata[f"label ({path.name})"] = col
    return out
