"""Local Hugging Face model folders (transformers or sentence-transformers), offline.

Needs the ``[hf]`` extra (``transformers``, ``sentence-transformers``), imported only when such
a folder is opened. Nothing is downloaded: ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` are set
and every ``from_pretrained`` gets ``local_files_only=True``.

- sentence-transformers folder (``modules.json``): text, the model's own pooling and
  normalisation; the embedding is ``sentence_embedding`` (B, D).
- transformers text model (a tokenizer in the folder): ``last_hidden_state`` (B, T, D); pooling
  ``mean`` over tokens, weighted by the attention mask.
- transformers image model (``preprocessor_config.json``): ``pixel_values`` in, the image features
  (``get_image_features`` for CLIP-like models) or ``last_hidden_state`` out (CLS pooling for ViT).
  A CLIP-like folder holding both a tokenizer and an image processor opens on the image side
  (its projected ``get_image_features``).
- Text is truncated to the tokenizer's limit, 512 and the model's position table.

Encoder.tokenizer is the Hugging Face tokenizer for text models, called as
``tokenizer(texts, padding=True, truncation=True, max_length=..., return_tensors="pt")``; its
output (a dict of tensors) goes to the module as keyword arguments.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from explorer.encoders.base import Encoder, Preprocess
from explorer.encoders.checkpoint import as_preprocess, count_parameters
from explorer.encoders.registry import ENCODERS
from explorer.core.errors import CheckpointError, InputError

INSTALL_HINT = "pip install 'embedding-explorer[hf]'"


def is_hf_folder(path: Path) -> bool:
    return path.is_dir() and ((path / "config.json").is_file() or (path / "modules.json").is_file())


def _require(module_name: str, path: Path):
    import importlib

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        return importlib.import_module(module_name)
    except ImportError:
        raise InputError(f"{path.name} is a Hugging Face model folder; opening it needs the optional "
                         f"packages: install embedding-explorer[hf] ({INSTALL_HINT}).") from None


def _wrapper_classes():
    import torch
    import torch.nn as nn

    class SentenceTransformerModule(nn.Module):
        """``forward(**features) -> sentence_embedding`` (B, D)."""

        def __init__(self, st):
            super().__init__()
            self.model = st

        def forward(self, **features):
            return self.model(dict(features))["sentence_embedding"]

    class TextModule(nn.Module):
        """``forward(input_ids, attention_mask, ...) -> last_hidden_state`` (B, T, D); the pooling
        ("mean", weighted by the attention mask) is done by the caller."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, **features):
            return self.model(**features).last_hidden_state

    class ImageModule(nn.Module):
        """``forward(pixel_values) -> image features`` (B, D) or ``last_hidden_state``."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, pixel_values):
            if hasattr(self.model, "get_image_features"):
                out = self.model.get_image_features(pixel_values=pixel_values)
                if isinstance(out, torch.Tensor):  # transformers < 5
                    return out
                # transformers >= 5 returns a ModelOutput whose pooler_output is the projection
                feats = getattr(out, "pooler_output", None)
                if feats is None:
                    feats = out["pooler_output"] if "pooler_output" in out else out[0]
                return feats
            out = self.model(pixel_values=pixel_values)
            h = getattr(out, "last_hidden_state", None)
            return h if h is not None else out[0]

    return SentenceTransformerModule, TextModule, ImageModule


def _text_max_length(tok, config) -> int:
    """Tokens per text: the tokenizer's ``model_max_length`` capped at 512 and at the positions the
    model has (``max_position_embeddings``, less RoBERTa's ``pad_token_id + 1`` offset), so a long
    text is truncated instead of indexing past the position table."""
    limit = int(min(getattr(tok, "model_max_length", 512) or 512, 512))
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        if "roberta" in str(getattr(config, "model_type", "")) or getattr(config, "model_type", "") == "camembert":
            positions -= int(getattr(config, "pad_token_id", 1) or 1) + 1
        limit = min(limit, positions)
    return max(1, limit)


@ENCODERS.register("hf", label="Hugging Face / sentence-transformers folder", directory=True,
                   sniff=is_hf_folder, priority=10, extra_package="hf",
                   description="A local Hugging Face or sentence-transformers model folder (needs [hf]).")
def open_hf(path: Path, *, preprocess: Any = None, **_options) -> Encoder:
    """A local Hugging Face or sentence-transformers model folder (needs [hf])."""
    path = Path(path)
    user_pre = as_preprocess(preprocess, path.name)
    st_cls, text_cls, image_cls = None, None, None
    if (path / "modules.json").is_file():
        st = _require("sentence_transformers", path)
        st_cls, text_cls, image_cls = _wrapper_classes()
        try:
            model = st.SentenceTransformer(str(path), device="cpu", local_files_only=True)
        except Exception as exc:
            raise CheckpointError(f"{path.name}: the sentence-transformers model cannot be loaded "
                                  f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}).") from None
        max_len = int(getattr(model, "max_seq_length", None) or 128)
        pre = user_pre or Preprocess(kind="text", tokenizer=str(path), max_length=max_len)

        return Encoder(name=path.name, source=path, format="hf", module=st_cls(model).eval(),
                       preprocess=pre, pooling="none", tokenizer=model.tokenizer,
                       info={"arch": "sentence-transformers", "parameters": count_parameters(model)})

    transformers = _require("transformers", path)
    st_cls, text_cls, image_cls = _wrapper_classes()
    try:
        model = transformers.AutoModel.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path.name}: the Hugging Face model cannot be loaded "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}).") from None
    model.eval()
    arch = type(model).__name__
    has_images = (path / "preprocessor_config.json").is_file()
    # an image model, or a dual (CLIP-like) model whose folder holds both a tokenizer and an image
    # processor: its plain forward needs both inputs, so it is opened on the image side
    if has_images and (not (path / "tokenizer_config.json").is_file() or hasattr(model, "get_image_features")):
        cfg = json.loads((path / "preprocessor_config.json").read_text(encoding="utf-8"))
        size = cfg.get("crop_size") or cfg.get("size") or 224
        if isinstance(size, dict):
            size = size.get("height") or size.get("shortest_edge") or next(iter(size.values()))
        mean = tuple(cfg.get("image_mean") or (0.5, 0.5, 0.5))
        std = tuple(cfg.get("image_std") or (0.5, 0.5, 0.5))
        pre = user_pre or Preprocess(kind="image", size=int(size), channels=3, mean=mean, std=std)
        return Encoder(name=path.name, source=path, format="hf", module=image_cls(model).eval(), preprocess=pre,
                       info={"arch": arch, "parameters": count_parameters(model)})
    try:
        tok = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path.name}: its tokenizer cannot be loaded "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}).") from None
    max_len = _text_max_length(tok, model.config)
    pre = user_pre or Preprocess(kind="text", tokenizer=str(path), max_length=max_len)
    return Encoder(name=path.name, source=path, format="hf", module=text_cls(model).eval(), preprocess=pre,
                   pooling="mean", tokenizer=tok, info={"arch": arch, "parameters": count_parameters(model)})
