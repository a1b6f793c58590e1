"""torchvision and timm models as registered architectures (the ``[vision]`` extra).

    resnet50, wide_resnet50_2, convnext_tiny, vit_b_16, efficientnet_b0, ...   (torchvision)
    torchvision:resnet50                                                          (the same, explicit)
    timm:vit_small_patch16_224, timm:resnet50.a1_in1k, ...                        (any name timm knows)

Each is built with no weights download (``weights=None`` / ``pretrained=False``); the weights
come from the user's file. The default preprocessing is read from the library's own metadata,
never typed here: torchvision's ``get_model_weights(name).DEFAULT.transforms()`` (resize, crop,
interpolation, mean, std) and timm's ``resolve_data_config`` (input size, ``crop_pct`` ->
resize = floor(size / crop_pct), interpolation, mean, std), as in their eval transforms.

Headless by default: the classifier is removed, so the embedding is the penultimate layer
(torchvision: the model's last ``nn.Linear`` becomes ``nn.Identity``; timm:
``num_classes=0``, i.e. ``forward_head(pre_logits=True)``). ``arch_kwargs={"headless": False}``
keeps the classifier. ``Architecture.info`` says which module was removed and, for ViTs, which
layer holds the token sequence (used when ``--pooling cls``/``mean`` asks for tokens).

These names are resolved lazily (the libraries are imported only when such a name is asked for),
so nothing here costs anything when the extra is not installed.
"""

from __future__ import annotations

import math
from typing import Optional

from explorer.encoders.base import Preprocess

TIMM_PREFIX = "timm:"
TORCHVISION_PREFIX = "torchvision:"


def _interp_name(mode) -> str:
    name = str(getattr(mode, "value", mode)).lower()
    return name if name in ("bilinear", "bicubic", "nearest", "lanczos") else "bilinear"


# -- torchvision ------------------------------------------------------------------------------
def torchvision_names() -> list[str]:
    """torchvision's classification model names ([] when torchvision is missing or broken)."""
    try:
        import torchvision.models as tvm
    except Exception:
        return []
    try:
        return sorted(tvm.list_models(module=tvm))
    except Exception:
        return []


def torchvision_preprocess(name: str) -> tuple[Optional[Preprocess], str]:
    """Preprocessing from torchvision's DEFAULT weights metadata for ``name``, and where it came from."""
    import torchvision.models as tvm

    try:
        weights = tvm.get_model_weights(name).DEFAULT
        t = weights.transforms()
    except Exception:
        return None, ""
    crop = int(list(getattr(t, "crop_size", [224]))[0])
    resize = int(list(getattr(t, "resize_size", [crop]))[0])
    pre = Preprocess(kind="image", size=crop, resize=resize if resize != crop else None,
                     interpolation=_interp_name(getattr(t, "interpolation", "bilinear")),
                     channels=3, mean=tuple(float(v) for v in t.mean), std=tuple(float(v) for v in t.std))
    return pre, f"torchvision {type(weights).__name__}.{weights.name} transforms"


def _last_linear(model) -> Optional[str]:
    import torch.nn as nn

    last = None
    for n, m in model.named_modules():
        if isinstance(m, nn.Linear):
            last = n
    return last


def _set_submodule(model, name: str, new) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def build_torchvision(name: str, headless: bool = True, **kwargs):
    """torchvision ``name`` with random weights (no download); headless: the final Linear is
    replaced by ``nn.Identity`` so the output is the penultimate features."""
    import torch.nn as nn
    import torchvision.models as tvm

    model = tvm.get_model(name, weights=None, **kwargs)
    if headless:
        head = _last_linear(model)
        if head is not None:
            lin = model.get_submodule(head)
            _set_submodule(model, head, nn.Identity())
            model._explorer_head = (head, int(lin.in_features), int(lin.out_features))
    return model


# -- timm -------------------------------------------------------------------------------------
def timm_available() -> bool:
    try:
        import timm  # noqa: F401
    except Exception:
        return False
    return True


