"""The HDF5 workspace: versioned, atomic, content-addressed.

A workspace is one HDF5 file holding *records*. A record lives at ``/<group>/<key>`` and has
named arrays (HDF5 datasets, chunked) and JSON attributes::

    ws = Workspace("project.h5")          # creates it if missing, else checks format + version
    ws.put("embeddings", key, {"vectors": v}, {"model": "resnet18", "n": len(v)})
    ws.has("embeddings", key)  -> bool
    rec = ws.get("embeddings", key)       # Record(group, key, arrays, attrs)
    ws.list("embeddings")      -> [(key, attrs), ...] in creation order
    ws.delete("embeddings", key)

File layout (format version 2): root attributes ``format = "embedding-explorer-workspace"``
and ``version = 2``; each record is an HDF5 group whose attribute ``attrs`` holds the record's
attributes as a JSON string (so numbers, strings, lists and nested dicts round-trip exactly)
and whose datasets are the arrays (float/int/bool arrays as they are, string arrays as UTF-8).

Versions: 2 lets an ``embeddings`` record hold fewer rows than its dataset has items, with
the array ``rows`` (their dataset indices) and the attribute ``n_items``, when unreadable items
were left out (:func:`explorer.embed.embedding_rows`). A version-1 file is read as it is (all
its records have every row) and becomes version 2 on its next write; an app that reads only
version 1 refuses a version-2 file instead of pairing rows with the wrong items.

**Atomic writes.** Every change is made on a copy: the current file is copied (object by
object with ``H5Ocopy``, which also drops the space of deleted or overwritten records) into a
temporary file in the same folder, the change is applied there, the file is flushed and
``fsync``-ed and then renamed over the workspace with :func:`os.replace`, which is atomic on
POSIX and Windows. A crash, a cancelled job or a full disk at any point leaves either the old
file or the new one, never a mixture; the temporary file is removed on failure. The cost is
one copy of the workspace per change (about disk speed; measured in
``benchmarks/bench_embed.py``); reads never copy.

The file is never held open between calls (the GUI and worker threads share it); one lock per
path serialises the calls of this process, and an advisory lock file (POSIX ``flock``)
serialises writers of different processes.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field, is_dataclass, asdict
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from explorer.errors import WorkspaceError

__all__ = ["Workspace", "Record", "RecordNotFound", "content_key", "FORMAT", "FORMAT_VERSION"]

FORMAT = "embedding-explorer-workspace"
FORMAT_VERSION = 2  # 2: embeddings records may leave unreadable items out (array "rows")

#: Target size of one HDF5 chunk. 1 MiB keeps whole-array reads at memory speed (the cache
#: hit) while a reader of a few rows touches little.
CHUNK_BYTES = 1 << 20
#: Rows written per call when filling a dataset (bounds the extra memory of a put).
WRITE_BLOCK_BYTES = 16 << 20

_NAME = re.compile(r"^[A-Za-z0-9_.\-:+=@,]{1,200}$")


# ---------------------------------------------------------------------------------------------
# content keys
# ---------------------------------------------------------------------------------------------
def _jsonable(x: Any) -> Any:
    if is_dataclass(x) and not isinstance(x, type):
        return _jsonable(x.to_dict() if hasattr(x, "to_dict") else asdict(x))
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if x is None or isinstance(x, (str, int, float, bool)):
        return x
    raise TypeError(f"{type(x).__name__} is not JSON-able")


def content_key(*parts: Any) -> str:
    """Stable hex hash (32 hex digits of SHA-256) of JSON-able ``parts``.

    Dicts are hashed with sorted keys, tuples like lists, dataclasses by their fields (or their
    ``to_dict()``), paths as strings, so the same inputs give the same key in every process and
    on every platform.
    """
    text = json.dumps(_jsonable(list(parts)), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True, allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


# ---------------------------------------------------------------------------------------------
# records
# ---------------------------------------------------------------------------------------------
@dataclass
class Record:
    """One record of a workspace: ``arrays`` (name -> numpy array) and ``attrs`` (JSON dict)."""

    group: str
    key: str
    arrays: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)


class RecordNotFound(WorkspaceError, KeyError):
    """``get`` of a record the workspace does not hold. Also a ``KeyError``."""

    __str__ = Exception.__str__


# ---------------------------------------------------------------------------------------------
# locks
# ---------------------------------------------------------------------------------------------
_LOCKS: dict[str, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def _thread_lock(path: Path) -> threading.RLock:
    k = os.path.normcase(str(path))
    with _LOCKS_GUARD:
        lock = _LOCKS.get(k)
        if lock is None:
            lock = _LOCKS[k] = threading.RLock()
        return lock


@contextmanager
def _process_lock(path: Path) -> Iterator[None]:
    """Advisory inter-process lock on ``.<name>.lock`` next to the workspace (POSIX only;
    elsewhere the per-process lock alone applies)."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    lock_path = path.with_name(f".{path.name}.lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:  # read-only folder: writes will fail with their own message
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


