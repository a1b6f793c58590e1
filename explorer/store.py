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

**Full disks.** A put is refused up front when the folder lacks the room for the new file. While
it writes, a small reservation file (:data:`RESERVE_BYTES`) sits next to it; if the disk still
fills up (another program writing at the same time), the reservation is released so that HDF5
can close its half-written temporary file cleanly, and the put ends with one
:class:`~explorer.core.errors.WorkspaceError` saying "Disk full", never with HDF5's own messages.

**Temporary files** are named ``.<name>.<pid>-<random>.tmp`` (and ``.reserve``). Those left by a
killed writer are removed when the workspace is next opened: all of them when no other process
holds the workspace's lock, else those whose process is gone.

**Read-only workspaces** (the file or its folder cannot be written) open and read as usual;
:meth:`Workspace.put` keeps the record in memory for the life of the object (``has``/``get``/
``list`` see it) and says once, as an :class:`~explorer.core.errors.ExplorerWarning`, that results
are not cached. So caches (maps, k-NN graphs, diagnostics) simply recompute.

Output files other than workspaces (``--out`` arrays, exports) go through :func:`atomic_file`:
written to a temporary name in the target folder and renamed over the target.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
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

from explorer.core.errors import InputError, WorkspaceError, warn

__all__ = ["Workspace", "Record", "RecordNotFound", "WorkspaceReadOnly", "content_key", "jsonable", "FORMAT",
           "ArraySource", "LazyArray",
           "FORMAT_VERSION", "atomic_file", "check_output_path", "save_npy", "GROUPS", "EMBEDDINGS", "LAYOUTS",
           "KNN", "DIAGNOSTICS", "COMPARISONS", "TIMELINES", "CLUSTERS", "TAGS"]

FORMAT = "embedding-explorer-workspace"
FORMAT_VERSION = 2  # 2: embeddings records may leave unreadable items out (array "rows")

#: Target size of one HDF5 chunk. 1 MiB keeps whole-array reads at memory speed (the cache
#: hit) while a reader of a few rows touches little.
CHUNK_BYTES = 1 << 20
#: Rows written per call when filling a dataset (bounds the extra memory of a put).
WRITE_BLOCK_BYTES = 16 << 20
#: Space held in reserve during a put and released if the disk fills up, so that HDF5 can
#: still flush and close the temporary file (its chunk caches and metadata) without errors.
RESERVE_BYTES = 4 * CHUNK_BYTES

_NAME = re.compile(r"^[A-Za-z0-9_.\-:+=@,]{1,200}$")


# ---------------------------------------------------------------------------------------------
# groups, JSON and content keys
# ---------------------------------------------------------------------------------------------
#: The workspace's record groups: each cache writes to one of them, and only through these names.
EMBEDDINGS = "embeddings"    # explorer.embed: vectors of a dataset under an encoder
LAYOUTS = "layouts"          # explorer.maps: 2-D maps
KNN = "knn"                  # explorer.maps: k-NN graphs the maps were built from
DIAGNOSTICS = "diagnostics"  # explorer.metrics.diagnose
COMPARISONS = "comparisons"  # the compare command: per-point neighbourhood overlaps
TIMELINES = "timelines"      # explorer.app.timeline: a training run's checkpoints
CLUSTERS = "clusters"        # explorer.maps.clusters: HDBSCAN clusters of a layout
TAGS = "tags"                # explorer.app.tags: the user's tags of a dataset's items
GROUPS = (EMBEDDINGS, LAYOUTS, KNN, DIAGNOSTICS, COMPARISONS, TIMELINES, CLUSTERS, TAGS)


