"""The TensorBoard Embedding Projector pair: ``vectors.tsv`` (one vector a line, values
separated by tabs, no header) and ``metadata.tsv`` next to it.

Metadata follows TensorBoard's convention: with more than one column the first row is the
header; a single column has no header (it is taken as the label). A single-column file with
one line more than there are vectors is read as having a header. A column named label /
labels / class (or the single headerless column) gives the labels; every column is also
metadata. Open ``vectors.tsv``, ``metadata.tsv`` or the folder holding them; the standalone
projector's ``*_vectors.tsv`` / ``*_metadata.tsv`` and ``tensors.tsv`` names work too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from explorer.data._common import (LABEL_NAMES, column_array, encode_labels, find_column,
                                   fingerprint_files, str_array)
from explorer.data.base import Dataset
from explorer.data.registry import DATASETS
from explorer.data.vector_table import index_header
from explorer.core.errors import InputError


def _vector_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".tsv"
                  and ("vectors" in p.name.lower() or p.name.lower() == "tensors.tsv"))


def _metadata_for(vectors: Path) -> Optional[Path]:
    name = vectors.name
    for cand in (name.replace("vectors", "metadata").replace("tensors", "metadata"),
                 "metadata.tsv"):
        p = vectors.with_name(cand)
        if cand != name and p.is_file():
            return p
    return None


def _vectors_for(metadata: Path) -> Optional[Path]:
    for cand in (metadata.name.replace("metadata", "vectors"), "vectors.tsv", "tensors.tsv"):
        p = metadata.with_name(cand)
        if cand != metadata.name and p.is_file():
            return p
    return None


def _numeric_line(line: str) -> bool:
    parts = line.rstrip("\r\n").split("\t")
    if len(parts) < 2:
        return False
    try:
        [float(x) for x in parts]
    except ValueError:
        return False
    return True


def _first_line(path: Path) -> str:
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for line in f:
            if line.strip():
                return line
    return ""


def _sniff_file(path: Path) -> bool:
    low = path.name.lower()
    if "metadata" in low:
        return _vectors_for(path) is not None
    return _numeric_line(_first_line(path))  # vectors: tab-separated numbers, no header


def _sniff_folder(path: Path) -> bool:
    return len(_vector_files(path)) >= 1


class ProjectorDataset(Dataset):
    """Precomputed vectors from a TensorBoard projector export (kind "vector")."""

    def __init__(self, vectors_path: Path, metadata_path: Optional[Path], data: np.ndarray,
                 labels, label_names, metadata: dict) -> None:
        super().__init__(name=vectors_path.parent.name if vectors_path.stem == "vectors"
                         else vectors_path.stem, source=vectors_path, kind="vector",
                         n=len(data), labels=labels, label_names=label_names,
                         metadata=metadata, ids=str_array(range(len(data))), options={},
                         format="projector")
        self.metadata_path = metadata_path
        self._data = data
        self.dim = int(data.shape[1])

    def vectors(self, indices=None) -> np.ndarray:
        if indices is None:
            return self._data
        return self._data[np.asarray(indices, dtype=np.int64).reshape(-1)]

    def fingerprint(self) -> str:
        """sha256 over the vectors file (name, size, mtime, contents up to 64 MiB); the
        metadata file does not change the vectors and is left out."""
        return fingerprint_files(self.format, self.options, self.source.parent, (self.source,))


def _read_vectors(path: Path) -> np.ndarray:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot be read ({exc}).") from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) > 1 and index_header(lines[0].split("\t"), [ln.split("\t") for ln in lines[1:101]]):
        # a header of column numbers (0..D-1, as pandas writes it) is not a vector
        text = text.split(lines[0], 1)[1]
        lines = lines[1:]
    if not lines:
        raise InputError(f"{path}: the vectors file is empty.")
    d = len(lines[0].split("\t"))
    try:
        flat = np.array(text.split(), dtype=np.float32)
    except ValueError:
        bad = next(k for k, ln in enumerate(lines, 1) if not _numeric_line(ln + "\t0"))
        raise InputError(f"{path}: line {bad} is not tab-separated numbers.") from None
    if flat.size != len(lines) * d:
        bad = next((k for k, ln in enumerate(lines, 1) if len(ln.split("\t")) != d), None)
        raise InputError(f"{path}: line {bad} has a different number of values than line 1 "
                         f"({d}).")
    return flat.reshape(len(lines), d)


def _read_metadata(path: Path, n: int) -> tuple[list[str], list[list[str]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot be read ({exc}).") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    rows = [ln.split("\t") for ln in lines]
    if not rows:
        raise InputError(f"{path}: the metadata file is empty.")
    multi = len(rows[0]) > 1
    if multi or len(rows) == n + 1:
        header, body = [h.strip() for h in rows[0]], rows[1:]
    else:
        header, body = ["label"], rows
    if len(body) != n:
        raise InputError(f"{path}: {len(body)} metadata rows for {n} vectors (TensorBoard "
                         f"wants a header row when there is more than one column).")
    width = len(header)
    body = [r + [""] * (width - len(r)) if len(r) < width else r[:width] for r in body]
    return header, body


@DATASETS.register("projector", label="TensorBoard projector (vectors.tsv)",
                   extensions=(".tsv",), priority=20, sniff=_sniff_file)
def open_projector(path, **options) -> ProjectorDataset:
    """TensorBoard projector vectors.tsv (+ metadata.tsv): precomputed embeddings."""
    path = Path(path)
    if options:
        raise InputError(f"{path}: the projector format takes no options "
                         f"(got {', '.join(options)}).")
    if path.is_dir():
        found = _vector_files(path)
        if not found:
            raise InputError(f"{path}: no vectors.tsv in this folder.")
        if len(found) > 1:
            raise InputError(f"{path}: several vector files ({', '.join(p.name for p in found)}); "
                             f"open one of them.")
        vpath = found[0]
    elif "metadata" in path.name.lower():
        vpath = _vectors_for(path)
        if vpath is None:
            raise InputError(f"{path}: no vectors.tsv next to this metadata file.")
    else:
        vpath = path
    data = _read_vectors(vpath)
    mpath = _metadata_for(vpath)
    labels, names, metadata = None, [], {}
    if mpath is not None:
        header, body = _read_metadata(mpath, len(data))
        cols = {c: [r[k] for r in body] for k, c in enumerate(header)}
        lab = find_column(header, LABEL_NAMES)
        if lab is not None:
            labels, names = encode_labels(str_array(cols[lab]), str(mpath))
        metadata = {c: column_array(v) for c, v in cols.items()}
    return ProjectorDataset(vpath, mpath, data, labels, names, metadata)


@DATASETS.register("projector-folder", label="TensorBoard projector folder", directory=True,
                   priority=20, sniff=_sniff_folder)
def open_projector_folder(path, **options) -> ProjectorDataset:
    """A folder holding a TensorBoard projector vectors.tsv (+ metadata.tsv)."""
    return open_projector(path, **options)