# ---------------------------------------------------------------------------------------------
# low-level writing (the seams a disk-full test can reach)
# ---------------------------------------------------------------------------------------------
def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", -1)):
        return True
    text = str(exc).lower()
    return any(s in text for s in ("no space left", "errno = 28", "file too large", "errno = 27",
                                   "disk quota", "errno = 122"))


def _write_block(dset, start: int, block: np.ndarray) -> None:
    """Write rows ``start:start+len(block)`` of ``dset``. Every array byte a put writes goes
    through here."""
    dset[start:start + len(block)] = block


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY if sys.platform != "win32" else os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    if sys.platform == "win32":
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _replace(src: Path, dst: Path) -> None:
    # On Windows a file that another handle holds open cannot be replaced; such handles are
    # short-lived here (nothing holds the workspace open between calls), so retry briefly.
    for attempt in range(50):
        try:
            os.replace(src, dst)
            return
        except PermissionError:
            if sys.platform != "win32" or attempt == 49:
                raise
            time.sleep(0.1)


def _chunks(shape: tuple, itemsize: int) -> Optional[tuple]:
    if len(shape) == 0 or 0 in shape:
        return None
    row = int(np.prod(shape[1:], dtype=np.int64)) * itemsize if len(shape) > 1 else itemsize
    rows = int(max(1, min(shape[0], CHUNK_BYTES // max(1, row))))
    chunk = (rows,) + tuple(shape[1:])
    # A single row wider than the chunk target: split its trailing axis too.
    while int(np.prod(chunk, dtype=np.int64)) * itemsize > 4 * CHUNK_BYTES and max(chunk[1:], default=1) > 1:
        ax = 1 + int(np.argmax(chunk[1:]))
        chunk = chunk[:ax] + ((chunk[ax] + 1) // 2,) + chunk[ax + 1:]
    return chunk


def _create_array(group, name: str, a: np.ndarray) -> None:
    import h5py

    if a.dtype.kind in ("U", "O", "S"):
        data = np.array(["" if s is None else str(s) for s in a.reshape(-1)], dtype=object).reshape(a.shape)
        ds = group.create_dataset(name, shape=a.shape, dtype=h5py.string_dtype("utf-8"),
                                  chunks=_chunks(a.shape, 16))
        ds.attrs["kind"] = "str"
        a = data
    else:
        ds = group.create_dataset(name, shape=a.shape, dtype=a.dtype, chunks=_chunks(a.shape, a.dtype.itemsize))
    if a.ndim == 0:
        ds[()] = a
        return
    if a.size == 0:
        return
    row = max(1, a.nbytes // max(1, len(a)))
    step = max(1, WRITE_BLOCK_BYTES // row)
    for start in range(0, len(a), step):
        _write_block(ds, start, a[start:start + step])


def _read_array(ds) -> np.ndarray:
    if ds.attrs.get("kind") == "str":
        return np.asarray(ds.asstr()[()], dtype=object).astype(str) if ds.shape else np.str_(ds.asstr()[()])
    if ds.shape is None:
        return np.zeros(0, ds.dtype)
    if ds.ndim == 0 or ds.size == 0:
        return ds[()] if ds.ndim == 0 else np.empty(ds.shape, ds.dtype)
    out = np.empty(ds.shape, ds.dtype)
    ds.read_direct(out)
    return out


def _check_name(what: str, name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
        raise ValueError(f"Invalid workspace {what} {name!r}: use 1-200 letters, digits and _.-:+=@,")
    return name


# ---------------------------------------------------------------------------------------------
# the workspace
# ---------------------------------------------------------------------------------------------
class Workspace:
    """An Embedding Explorer workspace file (see the module docstring).

    ``Workspace(path)`` creates the file if it is missing (and its folder), else checks that it
    is a workspace of a version this code reads; any problem is a :class:`WorkspaceError`
    naming the file. No HDF5 handle stays open between calls.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path).expanduser().absolute()
        self._lock = _thread_lock(self.path)
        with self._lock:
            if self.path.is_dir():
                raise WorkspaceError(f"{self.path} is a folder, not a workspace file.")
            if self.path.exists():
                self._validate()
            else:
                try:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise WorkspaceError(f"Cannot create the folder for {self.path}: {exc.strerror or exc}.") from None
                with _process_lock(self.path):
                    if not self.path.exists():
                        self._rewrite(None, extra_bytes=0)
                    else:
                        self._validate()

    def __repr__(self) -> str:
        return f"Workspace({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    # -- opening --------------------------------------------------------------------------
    def _check_root(self, f) -> None:
        fmt = f.attrs.get("format")
        if isinstance(fmt, bytes):
            fmt = fmt.decode("utf-8", "replace")
        if fmt != FORMAT:
            raise WorkspaceError(f"{self.name} is an HDF5 file but not an Embedding Explorer workspace.")
        try:
            version = int(f.attrs.get("version"))
        except (TypeError, ValueError):
            raise WorkspaceError(f"{self.name} is a workspace without a valid format version; it cannot be read.") from None
        if version > FORMAT_VERSION:
            raise WorkspaceError(
                f"{self.name} was written by a newer Embedding Explorer (workspace format {version}; "
                f"this version reads up to {FORMAT_VERSION}); update the app to open it.")
        if version < 1:
            raise WorkspaceError(f"{self.name} has an unknown workspace format version {version}.")

    @contextmanager
    def _open(self, mode: str = "r"):
        import h5py

        try:
            f = h5py.File(self.path, mode, locking=False)
        except FileNotFoundError:
            raise WorkspaceError(f"{self.path}: the workspace file is missing.") from None
        except OSError as exc:
            if not self.path.exists():
                raise WorkspaceError(f"{self.path}: the workspace file is missing.") from None
            if self.path.stat().st_size == 0 or not h5py.is_hdf5(self.path):
                raise WorkspaceError(f"{self.name} is not an HDF5 file, so it is not an Embedding Explorer workspace.") from None
            raise WorkspaceError(f"{self.name} cannot be read; the HDF5 file is damaged ({exc}).") from None
        try:
            self._check_root(f)
            yield f
        finally:
            f.close()

    def _validate(self) -> None:
        with self._open():
            pass

    # -- reading --------------------------------------------------------------------------
    def has(self, group: str, key: str) -> bool:
        _check_name("group", group)
        _check_name("key", key)
        with self._lock, self._open() as f:
            g = f.get(group)
            return g is not None and key in g

    def get(self, group: str, key: str, names: Optional[list[str]] = None) -> Record:
        """The record ``group/key`` with all its arrays (or only ``names``) loaded."""
        _check_name("group", group)
        _check_name("key", key)
        with self._lock, self._open() as f:
            g = f.get(group)
            if g is None or key not in g:
                raise RecordNotFound(f"{self.name} has no {group} record {key}.")
            r = g[key]
            arrays = {n: _read_array(r[n]) for n in r.keys() if names is None or n in names}
            return Record(group, key, arrays, self._attrs_of(r))

    def list(self, group: str) -> list[tuple[str, dict]]:
        """``(key, attrs)`` of every record in ``group`` in the order they were (last) written;
        ``[]`` when the group does not exist."""
        _check_name("group", group)
        with self._lock, self._open() as f:
            g = f.get(group)
            if g is None:
                return []
            return [(k, self._attrs_of(g[k])) for k in g.keys()]

    def groups(self) -> list[str]:
        with self._lock, self._open() as f:
            return list(f.keys())

    @staticmethod
    def _attrs_of(r) -> dict:
        raw = r.attrs.get("attrs", "{}")
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8")
        return json.loads(raw)

    # -- writing --------------------------------------------------------------------------
    def put(self, group: str, key: str, arrays: Optional[dict] = None, attrs: Optional[dict] = None) -> None:
        """Store (or replace) record ``group/key`` atomically. ``attrs`` must be JSON-able."""
        _check_name("group", group)
        _check_name("key", key)
        arrays = {_check_name("array", n): np.asarray(a) for n, a in (arrays or {}).items()}
        try:
            attrs_json = json.dumps(_jsonable(dict(attrs or {})), allow_nan=True)
        except TypeError as exc:
            raise ValueError(f"Record attributes must be JSON-able: {exc}.") from None
        extra = sum(a.nbytes if a.dtype.kind not in "UOS" else a.size * 64 for a in arrays.values())

        def edit(f) -> None:
            g = f[group] if group in f else f.create_group(group, track_order=True)
            if key in g:
                del g[key]
            r = g.create_group(key, track_order=True)
            for n, a in arrays.items():
                _create_array(r, n, a)
            r.attrs["attrs"] = attrs_json
            r.attrs["written"] = time.time()

        with self._lock, _process_lock(self.path):
            self._validate()
            self._rewrite(edit, extra_bytes=extra, drop=(group, key))

    def delete(self, group: str, key: str) -> bool:
        """Remove record ``group/key`` (and its space). Returns whether it existed."""
        _check_name("group", group)
        _check_name("key", key)
        with self._lock, _process_lock(self.path):
            if not self.has(group, key):
                return False
            self._rewrite(lambda f: None, extra_bytes=0, drop=(group, key))
            return True

    def _rewrite(self, edit, extra_bytes: int, drop: Optional[tuple] = None) -> None:
        """Build the new file next to the old one and rename it over it (see module doc)."""
        import h5py

        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:12]}.tmp")
        old_size = self.path.stat().st_size if self.path.exists() else 0
        try:
            try:
                free = _disk_free(self.path.parent)
                if free is not None and free < old_size + extra_bytes + (1 << 20):
                    raise OSError(errno.ENOSPC, "No space left on device")
                with h5py.File(tmp, "w", locking=False, track_order=True) as dst:
                    dst.attrs["format"] = FORMAT
                    dst.attrs["version"] = FORMAT_VERSION
                    dst.attrs["written_by"] = _app_version()
                    if old_size:
                        with h5py.File(self.path, "r", locking=False) as src:
                            self._check_root(src)
                            for gname, g in src.items():
                                if not isinstance(g, h5py.Group):
                                    src.copy(g, dst, name=gname)
                                    continue
                                dg = dst.create_group(gname, track_order=True)
                                for k in g.keys():
                                    if drop is not None and (gname, k) == drop:
                                        continue
                                    src.copy(g[k], dg, name=k)
                                if drop is not None and gname == drop[0] and len(dg) == 0:
                                    del dst[gname]
                    if edit is not None:
                        edit(dst)
                    dst.flush()
                _fsync(tmp)
                _replace(tmp, self.path)
            except WorkspaceError:
                raise
            except (OSError, RuntimeError) as exc:  # h5py reports failed C writes as either
                if _is_disk_full(exc):
                    raise WorkspaceError(f"Disk full while writing {self.name}; the workspace is unchanged.") from None
                raise WorkspaceError(f"Could not write {self.name} ({exc}); the workspace is unchanged.") from None
        finally:
            if tmp.exists():
                try:
                    tmp.unlink()
                except OSError:
                    pass
        _fsync_dir(self.path.parent)


def _disk_free(folder: Path) -> Optional[int]:
    import shutil

    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _app_version() -> str:
    try:
        from explorer import __version__

        return str(__version__)
    except Exception:
        return "unknown"
