"""The workflow after each user action, as Qt-free transitions of the session.

open a dataset -> the models that can embed it are embedded (the one on screen first) -> its
PCA at once, its UMAP next -> diagnostics; open an encoder -> embedded if it fits the dataset;
switch models -> the missing map is computed first; attach metadata; reopen a session.

The pipeline never runs a job itself: it hands :class:`Task` objects to ``submit`` (the GUI's
worker pool; :func:`run_now` in scripts and tests) with a priority, so what the user is looking
at is computed before the rest (Orange's runner weighs its stages the same way). Results come
back to the ``on_result`` callbacks on the caller's thread and are applied to the session;
views observe the session's signals, and the pipeline's own signals say what to tell the user.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from explorer.core.events import Signal
from explorer.core.jobs import Progress, drain

# Higher runs first among queued tasks.
PRIORITY = {"session": 50, "neighbors": 45, "pca:current": 40, "embed:current": 35, "umap:current": 30, "open": 30,
            "embed": 10, "pca": 8, "umap": 5, "diagnose": 2, "background": 0}


@dataclass
class Task:
    """One job for a worker: ``job()`` is a generator (see :mod:`explorer.core.jobs`)."""

    name: str
    job: Callable[[], Any]
    on_result: Optional[Callable[[Any], None]] = None
    exclusive: Optional[str] = None
    priority: int = 0
    on_error: Optional[Callable[[str], None]] = None
    #: keeps the cores busy (an embedding, a map, a diagnosis): one such task runs at a time,
    #: the one on screen first (:class:`explorer.gui.workers.JobRunner`'s compute lane)
    heavy: bool = False
    on_progress: Optional[Callable[[Progress], None]] = None  # on the caller's thread too


def run_now(task: Task) -> Any:
    """A ``submit`` for scripts and tests: run the task at once on this thread."""
    result = drain(task.job(), task.on_progress)
    if task.on_result is not None:
        task.on_result(result)
    return result


@dataclass
class MapSettings:
    """What the maps are computed with (the GUI's projection panel fills the same fields)."""

    method: str = "umap"
    n_neighbors: int = 15
    min_dist: float = 0.1
    metric: str = "cosine"
    seed: int = 0
    dims: int = 2
    optimizer: str = "fast"
    max_fit_points: Optional[int] = None  # UMAP fitted on at most this many points (None: MapParams')


def can_embed(model, dataset) -> Optional[str]:
    """None when ``model`` can embed ``dataset``, else one sentence saying why not."""
    if dataset is None:
        return "no dataset is open"
    if model.encoder is None:
        return None if dataset.kind == "vector" else "precomputed vectors belong to the dataset they came with"
    kind = getattr(model.encoder.preprocess, "kind", None)
    if kind in (None, dataset.kind):
        return None
    from explorer.encoders import input_kind_declared

    if not input_kind_declared(model.encoder) and dataset.kind in ("vector", "image"):
        return None  # undeclared: embedding tries one item and says what to declare if it fails
    return f"{model.id} takes {kind} input and {dataset.name} holds {dataset.kind} items"


def read_dataset(path, fmt: Optional[str] = None, metadata: Optional[str] = None,
                 id_column: Optional[str] = None, **options) -> Any:
    """The dataset at ``path`` as opening it makes it: read by its format, then with the
    metadata table or ``.npy`` of labels joined (by row order or ``id_column``). Opening and
    the open-dataset dialog's preview both read through here, so the preview shows the classes
    and columns the opened dataset will have."""
    from explorer.data import attach_metadata, open_dataset

    ds = open_dataset(path, fmt, **options)
    if metadata:
        ds = attach_metadata(ds, metadata, id_column=id_column)
    return ds


def _root(dataset):
    """The dataset a narrowed one (readable items only) was made from; itself otherwise."""
    return getattr(dataset, "parent", None) or dataset


@dataclass
class Pipeline:
    """The workflow over one :class:`~explorer.app.session.Session` (see the module docstring).

    ``submit(task)`` runs a task (GUI: a worker pool; :func:`run_now` headless).
    ``embed_params()`` gives the :class:`~explorer.embed.EmbedParams` to use (the settings).
    """

    session: Any
    submit: Callable[[Task], Any] = run_now
    embed_params: Callable[[], Any] = None  # type: ignore[assignment]
    settings: Any = field(default_factory=MapSettings)
    info: Signal = field(default_factory=Signal)  # one sentence for the user
    error: Signal = field(default_factory=Signal)  # one sentence for the user
    waiting: Signal = field(default_factory=Signal)  # (model id, "what the map waits for" or "")
    embedded: Signal = field(default_factory=Signal)  # model id, after its vectors are applied

    def __post_init__(self) -> None:
        if self.embed_params is None:
            from explorer.embed import EmbedParams

            self.embed_params = EmbedParams
        # model id -> what runs once its maps are done (its diagnostics); kept until it has run,
        # so that maps computed again (new settings) before that still bring it
        self._after_maps: dict = {}

    # -- opening ---------------------------------------------------------------------------
    def open_dataset(self, path, fmt: Optional[str] = None, metadata: Optional[str] = None,
                     id_column: Optional[str] = None, then: Optional[Callable[[], None]] = None, **options) -> Any:
        """Read ``path`` in a worker (optionally joining a metadata table), then :meth:`use_dataset`,
        then ``then()``."""
        def job():
            yield Progress(0, None, f"Reading {Path(path).name}")
            return read_dataset(path, fmt, metadata, id_column, **options)

        source = {"path": str(Path(metadata).resolve()), "id_column": id_column} if metadata else None

        def done(ds):
            self.use_dataset(ds, source)
            if then is not None:
                then()

        return self.submit(Task(f"Open {Path(path).name}", job, done, exclusive="open-dataset",
                                priority=PRIORITY["open"]))

    def use_dataset(self, ds, metadata_source: Optional[dict] = None) -> None:
        """Make ``ds`` the session's dataset; embed it with every model that can."""
        s = self.session
        if "precomputed" in s.models and ds.kind != "vector":
            s.remove_model("precomputed")  # the old dataset's own vectors
        s.set_dataset(ds, metadata_source)
        if ds.skipped:
            self.info.emit(f"{len(ds.skipped)} items of {ds.name} could not be read and were left out "
                           f"(first: {ds.skipped[0][0]}: {ds.skipped[0][1]}).")
        if s.current is not None and can_embed(s.models[s.current], ds) is not None:
            fits = [mid for mid, m in s.models.items() if can_embed(m, ds) is None]
            if fits:
                s.set_current(fits[0])
        self.embed_all()

    def open_encoder(self, path, make_current: bool = False, name: Optional[str] = None, **options) -> Any:
        """Load an encoder in a worker, add it as a model, embed the dataset with it if it fits."""
        from explorer.encoders import open_encoder

        def job():
            yield Progress(0, None, f"Loading {Path(path).name}")
            return open_encoder(path, **options)

        kept = {k: v for k, v in options.items() if v is not None}
        same = self.open_model_of(path, kept) if name is None else None
        if same is not None:  # opened again: do not load (and embed) a second copy
            if make_current:
                self.session.set_current(same.id)
            self.info.emit(f"{Path(path).name} is already open as {same.id}.")
            return None
        return self.submit(Task(f"Load {Path(path).name}", job,
                                lambda enc: self.add_encoder(enc, kept, name=name, make_current=make_current),
                                priority=PRIORITY["open"]))

    def open_model_of(self, path, options: dict):
        """The session's model loaded from ``path`` with the same options (layer, pooling...), if any."""
        try:
            target = Path(path).expanduser().resolve()
        except (OSError, RuntimeError):
            return None
        for m in self.session.models.values():
            if m.source and m.encoder is not None and m.options == options:
                try:
                    if Path(m.source).expanduser().resolve() == target:
                        return m
                except (OSError, RuntimeError):
                    continue
        return None

    def open_demo(self) -> None:
        """The bundled sample digits with their metadata and the three sample checkpoints
        (healthy, dimensionally collapsed, collapsed); the healthy one is shown first."""
        from explorer.core.errors import InputError
        from explorer.core.resources import sample_data_dir

        root = sample_data_dir()
        data, meta = root / "digits", root / "digits_metadata.csv"
        if not data.is_dir():
            raise InputError(f"The sample data is missing from {root}; reinstall the app or run make sample-data.")
        models = [p for p in (root / "checkpoints" / n for n in ("healthy.pt", "dimcollapsed.pt", "collapsed.pt"))
                  if p.exists()]

        def opened():
            for p in models:
                self.open_encoder(p, make_current=p.name == "healthy.pt")

        self.open_dataset(data, metadata=str(meta) if meta.exists() else None,
                          id_column="path" if meta.exists() else None, then=opened)

    def add_encoder(self, encoder, options: Optional[dict] = None, name: Optional[str] = None,
                    source: Optional[str] = None, make_current: bool = False):
        s = self.session
        m = s.add_model(encoder, name=name, source=source, options=options or {})
        if make_current:
            s.set_current(m.id)
        if s.dataset is not None:
            why = can_embed(m, s.dataset)
            if why is None:
                self.embed(m.id)
            else:
                self.info.emit(f"{m.id} was added but not used: {why}.")
        return m

    def attach_metadata(self, path, id_column: Optional[str] = None) -> None:
        """Join a metadata table (.csv/.tsv/.jsonl) or a ``.npy`` of labels to the open dataset
        (by row order or ``id_column``); quick, so it runs here. Views learn of it through the
        session's ``columns_changed``."""
        from explorer.data import attach_metadata
        from explorer.core.errors import InputError

        s = self.session
        if s.dataset is None:
            raise InputError("Open a dataset before attaching metadata to it.")
        before = s.dataset
        ds = attach_metadata(before, path, id_column=id_column)
        s.replace_dataset_columns(ds, {"path": str(Path(path).resolve()), "id_column": id_column})
        name = Path(path).name
        if Path(path).suffix.lower() == ".npy":
            column = "label" if before.labels is None else f"label ({name})"
            classes = len(set(ds.columns()[column].tolist()) - {""})
            self.info.emit(f"Attached {name}: {classes} classes, as the column “{column}”.")
        else:
            self.info.emit(f"Attached {name}: {len(ds.metadata)} columns to colour, filter and search by.")

    def restore(self, result, data: dict) -> None:
        """Apply a finished :func:`~explorer.app.session_file.restore_job` to this pipeline's
        (fresh) session: dataset, selection, models, the current one; then compute what the
        workspace does not already hold."""
        s = self.session
        ds = result.dataset
        if ds is not None:
            s.set_dataset(ds, (data.get("dataset") or {}).get("metadata"))
            s.selection.select([i for i in data.get("selection", []) if 0 <= i < len(ds)], source=self)
            focus = data.get("focus")
            if focus is not None and 0 <= focus < len(ds):
                s.selection.set_focus(focus, source=self)
        for md, enc in result.encoders:
            if enc is None and "precomputed" in s.models:
                continue
            s.add_model(enc, name=md["id"], source=md.get("source"), options=md.get("options", {}))
        if data.get("current") in s.models:
            s.set_current(data["current"])
        if ds is not None and data.get("tags"):
            from explorer.app.tags import publish

            s.tags.from_list([t for t in data["tags"] if all(0 <= i < len(ds) for i in t.get("indices", []))])
            publish(s)
        s.bookmarks.load(data.get("bookmarks", []))
        if result.skipped:
            more = f" ({len(result.skipped) - 1} more not opened)" if len(result.skipped) > 1 else ""
            self.error.emit(result.skipped[0][1].rstrip(".") + more + ".")
        self.embed_all()

    # -- computing ---------------------------------------------------------------------------
    def _rank(self, model_id: str, stage: str) -> int:
        return PRIORITY.get(f"{stage}:current" if model_id == self.session.current else stage, 0)

    def embed_all(self) -> None:
        s = self.session
        if s.dataset is None:
            return
        order = sorted(s.models, key=lambda mid: mid != s.current)  # the one on screen first
        skipped = []
        for mid in order:
            why = can_embed(s.models[mid], s.dataset)
            if why is None:
                self.embed(mid)
            else:
                skipped.append(why)
        if skipped:
            more = f" ({len(skipped) - 1} more like it)" if len(skipped) > 1 else ""
            self.info.emit(f"Not embedded: {skipped[0]}{more}.")

    def embed(self, model_id: str) -> Any:
        s = self.session
        m = s.models.get(model_id)
        if m is None or s.dataset is None:
            return None
        why = can_embed(m, s.dataset)
        if why is not None:
            self.error.emit(f"Cannot embed: {why}.")
            return None
        params = self.embed_params()
        if model_id == s.current:
            self.waiting.emit(model_id, f"Embedding {len(s.dataset):,} items with {model_id}…")
        ds = s.dataset
        return self.submit(Task(f"Embed with {model_id}", lambda: s.embed_job(model_id, params),
                                lambda r: self._embedded(model_id, ds, r), exclusive=f"embed:{model_id}",
                                priority=self._rank(model_id, "embed"), heavy=True))

    def _embedded(self, model_id: str, dataset, result) -> None:
        s = self.session
        if model_id not in s.models:
            return  # the model went while it ran
        if s.dataset is not dataset:
            if _root(s.dataset) is _root(dataset):  # narrowed to its readable items meanwhile
                self.embed(model_id)
            return  # else another dataset was opened while it ran
        key, vectors = result
        s.apply_embedding(model_id, key, vectors)
        if s.dataset is not dataset:  # this embedding left unreadable items out: only real rows stay
            ds = s.dataset
            self.info.emit(f"{len(ds.skipped)} items of {ds.name} could not be read and were left out "
                           f"(first: {ds.skipped[0][0]}: {ds.skipped[0][1]}).")
            for other, m in s.models.items():
                if other != model_id and m.vectors is None and can_embed(m, ds) is None:
                    self.embed(other)  # its rows no longer line up: embed the readable items again
        self._probe_correctness(model_id)
        self.embedded.emit(model_id)
        self.compute_maps(model_id, then=lambda: self.diagnose(model_id))

    def compute_maps(self, model_id: str, settings: Any = None, then: Optional[Callable[[], None]] = None) -> None:
        """PCA at once; UMAP next (on the shared kNN graph) when the settings ask for it; then
        ``then`` (the diagnostics). One after another: the heavy jobs of a model do not share
        the cores (the compute lane), so the PCA is on screen in seconds and the UMAP takes what
        it takes alone (it is queued as soon as the PCA is computed, ahead of the PCA's storing
        finishing, and starts when that is done). A ``then``
        not yet run when the maps are computed again (new settings) runs after the new ones."""
        s = self.session
        m = s.models.get(model_id)
        if m is None or m.vectors is None:
            return
        then = then or self._after_maps.get(model_id)
        if then is not None:
            self._after_maps[model_id] = then
        st = settings or self.settings
        methods = ["pca"] + (["umap"] if st.method == "umap" else [])
        for method in methods:
            if model_id == s.current and method == st.method:
                self.waiting.emit(model_id, f"Computing the {method.upper()} of {len(m.vectors):,} points…")
            s.jobs_pending(model_id, method, True)
        self._next_map(model_id, s.dataset, methods, st, then)

    def _next_map(self, model_id: str, ds, methods: list, st: Any, then) -> None:
        from explorer.app.session import projection_job

        s = self.session
        if not methods or s.dataset is not ds or model_id not in s.models:
            if then is not None and self._after_maps.get(model_id) is then:
                del self._after_maps[model_id]
                if s.dataset is ds and model_id in s.models:
                    then()
            return
        method, rest = methods[0], methods[1:]
        m = s.models[model_id]

        started = []

        def go_on():
            if not started:
                started.append(True)
                self._next_map(model_id, ds, rest, st, then)

        def done(r):
            self._mapped(model_id, ds, method, r)
            go_on()

        def failed(_msg):
            s.jobs_pending(model_id, method, False)
            go_on()

        def progress(p):
            if (method == "pca" and isinstance(p.partial, np.ndarray) and len(p.partial) == len(ds)
                    and self.submit is not run_now):  # (run_now would run the next map inside this one)
                go_on()  # the PCA is computed: storing it in the workspace need not hold up the next map
            else:
                self._placing(model_id, ds, method, p)

        self.submit(Task(f"{method.upper()} of {model_id}" + (f" ({len(m.vectors):,} points)" if method == "umap" else ""),
                         lambda: projection_job(s, model_id, method, st), done,
                         exclusive=f"{method}:{model_id}", priority=self._rank(model_id, method),
                         on_error=failed, on_progress=progress, heavy=True))

    def _placing(self, model_id: str, dataset, method: str, p: Progress) -> None:
        """A map still being placed (a streamed UMAP: its fitted sample at once, then block by
        block; NaN rows not placed yet) goes to the session to be shown while the rest is placed."""
        part = p.partial
        s = self.session
        if (not isinstance(part, np.ndarray) or part.ndim != 2 or s.dataset is not dataset
                or model_id not in s.models or len(part) != len(dataset) or method in s.models[model_id].layouts
                or not np.isnan(part[:, 0]).any()):
            return
        s.partial_layout.emit(model_id, method, part)

    def _mapped(self, model_id: str, dataset, method: str, result) -> None:
        s = self.session
        s.jobs_pending(model_id, method, False)
        if s.dataset is not dataset or model_id not in s.models:
            return
        s.apply_layout(model_id, method, result[0], result[1])
        if model_id == s.current and method == self.settings.method:
            self.waiting.emit(model_id, "")

    def diagnose(self, model_id: str) -> None:
        from explorer.app.session import diagnose_job

        s = self.session
        m = s.models.get(model_id)
        if m is None or m.vectors is None:
            return
        ds = s.dataset
        self.submit(Task(f"Diagnose {model_id}", lambda: diagnose_job(s, model_id),
                         lambda r: s.apply_diagnostics(model_id, r) if s.dataset is ds and model_id in s.models else None,
                         exclusive=f"diag:{model_id}", priority=self._rank(model_id, "diagnose"),
                         heavy=True))

    def show_model(self, model_id: str) -> None:
        """Make ``model_id`` the one on screen; its missing map is computed ahead of the rest."""
        s = self.session
        s.set_current(model_id)
        m = s.models[model_id]
        if m.embedded and self.settings.method not in m.layouts and not s.is_pending(model_id, self.settings.method):
            self.compute_maps(model_id)

    def _probe_correctness(self, model_id: str) -> None:
        """For a linear probe's logits: a "correct/incorrect" column to colour the map by."""
        s = self.session
        m, ds = s.models[model_id], s.dataset
        if (m.encoder is None or m.encoder.info.get("output") != "linear probe logits" or ds is None
                or ds.labels is None or m.vectors.shape[1] != len(ds.label_names)):
            return
        pred = np.argmax(m.vectors, axis=1)
        col = np.where(pred == ds.labels, "correct", "incorrect").astype(object)
        col[ds.labels < 0] = "unlabelled"
        name = f"probe correct ({model_id})"
        s.add_column(name, col)
        acc = float(np.mean(pred[ds.labels >= 0] == ds.labels[ds.labels >= 0]))
        self.info.emit(f"{model_id}: {acc:.1%} of labelled items correct; colour by “{name}” to see where it errs.")
