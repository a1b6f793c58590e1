"""Encoders: the formats that load a model (a registry), the layer hook and the pooling.

    enc = open_encoder("runs/epoch10.ckpt", arch="small_cnn", layer="features.block3")
    vecs = embed_batch(enc, images)          # (B, D) float32

Formats (each one module, registered in :data:`ENCODERS`): ``torchscript``, ``state_dict``
(.pt/.pth/.ckpt/.bin with an architecture; pickled modules only when trusted),
``safetensors``, ``hf`` (local Hugging Face folder, [hf] extra), ``onnx`` ([onnx] extra).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from explorer.encoders import hf as _hf  # noqa: F401  (registers the format)
from explorer.encoders import onnx as _onnx  # noqa: F401
from explorer.encoders import torchscript as _torchscript  # noqa: F401
from explorer.encoders import weights as _weights  # noqa: F401
from explorer.encoders.base import POOLINGS, Encoder, Preprocess
from explorer.encoders.hooks import embed_batch, forward_layer, layer_shapes, pool, pooled_dim
from explorer.encoders.registry import ENCODERS
from explorer.errors import InputError

__all__ = ["ENCODERS", "Encoder", "Preprocess", "POOLINGS", "open_encoder", "reopen_encoder",
           "embed_batch", "forward_layer", "layer_shapes", "pool", "pooled_dim", "set_layer"]


def set_layer(encoder: Encoder, layer: Optional[str] = None, pooling: Optional[str] = None) -> Encoder:
    """Choose the embedding layer and/or pooling of ``encoder`` (checked), in place; returns it."""
    if pooling is not None:
        if pooling not in POOLINGS:
            raise InputError(f"Unknown pooling {pooling!r}; use one of {', '.join(POOLINGS)}.")
        encoder.pooling = pooling
    if layer is not None:
        if layer == "":
            encoder.layer = None
            return encoder
        names = encoder.layers()
        if layer not in names:
            if not names:
                raise InputError(f"{encoder.name} ({encoder.format}) cannot be hooked: only its output "
                                 f"can be the embedding, so leave the layer unset.")
            import difflib

            close = difflib.get_close_matches(layer, names, n=3)
            hint = f"did you mean {', '.join(close)}?" if close else f"its layers include {', '.join(names[:6])}"
            raise InputError(f"{encoder.name} has no layer {layer!r}; {hint}.")
        encoder.layer = layer
    return encoder


def open_encoder(path: str | Path, fmt: Optional[str] = None, *, arch: Any = None, factory: Any = None,
                 trust: bool = False, layer: Optional[str] = None, pooling: str = "auto",
                 preprocess: Any = None, arch_kwargs: Optional[dict] = None) -> Encoder:
    """Open the model at ``path`` as an :class:`Encoder` (module in eval mode, on the CPU).

    fmt: a format name from :data:`ENCODERS` (default: detected from the file).
    arch: a built-in architecture name or ``"file.py:function"``; factory: ``"file.py:function"``
    or a callable (wins over ``arch``) -- both only for weights-only files; without them the
    checkpoint's metadata (``arch`` key or ``<file>.json`` sidecar) or the single built-in
    architecture the weights fit is used. trust: allow pickled Python objects (runs code from
    the file). layer: the submodule whose output is the embedding (None: the output, or the
    checkpoint's metadata). pooling: one of :data:`POOLINGS` ("auto" keeps the metadata's).
    preprocess: a :class:`Preprocess` or dict overriding the checkpoint's/architecture's.
    arch_kwargs: keyword arguments for the architecture.

    Raises InputError / CheckpointError with one sentence naming the file.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"{p}: no such file or folder.")
    if fmt:
        entry = ENCODERS.get(fmt)
    else:
        found = ENCODERS.find(p)
        if found:
            entry = found[0]
        elif p.is_file():  # unknown extension: the safe weights reader says what the file is
            entry = ENCODERS.get("state_dict")
        else:
            raise InputError(f"{p}: this folder is not a model Embedding Explorer can read "
                             f"(known formats: {', '.join(ENCODERS.names())}).")
    enc = entry.func(p, arch=arch, factory=factory, trust=trust, arch_kwargs=arch_kwargs,
                     preprocess=preprocess)
    if enc.layer and enc.layer not in enc.layers():  # a stale layer name in metadata
        enc.info["metadata_layer_ignored"] = enc.layer
        enc.layer = None
    set_layer(enc, layer, None if (pooling == "auto" and enc.pooling != "auto") else pooling)
    return enc


def reopen_encoder(description: dict, trust: bool = False) -> Encoder:
    """Open an encoder again from its :meth:`Encoder.describe` (a saved session)."""
    try:
        source = description["source"]
    except KeyError:
        raise InputError("The saved encoder has no source file.") from None
    return open_encoder(source, description.get("format"), arch=description.get("factory") or description.get("arch")
                        if description.get("format") in ("state_dict", "safetensors") else None,
                        trust=trust, layer=description.get("layer"),
                        pooling=description.get("pooling") or "auto",
                        preprocess=description.get("preprocess"),
                        arch_kwargs=description.get("arch_kwargs"))
