"""An Embedding Explorer workspace opened as a dataset: the vectors of one of its embeddings
records (a cluster ``embed`` run, a precomputed set) as a vector dataset.

A record with more than :data:`explorer.scale.out_of_core.OUT_OF_CORE_ROWS` rows (or when
``out_of_core=True``) is read out of core: nothing is loaded on open, and the app maps it with
a sample-fitted PCA applied in one streaming pass (see :mod:`explorer.scale.out_of_core`); smaller
records are read into memory like any vector file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from explorer.data.base import Dataset
from explorer.data.registry import DATASETS
from explorer.core.errors import InputError

WORKSPACE_FORMAT = "embedding-explorer-workspace"


def _embedding_records(path: Path) -> Optional[list]:
    """(key, rows) of the embeddings records of the workspace at ``path``, biggest first;
    None when it is not a workspace."""
    import h5py

    try:
        if not h5py.is_hdf5(path):
            return None
        with h5py.File(path, "r", locking=False) as f:
            fmt = f.attrs.get("format")
            if isinstance(fmt, bytes):
                fmt = fmt.decode("utf-8", "replace")
            if fmt != WORKSPACE_FORMAT:
                return None
            g = f.get("embeddings")
            recs = [] if g is None else [(k, int(g[k]["vectors"].shape[0])) for k in g.keys()
                                         if "vectors" in g[k] and g[k]["vectors"].ndim == 2]
    except OSError:
        return None
    return sorted(recs, key=lambda r: -r[1])


def _sniff(path: Path) -> bool:
    recs = _embedding_records(Path(path))
    return bool(recs)


class WorkspaceVectors(Dataset):
    """The vectors of one embeddings record; ``stored_embedding()`` gives ``(key, lazy
    vectors)`` when it is opened out of core (the app then uses them as they are, no copy)."""

    def __init__(self, path: Path, key: str, lazy, attrs: dict, out_of_core: bool, options: dict) -> None:
        model = attrs.get("model") or "vectors"
        super().__init__(name=f"{path.stem}:{model}", source=path, kind="vector", n=int(lazy.shape[0]),
                         ids=None, options=options, format="workspace")
        self.key, self._lazy, self.attrs, self.out_of_core = key, lazy, dict(attrs), bool(out_of_core)
        self.dim = int(lazy.shape[1])

    def vectors(self, indices=None) -> np.ndarray:
        if indices is None:
            return np.asarray(self._lazy, dtype=np.float32)
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(idx) and (idx.min() < 0 or idx.max() >= self.n):
            raise IndexError(f"index out of range for {self.n} items")
        if len(idx) and np.all(np.diff(idx) == 1):
            return self._lazy.read(int(idx[0]), int(idx[-1]) + 1)
        return self._lazy.take(idx)

    def fingerprint(self) -> str:
        """The record's content key (records are content-addressed) with its shape."""
        from explorer.store import content_key

        return content_key("workspace-record", self.key, self.n, self.dim, self.attrs.get("stored_dtype", "float32"))

    def stored_embedding(self):
        return (self.key, self._lazy) if self.out_of_core else None


@DATASETS.register("workspace", label="Embedding Explorer workspace (its embeddings)", extensions=(".h5",),
                   priority=20, sniff=_sniff)
def open_workspace_vectors(path, key: Optional[str] = None, out_of_core: Optional[bool] = None,
                           **options) -> WorkspaceVectors:
    """The vectors of an embeddings record of a workspace (``key``; default the biggest),
    read out of core when large."""
    from explorer.scale.out_of_core import OUT_OF_CORE_ROWS
    from explorer.store import EMBEDDINGS, Workspace

    path = Path(path)
    if options:
        raise InputError(f"{path}: a workspace takes the option key, not {', '.join(sorted(options))}.")
    recs = _embedding_records(path)
    if recs is None:
        raise InputError(f"{path} is not an Embedding Explorer workspace.")
    if not recs:
        raise InputError(f"{path} holds no embeddings; run `embedding-explorer embed` into it first.")
    keys = [k for k, _ in recs]
    if key is None:
        key = keys[0]
    elif key not in keys:
        raise InputError(f"{path} has no embeddings record {key}; it has {', '.join(k[:12] for k in keys[:5])}.")
    from explorer.core.errors import WorkspaceError

    try:
        ws = Workspace(path)
        lazy = ws.lazy(EMBEDDINGS, key, "vectors")
        attrs = dict(ws.list(EMBEDDINGS)).get(key, {})
    except WorkspaceError as exc:
        raise InputError(str(exc)) from None
    ooc = len(lazy) > OUT_OF_CORE_ROWS if out_of_core is None else bool(out_of_core)
    opts = {"key": key} if out_of_core is None else {"key": key, "out_of_core": bool(out_of_core)}
    return WorkspaceVectors(path, key, lazy, attrs, ooc, opts)
