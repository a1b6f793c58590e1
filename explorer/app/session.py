"""The application's session, free of Qt: one dataset, the models (encoders or precomputed
vectors) embedded on it, their maps, neighbours and diagnostics, and the shared selection.

The GUI binds to the signals here and runs the jobs this module hands out in workers; results
come back through ``apply_*`` methods on the GUI thread. Everything here works from Python too::

    s = Session.open_workspace("run.h5")
    s.set_dataset(open_dataset("images/"))
    m = s.add_model(open_encoder("model.pt", arch="small_cnn"))
    key, Z = drain(s.embed_job(m.id)); s.apply_embedding(m.id, key, Z)
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from explorer.core.errors import InputError
from explorer.core.events import Signal
from explorer.app.selection import Selection
from explorer.app.bookmarks import Bookmarks
from explorer.app.tags import Tags

from explorer.app.anchors import Anchors
from explorer.app.session_file import SESSION_FORMAT, SESSION_VERSION, read_session_file  # noqa: F401


@dataclass
class ModelEntry:
    """One model's view of the dataset. ``source``/``options`` reopen its encoder."""

    id: str
    encoder: Any = None  # explorer.encoders.base.Encoder or None (precomputed vectors)
    source: Optional[str] = None
    options: dict = field(default_factory=dict)
    emb_key: Optional[str] = None
    vectors: Optional[np.ndarray] = None
    knn: Any = None
    knn_params: Optional[tuple] = None
    layouts: dict = field(default_factory=dict)  # method -> (N, c) float32
    layout_info: dict = field(default_factory=dict)  # method -> dict
    diagnostics: Optional[dict] = None
    indexes: dict = field(default_factory=dict)  # metric -> VectorIndex; ("disk", metric) -> DiskIvf

    @property
    def embedded(self) -> bool:
        return self.vectors is not None


