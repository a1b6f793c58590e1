"""Saved sessions: the file format, its schema, and a safe plan for reopening one.

A session file (``*.eesession``, JSON) may come from anyone, so reopening one follows three rules:

1. **Validated before anything is opened.** :func:`read_session_file` checks the whole file
   against :data:`SCHEMA` (types, ranges, known keys, format version, size, nesting) and
   refuses a bad one with one sentence naming the file and the offending field; nothing has
   been opened or created at that point.
2. **Nothing in it runs as code without the user's say.** A model's factory
   (``file.py:function`` or ``package.module:function``, under ``factory`` or ``arch``) becomes
   a :class:`Confirmation` naming the file it would run and its sha256; only confirmed ones
   are passed on. ``trust`` is never stored (older files that carry it are read as if it were
   absent): a model whose checkpoint holds pickled code comes back from
   :func:`restore_job` as a confirmation to ask for (file and sha256), and is opened with
   ``trust=True`` only after the user says yes.
3. **Nothing is created without asking.** A session whose workspace file does not exist gets
   a ``workspace`` confirmation; without it the session is not opened.

Format versions: 1 (0.1; could carry ``trust``, which is ignored now), 2 (models may carry
``"pickled": true``, a note that asking will be needed, never a permission), 3 (current; adds
``tags``, ``bookmarks`` and the view's ``charts``; older files open without them).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from explorer.core.errors import ExplorerError, InputError, TrustRequired

SESSION_FORMAT = "embedding-explorer-session"
SESSION_VERSION = 3
MAX_FILE_BYTES = 256 * 2**20
MAX_DEPTH = 12
WORKSPACE_SUFFIXES = (".h5", ".hdf5", ".eews")

# Encoder options a session may carry (see explorer.encoders.open_encoder); "trust" only in
# version 1 files, where it is dropped.
MODEL_OPTION_KEYS = frozenset({"fmt", "arch", "factory", "layer", "pooling", "preprocess", "arch_kwargs",
                               "submodel", "trust"})
PROJECTION_METRICS = ("cosine", "euclidean", "dot", "correlation", "manhattan")
# Timeline settings a session may carry to reopen a timeline tab (explorer.app.timeline.TimelineParams
# fields that run no code: never arch/factory/trust).
TIMELINE_PARAM_KEYS = ("seed", "map_method", "align", "layer", "pooling")


class _Invalid(Exception):
    """A schema violation: ``where`` names the field, ``what`` says what is wrong."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where} {what}")
        self.where, self.what = where, what


# -- the schema ------------------------------------------------------------------------------
# A spec is a small callable checker; composing them keeps the whole schema in one readable
# table instead of a page of if-chains.
def _str(max_len: int = 4096, choices: Optional[tuple] = None):
    def check(v, where):
        if not isinstance(v, str):
            raise _Invalid(where, f"must be text, not {_type_name(v)}")
        if len(v) > max_len:
            raise _Invalid(where, f"is longer than {max_len:,} characters")
        if "\x00" in v:
            raise _Invalid(where, "contains a NUL character")
        if choices is not None and v not in choices:
            raise _Invalid(where, f"must be one of {', '.join(choices)}, not {v[:40]!r}")
        return v
    return check


def _int(lo: int, hi: int):
    def check(v, where):
        if isinstance(v, bool) or not isinstance(v, int):
            raise _Invalid(where, f"must be a whole number, not {_type_name(v)}")
        if not lo <= v <= hi:
            raise _Invalid(where, f"must be between {lo:,} and {hi:,}")
        return v
    return check


def _float(lo: float, hi: float):
    def check(v, where):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _Invalid(where, f"must be a number, not {_type_name(v)}")
        if not (math.isfinite(v) and lo <= v <= hi):
            raise _Invalid(where, f"must be between {lo:g} and {hi:g}")
        return float(v)
    return check


def _bool(v, where):
    if not isinstance(v, bool):
        raise _Invalid(where, f"must be true or false, not {_type_name(v)}")
    return v


def _optional(spec):
    def check(v, where):
        return None if v is None else spec(v, where)
    return check


def _list(spec, max_len: int):
    def check(v, where):
        if not isinstance(v, list):
            raise _Invalid(where, f"must be a list, not {_type_name(v)}")
        if len(v) > max_len:
            raise _Invalid(where, f"has more than {max_len:,} entries")
        return [spec(x, f"{where}[{i}]") for i, x in enumerate(v)]
    return check


def _object(fields: dict, required: Iterable[str] = ()):
    def check(v, where):
        if not isinstance(v, dict):
            raise _Invalid(where, f"must be an object, not {_type_name(v)}")
        for k in required:
            if k not in v:
                raise _Invalid(where, f"lacks the required key {k!r}")
        out = {}
        for k, x in v.items():
            if k not in fields:
                raise _Invalid(where, f"has an unknown key {str(k)[:40]!r}")
            out[k] = fields[k](x, f"{where}.{k}")
        return out
    return check


