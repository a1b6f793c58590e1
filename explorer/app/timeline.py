"""Across a training run: every checkpoint of a folder embedded on one fixed probe set, metric
curves over the run, and 2-D maps aligned from checkpoint to checkpoint.

    res = drain(timeline_job("runs/exp1/", open_dataset("images/"), TimelineParams(probe_size=5000)))
    res.table()          # one dict per checkpoint: name, step, rankme, sigreg, knn_accuracy, ...
    layout_at(res, 2.5)  # the map half-way between checkpoints 2 and 3 (for scrubbing)

The probe set is a seeded random sample of the dataset (:class:`ProbeDataset`, a view that
indexes the original), the same for every checkpoint, so the vectors of two checkpoints are
rows of the same items. Per checkpoint: RankMe (Garrido et al. 2023), SIGReg (Balestriero &
LeCun 2025), DINO's weighted k-NN accuracy when the dataset has labels, and linear CKA
(Kornblith et al. 2019) and mutual k-NN alignment (Huh et al. 2024) against the LAST checkpoint
(the comparison functions of :mod:`explorer.metrics.compare`). Maps: PCA or UMAP of every
checkpoint, each resized to the first map's RMS radius and rotated/reflected and shifted onto the
(aligned) map before it (orthogonal Procrustes), or umap-learn's
AlignedUMAP over the whole series, or left as computed (``align="none"``).

The training step of each checkpoint comes from its metadata (``<file>.json`` sidecar, or the
``global_step``/``step``/``epoch`` entries of a Lightning-style checkpoint) or else its file name
(``epoch_03.pt``, ``step-1200.ckpt``, ``epoch=3-step=1200.ckpt``, ``ckpt_000500.pth``); see
:func:`checkpoint_step`. Without any, checkpoints are numbered in file-name order.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from explorer.data.base import Dataset
from explorer.core.errors import InputError
from explorer.core.jobs import Job, Progress
from explorer.metrics import registry as _registry
from explorer.store import TIMELINES

__all__ = ["TimelineParams", "TimelineResult", "ProbeDataset", "checkpoint_step", "checkpoint_meta",
           "list_checkpoints", "probe_indices", "timeline_job", "interpolate_layouts", "layout_at",
           "TIMELINE_GROUP", "CHECKPOINT_SUFFIXES", "METRICS"]

#: workspace group of stored timelines (comparisons of checkpoints)
TIMELINE_GROUP = TIMELINES  # its own group (it shared "comparisons" with the compare command)
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors", ".pkl")
METRICS = _registry.keys("timeline")  # rankme, sigreg, knn_accuracy, linear_cka, mutual_knn
#: probe images decoded once and kept in memory up to this many bytes (else read per checkpoint)
PRELOAD_BYTES = 512 << 20

_STEP_KEYS = ("global_step", "step", "iteration", "iter")
_EPOCH_KEYS = ("epoch",)
# name parts like "step-1200", "epoch=3", "ep03", "iter_500", "ckpt_000500"
_NAME_PART = re.compile(r"(global_step|step|steps|iteration|iter|it|epoch|ep|ckpt|checkpoint)[_\-=]?(\d+)",
                        re.IGNORECASE)
_NUMBER = re.compile(r"\d+")


# ---------------------------------------------------------------------------------------------
# checkpoints and their steps
# ---------------------------------------------------------------------------------------------
def _int_or_none(v: Any) -> Optional[int]:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, float) and math.isfinite(v) and v == int(v):
        return int(v)
    try:  # 0-d tensors
        if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
            return _int_or_none(v.item())
    except Exception:
        return None
    return None


def _from_mapping(d: Any) -> dict:
    out: dict = {}
    if not isinstance(d, dict):
        return out
    for k in _STEP_KEYS:
        v = _int_or_none(d.get(k))
        if v is not None:
            out["step"] = v
            break
    for k in _EPOCH_KEYS:
        v = _int_or_none(d.get(k))
        if v is not None:
            out["epoch"] = v
            break
    return out


def _from_name(name: str) -> dict:
    out: dict = {}
    stem = name
    for suf in CHECKPOINT_SUFFIXES:
        if stem.lower().endswith(suf):
            stem = stem[: -len(suf)]
            break
    for m in _NAME_PART.finditer(stem):
        word, num = m.group(1).lower(), int(m.group(2))
        if word in ("epoch", "ep"):
            out.setdefault("epoch", num)
        else:
            out.setdefault("step", num)
    if not out:
        nums = _NUMBER.findall(stem)
        if nums:
            out["number"] = int(nums[-1])
    return out


def checkpoint_meta(path: Union[str, os.PathLike], read_checkpoint: bool = True) -> dict:
    """What is known of a checkpoint's place in its run: ``{"sidecar": {...}, "checkpoint":
    {...}, "name": {...}}``, each with ``step`` and/or ``epoch`` (``name`` may hold a bare
    ``number``). The sidecar is ``<file>.json`` (or ``<stem>.json``); the checkpoint's own entries
    (``global_step``/``step``/``epoch`` at the top level of a dict checkpoint, as Lightning writes)
    are read only for ``.ckpt/.pt/.pth`` files and only when there is no sidecar, memory-mapped and
    weights-only (no code runs)."""
    p = Path(path)
    meta: dict = {"sidecar": {}, "checkpoint": {}, "name": _from_name(p.name)}
    for side in (p.with_name(p.name + ".json"), p.with_suffix(".json")):
        if side != p and side.is_file():
            try:
                meta["sidecar"] = _from_mapping(json.loads(side.read_text()))
            except (OSError, ValueError):
                pass
            break
    if read_checkpoint and not meta["sidecar"] and p.suffix.lower() in (".ckpt", ".pt", ".pth") and p.is_file():
        try:
            import torch

            try:
                obj = torch.load(p, map_location="cpu", weights_only=True, mmap=True)
            except Exception:
                obj = torch.load(p, map_location="cpu", weights_only=True)
            meta["checkpoint"] = _from_mapping(obj)
        except Exception:  # unreadable here; the encoder loader will say why if it matters
            pass
    return meta


def checkpoint_step(path: Union[str, os.PathLike], prefer: Optional[str] = None) -> tuple:
    """``(number, source)``: the training step or epoch of a checkpoint, from its metadata
    (sidecar first, then the checkpoint's own entries) or else its file name.

    ``source`` says what the number is and where it came from, e.g. ``"step (sidecar)"``,
    ``"epoch (checkpoint)"``, ``"step (file name)"``, ``"number (file name)"``; ``(None,
    "none")`` when nothing is known. A step is preferred to an epoch (finer); ``prefer="epoch"``
    turns that round."""
    meta = checkpoint_meta(path)
    order = ("epoch", "step") if prefer == "epoch" else ("step", "epoch")
    for where in ("sidecar", "checkpoint", "name"):
        for what in order + ("number",):
            if what in meta[where]:
                return meta[where][what], f"{what} ({'file name' if where == 'name' else where})"
    return None, "none"


def _series_steps(paths: Sequence[Path]) -> tuple[np.ndarray, str, list]:
    """One kind of number for the whole series: the first of step / epoch / file-name number
    that every checkpoint has (and that tells them apart), else their order 0..T-1."""
    metas = [checkpoint_meta(p) for p in paths]
    for what in ("step", "epoch", "number"):
        for where in ("sidecar", "checkpoint", "name"):
            vals = [m[where].get(what) for m in metas]
            if all(v is not None for v in vals) and len(set(vals)) == len(vals):
                src = "file name" if where == "name" else where
                return np.asarray(vals, dtype=np.int64), ("checkpoint" if what == "number" else what), \
                    [f"{what} ({src})"] * len(vals)
    return np.arange(len(paths), dtype=np.int64), "checkpoint", ["order"] * len(paths)


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def list_checkpoints(folder: Union[str, os.PathLike]) -> list[Path]:
    """The checkpoint files of ``folder`` (``.pt .pth .ckpt .bin .safetensors .pkl``, not in
    sub-folders), sorted by training step/epoch when every file has one (see
    :func:`checkpoint_step`), else by name in natural order (``ep2`` before ``ep10``)."""
    f = Path(folder).expanduser()
    if not f.is_dir():
        raise InputError(f"{f}: not a folder of checkpoints.")
    files = sorted((p for p in f.iterdir() if p.is_file() and p.suffix.lower() in CHECKPOINT_SUFFIXES
                    and not p.name.startswith(".")), key=lambda p: _natural_key(p.name))
    if not files:
        raise InputError(f"{f}: no checkpoint files ({', '.join(CHECKPOINT_SUFFIXES)}) in this folder.")
    steps, axis, _ = _series_steps(files)
    if axis != "checkpoint" or len(files) < 2:
        order = np.argsort(steps, kind="stable")
        files = [files[i] for i in order]
    return files


# ---------------------------------------------------------------------------------------------
# the probe set
# ---------------------------------------------------------------------------------------------
def probe_indices(n: int, probe_size: int, seed: int = 0) -> np.ndarray:
    """The probe set: ``probe_size`` distinct rows of range(n) drawn with ``seed`` (all rows
    when n is not larger), sorted. (P,) int64."""
    if probe_size < 2:
        raise InputError(f"The probe set needs at least 2 points, not {probe_size}.")
    if n <= probe_size:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, int(probe_size), replace=False)).astype(np.int64)


class ProbeDataset(Dataset):
    """The rows ``indices`` of ``base`` as a dataset of their own (item i = base item
    ``indices[i]``); labels, metadata and ids follow. ``preload(size)`` decodes the images once
    and keeps them in memory, so that embedding ten checkpoints decodes them once."""

    def __init__(self, base: Dataset, indices: np.ndarray) -> None:
        idx = np.asarray(indices, dtype=np.int64)
        if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= len(base))):
            raise InputError(f"Probe indices must be rows of {base.name} (0..{len(base) - 1}).")
        super().__init__(
            name=f"{base.name} (probe of {idx.size})", source=base.source, kind=base.kind, n=int(idx.size),
            labels=None if base.labels is None else np.asarray(base.labels)[idx],
            label_names=list(base.label_names),
            metadata={k: np.asarray(v)[idx] for k, v in dict(base.metadata).items()},
            ids=None if base.ids is None else np.asarray(base.ids)[idx],
            options={**dict(base.options), "probe_of": str(base.source), "probe_n": int(idx.size)},
            format=base.format)
        self.base = base
        self.indices = idx
        self._cache: Optional[np.ndarray] = None
        self._cache_size = 0

    @property
    def decodes_files(self) -> bool:  # explorer.embed picks loader workers by this
        if self._cache is not None:
            return False
        d = getattr(self.base, "decodes_files", None)
        if d is not None:
            return bool(d)
        return getattr(self.base, "files", None) is not None or self.base.format in ("image-folder", "images")

    def preload(self, size: int, max_bytes: int = PRELOAD_BYTES) -> bool:
        """Decode every probe image at ``size`` once (if it fits in ``max_bytes``); True if done."""
        if self.kind != "image" or self.n * size * size * 3 > max_bytes:
            return False
        if self._cache is not None and self._cache_size == size:
            return True
        from explorer.embed import _read_images

        self._cache, self._ok = _read_images(self.base, self.indices, size)
        self._cache_size = size
        return True

    def read_images(self, indices, size: int):
        """uint8 (B, size, size, 3) and ``ok`` (B,): unreadable images are flagged, so the
        engine leaves them out instead of embedding a blank."""
        from explorer.embed import _read_images

        idx = np.asarray(indices, dtype=np.int64)
        if self._cache is not None and size == self._cache_size:
            return self._cache[idx], self._ok[idx]
        return _read_images(self.base, self.indices[idx], size)

    def image(self, i: int, size: Optional[int] = None) -> np.ndarray:
        if self._cache is not None and size == self._cache_size:
            return self._cache[int(i)]
        return self.base.image(int(self.indices[int(i)]), size)

    def images(self, indices, size: int) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64)
        if self._cache is not None and size == self._cache_size:
            return self._cache[idx]
        return self.base.images(self.indices[idx], size)

    def text(self, i: int) -> str:
        return self.base.text(int(self.indices[int(i)]))

    def texts(self, indices) -> list:
        return self.base.texts(self.indices[np.asarray(indices, dtype=np.int64)])

    def vectors(self, indices=None) -> np.ndarray:
        rows = self.indices if indices is None else self.indices[np.asarray(indices, dtype=np.int64)]
        return self.base.vectors(rows)

    def thumbnail(self, i: int, size: int = 96) -> Optional[np.ndarray]:
        return self.base.thumbnail(int(self.indices[int(i)]), size)

    def fingerprint(self) -> str:
        from explorer.store import content_key

        return content_key(self.base.fingerprint(), "probe", hashlib.sha256(self.indices.tobytes()).hexdigest())


# ---------------------------------------------------------------------------------------------
# parameters and result
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TimelineParams:
    """How to build a timeline.

    probe_size/seed: the probe set (:func:`probe_indices`). arch/factory/trust/layer/pooling:
    how to open each checkpoint (:func:`explorer.encoders.open_encoder`). device/batch_size/
    precision: how to embed. metrics: any of :data:`METRICS`. align: "procrustes" (each map
    onto the previous aligned one), "aligned_umap" (umap-learn's AlignedUMAP; implies UMAP) or
    "none". map_method: "pca" or "umap". mutual_k: k of mutual k-NN (Huh et al. use 10).
    knn_k: k of the k-NN accuracy probe. umap_neighbors/umap_epochs: UMAP settings."""

    probe_size: int = 5000
    seed: int = 0
    arch: Optional[str] = None
    factory: Optional[str] = None
    trust: bool = False
    layer: Optional[str] = None
    pooling: str = "auto"
    preprocess: Optional[dict] = None  # fields set by the user (--image-size, --mean, ...)
    submodel: Optional[str] = None
    device: str = "auto"
    batch_size: int = 256
    precision: str = "fp32"
    metrics: tuple = METRICS
    align: str = "procrustes"
    map_method: str = "pca"
    mutual_k: int = 10
    knn_k: int = 20
    umap_neighbors: int = 15
    umap_epochs: Optional[int] = None

    def __post_init__(self) -> None:
        if self.align not in ("procrustes", "aligned_umap", "none"):
            raise InputError(f"Unknown alignment {self.align!r}; use procrustes, aligned_umap or none.")
        if self.map_method not in ("pca", "umap"):
            raise InputError(f"Unknown map method {self.map_method!r}; use pca or umap.")
        bad = [m for m in self.metrics if m not in METRICS]
        if bad:
            raise InputError(f"Unknown timeline metric {bad[0]!r}; use any of {', '.join(METRICS)}.")
        if int(self.probe_size) < 2:
            raise InputError(f"The probe set needs at least 2 points, not {self.probe_size}.")

    def key_dict(self) -> dict:
        """The fields that define the result (not where it ran)."""
        d = asdict(self)
        for k in ("device", "batch_size"):
            d.pop(k)
        d["metrics"] = list(self.metrics)
        return d


@dataclass
class TimelineResult:
    """A run's checkpoints on one probe set.

    paths/names: the checkpoints in order. steps (T,) int64 and ``axis`` ("step", "epoch" or
    "checkpoint" when only their order is known); ``step_sources`` per checkpoint.
    probe_indices (P,) int64: rows of the dataset. labels (P,) int64 codes or None (-1 unknown),
    label_names. vectors: T arrays (P, D_t) float32 (None when loaded from a workspace without
    its embeddings). layouts: T arrays (P, 2) float32, aligned as ``info["align"]`` says.
    metrics: T dicts (metric -> float or None). info: timings per stage, alignment residuals.
    key: the workspace record key (None if not stored)."""

    paths: list
    names: list
    steps: np.ndarray
    axis: str
    step_sources: list
    probe_indices: np.ndarray
    labels: Optional[np.ndarray]
    label_names: list
    vectors: Optional[list]
    layouts: list
    metrics: list
    info: dict = field(default_factory=dict)
    key: Optional[str] = None

    def __len__(self) -> int:
        return len(self.paths)

    def series(self, metric: str) -> np.ndarray:
        """(T,) float64 values of ``metric`` over the checkpoints (NaN where missing)."""
        return np.asarray([np.nan if m.get(metric) is None else float(m[metric]) for m in self.metrics])

    def table(self) -> list[dict]:
        """One dict per checkpoint: index, name, path, the step under its axis name ("step",
        "epoch" or "checkpoint") and as "step", then every metric."""
        rows = []
        for i, (p, nm, s, m) in enumerate(zip(self.paths, self.names, self.steps, self.metrics)):
            row = {"index": i, "name": nm, "path": str(p), "step": int(s), "axis": self.axis}
            row.update({k: (None if v is None else float(v)) for k, v in m.items()})
            rows.append(row)
        return rows


# ---------------------------------------------------------------------------------------------
# interpolation
# ---------------------------------------------------------------------------------------------
def interpolate_layouts(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """The layout a fraction ``t`` of the way from ``a`` to ``b`` (both (N, c)): (1 - t) a + t b,
    ``t`` clipped to [0, 1]. (N, c) float32."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    if a.shape != b.shape:
        raise InputError(f"Cannot interpolate layouts of shapes {a.shape} and {b.shape}.")
    t = float(min(1.0, max(0.0, t)))
    if t == 0.0:
        return a.copy()
    if t == 1.0:
        return b.copy()
    return ((1.0 - t) * a + t * b).astype(np.float32)


def layout_at(result: TimelineResult, position: float) -> np.ndarray:
    """The map at a fractional checkpoint position in [0, T-1]: checkpoint ``floor(position)``
    interpolated towards the next by the fraction."""
    T = len(result.layouts)
    pos = float(min(T - 1, max(0.0, position)))
    i = int(math.floor(pos))
    if i >= T - 1:
        return np.asarray(result.layouts[-1], dtype=np.float32).copy()
    return interpolate_layouts(result.layouts[i], result.layouts[i + 1], pos - i)


# ---------------------------------------------------------------------------------------------
# the job
# ---------------------------------------------------------------------------------------------
def _resolve_paths(folder_or_paths) -> list[Path]:
    if isinstance(folder_or_paths, (str, os.PathLike)):
        p = Path(folder_or_paths).expanduser()
        if not p.exists():
            raise InputError(f"{p}: no such file or folder.")
        if p.is_dir():
            return list_checkpoints(p)
        return [p]
    paths = [Path(x).expanduser() for x in folder_or_paths]
    for p in paths:
        if not p.exists():
            raise InputError(f"{p}: no such checkpoint file.")
    if len(paths) == 1 and paths[0].is_dir():
        return list_checkpoints(paths[0])
    return paths


def _file_identity(p: Path) -> list:
    st = p.stat()
    side = p.with_name(p.name + ".json")
    return [str(p.resolve()), st.st_size, st.st_mtime_ns, side.stat().st_mtime_ns if side.is_file() else None]


def _series_metrics(Z: np.ndarray, Zlast: np.ndarray, labels: Optional[np.ndarray], p: TimelineParams,
                    device) -> dict:
    """The chosen metrics of one checkpoint (their functions are in the metric registry)."""
    ctx = {"seed": p.seed, "device": device, "knn_k": p.knn_k, "mutual_k": p.mutual_k}
    out: dict = {}
    for key in p.metrics:
        v = _registry.series_function(key)(Z, Zlast, labels, ctx)
        out[key] = None if v is None or not math.isfinite(v) else float(v)
    return out


def _rms_radius(L: np.ndarray) -> float:
    L = np.asarray(L, np.float64)
    return float(np.sqrt(((L - L.mean(0)) ** 2).sum(1).mean()))


def _layouts(vectors: list, p: TimelineParams, info: dict) -> Job:
    from explorer.maps import MapParams, aligned_umap, make_layout, procrustes_align

    T = len(vectors)
    P = vectors[0].shape[0]
    umap_params = MapParams(method="umap", n_neighbors=min(p.umap_neighbors, P - 1), seed=p.seed,
                            n_epochs=p.umap_epochs, device=None if p.device == "auto" else p.device)
    if p.align == "aligned_umap":
        if T < 2:
            raw = [(yield from make_layout(vectors[0], umap_params)).coords]
        else:
            raw = yield from aligned_umap(vectors, umap_params)
        info["map_method"] = "umap"
        yield Progress(T, T, "AlignedUMAP done")
        return [np.ascontiguousarray(r, dtype=np.float32) for r in raw]
    mp = MapParams(method="pca", device=None if p.device == "auto" else p.device) if p.map_method == "pca" \
        else umap_params
    raw = []
    for i, Z in enumerate(vectors):
        yield Progress(i, T, f"{p.map_method.upper()} map {i + 1}/{T}")
        lay = yield from make_layout(Z, mp)
        raw.append(np.asarray(lay.coords, dtype=np.float32))
    if p.align == "none":
        return raw
    # every map at the first map's size (RMS radius), then rotated/reflected and shifted onto
    # the previous aligned map: a least-squares scale would shrink maps that agree poorly
    ref = _rms_radius(raw[0])
    out = [raw[0]]
    rmsd = [0.0]
    for i in range(1, T):
        r = _rms_radius(raw[i])
        resized = raw[i] * np.float32(ref / r) if r > 0 and ref > 0 else raw[i]
        aligned, inf = procrustes_align(resized, out[-1], scale=False)
        out.append(aligned)
        rmsd.append(inf["rmsd"])
    info["procrustes_rmsd"] = rmsd
    yield Progress(T, T, "maps aligned")
    return out


def timeline_job(folder_or_paths, dataset: Dataset, params: TimelineParams = TimelineParams(),
                 workspace=None) -> Job:
    """Job: embed every checkpoint of a run on one probe set of ``dataset``, compute the metric
    series and the aligned maps -> :class:`TimelineResult`.

    ``folder_or_paths``: a folder (:func:`list_checkpoints`) or checkpoint files in run order.
    ``workspace``: an :class:`explorer.store.Workspace` keeps each checkpoint's probe embeddings
    (group "embeddings", reused on the next run) and the timeline itself (group
    :data:`TIMELINE_GROUP`, attrs ``kind="timeline"``); a timeline already stored with the same
    files, probe and parameters is loaded instead of recomputed. Progress: one unit per
    checkpoint embedded (fractions within), one per metric row, one per map. Cancelling stops
    at the next batch or stage; nothing is written for a cancelled run."""
    from explorer.embed import EmbedParams, embed, embed_cached, embedding_key, embedding_rows
    from explorer.encoders import match_input_kind, open_encoder
    from explorer.store import content_key

    p = params
    t_start = time.perf_counter()
    timings: dict = {"open": 0.0, "embed": 0.0, "metrics": 0.0, "layouts": 0.0, "store": 0.0}
    paths = _resolve_paths(folder_or_paths)
    if not paths:
        raise InputError("No checkpoints given.")
    T = len(paths)
    total = 3 * T + 1
    steps, axis, sources = _series_steps(paths)
    idx = probe_indices(len(dataset), int(p.probe_size), p.seed)
    probe = ProbeDataset(dataset, idx)
    labels = None if dataset.labels is None else np.asarray(probe.labels, dtype=np.int64)
    eparams = EmbedParams(device=p.device, batch_size=p.batch_size, precision=p.precision)
    from explorer.core.device import resolve_device

    dev = resolve_device(p.device)
    names = [pp.name for pp in paths]

    key = None
    if workspace is not None:
        key = content_key("timeline", probe.fingerprint(), [_file_identity(pp) for pp in paths], p.key_dict())
        if workspace.has(TIMELINE_GROUP, key):
            res = _load(workspace, key)
            if res is not None:
                yield Progress(total, total, "Timeline loaded from the workspace")
                return res

    yield Progress(0, total, f"Probe set of {probe.n} points; {T} checkpoints")
    vectors: list[np.ndarray] = []
    rows: list[np.ndarray] = []  # probe positions of each checkpoint's rows
    emb_keys: list[Optional[str]] = []
    preloaded = False
    for i, path in enumerate(paths):
        t0 = time.perf_counter()
        enc = open_encoder(path, arch=p.arch, factory=p.factory, trust=p.trust, layer=p.layer, pooling=p.pooling,
                           preprocess=p.preprocess, submodel=p.submodel)
        match_input_kind(enc, probe)  # before the key: the input kind is part of it
        timings["open"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        pp = enc.preprocess
        if not preloaded and probe.kind == "image" and T > 1 and pp.interpolation == "bilinear":
            yield Progress(i, total, "Decoding the probe images once")
            preloaded = probe.preload(int(pp.resize_to))  # the engine reads at the resize, then crops
        job = embed_cached(workspace, probe, enc, eparams, key=embedding_key(probe, enc)) \
            if workspace is not None else embed(probe, enc, eparams)
        gen = job
        try:
            while True:
                try:
                    pr = next(gen)
                except StopIteration as stop:
                    out = stop.value
                    break
                frac = (pr.fraction or 0.0)
                yield Progress(i + frac, total, f"{path.name}: {pr.message}")
        finally:
            gen.close()
        if workspace is not None:
            k, Z = out
            r = embedding_rows(workspace, k)
        else:
            k, Z, r = None, out.vectors, out.rows
        vectors.append(np.ascontiguousarray(Z, dtype=np.float32))
        rows.append(np.arange(probe.n, dtype=np.int64) if r is None else np.asarray(r, dtype=np.int64))
        emb_keys.append(k)
        timings["embed"] += time.perf_counter() - t0
        del enc
    if any(len(r) != probe.n for r in rows):
        # unreadable probe items have no row: compare checkpoints on the items all of them read
        common = rows[0]
        for r in rows[1:]:
            common = np.intersect1d(common, r)
        if len(common) < 2:
            raise InputError(f"Fewer than 2 probe items of {dataset.name} could be read.")
        vectors = [Z[np.searchsorted(r, common)] for Z, r in zip(vectors, rows)]
        ids = probe.ids if probe.ids is not None else np.arange(probe.n).astype(str)
        left_out = [str(ids[i]) for i in np.setdiff1d(np.arange(probe.n), common)]
        idx = idx[common]
        labels = None if labels is None else labels[common]
        yield Progress(T, total, f"{len(left_out)} unreadable probe items left out (first: {left_out[0]})")
    else:
        left_out = []

    metrics: list[dict] = []
    t0 = time.perf_counter()
    for i, Z in enumerate(vectors):
        row = _series_metrics(Z, vectors[-1], labels, p, dev)
        metrics.append(row)
        yield Progress(T + i + 1, total, f"metrics of {names[i]}", partial={"index": i, "metrics": row})
    timings["metrics"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    info: dict = {"align": p.align, "map_method": p.map_method}
    if left_out:
        info["left_out"] = left_out[:1000]
    gen = _layouts(vectors, p, info)
    try:
        while True:
            try:
                pr = next(gen)
            except StopIteration as stop:
                layouts = stop.value
                break
            yield Progress(2 * T + min(T, pr.done if pr.total == T else (pr.fraction or 0) * T), total,
                           pr.message)
    finally:
        gen.close()
    timings["layouts"] = time.perf_counter() - t0

    res = TimelineResult(paths=[str(pp) for pp in paths], names=names, steps=steps, axis=axis,
                         step_sources=sources, probe_indices=idx, labels=labels,
                         label_names=list(dataset.label_names), vectors=vectors, layouts=layouts,
                         metrics=metrics, info=info, key=key)
    if workspace is not None:
        t0 = time.perf_counter()
        yield Progress(3 * T, total, f"Saving to {workspace.name}")
        _store(workspace, key, res, emb_keys, p, dataset)
        timings["store"] = time.perf_counter() - t0
    info["timings"] = {k: round(v, 4) for k, v in timings.items()}
    info["seconds"] = round(time.perf_counter() - t_start, 4)
    info["probe_preloaded"] = preloaded
    info["device"] = str(dev)
    yield Progress(total, total, "Timeline done")
    return res


def _store(ws, key: str, res: TimelineResult, emb_keys: list, p: TimelineParams, dataset) -> None:
    arrays = {"steps": np.asarray(res.steps, np.int64), "probe_indices": res.probe_indices,
              "layouts": np.stack(res.layouts).astype(np.float32)}
    if res.labels is not None:
        arrays["labels"] = res.labels
    attrs = {"kind": "timeline", "paths": res.paths, "names": res.names, "axis": res.axis,
             "step_sources": res.step_sources, "label_names": [str(x) for x in res.label_names],
             "metrics": res.metrics, "info": {k: v for k, v in res.info.items() if k != "timings"},
             "embedding_keys": emb_keys, "params": p.key_dict(), "dataset": dataset.name,
             "dataset_fingerprint": dataset.fingerprint(),
             "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    ws.put(TIMELINE_GROUP, key, arrays, attrs)


def _load(ws, key: str) -> Optional[TimelineResult]:
    from explorer.embed import EMBEDDINGS

    rec = ws.get(TIMELINE_GROUP, key)
    a, at = rec.arrays, rec.attrs
    if at.get("kind") != "timeline":
        return None
    vectors = None
    ek = at.get("embedding_keys") or []
    if ek and all(k and ws.has(EMBEDDINGS, k) for k in ek):
        vectors = [ws.get(EMBEDDINGS, k, names=["vectors"]).arrays["vectors"] for k in ek]
    info = dict(at.get("info") or {})
    info["cache_hit"] = True
    return TimelineResult(paths=list(at["paths"]), names=list(at["names"]), steps=np.asarray(a["steps"], np.int64),
                          axis=at["axis"], step_sources=list(at["step_sources"]),
                          probe_indices=np.asarray(a["probe_indices"], np.int64),
                          labels=np.asarray(a["labels"], np.int64) if "labels" in a else None,
                          label_names=list(at.get("label_names") or []), vectors=vectors,
                          layouts=[np.asarray(x, np.float32) for x in a["layouts"]],
                          metrics=[dict(m) for m in at["metrics"]], info=info, key=key)
