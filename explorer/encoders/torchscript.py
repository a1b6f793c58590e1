"""TorchScript files (``torch.jit.save``): the model and its code in one archive.

Loading runs no Python code from the file (TorchScript is interpreted by torch). A JSON
``meta.json`` saved in the archive's extra files (``torch.jit.save(m, f, _extra_files=
{"meta.json": ...})``) or a ``<file>.json`` sidecar may give ``preprocess``, ``arch``,
``epoch``/``step``. TorchScript modules do not accept Python forward hooks, so only the
model's output can be the embedding.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from explorer.encoders.base import DEFAULTS_NOTE, Encoder, Preprocess
from explorer.encoders.checkpoint import as_preprocess, count_parameters, read_sidecar, sidecar_path
from explorer.encoders.registry import ENCODERS
from explorer.core.errors import CheckpointError

EXTRA_META = "meta.json"


def is_torchscript(path: Path) -> bool:
    """A zip archive with TorchScript's ``constants.pkl`` or ``code/`` entries."""
    if not path.is_file() or not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())


@dataclass
class TorchScriptEncoder(Encoder):
    """An encoder whose module is a ``torch.jit.ScriptModule``."""

    def layers(self) -> list[str]:
        """Empty: Python forward hooks cannot be attached to TorchScript submodules."""
        return []


@ENCODERS.register("torchscript", label="TorchScript model",
                   extensions=(".pt", ".pth", ".jit", ".ts", ".torchscript", ".zip"), priority=20,
                   sniff=is_torchscript, description="A model saved with torch.jit.save (code and weights).")
def open_torchscript(path: Path, *, preprocess=None, **_options) -> Encoder:
    """A model saved with torch.jit.save (code and weights)."""
    import torch

    path = Path(path)
    extra = {EXTRA_META: ""}
    try:
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise CheckpointError(f"{path.name} looks like a TorchScript file but cannot be loaded ({first}).") from None
    meta: dict = {}
    raw = extra.get(EXTRA_META) or b""
    if raw:
        try:
            data = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
            if isinstance(data, dict):
                meta.update(data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            pass
    side = read_sidecar(path)
    meta.update(side)
    pre = (as_preprocess(preprocess, path.name) or as_preprocess(meta.get("preprocess"), path.name)
           or Preprocess())
    src = ("set by the user" if preprocess is not None else
           (sidecar_path(path).name if "preprocess" in side else f"{path.name} (meta.json)")
           if meta.get("preprocess") is not None else DEFAULTS_NOTE)
    info = {"arch": meta.get("arch") or getattr(module, "original_name", type(module).__name__),
            "parameters": count_parameters(module), "preprocess_source": src}
    for k in ("epoch", "step"):
        if k in meta:
            info[k] = meta[k]
    return TorchScriptEncoder(name=str(meta.get("name") or path.stem), source=path, format="torchscript",
                              module=module.eval(), preprocess=pre, layer=None,
                              pooling=str(meta.get("pooling") or "auto"), info=info)