def _plain_json(max_items: int = 256):
    """Plain JSON data (text, numbers, booleans, null, lists and objects of those), small."""
    def check(v, where, depth=0):
        if depth > 4:
            raise _Invalid(where, "is nested too deeply")
        if v is None or isinstance(v, (bool, str)):
            return _str()(v, where) if isinstance(v, str) else v
        if isinstance(v, (int, float)):
            if isinstance(v, float) and not math.isfinite(v):
                raise _Invalid(where, "must be a finite number")
            if isinstance(v, int) and abs(v) > 2**53:
                raise _Invalid(where, "is too large a number")
            return v
        if isinstance(v, list):
            if len(v) > max_items:
                raise _Invalid(where, f"has more than {max_items} entries")
            return [check(x, f"{where}[{i}]", depth + 1) for i, x in enumerate(v)]
        if isinstance(v, dict):
            if len(v) > max_items:
                raise _Invalid(where, f"has more than {max_items} entries")
            return {_str(200)(k, where): check(x, f"{where}.{k}", depth + 1) for k, x in v.items()}
        raise _Invalid(where, f"must be plain JSON data, not {_type_name(v)}")
    return check


def _model_options(v, where):
    if not isinstance(v, dict):
        raise _Invalid(where, f"must be an object, not {_type_name(v)}")
    out = {}
    for k, x in v.items():
        if k not in MODEL_OPTION_KEYS:
            raise _Invalid(where, f"has an unknown key {str(k)[:40]!r}")
        if k == "trust":
            _bool(x, f"{where}.trust")
            continue  # trust is never taken from a file
        out[k] = _plain_json()(x, f"{where}.{k}")
        if k in ("arch", "factory", "layer", "pooling", "fmt", "submodel") and not isinstance(out[k], str):
            raise _Invalid(f"{where}.{k}", f"must be text, not {_type_name(x)}")
    return out


def _reader_options(v, where):
    if not isinstance(v, dict):
        raise _Invalid(where, f"must be an object, not {_type_name(v)}")
    for k in v:
        if not (isinstance(k, str) and k.isidentifier() and len(k) <= 40):
            raise _Invalid(where, f"has an invalid key {str(k)[:40]!r}")
    return _plain_json()(v, where)


_PATH = _str(4096)
_NAME = _str(200)
_INDEX = _int(0, 2**40)
# the charts of explorer.app.crossfilter and their brushes (bars kept, by label)
_CHARTS = _object({"columns": _list(_NAME, 32),
                   "brushes": _list(_object({"column": _NAME, "bins": _list(_str(200), 10_000)}, ("column",)), 32)})

SCHEMA = _object({
    "format": _str(100),
    "version": _int(1, 10**6),
    "workspace": _PATH,
    "dataset": _optional(_object({
        "path": _PATH,
        "format": _optional(_NAME),
        "options": _reader_options,  # each reader refuses options it does not take
        "metadata": _optional(_object({"path": _PATH, "id_column": _optional(_NAME)}, ("path",))),
    }, ("path",))),
    "models": _list(_object({
        "id": _NAME,
        "source": _optional(_PATH),
        "options": _model_options,
        "emb_key": _optional(_NAME),
        "layouts": _list(_str(20, ("pca", "umap")), 8),
        "pickled": _bool,
    }, ("id",)), 64),
    "current": _optional(_NAME),
    "selection": _list(_INDEX, 50_000_000),
    "focus": _optional(_INDEX),
    "view": _object({
        "color_by": _NAME,
        "method": _str(20, ("umap", "pca")),
        "search": _str(1000),
        "projection": _object({
            "method": _str(20, ("umap", "pca")),
            "n_neighbors": _int(2, 200),
            "min_dist": _float(0.0, 1.0),
            "metric": _str(20, PROJECTION_METRICS),
            "seed": _int(0, 2**32 - 1),
            "dims": _int(2, 3),
            "optimizer": _str(20, ("fast", "umap-learn")),
            "max_fit_points": _optional(_int(100, 10**9)),
        }),
        # open timeline tabs (absent from older files: none is reopened)
        "timelines": _list(_object({
            "folder": _PATH,
            "probe_size": _int(2, 10**8),
            "seed": _int(0, 2**32 - 1),
            "map_method": _str(20, ("pca", "umap")),
            "align": _str(20, ("procrustes", "aligned_umap", "none")),
            "layer": _NAME,
            "pooling": _NAME,
            "position": _float(0.0, 1e6),
            "shown": _bool,
        }, ("folder",)), 16),
        "charts": _CHARTS,
    }),
    # explorer.app.tags: name -> tagged items
    "tags": _list(_object({"name": _str(100), "indices": _list(_INDEX, 50_000_000)}, ("name",)), 1000),
    # explorer.app.bookmarks: saved views
    "bookmarks": _list(_object({
        "name": _str(200),
        "model": _optional(_NAME),
        "method": _str(20, ("umap", "pca")),
        "camera": _optional(_list(_float(-1e30, 1e30), 4)),
        "color_by": _NAME,
        "selection": _list(_INDEX, 50_000_000),
        "focus": _optional(_INDEX),
        "search": _str(1000),
        "charts": _CHARTS,
        "n_items": _optional(_int(0, 2**40)),
    }, ("name",)), 1000),
}, ("format", "workspace"))