def timm_preprocess(model) -> tuple[Optional[Preprocess], str]:
    """Preprocessing from timm's ``resolve_data_config`` for ``model`` (its pretrained_cfg)."""
    from timm.data import resolve_data_config

    cfg = resolve_data_config({}, model=model)
    _, h, w = cfg["input_size"]
    size = int(h)
    crop_pct = float(cfg.get("crop_pct") or 0.875)
    mode = cfg.get("crop_mode") or "center"
    resize = int(math.floor(size / crop_pct))
    pre = Preprocess(kind="image", size=size, resize=resize if resize != size else None,
                     interpolation=_interp_name(cfg.get("interpolation", "bilinear")), channels=int(cfg["input_size"][0]),
                     mean=tuple(float(v) for v in cfg["mean"]), std=tuple(float(v) for v in cfg["std"]))
    note = "timm pretrained_cfg (resolve_data_config)"
    if mode != "center" or h != w:
        note += f"; its crop_mode {mode!r} / input {h}x{w} is approximated by resize + centre crop"
    return pre, note


def build_timm(name: str, headless: bool = True, **kwargs):
    """timm ``name`` with random weights (no download); headless: ``num_classes=0``."""
    import timm

    if headless:
        kwargs.setdefault("num_classes", 0)
    model = timm.create_model(name, pretrained=False, **kwargs)
    return model


def _library(model) -> str:
    return type(model).__module__.split(".")[0]


def sequence_layer(model) -> Optional[str]:
    """The layer whose output is the token sequence (B, T, D) of a torchvision or timm ViT, for
    cls/mean pooling (None for other models)."""
    import torch.nn as nn

    if _library(model) not in ("torchvision", "timm"):
        return None
    names = dict(model.named_modules())
    if type(model).__name__ == "VisionTransformer" and "encoder" in names and hasattr(model, "class_token"):
        return "encoder"  # torchvision: encoder output includes its final LayerNorm
    if hasattr(model, "cls_token") and isinstance(getattr(model, "norm", None), nn.Module):
        return "norm"  # timm ViTs
    return None


# -- the registry hook ------------------------------------------------------------------------
def lookup(name: str):
    """An :class:`~explorer.encoders.factory.Architecture` for a torchvision/timm ``name``, or
    None when the name is not one (or the library is not installed)."""
    from explorer.encoders.base import Architecture

    if name.startswith(TIMM_PREFIX):
        tname = name[len(TIMM_PREFIX):]
        if not tname or not timm_available():
            return None
        import timm

        if not timm.is_model(tname):
            return None

        def build_t(headless: bool = True, **kwargs):
            return build_timm(tname, headless=headless, **kwargs)

        return Architecture(name=name, build=build_t, preprocess=None, kwargs={"headless": True},
                            builtin=True, spec=name, preprocess_from=_timm_pre)
    tv = name[len(TORCHVISION_PREFIX):] if name.startswith(TORCHVISION_PREFIX) else name
    if tv in torchvision_names():
        pre, where = torchvision_preprocess(tv)

        def build_v(headless: bool = True, **kwargs):
            return build_torchvision(tv, headless=headless, **kwargs)

        return Architecture(name=name, build=build_v, preprocess=pre, kwargs={"headless": True},
                            builtin=True, spec=name, preprocess_note=where)
    return None


def _timm_pre(model):
    return timm_preprocess(model)


def describe_head(model) -> dict:
    """What the headless build removed, for ``Encoder.info``."""
    info: dict = {}
    head = getattr(model, "_explorer_head", None)
    if head is not None:
        info["head_removed"] = (f"{head[0]} (Linear {head[1]}->{head[2]}); the embedding is its "
                                f"{head[1]}-d input (penultimate layer)")
    elif _library(model) == "timm" and getattr(model, "num_classes", None) == 0:
        info["head_removed"] = (f"timm classifier (num_classes=0); the embedding is the "
                                f"{getattr(model, 'num_features', '?')}-d pre-logits features")
    seq = sequence_layer(model)
    if seq:
        info["sequence_layer"] = seq
    return info
