"""Content fingerprints of encoders: what the embedding cache is keyed on."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Optional

_CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    """sha256 of a file, or of every file under a folder (relative names and bytes, sorted)."""
    h = hashlib.sha256()
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        if path.is_dir():
            h.update(str(p.relative_to(path)).encode())
        with open(p, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def state_dict_digest(state: dict) -> str:
    """sha256 over the tensors of a state_dict in sorted-name order: each tensor's name, dtype,
    shape and raw bytes (device independent)."""
    import torch

    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name]
        if not isinstance(t, torch.Tensor):
            h.update(f"{name}={t!r};".encode())
            continue
        t = t.detach()
        h.update(f"{name}:{str(t.dtype)}:{tuple(t.shape)};".encode())
        if t.numel():
            flat = t.cpu().contiguous().reshape(-1)
            try:
                h.update(flat.view(torch.uint8).numpy().tobytes())
            except (RuntimeError, TypeError):  # quantized or exotic dtypes
                h.update(repr(flat.tolist()).encode())
    return h.hexdigest()


def weights_digest(module: Any, source: Optional[Path] = None) -> str:
    """Digest of a module's weights; for modules holding no tensors (an ONNX session), the
    digest of the source file or folder."""
    state = {}
    try:
        state = module.state_dict()
    except Exception:
        state = {}
    if state:
        return state_dict_digest(state)
    if source is not None and Path(source).exists():
        return file_digest(Path(source))
    return hashlib.sha256(repr(module).encode()).hexdigest()


def encoder_fingerprint(weights: str, layer: Optional[str], pooling: str, preprocess: dict,
                        arch: Any = None, arch_kwargs: Any = None) -> str:
    """sha256 of the weights' digest, the layer, the pooling, the preprocessing and the
    architecture (name and settings)."""
    h = hashlib.sha256(weights.encode())
    extra = {"layer": layer or "", "pooling": pooling, "preprocess": preprocess,
             "arch": arch, "arch_kwargs": arch_kwargs}
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()