def _type_name(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "true/false", int: "a number",
            float: "a number", type(None): "null"}.get(type(v), type(v).__name__)


def _depth(obj: Any) -> int:
    """Nesting depth, iteratively (a hostile file must not exhaust the stack)."""
    best, stack = 0, [(obj, 1)]
    while stack:
        o, d = stack.pop()
        best = max(best, d)
        if best > MAX_DEPTH:
            return best
        if isinstance(o, dict):
            stack.extend((v, d + 1) for v in o.values())
        elif isinstance(o, list):
            stack.extend((v, d + 1) for v in o)
    return best


def read_session_file(path) -> dict:
    """Parse and validate a saved session; an :class:`InputError` (one sentence naming the file
    and the field) when it is not a valid one. Reads nothing but ``path``."""
    path = Path(path)
    name = path.name
    try:
        if path.is_dir():
            raise InputError(f"{path} is a folder, not a session file.")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InputError(f"{name} is too large ({size / 2**20:,.0f} MiB) to be a session file.")
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file.") from None
    except UnicodeDecodeError:
        raise InputError(f"{name} is not an Embedding Explorer session file (it is not text).") from None
    except OSError as exc:
        raise InputError(f"{path} cannot be read ({exc.strerror or exc}).") from None
    try:
        d = json.loads(text, parse_constant=lambda c: float("nan"))
    except RecursionError:
        raise InputError(f"{name} is not a valid session: it is nested too deeply.") from None
    except ValueError:
        raise InputError(f"{name} is not an Embedding Explorer session file (it is not JSON).") from None
    if not isinstance(d, dict) or d.get("format") != SESSION_FORMAT:
        raise InputError(f"{name} is not an Embedding Explorer session file.")
    version = d.get("version", 1)
    if isinstance(version, int) and not isinstance(version, bool) and version > SESSION_VERSION:
        raise InputError(f"{name} was saved by a newer Embedding Explorer (session format {version}); "
                         f"update the app to open it.")
    if _depth(d) > MAX_DEPTH:
        raise InputError(f"{name} is not a valid session: it is nested too deeply.")
    try:
        d = SCHEMA(d, "session")
    except _Invalid as exc:
        raise InputError(f"{name} is not a valid session: {exc.where} {exc.what}.") from None
    if not str(d["workspace"]).lower().endswith(WORKSPACE_SUFFIXES):
        raise InputError(f"{name} is not a valid session: its workspace {d['workspace'][:200]} is not "
                         f"an .h5 workspace file.")
    ids = [m["id"] for m in d.get("models", [])]
    if len(set(ids)) != len(ids):
        raise InputError(f"{name} is not a valid session: two models share one id.")
    return d


def timeline_entry(folder, probe_size: int, params: dict, position: float = 0.0, shown: bool = False) -> dict:
    """How a session stores an open timeline tab: its run folder, probe size and the
    :data:`TIMELINE_PARAM_KEYS` it was built with (others are not kept), the slider position
    and whether it was the tab on screen."""
    kept = {k: params[k] for k in TIMELINE_PARAM_KEYS if params.get(k) is not None}
    return {"folder": str(Path(folder).expanduser().resolve()), "probe_size": int(probe_size), **kept,
            "position": float(position), "shown": bool(shown)}


# -- reopening -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Confirmation:
    """Something only the user may allow: ``kind`` is "factory" (run a Python file or module),
    "trust" (load a pickled checkpoint) or "workspace" (create a missing workspace file)."""

    kind: str
    path: str
    model_id: Optional[str] = None
    sha256: Optional[str] = None

    @property
    def title(self) -> str:
        return {"factory": "Run code from this session?", "trust": "Trust this file?",
                "workspace": "Create a workspace?"}[self.kind]

    @property
    def message(self) -> str:
        digest = f" (sha256 {self.sha256})" if self.sha256 else ""
        if self.kind == "factory":
            return (f"The session's model {self.model_id!r} is built by {self.path}{digest}, which runs "
                    f"as Python code on this computer; run it only if you wrote it or trust its source.")
        if self.kind == "trust":
            return (f"The session's model {self.model_id!r} is the pickled file {self.path}{digest}, which "
                    f"can run code when it is loaded; load it only if you made it or trust its source.")
        return f"The session's workspace {self.path} does not exist; create it there?"


