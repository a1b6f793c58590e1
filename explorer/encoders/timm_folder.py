"""timm Hub-style model folders: ``config.json`` naming an ``architecture`` (plus its
``pretrained_cfg``) and the weights in ``model.safetensors`` (or ``pytorch_model.bin``).

The folder is opened as the timm architecture of that name (resolved only against the models
timm registers: a name, never code), built without downloading, headless by default, with the
weights read from the folder (safetensors, or ``torch.load(weights_only=True)``) and the
preprocessing from the folder's ``pretrained_cfg`` through timm's ``resolve_data_config``.
Needs the ``[vision]`` extra (timm).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Optional

from explorer.encoders.base import Encoder
from explorer.encoders.registry import ENCODERS
from explorer.core.errors import CheckpointError, InputError

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
#: The ``pretrained_cfg`` fields taken from the folder (how to preprocess; nothing that locates
#: or downloads weights).
PREPROCESS_KEYS = ("input_size", "interpolation", "crop_pct", "crop_mode", "mean", "std",
                   "fixed_input_size", "pool_size", "first_conv", "classifier")


def _config(path: Path) -> Optional[dict]:
    cfg_path = Path(path) / "config.json"
    if not cfg_path.is_file():
        return None
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return cfg if isinstance(cfg, dict) else None


def is_timm_folder(path: Path) -> bool:
    """A folder whose config.json names a timm ``architecture`` and that holds its weights."""
    cfg = _config(path)
    return bool(cfg and isinstance(cfg.get("architecture"), str)
                and any((Path(path) / w).is_file() for w in WEIGHT_FILES))


@ENCODERS.register("timm", label="timm model folder", directory=True, sniff=is_timm_folder, priority=20,
                   extra_package="vision",
                   description="A timm Hub-style folder: config.json (architecture) + model.safetensors (needs [vision]).")
def open_timm_folder(path: Path, *, preprocess: Any = None, arch_kwargs: Optional[dict] = None,
                     layer: Optional[str] = None, **_options) -> Encoder:
    """A timm Hub-style folder: config.json (architecture) + model.safetensors (needs [vision])."""
    from explorer.encoders import vision
    from explorer.encoders.checkpoint import is_plain_json, load_torch_file, read_safetensors, Checkpoint
    from explorer.encoders.weights import encoder_from_checkpoint

    path = Path(path)
    cfg = _config(path) or {}
    name = str(cfg.get("architecture", ""))
    if not vision.timm_available():
        raise InputError(f"{path.name} is a timm model folder ({name}); opening it needs timm: "
                         f"pip install 'embedding-explorer[vision]'.")
    archi = vision.lookup(vision.TIMM_PREFIX + name)
    if archi is None:
        raise CheckpointError(f"{path.name}/config.json names the architecture {name!r}, which this timm "
                              f"version does not know.")
    pcfg = cfg.get("pretrained_cfg")
    overlay = ({k: v for k, v in pcfg.items() if k in PREPROCESS_KEYS}
               if isinstance(pcfg, dict) and is_plain_json(pcfg) else None)
    model_args = cfg.get("model_args") if isinstance(cfg.get("model_args"), dict) else {}
    if not is_plain_json(model_args):
        model_args = {}

    def build(headless: bool = True, **kwargs):
        extra = {**model_args, **kwargs}
        if not headless and isinstance(cfg.get("num_classes"), int):
            extra.setdefault("num_classes", cfg["num_classes"])
        if overlay is not None:
            extra.setdefault("pretrained_cfg_overlay", overlay)
        return vision.build_timm(name, headless=headless, **extra)

    archi = dataclasses.replace(archi, build=build)
    weights = next(path / w for w in WEIGHT_FILES if (path / w).is_file())
    if weights.suffix == ".safetensors":
        ckpt = read_safetensors(weights)
    else:
        from explorer.encoders.checkpoint import find_state_dict

        sd, key = find_state_dict(load_torch_file(weights), weights)
        ckpt = Checkpoint(weights, state_dict=sd, nested_key=key)
    ckpt = dataclasses.replace(ckpt, path=path, meta={}, meta_origin={})
    enc = encoder_from_checkpoint(ckpt, "timm", arch=archi, arch_kwargs=arch_kwargs, preprocess=preprocess)
    enc.name = path.name
    enc.info["weights_file"] = weights.name
    return enc
