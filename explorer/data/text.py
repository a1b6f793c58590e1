"""Text: ``.txt`` (one item a line, blank lines skipped), ``.csv``/``.tsv`` (header row) and
``.jsonl`` (one JSON object a line). A ``.csv``/``.tsv`` of numbers is vectors instead
(:mod:`explorer.data.vector_table`).

Options for tables: ``column`` (the text; default a column named text / sentence / content /
caption, else the first column holding non-numeric strings), ``label_column`` (default a
column named label / labels / class, if present; "" for none), ``id_column`` (default a
column named id, if its values are unique). Every other column becomes metadata (numbers as
float64 with NaN for blanks, anything else as str). The texts are read into memory on open
(text is small next to the embeddings made from it).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from explorer.data._common import (LABEL_NAMES, chosen_column, column_array, encode_labels, find_column,
                                   fingerprint_files, is_text_column, str_array)
from explorer.data.base import Dataset
from explorer.data.registry import DATASETS
from explorer.core.errors import InputError

TEXT_NAMES = ("text", "sentence", "content", "caption", "document", "body", "review")
TABLE_OPTIONS = ("column", "label_column", "id_column")


class TextDataset(Dataset):
    """Texts held in memory; ``text(i)`` returns item ``i``."""

    def __init__(self, path: Path, fmt: str, texts: list, ids: np.ndarray,
                 labels: Optional[np.ndarray], label_names: list, metadata: dict,
                 options: dict) -> None:
        super().__init__(name=Path(path).stem, source=Path(path), kind="text", n=len(texts),
                         labels=labels, label_names=label_names, metadata=metadata, ids=ids,
                         options=options, format=fmt)
        self._texts = texts

    def text(self, i: int) -> str:
        return self._texts[i]

    def texts(self, indices) -> list:
        return [self._texts[int(i)] for i in indices]

    def fingerprint(self) -> str:
        """sha256 over format, options and the file's name, size, mtime (ns) and contents
        (up to 64 MiB)."""
        return fingerprint_files(self.format, self.options, self.source.parent, (self.source,))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start}).") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc}).") from None


def _no_options(path: Path, options: dict) -> None:
    if options:
        raise InputError(f"{path}: .txt files take no options (got {', '.join(options)}).")


@DATASETS.register("txt", label="Text lines (.txt)", extensions=(".txt",), priority=5)
def open_txt(path, **options) -> TextDataset:
    """A .txt file: one item a line (blank lines skipped); ids are the line numbers."""
    path = Path(path)
    _no_options(path, options)
    texts, lines = [], []
    for k, line in enumerate(_read_text(path).splitlines(), start=1):
        if line.strip():
            texts.append(line)
            lines.append(k)
    if not texts:
        raise InputError(f"{path}: the file has no non-blank lines.")
    return TextDataset(path, "txt", texts, str_array(lines), None, [],
                       {"line": np.asarray(lines, dtype=np.float64)}, {})


# -- tables --------------------------------------------------------------------------------------
def read_table(path: Path) -> tuple[list[str], list[list]]:
    """(column names, rows) of a .csv / .tsv (header row; the csv module) or .jsonl file.
    Values are str (csv) or JSON values (jsonl; nested ones re-encoded as JSON text)."""
    path = Path(path)
    suffix = path.suffix.lower()
    text = _read_text(path)
    if suffix == ".jsonl" or suffix == ".ndjson":
        cols: dict[str, None] = {}
        recs = []
        for k, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}: line {k} is not valid JSON ({exc.msg}).") from None
            if not isinstance(rec, dict):
                raise InputError(f"{path}: line {k} is not a JSON object.")
            recs.append(rec)
            for c in rec:
                cols.setdefault(c, None)
        names = list(cols)
        rows = [[_jsonable(r.get(c)) for c in names] for r in recs]
        return names, rows
    delim = "\t" if suffix in (".tsv", ".tab") else ","
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        reader = csv.reader(text.splitlines(), delimiter=delim)
        header = next(reader, None)
        rows = [r for r in reader if any(v.strip() for v in r)]
    except csv.Error as exc:
        raise InputError(f"{path}: not a valid {suffix[1:].upper()} table ({exc}).") from None
    if not header:
        raise InputError(f"{path}: the table is empty (no header row).")
    header = [h.strip() for h in header]
    for k, r in enumerate(rows):
        if len(r) != len(header):
            if len(r) < len(header):
                rows[k] = r + [""] * (len(header) - len(r))
            else:
                raise InputError(f"{path}: row {k + 2} has {len(r)} fields but the header has "
                                 f"{len(header)}.")
    return header, rows


def _jsonable(v):
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False)
    return v


def open_table(path, fmt: str, **options) -> Dataset:
    """A text table, or (.csv/.tsv whose item columns are all numbers) a table of vectors:
    see :mod:`explorer.data.vector_table`."""
    path = Path(path)
    bad = [k for k in options if k not in TABLE_OPTIONS]
    if bad:
        raise InputError(f"{path}: unknown option(s) {', '.join(bad)} (known: "
                         f"{', '.join(TABLE_OPTIONS)}).")
    if fmt in ("csv", "tsv"):
        from explorer.data.vector_table import fast_vectors

        vt = fast_vectors(path, fmt, _read_text(path), "\t" if fmt == "tsv" else ",", options)
        if vt is not None:
            return vt
    names, rows = read_table(path)
    if fmt in ("csv", "tsv"):
        from explorer.data.vector_table import vectors_from_rows

        vt = vectors_from_rows(path, fmt, names, rows, options)
        if vt is not None:
            return vt
    if not rows:
        raise InputError(f"{path}: the table has no rows.")
    cols = {c: [r[k] for r in rows] for k, c in enumerate(names)}

    text_col = chosen_column(path, options, "column", names, find_column(names, TEXT_NAMES)
                             or next((c for c in names if is_text_column(cols[c])), None))
    if text_col is None:
        raise InputError(f"{path}: no text column found (columns: {', '.join(names)}); "
                         f"choose one with the column option.")
    label_col = chosen_column(path, options, "label_column", names,
                              find_column([c for c in names if c != text_col], LABEL_NAMES))
    id_default = find_column(names, ("id",))
    if id_default is not None and len(set(map(str, cols[id_default]))) != len(rows):
        id_default = None
    id_col = chosen_column(path, options, "id_column", names, id_default)
    texts = ["" if v is None else str(v) for v in cols[text_col]]
    labels, label_names = (encode_labels(str_array(cols[label_col]), str(path))
                           if label_col else (None, []))
    if id_col:
        ids = str_array(cols[id_col])
        if len(set(ids.tolist())) != len(ids):
            raise InputError(f"{path}: the id column {id_col!r} has repeated values.")
    else:
        ids = str_array(range(len(rows)))
    metadata = {c: column_array(cols[c]) for c in names if c not in (text_col, label_col)}
    opts = {"column": text_col, "label_column": label_col or "", "id_column": id_col or ""}
    return TextDataset(path, fmt, texts, ids, labels, label_names, metadata, opts)


@DATASETS.register("csv", label="Table (.csv): texts or vectors", extensions=(".csv",), priority=5)
def open_csv(path, **options) -> Dataset:
    """A .csv table: texts (choose the column) or, when its columns are numbers, vectors."""
    return open_table(path, "csv", **options)


@DATASETS.register("tsv", label="Table (.tsv): texts or vectors", extensions=(".tsv", ".tab"), priority=5)
def open_tsv(path, **options) -> Dataset:
    """A .tsv table: texts (choose the column) or, when its columns are numbers, vectors."""
    return open_table(path, "tsv", **options)


@DATASETS.register("jsonl", label="JSON lines (.jsonl)", extensions=(".jsonl", ".ndjson"),
                   priority=5)
def open_jsonl(path, **options) -> TextDataset:
    """A .jsonl file, one object a line; choose the text field (column)."""
    return open_table(path, "jsonl", **options)
