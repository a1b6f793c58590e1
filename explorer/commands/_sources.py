"""What the headless commands share: the options that load an encoder, reading and checking
.npy arrays of vectors and labels, choosing stored embeddings, and checking that an encoder
can take a dataset's items. Every refusal is one sentence naming the file and the first bad
row, raised before any long work starts."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from explorer.commands._args import int_range
from explorer.core.errors import InputError, WorkspaceError, warn
from explorer.store import EMBEDDINGS


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
        group.add_argument("--image-size", type=int_range(1, 8192), metavar="S",
                           help="crop size in pixels, model input S x S (1-8192)")
        group.add_argument("--resize", type=int_range(1, 16384), metavar="R",
                           help="shorter side before the centre crop (1-16384; default: the model's, else S)")
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
    path = Path(path_s).expanduser()
    if not path.is_file():
        raise InputError(f"{path}: no such file.")
    try:
        a = np.load(path, allow_pickle=False)
    except Exception as exc:
        why = "the file is empty" if path.stat().st_size == 0 else exc.__class__.__name__
        raise InputError(f"{path}: cannot be read as a .npy array of {what} ({why}).") from None
    if not isinstance(a, np.ndarray):  # an .npz archive
        raise InputError(f"{path}: expected a .npy array of {what}, found an .npz archive.")
    if ndim is not None and a.ndim != ndim:
        shape = "(N, D)" if ndim == 2 else "(N,)"
        raise InputError(f"{path}: expected a {shape} array of {what}, found shape {a.shape}.")
    return a


def check_vectors(Z, where: str, min_rows: int = 2) -> np.ndarray:
    """``Z`` as a 2-D array of real, finite numbers with at least ``min_rows`` rows, or one
    sentence naming what is wrong (and the first bad row)."""
    Z = np.asarray(Z)
    if Z.dtype.kind == "c":
        raise InputError(f"{where}: the vectors are complex numbers; give real vectors "
                         "(e.g. np.concatenate([Z.real, Z.imag], axis=1)).")
    if Z.dtype.kind not in "biuf":
        raise InputError(f"{where}: expected numbers, found {Z.dtype} values.")
    if Z.ndim != 2:
        raise InputError(f"{where}: expected a (N, D) array of vectors, found shape {Z.shape}.")
    if Z.shape[0] < min_rows:
        raise InputError(f"{where}: {Z.shape[0]} rows; this needs at least {min_rows}.")
    if Z.shape[1] < 1:
        raise InputError(f"{where}: the vectors have no columns (shape {Z.shape}).")
    if Z.dtype.kind == "f":
        bad = first_nonfinite_row(Z)
        if bad is not None:
            raise InputError(f"{where}: row {bad} has NaN or infinite values; remove or fix it first.")
    return Z


def first_nonfinite_row(Z) -> Optional[int]:
    """Index of the first row of ``Z`` holding NaN or inf (blockwise, little extra memory)."""
    step = max(1, (1 << 24) // max(1, Z.shape[1] if Z.ndim > 1 else 1))
    for a in range(0, len(Z), step):
        ok = np.isfinite(Z[a:a + step]).reshape(len(Z[a:a + step]), -1).all(1)
        if not ok.all():
            return a + int(np.argmin(ok))
    return None


def warn_zero_rows(Z, where: str, metric: str = "cosine") -> None:
    """Warn (one sentence) when some rows are all zero under the cosine metric: their cosine
    similarity to anything is undefined, so their neighbours are arbitrary."""
    if metric != "cosine":
        return
    step = max(1, (1 << 24) // max(1, Z.shape[1]))
    zero = sum(int((~np.asarray(Z[a:a + step]).any(axis=1)).sum()) for a in range(0, len(Z), step))
    if zero:
        rows = "row is" if zero == 1 else "rows are"
        warn(f"{where}: {zero} {rows} all zero, so cosine similarity is undefined for them and their "
             "neighbours are arbitrary; use --metric euclidean or drop them.")


def load_vectors_npy(path_s: str, min_rows: int = 2) -> np.ndarray:
    """A checked (N, D) array of vectors from a .npy file (see :func:`check_vectors`)."""
    return check_vectors(load_npy(path_s, "vectors"), str(path_s), min_rows)


def check_labels(y, n: int, where: str, training: bool = False) -> Optional[np.ndarray]:
    """Labels as int64 class codes, one per row, or one sentence saying why they cannot be.

    Integers and booleans are class numbers; floats must be whole numbers (not NaN); strings
    are class names (coded in sorted order). ``training`` (a supervised objective): class
    numbers start at 0, -1 marks an unknown label, and at least two classes are needed.
    Otherwise a single class is warned about and the labels dropped (None): an accuracy over
    one class says nothing."""
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise InputError(f"{where}: expected {n} labels (one per row), found shape {y.shape}.")
    kind = y.dtype.kind
    if kind in "biu":
        codes = y.astype(np.int64)
    elif kind == "f":
        bad = np.flatnonzero(~np.isfinite(y))
        if bad.size:
            raise InputError(f"{where}: label {bad[0]} is {y[bad[0]]}; labels are class numbers or names, "
                             "and NaN is not a class.")
        frac = np.flatnonzero(y != np.round(y))
        if frac.size:
            raise InputError(f"{where}: label {frac[0]} is {y[frac[0]]:g}, not a whole number; labels are "
                             "class numbers or names, not measurements.")
        if np.abs(y).max(initial=0) >= 2**62:
            raise InputError(f"{where}: the labels are too large to be class numbers.")
        codes = y.astype(np.int64)
    elif kind in "US":
        _, codes = np.unique(y, return_inverse=True)
        codes = codes.reshape(-1).astype(np.int64)
    elif kind == "c":
        raise InputError(f"{where}: the labels are complex numbers; give class numbers or names.")
    else:
        raise InputError(f"{where}: expected class numbers or names, found {y.dtype} values.")
    if training:
        neg = np.flatnonzero(codes < -1)
        if neg.size:
            raise InputError(f"{where}: label {neg[0]} is {codes[neg[0]]}; class numbers start at 0 "
                             "(-1 marks an unknown label).")
        classes = np.unique(codes[codes >= 0])
        if classes.size < 2:
            raise InputError(f"{where}: {classes.size} class{'' if classes.size == 1 else 'es'} among the "
                             "known labels; a classifier needs at least two.")
        return codes
    if np.unique(codes).size < 2:
        warn(f"{where}: every label is the same class, so the probe accuracies are left out.")
        return None
    return codes


def load_labels(path_s: str, n: int, training: bool = False) -> Optional[np.ndarray]:
    """Checked labels from a .npy file (see :func:`check_labels`)."""
    return check_labels(load_npy(path_s, "labels"), n, str(path_s), training)


def stored_vectors(ws, key: str, path: str = "", min_rows: int = 2) -> np.ndarray:
    """The checked vectors of workspace embedding ``key``, or one sentence saying what is
    wrong with the record."""
    rec = ws.get(EMBEDDINGS, key, names=["vectors"])
    V = rec.arrays.get("vectors")
    where = f"{path or ws.name} (embedding {key[:12]})"
    if V is None:
        raise WorkspaceError(f"{where}: the record has no vectors (it is damaged); run embed again.")
    return check_vectors(V, where, min_rows)


def check_encoder_fits(dataset, encoder) -> None:
    """Refuse, before any work, a dataset the encoder cannot take: another kind of input
    (images into a vector MLP), or vectors of another width than the model's first layer
    (tried on two rows)."""
    kind = encoder.preprocess.kind
    if dataset.kind != kind:
        raise InputError(f"{dataset.name} holds {dataset.kind} items but encoder {encoder.name} takes "
                         f"{kind} input; choose a matching dataset or encoder.")
    if kind != "vector" or len(dataset) == 0:
        return
    import torch

    rows = np.asarray(dataset.vectors(np.arange(min(2, len(dataset)))))
    if rows.dtype.kind == "c":
        raise InputError(f"{dataset.name}: the vectors are complex numbers; give real vectors.")
    module = encoder.module
    if not isinstance(module, torch.nn.Module):
        return
    was_training = module.training
    try:
        module.eval()
        device = next((p.device for p in module.parameters()), torch.device("cpu"))
        with torch.no_grad():
            module(torch.as_tensor(rows, dtype=torch.float32, device=device).reshape(len(rows), -1))
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        msg = " ".join(str(exc).split())[:120]
        raise InputError(f"Encoder {encoder.name} cannot take the {rows.reshape(len(rows), -1).shape[1]}-wide "
                         f"vectors of {dataset.name} ({msg}).") from None
    finally:
        module.train(was_training)


def select_records(ws, model=None, layer=None, path="", key=None) -> list:
    """[(key, attrs)] of the workspace's embeddings matching key / model / layer; InputError
    (listing what is stored) when none does."""
    all_ = ws.list(EMBEDDINGS)
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
