"""Exporting a selection: a table of ids, labels and metadata, or the vectors themselves."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Optional

import numpy as np

from explorer.core.errors import InputError


def export_selection(path: str | os.PathLike, dataset, indices, vectors: Optional[np.ndarray] = None,
                     model: Optional[str] = None) -> Path:
    """Write the selected items to ``path``, atomically.

    ``.csv``/``.tsv``: one row per item: index, id, label and every metadata column.
    ``.npy``: the (n, D) float32 vectors of ``model``. ``.h5``/``.hdf5``: vectors, indices, ids
    and labels in one file.
    """
    path = Path(path)
    idx = np.asarray(indices, dtype=np.int64)
    if dataset is None:
        raise InputError("No dataset is open, so there is nothing to export.")
    if idx.size == 0:
        raise InputError("Nothing is selected, so there is nothing to export.")
    suffix = path.suffix.lower()
    if suffix in (".npy", ".h5", ".hdf5") and vectors is None:
        raise InputError(f"{path.name}: the current model has no vectors yet; embed the dataset first.")
    if suffix not in (".csv", ".tsv", ".npy", ".h5", ".hdf5"):
        raise InputError(f"{path.name}: choose .csv, .tsv, .npy or .h5 to export a selection.")
    if not path.parent.exists():
        raise InputError(f"{path.parent}: no such folder.")
    from explorer.store import atomic_file

    with atomic_file(path, "the export file") as tmp:
        if suffix in (".csv", ".tsv"):
            cols = dataset.columns()
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f, delimiter="\t" if suffix == ".tsv" else ",")
                w.writerow(["index", "id", *cols.keys()])
                for i in idx:
                    ident = dataset.ids[i] if dataset.ids is not None else i
                    w.writerow([int(i), ident, *(c[i] for c in cols.values())])
        elif suffix == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, np.asarray(vectors[idx], dtype=np.float32))
        elif suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(tmp, "w") as f:
                f.create_dataset("vectors", data=np.asarray(vectors[idx], dtype=np.float32))
                f.create_dataset("indices", data=idx)
                if dataset.ids is not None:
                    f.create_dataset("ids", data=np.asarray(dataset.ids[idx]).astype(str).astype(object),
                                     dtype=h5py.string_dtype())
                if dataset.labels is not None:
                    f.create_dataset("labels", data=dataset.labels[idx])
                    f.attrs["label_names"] = [str(n) for n in dataset.label_names]
                f.attrs["model"] = model or ""
    return path
