"""What the headless commands share: the options that load an encoder, reading a .npy array and
choosing stored embeddings."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from explorer.errors import InputError


def add_encoder_options(group, trust: bool = True, layer: bool = True, pooling: bool = True) -> None:
    """How a checkpoint becomes a model, on a parser or argument group: ``--arch`` or
    ``--factory`` (one of them), and optionally ``--trust``, ``--layer`` and ``--pooling``."""
    g = group.add_mutually_exclusive_group()
    g.add_argument("--arch", metavar="NAME", help="built-in architecture for a weights-only file")
    g.add_argument("--factory", metavar="FILE:FN", help="your function (FILE.py:FUNCTION) that builds the model")
    if trust:
        group.add_argument("--trust", action="store_true",
                           help="allow loading a fully pickled model (runs code from the file)")
    if layer:
        group.add_argument("--layer", metavar="NAME", help="submodule whose output is the embedding")
    if pooling:
        group.add_argument("--pooling", metavar="P", default="auto",
                           choices=("auto", "avg", "cls", "mean", "flatten", "none"),
                           help="auto, avg, cls, mean, flatten or none (default: auto)")


def load_npy(path_s: str, what: str = "vectors", ndim: Optional[int] = None) -> np.ndarray:
    """A .npy array (never unpickled), or one sentence saying why not."""
    path = Path(path_s)
    if not path.is_file():
        raise InputError(f"{path}: no such file.")
    try:
        a = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise InputError(f"{path}: cannot be read as a .npy array of {what} ({exc.__class__.__name__}).") from None
    if ndim is not None and a.ndim != ndim:
        shape = "(N, D)" if ndim == 2 else "(N,)"
        raise InputError(f"{path}: expected a {shape} array of {what}, found shape {a.shape}.")
    return a


def select_records(ws, model=None, layer=None, path="", key=None) -> list:
    """[(key, attrs)] of the workspace's embeddings matching key / model / layer; InputError
    (listing what is stored) when none does."""
    all_ = ws.list("embeddings")
    if not all_:
        raise InputError(f"{path}: the workspace holds no embeddings; run `embedding-explorer embed` first.")
    recs = [(k, a) for k, a in all_ if (key is None or k == key)
            and (model is None or a.get("model") == model)
            and (layer is None or str(a.get("layer")) == str(layer))]
    if not recs:
        raise InputError(f"{path}: no stored embedding matches --model/--layer; stored: {describe(all_)}.")
    return recs


def describe(records) -> str:
    return "; ".join(f"{k[:12]} (model {a.get('model')}, layer {a.get('layer')}, dataset {a.get('dataset')})"
                     for k, a in records)