def jsonable(x: Any, strict: bool = False, finite: bool = False) -> Any:
    """``x`` as plain JSON values, the one converter of the app: dicts (str keys), lists
    (tuples and numpy arrays too), numbers (numpy scalars as Python ones), str, bool, None;
    dataclasses by ``to_dict()`` or their fields, paths as str. ``finite``: NaN and inf become
    None (strict JSON). Anything else raises TypeError when ``strict``, else is kept."""
    def conv(v):
        if is_dataclass(v) and not isinstance(v, type):
            return conv(v.to_dict() if hasattr(v, "to_dict") else asdict(v))
        if isinstance(v, dict):
            return {str(k): conv(w) for k, w in v.items()}
        if isinstance(v, (list, tuple)):
            return [conv(w) for w in v]
        if isinstance(v, np.ndarray):
            return conv(v.tolist())
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, float) and finite and not math.isfinite(v):
            return None
        if v is None or isinstance(v, (str, int, float, bool)) or not strict:
            return v
        raise TypeError(f"{type(v).__name__} is not JSON-able")
    return conv(x)


def content_key(*parts: Any) -> str:
    """Stable hex hash (32 hex digits of SHA-256) of JSON-able ``parts``.

    Dicts are hashed with sorted keys, tuples like lists, dataclasses by their fields (or their
    ``to_dict()``), paths as strings, so the same inputs give the same key in every process and
    on every platform.
    """
    text = json.dumps(jsonable(list(parts), strict=True), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True, allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


# ---------------------------------------------------------------------------------------------
# arrays too big for memory
# ---------------------------------------------------------------------------------------------
class ArraySource:
    """An (N, ...) array read a block of rows at a time: :meth:`read` ``(start, stop)`` gives
    rows as a numpy array of ``dtype``. :meth:`Workspace.put` streams one into the file (its
    memory bounded by a write block); slicing reads only the rows asked for; ``np.asarray``
    reads them all. Subclasses implement :meth:`read` (and may override :meth:`take`)."""

    def __init__(self, shape: tuple, dtype) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)

    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: int(np.prod(self.shape, dtype=np.int64)))
    nbytes = property(lambda self: self.size * self.dtype.itemsize)

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, start: int, stop: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def take(self, rows) -> np.ndarray:
        """Rows at dataset indices ``rows`` (any order), read in increasing order, runs at once."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = np.empty((len(rows),) + self.shape[1:], dtype=self.dtype)
        if not len(rows):
            return out
        order = np.argsort(rows, kind="stable")
        srt = rows[order]
        breaks = np.flatnonzero(np.diff(srt) > 1) + 1
        runs = np.split(srt, breaks)
        pos = 0
        for run, block in zip(runs, self._read_runs([(int(r[0]), int(r[-1]) + 1) for r in runs])):
            out[order[pos:pos + len(run)]] = block[run - run[0]]
            pos += len(run)
        return out

    def _read_runs(self, spans: list):
        """Rows ``a:b`` for each ``(a, b)`` of ``spans``, in order (an iterator)."""
        for a, b in spans:
            yield self.read(a, b)

    def __getitem__(self, item):
        if isinstance(item, tuple):
            first, rest = item[0], item[1:]
            return self[first][(slice(None),) + rest] if not isinstance(first, (int, np.integer)) else self[first][rest]
        if isinstance(item, slice):
            start, stop, step = item.indices(len(self))
            if step == 1:
                return self.read(start, max(start, stop))
            return self.take(np.arange(start, stop, step))
        if isinstance(item, (int, np.integer)):
            i = int(item) + (len(self) if int(item) < 0 else 0)
            if not 0 <= i < len(self):
                raise IndexError(f"row {item} out of range for {len(self)} rows")
            return self.read(i, i + 1)[0]
        idx = np.asarray(item)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return self.take(np.where(idx < 0, idx + len(self), idx))

    def __array__(self, dtype=None, copy=None):
        a = self.read(0, len(self))
        return a if dtype is None else a.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape}, dtype={self.dtype})"


class LazyArray(ArraySource):
    """An array of a workspace record, read from the file only when rows are asked for (no
    HDF5 handle is held between reads). Arrays stored as float16 (``stored_as`` in the
    record's attributes) read back as float32. From :meth:`Workspace.lazy`."""

    def __init__(self, workspace: "Workspace", group: str, key: str, name: str, shape, stored_dtype, dtype) -> None:
        super().__init__(shape, dtype)
        self.workspace, self.group, self.key, self.name = workspace, group, key, name
        self.stored_dtype = np.dtype(stored_dtype)

    def read(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(0, int(start)), min(len(self), int(stop))
        out = np.empty((max(0, stop - start),) + self.shape[1:], dtype=self.dtype)
        if stop <= start:
            return out
        with self.workspace._lock, self.workspace._open() as f:
            self._fill(f[self.group][self.key][self.name], out, start, stop)
        return out

    def _fill(self, ds, out: np.ndarray, start: int, stop: int) -> None:
        step = max(1, WRITE_BLOCK_BYTES // max(1, int(np.prod(self.shape[1:], dtype=np.int64)) * ds.dtype.itemsize))
        for a in range(start, stop, step):
            out[a - start:min(stop, a + step) - start] = ds[a:min(stop, a + step)]

    def _read_runs(self, spans: list):
        with self.workspace._lock, self.workspace._open() as f:  # one open for every run
            ds = f[self.group][self.key][self.name]
            for a, b in spans:
                out = np.empty((b - a,) + self.shape[1:], dtype=self.dtype)
                self._fill(ds, out, a, b)
                yield out


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


class WorkspaceReadOnly(WorkspaceError):
    """A write to a workspace whose file or folder cannot be written."""


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
def _process_lock(path: Path, blocking: bool = True) -> Iterator[Optional[bool]]:
    """Advisory inter-process lock on ``.<name>.lock`` next to the workspace (POSIX only;
    elsewhere the per-process lock alone applies). Yields True when held, False when
    ``blocking=False`` and another process holds it, None when no lock is possible (Windows,
    read-only folder)."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield None
        return
    lock_path = path.with_name(f".{path.name}.lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:  # read-only folder: writes will fail with their own message
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


# ---------------------------------------------------------------------------------------------
# temporary files
# ---------------------------------------------------------------------------------------------
def _tmp_path(path: Path, suffix: str = "tmp") -> Path:
    """``.<name>.<pid>-<random>.<suffix>`` next to ``path``: the pid says whether its writer lives."""
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.{suffix}")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if sys.platform == "win32":  # pragma: no cover
        return True  # no cheap check; files of dead writers are removed under the lock instead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def clean_stale_temporaries(path: Path) -> list[str]:
    """Remove the temporary files a killed writer left next to workspace ``path`` (see the
    module docstring); returns their names. Callers hold the path's thread lock, so no writer
    of this process is running."""
    path = Path(path)
    prefix = f".{path.name}."
    try:
        names = [n for n in os.listdir(path.parent) if n.startswith(prefix)
                 and (n.endswith(".tmp") or n.endswith(".reserve"))]
    except OSError:
        return []
    pat = re.compile(re.escape(prefix) + r"(?:(\d+)-)?[0-9a-f]{8,32}\.(?:tmp|reserve)")
    removed = []
    if not names:
        return removed
    with _process_lock(path, blocking=False) as held:
        for n in names:
            m = pat.fullmatch(n)
            if m is None:
                continue
            pid = int(m.group(1)) if m.group(1) else None
            # under the lock no writer of another process is running; without it, keep files
            # whose process still lives (or of unknown process)
            if not held and (pid is None or (pid != os.getpid() and _pid_alive(pid))):
                continue
            try:
                os.unlink(path.parent / n)
                removed.append(n)
            except OSError:
                pass
    return removed


def _fallocate(fd: int, nbytes: int) -> None:
    """Allocate ``nbytes`` of the open file on disk, so that writing them later cannot fail for
    want of space. OSError (ENOSPC, EFBIG) when there is no room."""
    if not hasattr(os, "posix_fallocate"):  # Windows: NTFS allocates a file's clusters when it grows
        os.ftruncate(fd, nbytes)
        return
    try:
        os.posix_fallocate(fd, 0, nbytes)
        return
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, getattr(errno, "ENOTSUP", -1)):
            raise
    block = b"\0" * (1 << 20)  # a file system without fallocate: write the zeros
    os.lseek(fd, 0, os.SEEK_SET)
    left = nbytes
    while left > 0:
        left -= os.write(fd, block[:left])
    os.fsync(fd)


def _preallocate(path: Path, nbytes: int) -> None:
    fd = os.open(path, os.O_RDWR)
    try:
        _fallocate(fd, nbytes)
    finally:
        os.close(fd)


def _reserve(path: Path, nbytes: int) -> Optional[Path]:
    """A file of ``nbytes`` really allocated on disk next to ``path`` (None for 0 bytes).
    OSError (ENOSPC, EACCES, ...) when it cannot be made."""
    if nbytes <= 0:
        return None
    res = _tmp_path(path, "reserve")
    fd = os.open(res, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        _fallocate(fd, nbytes)
    except BaseException:
        os.close(fd)
        _unlink(res)
        raise
    os.close(fd)
    return res


def _unlink(p: Optional[Path]) -> None:
    if p is None:
        return
    try:
        os.unlink(p)
    except OSError:
        pass


# ---------------------------------------------------------------------------------------------
# low-level writing (the seams a disk-full test can reach)
# ---------------------------------------------------------------------------------------------
def _is_read_only(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return True
    text = str(exc).lower()
    return any(s in text for s in ("errno = 13", "errno = 30", "permission denied", "read-only file system"))


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

    if isinstance(a, ArraySource) and a.dtype.kind in ("U", "O", "S"):
        raise ValueError(f"Array {name}: string arrays cannot be streamed.")
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
    # write the chunk cache out now, where a failure raises; left to the dataset's close it
    # would be reported as "Exception ignored" and lost
    ds.flush()


def _stored_bytes(a: np.ndarray) -> int:
    """About the bytes array ``a`` takes in the file (strings: UTF-8 plus HDF5's heap overhead)."""
    if isinstance(a, ArraySource) or a.dtype.kind not in "UOS":
        return int(a.nbytes) + 4096
    if a.dtype.kind in "US":  # UTF-8 takes at most 4 bytes a character: at most the itemsize
        return int(a.size) * (a.dtype.itemsize + 48) + 4096
    return sum(len(str(x).encode("utf-8", "replace")) + 48 for x in a.reshape(-1)) + 4096


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
        self._memory: dict[str, dict[str, Record]] = {}  # records kept in memory (read-only file)
        self._told_not_cached = False
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
                        try:
                            self._rewrite(None, extra_bytes=0)
                        except WorkspaceReadOnly:
                            raise WorkspaceError(f"Cannot create {self.path}: its folder is read-only "
                                                 "(or not yours); choose another place.") from None
                    else:
                        self._validate()
            self.read_only = not (os.access(self.path, os.W_OK)
                                  and os.access(self.path.parent, os.W_OK | os.X_OK))
            if not self.read_only:
                clean_stale_temporaries(self.path)

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

    def _group(self, f, group: str):
        """HDF5 group ``group`` of open file ``f`` or None; a non-group there is a damaged file."""
        import h5py

        g = f.get(group)
        if g is not None and not isinstance(g, h5py.Group):
            raise WorkspaceError(f"{self.name} is damaged: {group} is not a group of records.")
        return g

    def _record(self, g, group: str, key: str):
        import h5py

        r = g[key]
        if not isinstance(r, h5py.Group):
            raise WorkspaceError(f"{self.name} is damaged: the {group} record {key} is not a group of arrays.")
        return r

    # -- reading --------------------------------------------------------------------------
    def has(self, group: str, key: str) -> bool:
        _check_name("group", group)
        _check_name("key", key)
        with self._lock:
            if key in self._memory.get(group, {}):
                return True
            with self._open() as f:
                g = self._group(f, group)
                return g is not None and key in g

    def get(self, group: str, key: str, names: Optional[list[str]] = None) -> Record:
        """The record ``group/key`` with all its arrays (or only ``names``) loaded."""
        _check_name("group", group)
        _check_name("key", key)
        with self._lock:
            mem = self._memory.get(group, {}).get(key)
            if mem is not None:
                up = mem.attrs.get("stored_as") or {}
                return Record(group, key, {n: (np.asarray(a).astype(np.float32) if n in up else a)
                                           for n, a in mem.arrays.items() if names is None or n in names},
                              dict(mem.attrs))
            with self._open() as f:
                g = self._group(f, group)
                if g is None or key not in g:
                    raise RecordNotFound(f"{self.name} has no {group} record {key}.")
                r = self._record(g, group, key)
                try:
                    arrays = {n: _read_array(r[n]) for n in r.keys() if names is None or n in names}
                except (OSError, RuntimeError, KeyError, TypeError, ValueError) as exc:
                    raise WorkspaceError(f"{self.name} is damaged: the arrays of the {group} record {key} "
                                         f"cannot be read ({_first_line(exc)}).") from None
                attrs = self._attrs_of(r, group, key)
                for n in (attrs.get("stored_as") or {}):  # stored as float16 to halve the file
                    if n in arrays:
                        arrays[n] = arrays[n].astype(np.float32)
                return Record(group, key, arrays, attrs)

    def lazy(self, group: str, key: str, name: str) -> "LazyArray":
        """Array ``name`` of record ``group/key`` without reading it: a :class:`LazyArray`
        whose rows are read from the file when asked for (float16-stored arrays as float32)."""
        _check_name("group", group)
        _check_name("key", key)
        with self._lock:
            mem = self._memory.get(group, {}).get(key)
            if mem is not None:
                a = np.asarray(mem.arrays[name])
                return _MemoryArray(a.astype(np.float32) if name in (mem.attrs.get("stored_as") or {}) else a)
            with self._open() as f:
                g = self._group(f, group)
                if g is None or key not in g:
                    raise RecordNotFound(f"{self.name} has no {group} record {key}.")
                r = self._record(g, group, key)
                if name not in r:
                    raise RecordNotFound(f"The {group} record {key} of {self.name} has no array {name}.")
                ds = r[name]
                stored = ds.dtype
                upcast = name in (self._attrs_of(r, group, key).get("stored_as") or {})
                return LazyArray(self, group, key, name, ds.shape, stored, np.float32 if upcast else stored)

    def list(self, group: str) -> list[tuple[str, dict]]:
        """``(key, attrs)`` of every record in ``group`` in the order they were (last) written;
        ``[]`` when the group does not exist."""
        _check_name("group", group)
        with self._lock:
            mem = self._memory.get(group, {})
            with self._open() as f:
                g = self._group(f, group)
                stored = [] if g is None else [(k, self._attrs_of(g[k], group, k)) for k in g.keys() if k not in mem]
            return stored + [(k, dict(r.attrs)) for k, r in mem.items()]

    def groups(self) -> list[str]:
        with self._lock, self._open() as f:
            return list(f.keys()) + [g for g in self._memory if g not in f]

    def _attrs_of(self, r, group: str = "", key: str = "") -> dict:
        raw = r.attrs.get("attrs", "{}")
        try:
            if isinstance(raw, bytes):
                raw = raw.decode("utf-8")
            attrs = json.loads(raw)
        except (TypeError, ValueError):
            attrs = None
        if not isinstance(attrs, dict):
            what = f"the {group} record {key}" if group else f"the record {r.name}"
            raise WorkspaceError(f"{self.name} is damaged: {what} has malformed attributes "
                                 "(not a JSON object).")
        return attrs

    # -- writing --------------------------------------------------------------------------
    def put(self, group: str, key: str, arrays: Optional[dict] = None, attrs: Optional[dict] = None) -> None:
        """Store (or replace) record ``group/key`` atomically. ``attrs`` must be JSON-able."""
        _check_name("group", group)
        _check_name("key", key)
        arrays = {_check_name("array", n): a if isinstance(a, ArraySource) else np.asarray(a)
                  for n, a in (arrays or {}).items()}
        try:
            attrs_json = json.dumps(jsonable(dict(attrs or {}), strict=True), allow_nan=True)
        except TypeError as exc:
            raise ValueError(f"Record attributes must be JSON-able: {exc}.") from None
        extra = sum(_stored_bytes(a) for a in arrays.values())

        def edit(f) -> None:
            g = f[group] if group in f else f.create_group(group, track_order=True)
            if key in g:
                del g[key]
            r = g.create_group(key, track_order=True)
            for n, a in arrays.items():
                _create_array(r, n, a)
            r.attrs["attrs"] = attrs_json
            r.attrs["written"] = time.time()

        with self._lock:
            if not self.read_only:
                try:
                    with _process_lock(self.path):
                        self._validate()
                        self._rewrite(edit, extra_bytes=extra, drop=(group, key))
                    self._memory.get(group, {}).pop(key, None)
                    return
                except WorkspaceReadOnly:
                    self.read_only = True
            self._keep(group, key, arrays, json.loads(attrs_json))

    def _keep(self, group: str, key: str, arrays: dict, attrs: dict) -> None:
        """A put on a read-only workspace: keep the record in memory, and say so once."""
        self._memory.setdefault(group, {})[key] = Record(group, key, dict(arrays), attrs)
        if not self._told_not_cached:
            self._told_not_cached = True
            warn(f"{self.name} is read-only, so results are kept in memory and not cached in it.")

    def delete(self, group: str, key: str) -> bool:
        """Remove record ``group/key`` (and its space). Returns whether it existed."""
        _check_name("group", group)
        _check_name("key", key)
        with self._lock:
            if self._memory.get(group, {}).pop(key, None) is not None:
                return True
            with _process_lock(self.path):
                if not self.has(group, key):
                    return False
                if self.read_only:
                    raise WorkspaceReadOnly(f"{self.name} is read-only; nothing can be deleted from it.")
                self._rewrite(lambda f: None, extra_bytes=0, drop=(group, key))
                return True

    def _rewrite(self, edit, extra_bytes: int, drop: Optional[tuple] = None) -> None:
        """Build the new file next to the old one and rename it over it (see module doc)."""
        import h5py

        tmp = _tmp_path(self.path)
        reserve = None
        old_size = self.path.stat().st_size if self.path.exists() else 0
        try:
            try:
                need = old_size + extra_bytes + (1 << 20) + (old_size + extra_bytes) // 16
                free = _disk_free(self.path.parent)
                if free is not None and free < need + RESERVE_BYTES:
                    raise OSError(errno.ENOSPC, "No space left on device")
                with h5py.File(tmp, "w", locking=False, track_order=True) as dst:
                    dst.attrs["format"] = FORMAT
                    dst.attrs["version"] = FORMAT_VERSION
                    dst.attrs["written_by"] = _app_version()
                # the blocks HDF5 is about to write are allocated now (HDF5 writes from its end
                # of data and truncates the file to it on close), so a disk filling up meanwhile
                # or a file-size limit fails here, with a plain OSError, not inside HDF5
                _preallocate(tmp, need)
                reserve = _reserve(self.path, RESERVE_BYTES)
                with h5py.File(tmp, "r+", locking=False) as dst:
                    try:
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
                    except BaseException:
                        # give the space back before HDF5 closes the file: closing flushes its
                        # caches, and a close that fails leaves HDF5 in a state that prints
                        # "Exception ignored" and can crash the interpreter at exit
                        _unlink(reserve)
                        reserve = None
                        raise
                _fsync(tmp)
                _replace(tmp, self.path)
            except WorkspaceError:
                raise
            except (OSError, RuntimeError) as exc:  # h5py reports failed C writes as either
                if _is_disk_full(exc):
                    raise WorkspaceError(f"Disk full while writing {self.name}; the workspace is unchanged.") from None
                if _is_read_only(exc):
                    raise WorkspaceReadOnly(f"{self.name} cannot be written here (read-only file or folder); "
                                            "the workspace is unchanged.") from None
                raise WorkspaceError(f"Could not write {self.name} ({_first_line(exc)}); "
                                     "the workspace is unchanged.") from None
        finally:
            _unlink(reserve)
            if tmp.exists():
                _unlink(tmp)
        _fsync_dir(self.path.parent)


class _MemoryArray(ArraySource):
    """A kept-in-memory record's array seen as an :class:`ArraySource`."""

    def __init__(self, a: np.ndarray) -> None:
        super().__init__(a.shape, a.dtype)
        self.a = a

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.a[start:stop]


def _first_line(exc: BaseException) -> str:
    """The start of an exception's text on one line (HDF5's own messages span several)."""
    text = " ".join(str(exc).split())
    return text if len(text) <= 160 else text[:157] + "..."


# ---------------------------------------------------------------------------------------------
# output files
# ---------------------------------------------------------------------------------------------
def check_output_path(path: str | os.PathLike, option: str = "--out") -> Path:
    """Refuse, before any work, an output path that cannot be written: a folder, a path under
    a file, a read-only file or folder. Returns the path (``~`` expanded)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise InputError(f"{path} is a folder; {option} needs a file name.")
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(f"{path} is read-only; choose another file for {option}.")
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"{folder} is a file, so {path} cannot be created; choose another {option}.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"Cannot write in {folder} (read-only or not yours); choose another {option}.")
    return path


@contextmanager
def atomic_file(path: str | os.PathLike, option: str = "--out") -> Iterator[Path]:
    """Write an output file atomically::

        with atomic_file("map.npy") as tmp:
            with open(tmp, "wb") as f: np.save(f, coords)

    yields a temporary path in the target's folder (created if missing); when the block ends
    without error the file is flushed to disk and renamed over ``path``, otherwise removed and
    ``path`` keeps its previous content. A failure to write is one :class:`InputError` ("Disk
    full while writing ...", a read-only place, ...)."""
    path = check_output_path(path, option)
    existed = path.exists()
    tmp = None
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = _tmp_path(path)
            yield tmp
            _fsync(tmp)
            _replace(tmp, path)
        except (OSError, RuntimeError) as exc:
            kept = f"{path.name} is unchanged" if existed else "nothing was written"
            if _is_disk_full(exc):
                raise InputError(f"Disk full while writing {path}; {kept}.") from None
            if _is_read_only(exc):
                raise InputError(f"Cannot write {path} (read-only or not yours); {kept}.") from None
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else _first_line(exc)
            raise InputError(f"Could not write {path} ({why}); {kept}.") from None
    finally:
        if tmp is not None and tmp.exists():
            _unlink(tmp)
    _fsync_dir(path.parent)


class _Writes:
    """A file seen by numpy as a plain stream: ``np.save`` then writes with ``write()``, whose
    failures carry their errno (ENOSPC...), instead of a C ``fwrite`` that reports only
    "N requested and M written"."""

    def __init__(self, f) -> None:
        self.write = f.write


def save_npy(path: str | os.PathLike, array, option: str = "--out") -> Path:
    """``np.save`` through :func:`atomic_file` (never a half-written or missing target)."""
    with atomic_file(path, option) as tmp:
        with open(tmp, "wb") as f:
            np.save(_Writes(f), np.asarray(array), allow_pickle=False)
    return Path(path).expanduser()


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
