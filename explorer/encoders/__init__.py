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
from explorer.encoders import timm_folder as _timm_folder  # noqa: F401
from explorer.encoders import torchscript as _torchscript  # noqa: F401
from explorer.encoders import weights as _weights  # noqa: F401
from explorer.encoders.base import DEFAULTS_NOTE, POOLINGS, Encoder, Preprocess
from explorer.encoders.hooks import embed_batch, forward_layer, layer_shapes, pool, pooled_dim
from explorer.encoders.registry import ENCODERS
from explorer.core.errors import InputError

__all__ = ["ENCODERS", "Encoder", "Preprocess", "POOLINGS", "open_encoder", "reopen_encoder",
           "match_input_kind", "input_kind_declared",
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
                 preprocess: Any = None, arch_kwargs: Optional[dict] = None,
                 submodel: Optional[str] = None) -> Encoder:
    """Open the model at ``path`` as an :class:`Encoder` (module in eval mode, on the CPU).

    fmt: a format name from :data:`ENCODERS` (default: detected from the file).
    arch: a registered architecture name (built-in, torchvision/timm with the [vision] extra,
    or a plugin's) or ``"file.py:function"``; factory: ``"file.py:function"`` or a callable
    (wins over ``arch``) -- both only for weights-only files; without them the checkpoint's
    metadata (``arch`` key or ``<file>.json`` sidecar, registered names only) or the single
    built-in architecture the weights fit is used. trust: allow pickled Python objects (runs
    code from the file). layer: the submodule whose output is the embedding (None: the output,
    or the checkpoint's metadata). pooling: one of :data:`POOLINGS` ("auto" keeps the
    metadata's; ``cls``/``mean`` with no layer use a ViT's token sequence). preprocess: a
    :class:`Preprocess` (replaces) or a dict of the fields to change (``{"size": 224}``) on top
    of what the model declares. arch_kwargs: keyword arguments for the architecture.
    submodel: which network of a checkpoint holding several (MoCo ``encoder_q``/``encoder_k``,
    DINO ``teacher``/``student``...; see :mod:`explorer.encoders.submodels`).

    ``info["preprocess_source"]`` says where the preprocessing came from; when the output looks
    like classifier logits, ``info["output_looks_like_logits"]`` says so and names the layer
    before. Raises InputError / CheckpointError with one sentence naming the file.
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
    whole = preprocess if isinstance(preprocess, Preprocess) else None
    enc = entry.func(p, arch=arch, factory=factory, trust=trust, arch_kwargs=arch_kwargs,
                     preprocess=whole, submodel=submodel)
    if preprocess is not None and whole is None:
        from explorer.encoders.checkpoint import merge_preprocess

        changed = preprocess if isinstance(preprocess, dict) else {}
        enc.preprocess = merge_preprocess(enc.preprocess, preprocess, "preprocess")
        src = enc.info.get("preprocess_source") or f"the {enc.format} model"
        if src.startswith("defaults"):
            src = "defaults"
        enc.info["preprocess_source"] = f"{src}, then set by the user ({', '.join(sorted(changed)) or 'all'})"
        if "kind" in changed or not changed:
            enc.info["input_kind_declared"] = True
    elif whole is not None:
        enc.info["preprocess_source"] = "set by the user"
    enc.info.setdefault("preprocess_source", f"the {enc.format} model")
    if enc.layer and enc.layer not in enc.layers():  # a stale layer name in metadata
        enc.info["metadata_layer_ignored"] = enc.layer
        enc.layer = None
    set_layer(enc, layer, None if (pooling == "auto" and enc.pooling != "auto") else pooling)
    seq = enc.info.get("sequence_layer")
    if not enc.layer and enc.pooling in ("cls", "mean") and seq:
        enc.layer = seq
        enc.info["layer_for_pooling"] = f"{enc.pooling} pooling reads the token sequence of {seq}"
    if not enc.layer and not enc.info.get("head_removed"):
        from explorer.encoders.hooks import logits_hint

        hint = logits_hint(enc.module)
        if hint:
            enc.info["output_looks_like_logits"], enc.info["layer_before_head"] = hint
    return enc


def input_kind_declared(encoder: Encoder) -> bool:
    """False when nothing declared the encoder's input (its preprocessing is the defaults)."""
    declared = encoder.info.get("input_kind_declared")
    if declared is not None:
        return bool(declared)
    return not str(encoder.info.get("preprocess_source", "")).startswith("defaults")


def match_input_kind(encoder: Optional[Encoder], dataset) -> Optional[Encoder]:
    """Make ``encoder`` take ``dataset``'s kind of items when its own input kind was never
    declared: one item is run through the model and, if that works, the encoder takes that
    kind from now on (said in ``info["input_kind"]``). One sentence naming the fix when it
    does not. The same decision for embed, fine-tune, timeline, neighbours and the app."""
    if encoder is None or dataset is None:
        return encoder
    kind, pp = dataset.kind, encoder.preprocess
    if pp.kind == kind:
        return encoder
    fix = (f"declare the input with --input-kind (or \"preprocess\": {{\"kind\": \"{kind}\"}} in the "
           f"checkpoint's .json sidecar)")
    if input_kind_declared(encoder) or kind not in ("vector", "image"):
        src = encoder.info.get("preprocess_source")
        raise InputError(f"{dataset.name} holds {kind} items but encoder {encoder.name} takes {pp.kind} input"
                         + (f" (declared by {src})" if src else "")
                         + f"; choose a matching encoder or dataset, or {fix}.")
    import dataclasses

    import numpy as np

    trial = dataclasses.replace(pp, kind=kind)
    try:
        import torch

        if kind == "vector":
            x = torch.from_numpy(np.asarray(dataset.vectors(np.arange(1)), dtype=np.float32).reshape(1, -1))
        else:
            img = np.asarray(dataset.images(np.arange(1), int(trial.size)), dtype=np.float32)
            x = (torch.from_numpy(img).permute(0, 3, 1, 2) / 255.0 - 0.5) / 0.5
        was = encoder.preprocess
        encoder.preprocess = trial
        try:
            with torch.inference_mode():
                y = embed_batch(encoder, x)
        finally:
            encoder.preprocess = was
        if y.ndim != 2 or y.shape[0] != 1:
            raise ValueError(f"it gave shape {tuple(y.shape)}")
    except Exception as exc:
        why = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise InputError(f"{dataset.name} holds {kind} items and encoder {encoder.name} declares no input "
                         f"kind, but one item did not run through it ({why.rstrip('.')}); {fix}.") from None
    encoder.preprocess = trial
    encoder.info["input_kind"] = f"{kind} (follows the data: encoder declares none and one item ran through it)"
    return encoder


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
                        arch_kwargs=description.get("arch_kwargs"), submodel=description.get("submodel"))