class Session:
    def __init__(self, workspace_path: str | os.PathLike) -> None:
        from explorer.store import Workspace

        self.workspace = Workspace(workspace_path)
        self.workspace_path = Path(workspace_path)
        self.dataset = None
        self.models: dict[str, ModelEntry] = {}
        self.current: Optional[str] = None
        self.selection = Selection(0)
        self.tags = Tags(0)  # the user's tags of the dataset's items (a "tags" column)
        self.bookmarks = Bookmarks()  # saved views
        self.anchors = Anchors()  # the anchor items of a relative-representation comparison
        self.view: dict = {"color_by": "label", "method": "pca"}
        self.metadata_source: Optional[dict] = None  # {"path", "id_column"} of an attached table
        self._pending: set = set()  # (model id, method) of maps being computed
        self.dataset_changed = Signal()
        self.models_changed = Signal()
        self.model_updated = Signal()  # model id
        self.partial_layout = Signal()  # (model id, method, (N, c) coords, NaN rows not placed yet)
        self.current_changed = Signal()  # model id
        self.columns_changed = Signal()  # column name

    # -- dataset and models ---------------------------------------------------------------
    def set_dataset(self, dataset, metadata_source: Optional[dict] = None) -> None:
        self.dataset = dataset
        self.metadata_source = metadata_source
        for m in self.models.values():
            m.emb_key = None
            m.vectors = None
            m.knn = None
            m.layouts.clear()
            m.layout_info.clear()
            m.diagnostics = None
        self.selection.reset(len(dataset))
        self.tags.reset(len(dataset))
        self.anchors.clear()
        self.dataset_changed.emit(dataset)
        if dataset.kind == "vector" and "precomputed" not in self.models:
            self.add_model(None, name="precomputed")

    def unique_name(self, base: str) -> str:
        name, i = base, 2
        while name in self.models:
            name, i = f"{base} ({i})", i + 1
        return name

    def add_model(self, encoder, name: Optional[str] = None, source: Optional[str] = None,
                  options: Optional[dict] = None) -> ModelEntry:
        base = name or (encoder.name if encoder is not None else "precomputed")
        if encoder is not None and encoder.layer:
            base = f"{base} [{encoder.layer}]" if name is None else base
        m = ModelEntry(self.unique_name(base), encoder,
                       source if source is not None else (str(encoder.source) if encoder is not None else None),
                       dict(options or {}))
        self.models[m.id] = m
        self.models_changed.emit()
        if self.current is None:
            self.set_current(m.id)
        return m

    def remove_model(self, model_id: str) -> None:
        self.models.pop(model_id, None)
        if self.current == model_id:
            self.current = next(iter(self.models), None)
            self.current_changed.emit(self.current)
        self.models_changed.emit()

    def set_current(self, model_id: Optional[str]) -> None:
        if model_id == self.current:
            return
        if model_id is not None and model_id not in self.models:
            raise KeyError(model_id)
        self.current = model_id
        self.current_changed.emit(model_id)

    def model(self, model_id: Optional[str] = None) -> ModelEntry:
        mid = model_id or self.current
        if mid is None or mid not in self.models:
            raise InputError("No model is open; open an encoder or a file of vectors first.")
        return self.models[mid]

    # -- jobs --------------------------------------------------------------------------------
    def _need_dataset(self):
        if self.dataset is None:
            raise InputError("No dataset is open; open a dataset first.")
        return self.dataset

    def embed_job(self, model_id: str, params=None):
        """Job returning ``(key, vectors)``; a cache hit when the workspace has them."""
        from explorer.embed import EmbedParams, embed_cached

        ds = self._need_dataset()
        m = self.model(model_id)
        stored = getattr(ds, "stored_embedding", None)
        if m.encoder is None and stored is not None and stored() is not None:
            return _stored_embedding_job(*stored())  # a big workspace record: read out of core, no copy
        return embed_cached(self.workspace, ds, m.encoder, params or EmbedParams())

    def apply_embedding(self, model_id: str, key: str, vectors: np.ndarray) -> None:
        """Show ``vectors`` (the workspace record ``key``) as model ``model_id``'s embedding.
        When the record left unreadable items out (it stores their ``rows``), the session's
        dataset becomes the readable items only, so maps, neighbours, diagnostics and exports
        all see real rows; ``dataset.skipped`` names the items left out."""
        if self.dataset is not None and vectors is not None:
            self._align_rows(model_id, key, len(vectors))
        m = self.models[model_id]
        m.emb_key, m.vectors = key, vectors
        m.indexes.clear()
        m.knn = None
        m.layouts.clear()
        m.layout_info.clear()
        m.diagnostics = None
        self.model_updated.emit(model_id)

    def _align_rows(self, model_id: str, key: str, n_vectors: int) -> None:
        from explorer.data.base import SubsetDataset
        from explorer.embed import EMBEDDINGS, embedding_rows

        ds = self.dataset
        rows = embedding_rows(self.workspace, key) if self.workspace.has(EMBEDDINGS, key) else None
        if rows is None:
            if n_vectors != len(ds):
                raise InputError(f"The embedding {key[:12]} has {n_vectors} rows but {ds.name} has "
                                 f"{len(ds)} items; embed this dataset again.")
            return
        full = ds.parent if isinstance(ds, SubsetDataset) else ds
        cur = ds.rows if isinstance(ds, SubsetDataset) else np.arange(len(ds), dtype=np.int64)
        attrs = dict(self.workspace.list(EMBEDDINGS)).get(key, {})
        n_items = int(attrs.get("n_items", len(full)))
        if n_items == len(ds) and ds is not full:
            rows = cur[rows]  # computed on the narrowed dataset: rows are positions in it
        elif n_items != len(full):
            raise InputError(f"The embedding {key[:12]} was made from {n_items} items but {ds.name} "
                             f"has {len(full)}; embed this dataset again.")
        if np.array_equal(rows, cur):
            return
        bad = np.setdiff1d(np.arange(len(full)), rows)
        narrowed = full.subset(rows)
        known = {str(s[0]): str(s[1]) for s in full.skipped}
        reasons = {str(s[0]): str(s[1]) for s in attrs.get("skipped", []) if len(s) == 2}
        ids = full.ids if full.ids is not None else np.arange(len(full)).astype(str)
        narrowed.skipped = [(str(ids[i]), known.get(str(ids[i])) or reasons.get(str(ids[i]), "could not be read"))
                            for i in bad]
        self.dataset = narrowed
        for other in self.models.values():
            if other.id != model_id and other.vectors is not None:
                # embedded on other rows: its maps and neighbours would not line up; embed again
                other.emb_key = other.vectors = other.knn = other.diagnostics = None
                other.layouts.clear()
                other.layout_info.clear()
                other.indexes.clear()
        self.selection.reset(len(narrowed))
        self.dataset_changed.emit(narrowed)

    def neighbors(self, model_id: Optional[str], index: int, k: int = 10, metric: str = "cosine"):
        """Exact k nearest neighbours of item ``index`` in the model's original space, itself
        excluded -> (indices (k,), scores (k,)). The search index is prepared once per metric."""
        from explorer.neighbors import VectorIndex

        m = self.model(model_id)
        if m.vectors is None:
            raise InputError(f"{m.id} has no embedding yet; embed the dataset first.")
        _refuse_out_of_core(m)
        vi = m.indexes.get(metric)
        if vi is None:
            vi = m.indexes[metric] = VectorIndex(m.vectors, metric)
        return vi.query(k=k, index=int(index))

    def query_new(self, model_id: Optional[str], items, k: int = 10, metric: str = "cosine", kind=None):
        """Embed new inputs (image files or texts) with the model's encoder, then search its
        original space exactly -> list of (indices (k,), scores (k,)), one per item. Small and
        quick: meant for one file or sentence at a time."""
        from explorer.data import query_items
        from explorer.embed import EmbedParams, embed
        from explorer.core.jobs import drain
        from explorer.neighbors import VectorIndex

        m = self.model(model_id)
        if m.vectors is None:
            raise InputError(f"{m.id} has no embedding yet; embed the dataset first.")
        if m.encoder is None:
            raise InputError(f"{m.id} holds precomputed vectors; new inputs need an encoder to be embedded.")
        _refuse_out_of_core(m)
        q = query_items(items, kind)
        if q.kind != m.encoder.preprocess.kind:
            raise InputError(f"{m.id} embeds {m.encoder.preprocess.kind} inputs, not {q.kind}s.")
        res = drain(embed(q, m.encoder, EmbedParams(num_workers=0, batch_size=32)))
        if res.skipped:
            raise InputError(f"{res.skipped[0][0]} could not be read: {res.skipped[0][1]}.")
        vi = m.indexes.get(metric)
        if vi is None:
            vi = m.indexes[metric] = VectorIndex(m.vectors, metric)
        return [vi.query(q=v, k=k) for v in res.vectors]

    def add_column(self, name: str, values) -> None:
        """A per-item column computed in the app (e.g. a probe's correct/incorrect) that the
        map can colour, filter and search by, like the dataset's own metadata."""
        ds = self._need_dataset()
        values = np.asarray(values)
        if values.shape != (len(ds),):
            raise InputError(f"Column {name!r} has {values.shape[0] if values.ndim else 0} values for {len(ds)} items.")
        ds.metadata[name] = values
        self.columns_changed.emit(name)

    def replace_dataset_columns(self, dataset, metadata_source: Optional[dict]) -> None:
        """The same items with other metadata (an attached table): embeddings and maps stay."""
        ds = self._need_dataset()
        if len(dataset) != len(ds):
            raise InputError(f"{dataset.name} has {len(dataset)} items where the open dataset has {len(ds)}.")
        self.dataset = dataset
        self.metadata_source = metadata_source
        if len(self.tags):  # the tags stay a column of the new table
            from explorer.app.tags import COLUMN

            dataset.metadata[COLUMN] = self.tags.column()
        self.columns_changed.emit(None)

    def jobs_pending(self, model_id: str, method: str, pending: bool) -> None:
        """Note that a map of ``model_id`` is being computed (or no longer is)."""
        (self._pending.add if pending else self._pending.discard)((model_id, method))

    def is_pending(self, model_id: str, method: str) -> bool:
        return (model_id, method) in self._pending

    def apply_layout(self, model_id: str, method: str, coords: np.ndarray, info: Optional[dict] = None) -> None:
        m = self.models[model_id]
        m.layouts[method] = np.asarray(coords, dtype=np.float32)
        m.layout_info[method] = dict(info or {})
        self.model_updated.emit(model_id)

    def apply_diagnostics(self, model_id: str, metrics: dict) -> None:
        self.models[model_id].diagnostics = metrics
        self.model_updated.emit(model_id)

    # -- persistence -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        ds = self.dataset
        return {
            "format": SESSION_FORMAT,
            "version": SESSION_VERSION,
            "workspace": str(self.workspace_path.resolve()),
            "dataset": None if ds is None else {"path": str(Path(ds.source).resolve()),
                                                 "format": ds.format, "options": ds.options,
                                                 "metadata": self.metadata_source},
            "models": [self._model_dict(m) for m in self.models.values()],
            "current": self.current,
            "selection": [int(i) for i in self.selection.indices],
            "focus": self.selection.focus,
            "view": self.view,
            "tags": self.tags.to_list(),
            "bookmarks": self.bookmarks.to_list(),
        }

    @staticmethod
    def _model_dict(m: ModelEntry) -> dict:
        """A model as a session stores it: never ``trust`` (reopening asks again); ``pickled``
        says that it will ask."""
        d = {"id": m.id, "source": m.source, "options": {k: v for k, v in m.options.items() if k != "trust"},
             "emb_key": m.emb_key, "layouts": sorted(m.layouts)}
        if m.encoder is not None and m.encoder.info.get("pickled_module"):
            d["pickled"] = True
        return d

    def save(self, path: str | os.PathLike) -> None:
        """Write the session as JSON, atomically (temporary file, then rename)."""
        path = Path(path)
        data = json.dumps(self.to_dict(), indent=2)
        fd, tmp = tempfile.mkstemp(prefix=".session-", dir=str(path.parent or "."))
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise InputError(f"Could not save the session to {path}: {exc.strerror or exc}.") from None


