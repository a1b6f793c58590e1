"""Arrays: ``.npy``, ``.npz`` and HDF5 (``.h5``/``.hdf5``).

Shapes decide the kind:

* N x D                      -> kind "vector" (features, or precomputed embeddings);
* N x H x W                  -> grey images, shown and embedded as RGB;
* N x H x W x C (C = 1/3/4)  -> images (C = 4: alpha dropped); N x C x H x W is recognised
  too (channels first, C = 1/3/4 and the last axis is not 1/3/4).

uint8 images are used as they are; float images are detected as [0, 1] or [0, 255] from a
sample of up to 64 items (``value_range``); other integers are scaled by their sampled maximum.

Options: ``key`` (the data array; default: the only suitable array, else one named x / X /
data / images / vectors / embeddings / features, else an error listing the candidates),
``labels_key`` (default: a 1-D array named labels / label / y / targets / target / classes of
length N), ``label_names_key`` (default: label_names / class_names, or a ``label_names``
attribute in HDF5), ``labels_path`` (a separate ``.npy`` or text file with one label a row).
Labels may be integers or strings. Other 1-D arrays of length N become metadata columns.

``.npy`` is memory-mapped; HDF5 is read per batch through h5py (the file is opened on first
read, once per process, and reopened after pickling into a DataLoader worker); ``.npz``
members are read from the zip header on open and the data array is loaded on first read.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any, Optional

import numpy as np

from explorer.data._common import (column_array, encode_labels, fingerprint_files,
                                   resize_crop, str_array)
from explorer.data.base import Dataset
from explorer.data.registry import DATASETS
from explorer.core.errors import InputError

WORKSPACE_FORMAT = "embedding-explorer-workspace"
DATA_NAMES = ("x", "X", "data", "images", "image", "vectors", "embeddings", "embedding",
              "features", "inputs")
LABEL_KEYS = ("labels", "label", "y", "targets", "target", "classes", "class")
LABEL_NAME_KEYS = ("label_names", "class_names", "labelnames", "classnames")
OPTIONS = ("key", "labels_key", "label_names_key", "labels_path")


def _suitable(shape: tuple, dtype: np.dtype) -> bool:
    return dtype.kind in "iufb" and len(shape) in (2, 3, 4) and shape[0] > 0


def _layout(path: Path, key: Optional[str], shape: tuple) -> tuple[str, bool]:
    """(kind, channels_first) for an array of ``shape``, or InputError."""
    what = f"{path}" + (f" [{key}]" if key else "")
    nd = len(shape)
    if nd == 2:
        return "vector", False
    if nd == 3:
        return "image", False
    if nd == 4:
        if shape[3] in (1, 3, 4):
            return "image", False
        if shape[1] in (1, 3, 4):
            return "image", True
        raise InputError(f"{what}: a 4-D array of shape {shape} is not N x H x W x C or "
                         f"N x C x H x W with 1, 3 or 4 channels.")
    raise InputError(f"{what}: an array of shape {shape} (rank {nd}) is neither N x D vectors "
                     f"nor N x H x W (x C) images.")


# -- stores: where the rows come from ---------------------------------------------------------
class _NpyStore:
    def __init__(self, path: Path) -> None:
        try:
            self.arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            raise InputError(f"{path}: cannot be read as a NumPy array ({exc}).") from None
        except OSError as exc:
            raise InputError(f"{path}: not a valid .npy file ({exc}).") from None
        self.shape, self.dtype = tuple(self.arr.shape), self.arr.dtype

    def rows(self, idx: np.ndarray) -> np.ndarray:
        return np.asarray(self.arr[idx])


class _NpzStore:
    def __init__(self, path: Path, key: str, shape: tuple, dtype: np.dtype) -> None:
        self.path, self.key, self.shape, self.dtype = path, key, shape, dtype
        self._arr: Optional[np.ndarray] = None

    def _load(self) -> np.ndarray:
        if self._arr is None:
            self._arr = _npz_load(self.path, self.key)
        return self._arr

    def rows(self, idx: np.ndarray) -> np.ndarray:
        return self._load()[idx]

    def __getstate__(self):
        return {**self.__dict__, "_arr": None}


class _H5Store:
    def __init__(self, path: Path, key: str, shape: tuple, dtype: np.dtype) -> None:
        self.path, self.key, self.shape, self.dtype = path, key, shape, dtype
        self._file = None
        self._pid = None

    def _ds(self):
        if self._file is None or self._pid != os.getpid():
            import h5py

            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file[self.key]

    def rows(self, idx: np.ndarray) -> np.ndarray:
        ds = self._ds()
        if len(idx) == 0:
            return np.empty((0,) + self.shape[1:], dtype=self.dtype)
        lo, hi = int(idx.min()), int(idx.max()) + 1
        if hi - lo <= 2 * len(idx):  # dense batch: one slice read
            return ds[lo:hi][idx - lo]
        uniq, inv = np.unique(idx, return_inverse=True)  # h5py wants increasing indices
        return ds[uniq][inv.reshape(-1)]

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            finally:
                self._file = None

    def __getstate__(self):
        return {**self.__dict__, "_file": None, "_pid": None}


# -- the dataset --------------------------------------------------------------------------------
class ArrayDataset(Dataset):
    """Rows of one array: vectors (N, D) or images (N, H, W[, C])."""

    def __init__(self, path: Path, fmt: str, key: Optional[str], store: Any,
                 labels: Optional[np.ndarray], label_names: list, metadata: dict,
                 options: dict, extra_files: tuple = ()) -> None:
        path = Path(path)
        kind, channels_first = _layout(path, key, store.shape)
        n = int(store.shape[0])
        name = path.stem if not key or key in DATA_NAMES else f"{path.stem}:{key}"
        super().__init__(name=name, source=path, kind=kind, n=n, labels=labels,
                         label_names=label_names, metadata=metadata,
                         ids=str_array(range(n)), options=options, format=fmt)
        self.key = key
        self._store = store
        self._extra_files = tuple(extra_files)
        self.channels_first = channels_first
        self.dim = int(np.prod(store.shape[1:]))
        self.value_range: Optional[tuple] = None
        self._scale = 1.0
        if kind == "image":
            self._detect_range()

    def _detect_range(self) -> None:
        if self._store.dtype == np.uint8:
            self.value_range = (0, 255)
            return
        sample = self._rows(np.unique(np.linspace(0, self.n - 1, min(self.n, 64)).astype(np.int64)))
        top = float(np.nanmax(sample)) if sample.size else 0.0
        if self._store.dtype.kind == "f":
            self.value_range = (0.0, 1.0) if top <= 1.0 + 1e-6 else (0.0, 255.0)
        elif self._store.dtype.kind == "b":
            self.value_range = (0, 1)
        else:
            self.value_range = (0, 255) if top <= 255 else (0, 65535) if top <= 65535 else (0, top)
        self._scale = 255.0 / float(self.value_range[1] or 1.0)

    def _rows(self, idx) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        if len(idx) and (idx.min() < -self.n or idx.max() >= self.n):
            raise IndexError(f"index out of range for {self.n} items")
        return self._store.rows(np.where(idx < 0, idx + self.n, idx))

    # -- images ---------------------------------------------------------------------------
    def _to_rgb(self, a: np.ndarray) -> np.ndarray:
        """(B, ...) raw rows -> uint8 (B, H, W, 3)."""
        if self.channels_first:
            a = np.moveaxis(a, 1, -1)
        if a.ndim == 3:
            a = a[..., None]
        if a.dtype != np.uint8:
            a = np.clip(np.nan_to_num(a.astype(np.float32) * self._scale), 0, 255)
            a = np.rint(a).astype(np.uint8)
        c = a.shape[-1]
        if c == 1:
            a = np.repeat(a, 3, axis=-1)
        elif c == 4:
            a = a[..., :3]
        return np.ascontiguousarray(a)

    def _check_image(self) -> None:
        if self.kind != "image":
            raise TypeError(f"{self.name} holds {self.kind} items, not images.")

    def image(self, i: int, size: Optional[int] = None) -> np.ndarray:
        self._check_image()
        return self.images([i], size)[0] if size else self._to_rgb(self._rows([i]))[0]

    def images(self, indices, size: int) -> np.ndarray:
        """uint8 (B, size, size, 3): shorter side to ``size`` (bilinear), centre crop; rows
        already at size x size are not resampled."""
        from PIL import Image

        self._check_image()
        rgb = self._to_rgb(self._rows(indices))
        if rgb.shape[1:3] == (size, size):
            return rgb
        out = np.empty((len(rgb), size, size, 3), dtype=np.uint8)
        for j in range(len(rgb)):
            out[j] = np.asarray(resize_crop(Image.fromarray(rgb[j], "RGB"), size))
        return out

    def read_images(self, indices, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Same as :meth:`images` plus an all-True ``ok`` mask (array rows cannot be unreadable
        one by one), so the engine can treat every image dataset alike."""
        out = self.images(indices, size)
        return out, np.ones(len(out), dtype=bool)

    # -- vectors --------------------------------------------------------------------------
    def vectors(self, indices=None) -> np.ndarray:
        """float32 (B, D); all rows when ``indices`` is None. Image arrays are flattened."""
        idx = np.arange(self.n) if indices is None else indices
        rows = self._rows(idx)
        return np.ascontiguousarray(rows.reshape(len(rows), -1), dtype=np.float32)

    def fingerprint(self) -> str:
        """sha256 over format, options and the file's name, size, mtime (ns) and, up to
        64 MiB, its contents (plus a separate labels file if one was given)."""
        return fingerprint_files(self.format, self.options, self.source.parent,
                                 (self.source,) + self._extra_files, contents=True,
                                 extra=[self.key])

    def close(self) -> None:
        """Close an open HDF5 handle (reopened on the next read)."""
        if hasattr(self._store, "close"):
            self._store.close()


