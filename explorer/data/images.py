"""Image folders: ``root/<class>/<image>`` gives labels; a flat folder is unlabelled.

Opening lists the files and nothing else (no image is decoded, no file is stat-ed), so a
folder of 100k images opens in well under a second. PNG, JPEG, WebP, BMP, GIF and TIFF of any
size and mode (grey, grey+alpha, palette, RGBA, CMYK, 16-bit) are read as RGB.

Unreadable or truncated images are found when they are read:

* :meth:`ImageFolderDataset.image` (and the contract's ``images``) raise :class:`InputError`
  naming the file;
* :meth:`ImageFolderDataset.read_images` never raises for a bad file: it puts zeros in its
  place, returns ``ok[j] = False`` and records ``(relative path, reason)`` in ``skipped``. The
  embedding engine (:mod:`explorer.embed`) uses it and leaves the rows where ``ok`` is False
  out of the vectors (the zeros are never embedded), then names those files. In DataLoader
  worker processes ``skipped`` is filled in the worker's copy, so the engine collects the
  failures from the ``ok`` masks it gets back rather than from ``skipped``;
* :meth:`ImageFolderDataset.verify` is a job that decodes every image once (cheaply) and
  records the bad ones, for a "check the data first" step.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from explorer.data._common import fingerprint_stat, resize_crop, str_array, to_rgb_array
from explorer.data.base import Dataset
from explorer.data.registry import DATASETS
from explorer.core.errors import InputError
from explorer.core.jobs import Job, Progress

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def _scan(folder: str) -> list[str]:
    """Image files under ``folder`` (recursively), as paths relative to it with '/'."""
    out: list[str] = []
    stack = [("", folder)]
    while stack:
        rel, path = stack.pop()
        try:
            entries = list(os.scandir(path))
        except OSError:
            continue
        for e in entries:
            if e.name.startswith("."):
                continue
            r = f"{rel}{e.name}"
            try:
                if e.is_dir():
                    stack.append((r + "/", e.path))
                elif e.name.lower().endswith(IMAGE_EXTENSIONS):
                    out.append(r)
            except OSError:
                continue
    out.sort()
    return out


class ImageFolderDataset(Dataset):
    """Images in a folder tree. ``ids`` are the paths relative to the root; metadata columns
    are "path" and, when labelled, "class" (the top-level folder; "" for images lying at the
    root next to class folders, which get label -1)."""

    def __init__(self, root: Path, files: list[str], options: Optional[dict] = None) -> None:
        root = Path(root)
        top = [f.split("/", 1)[0] if "/" in f else None for f in files]
        classes = sorted({t for t in top if t is not None})
        if classes:
            index = {c: k for k, c in enumerate(classes)}
            labels = np.array([index[t] if t is not None else -1 for t in top], dtype=np.int64)
            metadata = {"path": str_array(files), "class": str_array(t or "" for t in top)}
        else:
            labels, metadata = None, {"path": str_array(files)}
        super().__init__(name=root.name or str(root), source=root, kind="image", n=len(files),
                         labels=labels, label_names=list(classes), metadata=metadata,
                         ids=str_array(files), options=dict(options or {}),
                         format="image-folder")
        self.root = root
        self.files = files
        self._bad: dict[int, str] = {}

    # -- reading -------------------------------------------------------------------------
    def _open(self, i: int, size: Optional[int]) -> np.ndarray:
        """Decode image ``i`` to uint8 (H, W, 3) RGB (JPEGs at a reduced scale that is still
        >= ``size`` on both sides when ``size`` is given)."""
        from PIL import Image

        path = self.root / self.files[i]
        try:
            with Image.open(path) as im:
                if size:
                    im.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, >= size
                im.load()
                return to_rgb_array(im)
        except FileNotFoundError:
            raise InputError(f"{path}: the image file has gone missing.") from None
        except Exception as exc:  # PIL raises OSError, ValueError, SyntaxError, bomb errors
            reason = str(exc).rstrip(".") or type(exc).__name__
            raise InputError(f"{path}: cannot read image ({reason}).") from None

    def image(self, i: int, size: Optional[int] = None) -> np.ndarray:
        """Image ``i`` as uint8 (H, W, 3) RGB, or (size, size, 3): shorter side resized to
        ``size`` (bilinear), centre crop. Raises :class:`InputError` naming the file if it
        cannot be decoded."""
        from PIL import Image

        rgb = self._open(int(i), size)
        if size is None:
            return rgb
        return np.asarray(resize_crop(Image.fromarray(rgb, "RGB"), int(size)), dtype=np.uint8)

    def read_images(self, indices, size: int) -> tuple[np.ndarray, np.ndarray]:
        """A batch as uint8 (B, size, size, 3) plus ``ok`` bool (B,). Images that cannot be read
        are zeros with ``ok`` False, and are recorded in ``skipped`` as (relative path, reason)
        once each. Never raises for a bad image."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        out = np.zeros((len(idx), size, size, 3), dtype=np.uint8)
        ok = np.ones(len(idx), dtype=bool)
        for j, i in enumerate(idx.tolist()):
            try:
                out[j] = self.image(i, size)
            except InputError as exc:
                ok[j] = False
                self._record(i, str(exc))
        return out, ok

    def _record(self, i: int, message: str) -> None:
        if i not in self._bad:
            self._bad[i] = message
            self.skipped.append((self.files[i], message))

    def images(self, indices, size: int) -> np.ndarray:
        """uint8 (B, size, size, 3); raises :class:`InputError` on the first bad image (use
        :meth:`read_images` to skip and count them instead)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        out = np.empty((len(idx), size, size, 3), dtype=np.uint8)
        for j, i in enumerate(idx.tolist()):
            out[j] = self.image(i, size)
        return out

    def thumbnail(self, i: int, size: int = 96) -> Optional[np.ndarray]:
        """uint8 (h, w, 3) with the longer side <= ``size``, aspect kept (not cropped);
        None if the image cannot be read (the GUI shows a placeholder)."""
        from PIL import Image

        try:
            rgb = Image.fromarray(self._open(int(i), size), "RGB")
        except InputError as exc:
            self._record(int(i), str(exc))
            return None
        rgb.thumbnail((size, size), Image.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8)

    def verify(self, size: int = 32, chunk: int = 256) -> Job:
        """Job: decode every image once (JPEGs at reduced scale) and record the ones that
        fail in ``skipped``. Returns the list of (relative path, reason) found bad."""
        bad: list[tuple[str, str]] = []
        for start in range(0, self.n, chunk):
            for i in range(start, min(self.n, start + chunk)):
                try:
                    self._open(i, size)
                except InputError as exc:
                    self._record(i, str(exc))
                    bad.append((self.files[i], str(exc)))
            yield Progress(min(self.n, start + chunk), self.n, f"{len(bad)} unreadable")
        return bad

    # -- identity ------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """sha256 over the format, the options and each file's relative path, size and mtime
        (ns). Contents are NOT hashed here (stat only): a folder of 100k images is
        fingerprinted in about a second instead of reading gigabytes; an edit that keeps both
        size and mtime goes unnoticed."""
        return fingerprint_stat(self.format, self.options, self.root, self.files)


@DATASETS.register("image-folder", label="Image folder", directory=True, priority=0,
                   description="A folder of images; one subfolder per class gives labels.")
def open_image_folder(path, **options) -> ImageFolderDataset:
    """A folder of images; one subfolder per class gives labels."""
    root = Path(path)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder.")
    if options:
        raise InputError(f"{root}: image folders take no options (got {', '.join(options)}).")
    files = _scan(str(root))
    if not files:
        raise InputError(f"{root}: the folder contains no images "
                         f"({', '.join(e.lstrip('.') for e in IMAGE_EXTENSIONS[:5])}...).")
    return ImageFolderDataset(root, files, options)