# -- jobs the GUI runs for a model (Qt-free, usable from Python) ------------------------------
def map_params(method: str, settings: Any) -> Any:
    """:class:`explorer.maps.MapParams` from the GUI's projection settings (any object with
    n_neighbors, min_dist, metric, seed, dims and optionally optimizer and max_fit_points)."""
    from explorer.maps import MapParams

    fit = getattr(settings, "max_fit_points", None)
    return MapParams(method=method, n_components=int(getattr(settings, "dims", 2)),
                     n_neighbors=int(settings.n_neighbors), min_dist=float(settings.min_dist),
                     metric=str(settings.metric), seed=int(settings.seed),
                     optimizer=str(getattr(settings, "optimizer", "fast")),
                     **({} if fit is None else {"max_fit_points": int(fit)}))


def projection_job(session: Session, model_id: str, method: str, settings: Any):
    """PCA or UMAP of a model's embedding through the workspace's staged cache
    (embeddings -> kNN graph -> layout). Returns ``(coords, info)``; for UMAP ``info['trust']``
    holds the per-point projection trust against the same kNN graph."""
    from explorer.maps import cached_knn, cached_layout, projection_trust
    from explorer.neighbors import KnnParams

    m = session.model(model_id)
    if m.emb_key is None:
        raise InputError(f"{model_id} has no embedding yet; embed the dataset first.")
    p = map_params(method, settings)
    from explorer.scale.out_of_core import is_out_of_core

    if is_out_of_core(m.vectors):
        return (yield from _out_of_core_projection(m, method, p))
    key, lay = yield from cached_layout(session.workspace, m.emb_key, p, m.vectors)
    info = dict(lay.info)
    info["key"] = key
    info["params"] = lay.params
    n = len(lay.coords)
    if method == "pca":
        evr = info.get("explained_variance_ratio") or []
        info["summary"] = f"PCA of {n:,} points; explained variance " + ", ".join(f"{v:.1%}" for v in evr)
    elif n > p.max_fit_points:  # a streamed map (issue 22): no all-points graph, so no trust
        info["summary"] = (f"UMAP of {n:,} points (n_neighbors={p.n_neighbors}, min_dist={p.min_dist}, "
                           f"{p.metric}, seed {p.seed}); fitted on {info.get('fitted_on_sample', 0):,} "
                           f"points, the rest placed block by block")
    else:
        kp = KnnParams(k=p.n_neighbors - 1, metric=p.metric, method=p.knn_method)
        _, knn = yield from cached_knn(session.workspace, m.emb_key, kp, m.vectors)
        info["trust"] = projection_trust(knn.indices, lay.coords)
        sampled = info.get("fitted_on_sample")
        info["summary"] = (f"UMAP of {n:,} points (n_neighbors={p.n_neighbors}, min_dist={p.min_dist}, "
                           f"{p.metric}, seed {p.seed}); kNN graph {knn.method}"
                           + (f", recall {knn.recall:.3f}" if knn.method != "exact" else "")
                           + (f"; fitted on {sampled:,} points, the rest placed with transform" if sampled else "")
                           + f"; mean projection trust {float(np.mean(info['trust'])):.2f}")
    return lay.coords, info