# -- labels and metadata from sibling arrays -------------------------------------------------------
def _labels_from(path: Path, n: int, values: Optional[np.ndarray], names: Optional[list],
                 what: str) -> tuple[Optional[np.ndarray], list]:
    if values is None:
        return None, []
    values = np.asarray(values)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1 or len(values) != n:
        raise InputError(f"{path}: labels {what} have shape {values.shape} but there are {n} "
                         f"items (need one label per item).")
    if values.dtype.kind == "S":
        values = values.astype(object)
    if names is not None and values.dtype.kind in "iu" and len(values) and \
            values.min() >= -1 and values.max() < len(names):
        return values.astype(np.int64), [str(x) for x in names]
    return encode_labels(values, str(path))


def _decode_names(a) -> list:
    return [x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x)
            for x in np.asarray(a).reshape(-1).tolist()]


def _labels_path(path: Path, labels_path: str) -> Path:
    """A labels file given absolute, relative to the working folder, or next to ``path``."""
    lp = Path(labels_path)
    return lp if lp.is_absolute() or lp.exists() else path.parent / lp


def _labels_file(path: Path, labels_path: str) -> np.ndarray:
    lp = _labels_path(path, labels_path)
    if not lp.exists():
        raise InputError(f"{lp}: labels file not found.")
    if lp.suffix.lower() == ".npy":
        try:
            return np.load(lp, allow_pickle=False)
        except Exception as exc:
            raise InputError(f"{lp}: cannot be read as a NumPy array ({exc}).") from None
    lines = [ln.strip() for ln in lp.read_text(encoding="utf-8-sig").splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    out = np.empty(len(lines), dtype=object)
    out[:] = lines
    return out


def _choose_key(path: Path, info: dict, key: Optional[str]) -> str:
    """Pick the data array among ``info`` (name -> (shape, dtype))."""
    if key is not None:
        if key not in info:
            raise InputError(f"{path}: no array named {key!r} (arrays: "
                             f"{', '.join(sorted(info)) or 'none'}).")
        shape, dtype = info[key]
        if dtype.kind not in "iufb":
            raise InputError(f"{path} [{key}]: holds {dtype} values, not numbers.")
        _layout(path, key, shape)
        return key
    cands = [k for k, (s, d) in info.items() if _suitable(s, d)]
    if len(cands) == 1:
        return cands[0]
    if not cands:
        desc = ", ".join(f"{k} {s}" for k, (s, d) in info.items()) or "none"
        raise InputError(f"{path}: no array of vectors (N x D) or images (N x H x W [x C]) "
                         f"found (arrays: {desc}).")
    named = [k for k in cands if k.rsplit("/", 1)[-1] in DATA_NAMES]
    if len(named) == 1:
        return named[0]
    desc = ", ".join(f"{k} {info[k][0]}" for k in cands)
    raise InputError(f"{path}: several arrays could be the data ({desc}); choose one with "
                     f"the key option.")


def _check_options(path: Path, options: dict) -> None:
    bad = [k for k in options if k not in OPTIONS]
    if bad:
        raise InputError(f"{path}: unknown option(s) {', '.join(bad)} for arrays "
                         f"(known: {', '.join(OPTIONS)}).")


def _side_arrays(path: Path, info: dict, n: int, key: str, options: dict, read,
                 attr_names=lambda lk: None) -> tuple:
    """labels, label_names, metadata from the arrays next to the data array."""
    lk = options.get("labels_key")
    lnk = options.get("label_names_key")
    for k, what in ((lk, "labels_key"), (lnk, "label_names_key")):
        if k is not None and k not in info:
            raise InputError(f"{path}: no array named {k!r} for {what} (arrays: "
                             f"{', '.join(sorted(info))}).")
    leaf = {k: k.rsplit("/", 1)[-1] for k in info}
    if lk is None and "labels_path" not in options:
        lk = next((k for w in LABEL_KEYS for k in info
                   if leaf[k] == w and k != key and len(info[k][0]) in (1, 2)
                   and info[k][0][0] == n and (len(info[k][0]) == 1 or info[k][0][1] == 1)), None)
    if lnk is None:
        lnk = next((k for w in LABEL_NAME_KEYS for k in info if leaf[k] == w), None)
    names = _decode_names(read(lnk)) if lnk is not None else (attr_names(lk) if lk else None)
    if "labels_path" in options:
        values, what = _labels_file(path, options["labels_path"]), f"from {options['labels_path']}"
    elif lk is not None:
        values, what = read(lk), f"[{lk}]"
    else:
        values, what = None, ""
    labels, label_names = _labels_from(path, n, values, names, what)
    metadata = {}
    for k, (shape, dtype) in info.items():
        if k in (key, lk, lnk) or len(shape) != 1 or shape[0] != n or dtype.kind not in "iufbSUO":
            continue
        v = read(k)
        metadata[leaf[k] if leaf[k] not in metadata else k] = (
            v.astype(np.float64) if v.dtype.kind in "iufb" else column_array(_decode_names(v)))
    return labels, label_names, metadata


# -- .npy ------------------------------------------------------------------------------------
@DATASETS.register("npy", label="NumPy array (.npy)", extensions=(".npy",), priority=10)
def open_npy(path, **options) -> ArrayDataset:
    """A NumPy .npy array: N x D vectors or N x H x W (x C) images."""
    path = Path(path)
    _check_options(path, options)
    if options.get("key") not in (None, ""):
        raise InputError(f"{path}: a .npy file holds one array; the key option does not apply.")
    store = _NpyStore(path)
    if store.dtype.kind not in "iufb":
        raise InputError(f"{path}: holds {store.dtype} values, not numbers.")
    _layout(path, None, store.shape)
    n = store.shape[0]
    if n == 0:
        raise InputError(f"{path}: the array is empty.")
    labels, names, extra = None, [], ()
    if "labels_path" in options:
        labels, names = _labels_from(path, n, _labels_file(path, options["labels_path"]), None,
                                     f"from {options['labels_path']}")
        extra = (_labels_path(path, options["labels_path"]),)
    return ArrayDataset(path, "npy", None, store, labels, names, {}, dict(options), extra)


# -- .npz ------------------------------------------------------------------------------------
def _npz_info(path: Path) -> dict:
    """name -> (shape, dtype) from the .npy headers inside the zip, without loading data."""
    info = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                if not name.endswith(".npy"):
                    continue
                with zf.open(name) as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                    else:
                        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                info[name[:-4]] = (tuple(shape), np.dtype(dtype))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise InputError(f"{path}: not a valid .npz file ({exc}).") from None
    return info


def _npz_load(path: Path, key: str) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as z:
            return z[key]
    except ValueError as exc:
        raise InputError(f"{path} [{key}]: cannot be read ({exc}).") from None


@DATASETS.register("npz", label="NumPy archive (.npz)", extensions=(".npz",), priority=10)
def open_npz(path, **options) -> ArrayDataset:
    """A NumPy .npz archive: choose the data array (key) and labels (labels_key)."""
    path = Path(path)
    _check_options(path, options)
    info = _npz_info(path)
    key = _choose_key(path, info, options.get("key"))
    shape, dtype = info[key]
    labels, names, metadata = _side_arrays(path, info, shape[0], key, options,
                                           lambda k: _npz_load(path, k))
    extra = ()
    if "labels_path" in options:
        extra = (_labels_path(path, options["labels_path"]),)
    return ArrayDataset(path, "npz", key, _NpzStore(path, key, shape, dtype), labels, names,
                        metadata, {**options, "key": key}, extra)


# -- HDF5 ------------------------------------------------------------------------------------
def _is_workspace(f) -> bool:
    fmt = f.attrs.get("format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode("utf-8", "replace")
    return fmt == WORKSPACE_FORMAT


def _sniff_hdf5(path: Path) -> bool:
    import h5py

    if not h5py.is_hdf5(path):
        return False
    with h5py.File(path, "r") as f:
        return not _is_workspace(f)


@DATASETS.register("hdf5", label="HDF5 arrays", extensions=(".h5", ".hdf5", ".hdf", ".he5"),
                   priority=10, sniff=_sniff_hdf5)
def open_hdf5(path, **options) -> ArrayDataset:
    """HDF5 file: choose the data array (key) and labels (labels_key); read per batch."""
    import h5py

    path = Path(path)
    _check_options(path, options)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"{path}: not a readable HDF5 file ({exc}).") from None
    with f:
        if _is_workspace(f):
            raise InputError(f"{path}: this is an Embedding Explorer workspace, not a dataset.")
        info: dict = {}

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and obj.shape is not None:
                info[name] = (tuple(obj.shape), obj.dtype)

        f.visititems(visit)
        key = _choose_key(path, info, options.get("key"))
        shape, dtype = info[key]
        opts = {**options, "key": key}

        def read(k):
            a = f[k][()]
            return np.asarray(a)

        def attr_names(lk):  # label names stored as an attribute, on the labels or the file
            for holder in (f[lk], f):
                if "label_names" in holder.attrs:
                    return _decode_names(holder.attrs["label_names"])
            return None

        labels, names, metadata = _side_arrays(path, info, shape[0], key, options, read,
                                               attr_names)
    if shape[0] == 0:
        raise InputError(f"{path} [{key}]: the array is empty.")
    extra = ()
    if "labels_path" in options:
        extra = (_labels_path(path, options["labels_path"]),)
    return ArrayDataset(path, "hdf5", key, _H5Store(path, key, shape, dtype), labels, names,
                        metadata, opts, extra)