@dataclass
class RestorePlan:
    """A validated session and what the user must allow before (or while) it is reopened."""

    path: Path
    data: dict
    confirmations: list = field(default_factory=list)  # asked before the restore job runs


@dataclass
class RestoreResult:
    dataset: Any
    encoders: list  # [(model dict, Encoder or None)] for the models that opened
    ask_trust: list  # [(model dict, Confirmation)]: pickled checkpoints, asked for afterwards
    skipped: list  # [(model id, one sentence)]: models not opened, and why


def sha256_of(path) -> Optional[str]:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


def factory_of(options: dict) -> Optional[str]:
    """The code a model's options would run: a ``factory``, or an ``arch`` that names one."""
    from explorer.encoders.factory import is_factory_spec

    for k in ("factory", "arch"):
        v = options.get(k)
        if isinstance(v, str) and (k == "factory" or is_factory_spec(v)):
            return v
    return None


def _factory_confirmation(spec: str, model_id: str, base: Path) -> Confirmation:
    left = spec.rpartition(":")[0]
    p = Path(left).expanduser()
    if not p.is_absolute():
        p = base / p
    if left.endswith(".py") or p.exists():
        return Confirmation("factory", f"{p.resolve()} ({spec.rpartition(':')[2]})", model_id, sha256_of(p))
    return Confirmation("factory", f"the Python module {left} (function {spec.rpartition(':')[2]})", model_id)


def plan_restore(path) -> RestorePlan:
    """Read and validate ``path`` and list what must be confirmed before reopening it."""
    path = Path(path)
    d = read_session_file(path)
    plan = RestorePlan(path=path, data=d)
    ws = Path(d["workspace"]).expanduser()
    if not ws.exists():
        plan.confirmations.append(Confirmation("workspace", str(ws)))
    elif not ws.is_file():
        raise InputError(f"{path.name}: its workspace {ws} is not a file.")
    for m in d.get("models", []):
        spec = factory_of(m.get("options", {}))
        if spec:
            plan.confirmations.append(_factory_confirmation(spec, m["id"], path.parent))
    return plan


def restore_job(plan: RestorePlan, approved: Iterable[Confirmation] = ()):
    """Job: open the session's dataset and models. Factories run only if their confirmation is
    in ``approved``; a pickled checkpoint is not loaded but returned in ``ask_trust``.
    Returns a :class:`RestoreResult`; never creates the workspace (the caller does, after a
    ``workspace`` confirmation)."""
    from explorer.data import attach_metadata, open_dataset
    from explorer.encoders import open_encoder
    from explorer.core.jobs import Progress

    d, name = plan.data, plan.path.name
    ok_factories = {c.model_id for c in approved if c.kind == "factory"}
    yield Progress(0, None, "Opening the dataset")
    ds = None
    if d.get("dataset"):
        dd = d["dataset"]
        ds = _guard(name, "dataset", lambda: open_dataset(dd["path"], dd.get("format") or None,
                                                          **dd.get("options", {})))
        meta = dd.get("metadata")
        if meta:
            ds = _guard(name, "metadata table", lambda: attach_metadata(ds, meta["path"],
                                                                        id_column=meta.get("id_column")))
    encs, ask, skipped = [], [], []
    models = d.get("models", [])
    for i, md in enumerate(models):
        yield Progress(i + 1, len(models) + 1, f"Loading {md['id']}")
        if not md.get("source"):
            encs.append((md, None))
            continue
        options = dict(md.get("options", {}))
        if factory_of(options) and md["id"] not in ok_factories:
            skipped.append((md["id"], f"model {md['id']!r} was not opened: running its factory was not allowed."))
            continue
        try:
            enc = open_encoder(md["source"], **options)
        except TrustRequired:
            ask.append((md, Confirmation("trust", str(Path(md["source"]).expanduser().resolve()),
                                         md["id"], sha256_of(Path(md["source"]).expanduser()))))
            continue
        except ExplorerError as exc:
            skipped.append((md["id"], str(exc)))
            continue
        except Exception as exc:  # an option a reader rejects, from a file that passed the schema
            skipped.append((md["id"], f"model {md['id']!r} could not be opened ({type(exc).__name__})."))
            continue
        encs.append((md, enc))
    return RestoreResult(ds, encs, ask, skipped)


def _guard(session_name: str, what: str, fn):
    try:
        return fn()
    except ExplorerError:
        raise
    except Exception as exc:  # e.g. an option the reader does not take
        raise InputError(f"{session_name}: the session's {what} could not be opened "
                         f"({type(exc).__name__}: {str(exc)[:120]}).") from None