def diagnose_job(session: Session, model_id: str, params: Any = None):
    """Collapse diagnostics of a model's embedding (cached in the workspace) -> metrics dict."""
    from explorer.metrics import diagnose as D

    m = session.model(model_id)
    if m.vectors is None:
        raise InputError(f"{model_id} has no embedding yet; embed the dataset first.")
    ds = session.dataset
    labels = None if ds is None else ds.labels
    params = params or D.DiagnoseParams()
    from explorer.scale.out_of_core import is_out_of_core, sample_rows

    if is_out_of_core(m.vectors):  # on a sample read from disk (never stored: it is not all of it)
        from explorer.core.jobs import Progress

        rows = sample_rows(len(m.vectors), DIAGNOSE_SAMPLE)
        yield Progress(0, None, f"reading a {len(rows):,}-row sample of {len(m.vectors):,}")
        res = yield from D.diagnose(m.vectors.take(rows), None if labels is None else labels[rows], params)
        res = dict(res)
        res["on_sample"] = int(len(rows))
        return res
    if hasattr(D, "diagnose_cached") and m.emb_key is not None:
        return (yield from D.diagnose_cached(session.workspace, m.emb_key, params, labels=labels))
    return (yield from D.diagnose(m.vectors, labels, params))


#: Rows the diagnostics of an out-of-core embedding are computed on.
DIAGNOSE_SAMPLE = 100_000


