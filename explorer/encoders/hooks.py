"""Running an encoder: the chosen layer's output (forward hook) and its pooling to (B, D).

Pooling of a layer output ``x`` (batch first):

    rank 2 (B, D)          auto/none: as is
    rank 3 (B, T, D)       auto: ``cls`` (token 0) if the model has a ``cls_token`` attribute
                           (ViT, DeiT, DINO), else ``mean`` over tokens (dim 1)
    rank 4 (B, C, H, W)    auto/avg: global average over the spatial dims (2, 3)
    other ranks > 2        auto: flatten to (B, -1)

Forced poolings: ``avg`` = mean over every dim after the channel dim 1 (feature maps, 1-D conv
outputs); ``mean`` = mean over dim 1 for (B, T, D) (masked by the attention mask when given),
like ``avg`` for other ranks; ``cls`` = ``x[:, 0]`` of (B, T, D); ``flatten`` =
``x.reshape(B, -1)``; ``none`` = the output must already be (B, D). These are the definitions
of :func:`explorer.embed.pool` too.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from explorer.core.device import strict_fp32
from explorer.encoders.base import POOLINGS, Encoder
from explorer.core.errors import InputError


class _StopForward(BaseException):
    """Raised by the hook once the chosen layer has run, so later layers are skipped."""


def first_tensor(out: Any):
    """The tensor in a module's output: itself, the first of a tuple/list, or for dicts and
    Hugging Face outputs ``last_hidden_state`` (else the first tensor value)."""
    import torch

    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, Mapping) or hasattr(out, "last_hidden_state"):
        if isinstance(out, Mapping):
            if "sentence_embedding" in out:
                return out["sentence_embedding"]
            if out.get("last_hidden_state") is not None:
                return out["last_hidden_state"]
            values = list(out.values())
        else:
            if getattr(out, "last_hidden_state", None) is not None:
                return out.last_hidden_state
            values = list(vars(out).values())
        for v in values:
            t = first_tensor(v) if not isinstance(v, (str, bytes)) else None
            if t is not None:
                return t
        return None
    if isinstance(out, (tuple, list)):
        for v in out:
            t = first_tensor(v)
            if t is not None:
                return t
    return None


def has_cls_token(module: Any) -> bool:
    """True when the model (or one of its submodules) has a ``cls_token`` attribute."""
    try:
        mods = list(module.modules())
    except Exception:
        mods = [module]
    return any(hasattr(m, "cls_token") for m in mods)


def auto_pooling(ndim: int, has_cls: bool) -> str:
    """The pooling ``auto`` means for an output of rank ``ndim`` (see the module docstring)."""
    if ndim <= 2:
        return "none"
    if ndim == 3:
        return "cls" if has_cls else "mean"
    if ndim == 4:
        return "avg"
    return "flatten"


def pool(x, pooling: str = "auto", has_cls: bool = False, mask=None):
    """Pool a layer output ``x`` (B, ...) to (B, D) float32. See the module docstring.

    ``mask`` (B, T), the tokenizer's attention mask, makes ``mean`` over tokens skip padding:
    sum_t m_t x_t / max(1, sum_t m_t).
    """
    if pooling not in POOLINGS:
        raise InputError(f"Unknown pooling {pooling!r}; use one of {', '.join(POOLINGS)}.")
    if x.ndim == 0:
        raise InputError("The layer gives a single number per batch, not one vector per item.")
    if x.ndim == 1:
        x = x.unsqueeze(1)
    how = auto_pooling(x.ndim, has_cls) if pooling == "auto" else pooling
    shape = "x".join(str(s) for s in x.shape[1:])
    if how == "none":
        if x.ndim != 2:
            raise InputError(f"Pooling 'none' needs (batch, features) outputs, but this layer gives "
                             f"batch x {shape}; use avg, mean, cls or flatten.")
        out = x
    elif how == "flatten":
        out = x.reshape(x.shape[0], -1)
    elif x.ndim == 2:
        raise InputError(f"Pooling {how!r} needs a sequence or feature map, but this layer gives "
                         f"(batch, {x.shape[1]}) vectors; use none or auto.")
    elif how == "avg" or (how == "mean" and x.ndim != 3):
        out = x.float().flatten(2).mean(-1)
    elif how == "mean":
        if mask is not None:
            m = mask.to(device=x.device).float().unsqueeze(-1)
            out = (x.float() * m).sum(1) / m.sum(1).clamp_min(1.0)
        else:
            out = x.float().mean(dim=1)
    else:  # cls
        if x.ndim != 3:
            raise InputError(f"Pooling 'cls' needs a token sequence (batch, tokens, dim), but this "
                             f"layer gives batch x {shape}; use avg or flatten.")
        out = x[:, 0]
    return out.float()


def resolve_layer(module: Any, layer: Optional[str]):
    """The submodule named ``layer`` ('' or None: the model itself)."""
    if not layer:
        return module
    try:
        return module.get_submodule(layer)
    except (AttributeError, RuntimeError):
        pass
    names = dict(module.named_modules())
    if layer in names:
        return names[layer]
    import difflib

    close = difflib.get_close_matches(layer, [n for n in names if n], n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise InputError(f"The model has no layer {layer!r}{hint}.")


def _call(module: Any, x: Any):
    if isinstance(x, Mapping):
        return module(**x)
    return module(x)


def forward_layer(encoder: Encoder, x: Any):
    """Run ``encoder.module`` on ``x`` and return the raw output tensor of ``encoder.layer``
    (the model's output when no layer is chosen). The forward stops after that layer. Call it
    under ``torch.inference_mode()`` (as :func:`embed_batch` does)."""
    module = encoder.module
    if not encoder.layer:
        out = first_tensor(_call(module, x))
        if out is None:
            raise InputError(f"{encoder.name}: the model's output holds no tensor.")
        return out
    sub = resolve_layer(module, encoder.layer)
    seen: list = []

    def hook(_mod, _inp, output):
        seen.append(first_tensor(output))
        raise _StopForward

    handle = sub.register_forward_hook(hook)
    try:
        _call(module, x)
    except _StopForward:
        pass
    finally:
        handle.remove()
    if not seen:
        raise InputError(f"{encoder.name}: layer {encoder.layer!r} did not run during the forward pass, "
                         f"so it cannot be the embedding layer.")
    if seen[0] is None:
        raise InputError(f"{encoder.name}: layer {encoder.layer!r} outputs no tensor.")
    return seen[0]


def embed_batch(encoder: Encoder, x: Any):
    """Embeddings of one batch: (B, D) float32 on the module's device.

    ``x`` is the model input already on the module's device (B, C, H, W) / (B, D) tensor, or a
    dict of tensors for text models (the tokenizer's output; its ``attention_mask`` weights
    the mean over tokens). Runs under ``torch.inference_mode`` and pools the output of
    ``encoder.layer`` with ``encoder.pooling`` (see :func:`pool`).
    """
    import torch

    mask = x.get("attention_mask") if isinstance(x, Mapping) else None
    first = next(iter(x.values())) if isinstance(x, Mapping) and x else x
    if getattr(getattr(first, "device", None), "type", None) == "cuda":
        strict_fp32()
    with torch.inference_mode():
        out = forward_layer(encoder, x)
        return pool(out, encoder.pooling, has_cls_token(encoder.module), mask)


def layer_shapes(encoder: Encoder, example: Any) -> dict:
    """Output shape of every named submodule for one example (the GUI's layer list).

    ``example`` is a single input without the batch dimension (e.g. (C, H, W)) or a batch of one;
    dicts (tokenised text) are passed as they are. Returns ``{name: shape}`` in model order with
    the batch dimension dropped, e.g. ``{"features.block1": (16, 16, 16), "embed": (128,)}``;
    ``""`` is the model's output. Modules that did not run are left out.
    """
    import torch

    module = encoder.module
    if isinstance(example, torch.Tensor):
        x = example
        if not _is_batched(example):
            x = example.unsqueeze(0)
    else:
        x = example
    shapes: dict = {}
    handles = []
    order = [n for n, _ in module.named_modules() if n]
    try:
        for name, sub in module.named_modules():
            if not name:
                continue

            def hook(_m, _i, out, name=name):
                t = first_tensor(out)
                if t is not None and name not in shapes:
                    shapes[name] = tuple(int(s) for s in t.shape[1:])

            handles.append(sub.register_forward_hook(hook))
    except RuntimeError:  # TorchScript modules cannot take Python hooks
        handles = []
    try:
        with torch.inference_mode():
            out = first_tensor(_call(module, x))
    finally:
        for h in handles:
            h.remove()
    result = {n: shapes[n] for n in order if n in shapes}
    if out is not None:
        result[""] = tuple(int(s) for s in out.shape[1:])
    return result


def _is_batched(example) -> bool:
    """Guess whether ``example`` already has a batch dimension: images (C, H, W) and vectors (D,)
    are single examples; (1, ...) is a batch of one."""
    return example.ndim in (2, 4) and example.shape[0] == 1


def pooled_dim(shape: tuple, pooling: str = "auto", has_cls: bool = False) -> Optional[int]:
    """Embedding size a layer with output ``shape`` (batch dropped) gives under ``pooling``;
    None when the pooling does not fit that shape."""
    import math

    ndim = len(shape) + 1
    how = auto_pooling(ndim, has_cls) if pooling == "auto" else pooling
    if ndim <= 2:
        return int(shape[0]) if shape else 1
    if how == "avg" or (how == "mean" and ndim != 3):
        return int(shape[0])
    if how in ("mean", "cls"):
        return int(shape[1]) if ndim == 3 else None
    if how == "flatten":
        return int(math.prod(shape))
    return None


#: Names of the final layer of a classifier (its output is logits, not an embedding).
HEAD_NAMES = ("fc", "head", "heads", "classifier", "logits", "last_linear", "cls_head", "linear_head")


def logits_hint(module: Any) -> Optional[tuple]:
    """``(sentence, layer_before)`` when ``module`` ends in a classifier layer (its last
    parameterised leaf is an ``nn.Linear`` named ``fc``/``head``/``classifier``...), else None.
    The layer before is the module registered just before the head, outside it."""
    try:
        import torch.nn as nn

        named = [(n, m) for n, m in module.named_modules() if n]
    except Exception:
        return None
    leaves = [(n, m) for n, m in named if not any(True for _ in m.children())
              and any(True for _ in m.parameters(recurse=False))]
    if not leaves:
        return None
    name, last = leaves[-1]
    parts = name.split(".")
    if not isinstance(last, nn.Linear) or not any(p in HEAD_NAMES for p in parts):
        return None
    before = None
    for n, _ in named:
        if n == name:
            break
        if not name.startswith(n + "."):
            before = n
    sentence = (f"the model's output comes from {name} (Linear {last.in_features}->{last.out_features}), "
                f"which looks like classifier logits rather than an embedding")
    if before is not None:
        sentence += f"; the layer before it is {before} (--layer {before})"
    return sentence, before
