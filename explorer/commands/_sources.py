"""What the headless commands share: the options that load an encoder, reading a .npy array and
choosing stored embeddings."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from explorer.errors import InputError


def add_encoder_options(group, trust: bool = True, layer: bool = True, pooling: bool = True,
                        preprocess: bool = True) -> None:
    """How a checkpoint becomes a model, on a parser or argument group: ``--arch`` or
    ``--factory`` (one of them), ``--submodel``, and optionally ``--trust``, ``--layer``,
    ``--pooling`` and the preprocessing (``--image-size``, ``--resize``, ``--interpolation``,
    ``--mean``, ``--std``, ``--input-kind``). :func:`encoder_options` turns them into
    :func:`explorer.encoders.open_encoder` keywords."""
    g = group.add_mutually_exclusive_group()
    g.add_argument("--arch", metavar="NAME",
                   help="registered architecture for a weights-only file: small_cnn, mlp, a torchvision "
                        "name (resnet50, vit_b_16, ...) or timm:NAME (with the [vision] extra)")
    g.add_argument("--factory", metavar="FILE:FN", help="your function (FILE.py:FUNCTION) that builds the model")
    group.add_argument("--submodel", metavar="NAME",
                       help="which network of a checkpoint holding several (e.g. encoder_q, teacher)")
    if trust:
        group.add_argument("--trust", action="store_true",
                           help="allow loading a fully pickled model (runs code from the file)")
    if layer:
        group.add_argument("--layer", metavar="NAME", help="submodule whose output is the embedding")
    if pooling:
        group.add_argument("--pooling", metavar="P", default="auto",
                           choices=("auto", "avg", "cls", "mean", "flatten", "none"),
                           help="auto, avg, cls, mean, flatten or none (default: auto)")
    if preprocess:
        group.add_argument("--image-size", type=int, metavar="S", help="crop size in pixels (model input S x S)")
        group.add_argument("--resize", type=int, metavar="R",
                           help="shorter side before the centre crop (default: the model's, else S)")
        group.add_argument("--interpolation", choices=("bilinear", "bicubic"), help="resize interpolation")
        group.add_argument("--mean", metavar="A,B,C", help="per-channel mean (after scaling to [0, 1])")
        group.add_argument("--std", metavar="A,B,C", help="per-channel standard deviation")
        group.add_argument("--input-kind", choices=("image", "vector", "text"),
                           help="what the model takes (default: declared by the model, else follows the data)")


def preprocess_options(args) -> Optional[dict]:
    """The preprocessing fields set on the command line (None: none was)."""
    from explorer.encoders.report import channel_values

    d: dict = {}
    for flag, key in (("image_size", "size"), ("resize", "resize"), ("interpolation", "interpolation"),
                      ("input_kind", "kind")):
        v = getattr(args, flag, None)
        if v is not None:
            if key in ("size", "resize") and v < 1:
                raise InputError(f"--{flag.replace('_', '-')} must be at least 1, not {v}.")
            d[key] = v
    for flag in ("mean", "std"):
        v = getattr(args, flag, None)
        if v is not None:
            d[flag] = tuple(channel_values(v, f"--{flag}", positive=flag == "std"))
    if "resize" in d and "size" in d and d["resize"] < d["size"]:
        raise InputError(f"--resize ({d['resize']}) must be at least --image-size ({d['size']}).")
    return d or None


def encoder_options(args) -> dict:
    """Keywords for :func:`explorer.encoders.open_encoder` from :func:`add_encoder_options`."""
    opts = {"arch": getattr(args, "arch", None), "factory": getattr(args, "factory", None),
            "submodel": getattr(args, "submodel", None), "preprocess": preprocess_options(args)}
    for k in ("trust", "layer"):
        if getattr(args, k, None) is not None:
            opts[k] = getattr(args, k)
    if getattr(args, "pooling", None) is not None:
        opts["pooling"] = args.pooling
    return opts


def print_encoder_notes(encoder, quiet: bool = False) -> None:
    if encoder is None or quiet:
        return
    import sys

    from explorer.encoders.report import encoder_notes

    for line in encoder_notes(encoder):
        print(line, file=sys.stderr)


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