def _stored_embedding_job(key: str, vectors):
    """Job -> (key, vectors): an embedding already in a workspace, used where it lies."""
    from explorer.core.jobs import Progress

    yield Progress(len(vectors), len(vectors), f"{len(vectors):,} x {vectors.shape[1]} vectors, read from disk as needed")
    return key, vectors


def disk_index_folder(session: Session, m: ModelEntry, metric: str) -> Path:
    """Where the on-disk neighbour index of ``m``'s embedding lives: beside the workspace
    (``<workspace>.index/<embedding key>-<metric>``), or in the user's cache folder when the
    workspace's folder cannot be written (a read-only share)."""
    name = f"{m.emb_key}-{metric}"
    beside = Path(str(session.workspace_path) + ".index")
    if os.access(beside if beside.exists() else beside.parent, os.W_OK):
        return beside / name
    import hashlib

    from platformdirs import user_cache_dir

    tag = hashlib.sha1(str(session.workspace_path.resolve()).encode()).hexdigest()[:12]
    return Path(user_cache_dir("embedding-explorer")) / "indexes" / tag / name


def neighbors_job(session: Session, model_id: str, index: int, k: int = 10, metric: str = "cosine"):
    """Job -> (indices (k,), scores (k,)): the neighbours of item ``index`` in an out-of-core
    embedding through its on-disk IVF index (:class:`explorer.scale.disk_index.DiskIvf`), built
    on first use (two streaming passes, with progress) and reused after, also by later
    sessions. The scores are exact; the index's predicted recall is in ``m.indexes``' entry."""
    from explorer.core.jobs import Progress
    from explorer.scale.disk_index import DiskIvf

    m = session.model(model_id)
    if m.vectors is None:
        raise InputError(f"{m.id} has no embedding yet; embed the dataset first.")
    if metric not in ("cosine", "euclidean"):
        raise InputError(f"Neighbours of {len(m.vectors):,} vectors read from disk are searched by cosine or "
                         f"euclidean distance, not {metric}.")
    ix = m.indexes.get(("disk", metric))
    folder = disk_index_folder(session, m, metric)
    if ix is None and (folder / "meta.json").exists():
        try:
            ix = DiskIvf(folder, source=m.vectors)
        except InputError:
            ix = None  # another version: built again below
    if ix is None:
        ix = yield from DiskIvf.build(m.vectors, folder, metric, source_key=m.emb_key)
    m.indexes[("disk", metric)] = ix
    yield Progress(1, 1, f"searching {ix.nprobe} of {ix.nlist} lists")
    return ix.search(m.vectors[int(index)], k=k, exclude=int(index))


