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


#: Files whose tensors reach the module's state_dict (hashed there, not byte by byte again).
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".onnx.data")


def onnx_external_files(path: Path) -> list[Path]:
    """The external-data files an ONNX model reads (``m.onnx.data`` ...), found from the
    ``location`` entries of its tensors (protobuf ``StringStringEntryProto``: key
    ``location``, then the file name), without importing onnx. Sorted, existing files only."""
    import re

    path = Path(path)
    found = set()
    with open(path, "rb") as f:
        data = f.read()
    for m in re.finditer(rb"\x0a\x08location\x12([\x01-\x7f])", data):
        n = m.group(1)[0]
        name = data[m.end():m.end() + n].decode("utf-8", "replace")
        p = (path.parent / name)
        if name and p.is_file() and p.resolve() != path.resolve():
            found.add(p)
    return sorted(found)


def files_digest(paths: list, root: Optional[Path] = None) -> str:
    """sha256 over several files: each file's name (relative to ``root``) and bytes."""
    h = hashlib.sha256()
    for p in paths:
        p = Path(p)
        h.update((str(p.relative_to(root)) if root else p.name).encode() + b"\0")
        with open(p, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def source_digest(source: Path, weights_in_state: bool) -> Optional[str]:
    """Digest of the files a model reads besides the tensors already hashed: for an ``.onnx``
    file, the file and its external data; for a folder (Hugging Face, timm), its configuration
    and tokenizer files (and its weight files too when ``weights_in_state`` is False)."""
    source = Path(source)
    if source.is_file():
        if source.suffix.lower() == ".onnx" and not weights_in_state:
            return files_digest([source, *onnx_external_files(source)])
        return None if weights_in_state else files_digest([source])
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(source).parts)
                       and not (weights_in_state and p.name.lower().endswith(WEIGHT_SUFFIXES)))
        return files_digest(files, source) if files else None
    return None


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
    """Digest of a module's weights (its tensors), combined for a folder with its other files
    (config, tokenizer); for modules holding no tensors (an ONNX session), the digest of every
    file it reads (the ``.onnx`` and its external data)."""
    state = {}
    try:
        state = module.state_dict()
    except Exception:
        state = {}
    if state:
        digest = state_dict_digest(state)
        extra = source_digest(Path(source), True) if source is not None and Path(source).is_dir() else None
        return digest if extra is None else hashlib.sha256(f"{digest}:{extra}".encode()).hexdigest()
    if source is not None and Path(source).exists():
        return source_digest(Path(source), False) or file_digest(Path(source))
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
