"""Helpers shared by the dataset formats: label coding, column tables, fingerprints and
image conversion. Nothing here is a format itself."""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from explorer.core.errors import InputError

#: Files up to this size have their contents hashed into the fingerprint.
CONTENT_HASH_LIMIT = 64 * 2**20

#: Column names taken as labels when no label column is named (case-insensitive).
LABEL_NAMES = ("label", "labels", "class")

MISSING = ("", "nan", "NaN", "NA", "N/A", "null", "None")


# -- labels ----------------------------------------------------------------------------------
def encode_labels(values: Sequence, what: str = "labels") -> tuple[np.ndarray, list]:
    """Class codes for ``values``: int64 (N,), -1 where missing (None, "", NaN).

    Integers (or strings that are all integers) are ordered numerically, other strings
    alphabetically; ``names[codes[i]] == str(values[i])``.
    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InputError(f"{what}: labels must be one value per item, got shape {arr.shape}.")
    if arr.dtype.kind in "iub":
        uniq, codes = np.unique(arr, return_inverse=True)
        return codes.astype(np.int64).reshape(-1), [str(int(u)) for u in uniq]
    if arr.dtype.kind == "f":
        ok = np.isfinite(arr)
        codes = np.full(arr.shape, -1, dtype=np.int64)
        uniq, inv = np.unique(arr[ok], return_inverse=True)
        codes[ok] = inv
        names = [str(int(u)) if float(u).is_integer() else str(u) for u in uniq]
        return codes, names
    strs = [_as_str(v) for v in arr.tolist()]
    present = sorted({s for s in strs if s not in MISSING}, key=_natural_key)
    index = {s: k for k, s in enumerate(present)}
    codes = np.array([index.get(s, -1) for s in strs], dtype=np.int64)
    return codes, present


def _natural_key(s: str):
    try:
        return (0, int(s), "")
    except ValueError:
        return (1, 0, s)


def _as_str(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, float) and math.isnan(v):
        return ""
    return str(v)


# -- column tables ---------------------------------------------------------------------------
def column_array(values: Sequence) -> np.ndarray:
    """A metadata column: float64 if every non-missing value is a number (missing -> NaN),
    otherwise an object array of str."""
    strs = [_as_str(v) for v in values]
    nums = np.empty(len(strs), dtype=np.float64)
    numeric = False
    for k, s in enumerate(strs):
        t = s.strip()
        if t in MISSING:
            nums[k] = np.nan
            continue
        try:
            nums[k] = float(t)
            numeric = True
        except ValueError:
            out = np.empty(len(strs), dtype=object)
            out[:] = strs
            return out
    if numeric:
        return nums
    out = np.empty(len(strs), dtype=object)
    out[:] = strs
    return out


def is_text_column(values: Iterable) -> bool:
    """True when some value is a non-empty string that is not a number."""
    for v in values:
        s = _as_str(v).strip()
        if s in MISSING:
            continue
        try:
            float(s)
        except ValueError:
            return True
    return False


def find_column(columns: Sequence[str], wanted: Sequence[str]) -> Optional[str]:
    """The first column whose name matches one of ``wanted`` (case-insensitive)."""
    lower = {c.lower(): c for c in reversed(list(columns))}
    for w in wanted:
        if w.lower() in lower:
            return lower[w.lower()]
    return None


def chosen_column(path, options: dict, option: str, columns: Sequence[str],
                  default: Optional[str]) -> Optional[str]:
    """The column the user named with ``options[option]`` ("" or None: none at all), else
    ``default``; a name the table does not have is one sentence listing the columns."""
    if option not in options:
        return default
    want = options[option]
    if want in (None, ""):
        return None
    if want not in columns:
        raise InputError(f"{path}: no column named {want!r} (columns: {', '.join(columns)}).")
    return want


def str_array(values: Iterable) -> np.ndarray:
    vals = [_as_str(v) for v in values]
    out = np.empty(len(vals), dtype=object)
    out[:] = vals
    return out


# -- fingerprints ----------------------------------------------------------------------------
def fingerprint_files(fmt: str, options: dict, root: Path, files: Iterable[Path],
                      contents: bool = True, extra: Iterable = ()) -> str:
    """sha256 over the format, the options and, per file, its path relative to ``root``, its
    size and mtime (ns); with ``contents``, files up to :data:`CONTENT_HASH_LIMIT` also have
    their bytes hashed. ``extra`` is anything else JSON-able that identifies the items."""
    h = hashlib.sha256()
    h.update(json.dumps({"format": fmt, "options": options, "extra": list(extra)},
                        sort_keys=True, default=str).encode())
    for f in files:
        f = Path(f)
        try:
            st = os.stat(f)
        except OSError as exc:
            raise InputError(f"{f}: cannot be read ({exc.strerror or exc}).") from None
        try:
            rel = f.relative_to(root).as_posix()
        except ValueError:
            rel = f.name
        h.update(f"\0{rel}\0{st.st_size}\0{st.st_mtime_ns}".encode("utf-8", "surrogateescape"))
        if contents and st.st_size <= CONTENT_HASH_LIMIT:
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()


def fingerprint_stat(fmt: str, options: dict, root: Path, rel_files: Sequence[str]) -> str:
    """Stat-only fingerprint for many files: sha256 over the format, the options and each
    file's relative path, size and mtime (ns); no contents are read. Same inputs as
    :func:`fingerprint_files` with ``contents=False`` but built in one pass for speed."""
    h = hashlib.sha256()
    h.update(json.dumps({"format": fmt, "options": options, "extra": []},
                        sort_keys=True, default=str).encode())
    base = os.path.join(str(root), "")
    parts = []
    stat = os.stat
    for rel in rel_files:
        try:
            st = stat(base + rel)
        except OSError as exc:
            raise InputError(f"{base + rel}: cannot be read ({exc.strerror or exc}).") from None
        parts.append(f"\0{rel}\0{st.st_size}\0{st.st_mtime_ns}")
    h.update("".join(parts).encode("utf-8", "surrogateescape"))
    return h.hexdigest()


# -- images ----------------------------------------------------------------------------------
def to_rgb_array(img) -> np.ndarray:
    """A PIL image of any mode as uint8 (H, W, 3) RGB.

    Grey, grey+alpha, palette, CMYK and RGBA are converted with Pillow (alpha dropped, as
    torchvision's ``pil_loader`` does, so embeddings match a training pipeline); 16-bit and
    float grey are scaled to 8 bits first."""
    from PIL import Image

    mode = img.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if (mode.startswith("I;16") or a.max(initial=0) > 255) else 255.0
        if mode == "F" and a.max(initial=0) <= 1.0:
            top = 1.0
        a = np.clip(a * (255.0 / top), 0, 255).round().astype(np.uint8)
        img = Image.fromarray(a, "L")
    elif mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8)


def resize_crop(img, size: int):
    """Shorter side to ``size`` (bilinear, antialiased), then the centre ``size`` x ``size``
    crop, with torchvision's rounding (``top = round((h - size) / 2)``)."""
    from PIL import Image

    w, h = img.size
    if w <= 0 or h <= 0:
        raise ValueError("image has no pixels")
    if (w, h) != (size, size):
        if w <= h:
            nw, nh = size, max(size, int(size * h / w))
        else:
            nw, nh = max(size, int(size * w / h)), size
        if (nw, nh) != (w, h):
            img = img.resize((nw, nh), Image.BILINEAR)
        left = int(round((nw - size) / 2.0))
        top = int(round((nh - size) / 2.0))
        if (nw, nh) != (size, size):
            img = img.crop((left, top, left + size, top + size))
    return img