def needs_disk_index(session: Session, model_id: str, metric: str) -> bool:
    """True when :func:`neighbors_job` would first build the index (a long, heavy job)."""
    m = session.model(model_id)
    return ("disk", metric) not in m.indexes and not (disk_index_folder(session, m, metric) / "meta.json").exists()


def _refuse_out_of_core(m: ModelEntry) -> None:
    from explorer.scale.out_of_core import is_out_of_core

    if is_out_of_core(m.vectors):
        raise InputError(f"{m.id} has {len(m.vectors):,} vectors read from disk as needed; searching them by "
                         "a new input is not available in the window yet (the inspector searches by an item).")


def _out_of_core_projection(m: ModelEntry, method: str, p):
    """The map of an out-of-core embedding, fitted on a sample and every point placed in one
    streaming pass: PCA, or UMAP fitted on ``max_fit_points`` rows with the rest placed block
    by block by UMAP's transform (:func:`explorer.maps.umap.streamed_umap`, the fitted sample
    shown at once). Not stored in the workspace: a put would copy the whole file."""
    from explorer.scale.out_of_core import pca_sampled_job

    if method == "umap":
        from explorer.maps.umap import streamed_umap

        lay = yield from streamed_umap(m.vectors, p)
        info = dict(lay.info)
        info["params"] = lay.params
        info["summary"] = (f"UMAP of {len(lay.coords):,} points read from disk: fitted on {info['fitted_on_sample']:,}, "
                           f"the others placed by its transform")
        return lay.coords, info
    if method != "pca":
        raise InputError(f"A {method.upper()} map of {len(m.vectors):,} vectors read from disk is not "
                         "available in the window; the PCA and UMAP maps are.")
    lay = yield from pca_sampled_job(m.vectors, p)
    info = dict(lay.info)
    info["params"] = lay.params
    evr = info.get("explained_variance_ratio") or []
    fitted = info.get("fitted_on_sample")
    info["summary"] = (f"PCA of {len(lay.coords):,} points" + (f", fitted on a {fitted:,}-point sample" if fitted else "")
                       + "; explained variance " + ", ".join(f"{v:.1%}" for v in evr))
    return lay.coords, info


def python_snippet(session: Session, method: str, settings: Any) -> str:
    """Code that reproduces the current map from the workspace, for a notebook."""
    m = session.model()
    if m.emb_key is None:
        raise InputError("Embed the dataset first; there is no map to reproduce yet.")
    p = map_params(method, settings)
    fields = ", ".join(f"{k}={v!r}" for k, v in p.layout_dict().items())
    return (
        "# Reproduces the map shown in Embedding Explorer\n"
        "from explorer.core.jobs import drain\n"
        "from explorer.maps import MapParams, cached_layout\n"
        "from explorer.store import Workspace\n\n"
        f"ws = Workspace({str(session.workspace_path.resolve())!r})\n"
        f"vectors = ws.get('embeddings', {m.emb_key!r}).arrays['vectors']  # {m.id}\n"
        f"key, layout = drain(cached_layout(ws, {m.emb_key!r}, MapParams({fields})))\n"
        "coords = layout.coords  # (N, %d) float32; layout.info['reproduce'] gives the plain umap-learn call\n"
        % p.n_components)
