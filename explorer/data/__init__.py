"""Datasets: a registry of formats, each one small module.

    from explorer.data import open_dataset, attach_metadata, DATASETS
    ds = open_dataset("photos/")                      # image folder, one subfolder per class
    ds = open_dataset("feats.h5", key="x", labels_key="y")
    ds = attach_metadata(ds, "extra.csv", id_column="file")

Built-in formats: image-folder, npy, npz, hdf5, txt, csv, tsv (texts, or vectors when the
columns are numbers), jsonl, projector (TensorBoard vectors.tsv + metadata.tsv, as a file or a
folder), parquet, arrow (Arrow IPC / Feather), hf-datasets (a ``save_to_disk`` folder) and
torch-tensor (a ``.pt`` file holding one tensor). Third-party formats register through the
``embedding_explorer.datasets`` entry-point group.
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
from explorer.data import tables as _tables  # noqa: E402,F401
from explorer.data import tensor_file as _tensor_file  # noqa: E402,F401
from explorer.data import text as _text  # noqa: E402,F401
from explorer.data import workspace_vectors as _workspace_vectors  # noqa: E402,F401
from explorer.data.metadata import attach_metadata  # noqa: E402
from explorer.core.errors import InputError

__all__ = ["Dataset", "KINDS", "DATASETS", "open_dataset", "attach_metadata", "formats", "query_items"]


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


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def query_items(items, kind: Optional[str] = None) -> Dataset:
    """A small dataset of new inputs to embed on the fly as neighbour queries: image files
    (``kind="image"``, or inferred from the suffixes) or texts (``kind="text"``)."""
    from explorer.data.images import ImageFolderDataset
    from explorer.data.text import TextDataset

    items = [str(i) for i in items]
    if not items:
        raise InputError("Give at least one image file or text to search with.")
    if kind is None:
        kind = "image" if all(i.lower().endswith(IMAGE_SUFFIXES) for i in items) else "text"
    if kind == "image":
        paths = [Path(i).expanduser().resolve() for i in items]
        for p in paths:
            if not p.is_file():
                raise InputError(f"{p}: no such image file.")
        import os

        common = Path(os.path.commonpath([str(p.parent) for p in paths]))
        ds = ImageFolderDataset(common, [str(p.relative_to(common)) for p in paths])
        ds.labels, ds.label_names = None, []
        ds.name = "query"
        return ds
    if kind == "text":
        import numpy as np

        return TextDataset(Path("query"), "query", items, np.array([f"query {i}" for i in range(len(items))], dtype=object),
                           None, [], {}, {})
    raise InputError(f"Query items must be images or texts, not {kind!r}.")
