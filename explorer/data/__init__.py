"""Datasets: a registry of formats, each one small module.

    from explorer.data import open_dataset, attach_metadata, DATASETS
    ds = open_dataset("photos/")                      # image folder, one subfolder per class
    ds = open_dataset("feats.h5", key="x", labels_key="y")
    ds = attach_metadata(ds, "extra.csv", id_column="file")

Built-in formats: image-folder, npy, npz, hdf5, txt, csv, tsv, jsonl, projector
(TensorBoard vectors.tsv + metadata.tsv, as a file or a folder). Third-party formats
register through the ``embedding_explorer.datasets`` entry-point group.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from explorer.data.base import KINDS, Dataset
from explorer.data.registry import DATASETS

# Importing the built-in formats registers them.
from explorer.data import arrays as _arrays  # noqa: E402,F401
from explorer.data import images as _images  # noqa: E402,F401
from explorer.data import projector as _projector  # noqa: E402,F401
from explorer.data import text as _text  # noqa: E402,F401
from explorer.data.metadata import attach_metadata  # noqa: E402
from explorer.errors import InputError

__all__ = ["Dataset", "KINDS", "DATASETS", "open_dataset", "attach_metadata", "formats"]


def open_dataset(path, fmt: Optional[str] = None, **options) -> Dataset:
    """Open ``path`` with format ``fmt`` (a registry name) or the best format that accepts it.

    Raises :class:`InputError` (one sentence naming the file) for a missing path, an
    unsupported file and any problem the format finds.
    """
    p = Path(path).expanduser()
    if not fmt and p.is_file() and not DATASETS.find(p):
        # No format accepts it; if one claims the extension, let it say what is wrong
        # (an HDF5 workspace, a .tsv that is neither a table nor vectors...).
        claim = next((e for e in DATASETS.entries() if e.extensions and not e.directory
                      and p.name.lower().endswith(e.extensions)), None)
        if claim is not None:
            fmt = claim.name
    entry = DATASETS.for_path(p, fmt)
    if fmt and entry.directory != p.is_dir():
        raise InputError(f"{p}: the {entry.name} format reads "
                         f"{'folders' if entry.directory else 'files'}, not "
                         f"{'a folder' if p.is_dir() else 'a file'}.")
    try:
        ds = entry.func(p, **options)
    except InputError:
        raise
    except (OSError, ValueError) as exc:
        raise InputError(f"{p}: cannot be read as {entry.label} ({exc}).") from None
    if not ds.format:
        ds.format = entry.name
    return ds


def formats() -> list[dict]:
    """The dataset formats, best first: name, label, extensions, folder or file, description."""
    return [{"name": e.name, "label": e.label, "extensions": list(e.extensions),
             "directory": e.directory, "description": e.description}
            for e in DATASETS.entries()]
