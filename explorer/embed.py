"""The embedding engine: dataset x encoder -> float32 vectors, on the chosen device, as a job.

    result = drain(embed(dataset, encoder, EmbedParams(device="auto", precision="bf16")))
    key, vectors = drain(embed_cached(Workspace("w.h5"), dataset, encoder, EmbedParams()))

Pipeline per batch: a ``torch.utils.data.DataLoader`` over *index batches* reads items
(``read_images``/``images`` as uint8 (B, S, S, 3), ``texts``, or ``vectors``), in worker
processes when decoding is costly (image files) and in the calling thread otherwise (arrays in
memory: workers only add copies, see TRAPS #4), pinned on CUDA -> copied ``non_blocking`` to
the device -> ``float``, scaled to [0, 1], grey if the encoder takes one channel, normalised
with the encoder's mean/std -> the encoder's layer and pooling under ``inference_mode`` and
optional bf16/fp16 autocast -> float32 rows written into one preallocated (N, D) array.
Extra memory is bounded by the batch, not by N.

Unreadable items (a truncated JPEG, a file that vanished) are never embedded as a blank: they
get no row. The result holds M <= N rows with their dataset indices (``EmbedResult.rows``; a
workspace record stores them as the array ``rows`` when M < N, see :func:`embedding_rows`),
and names the items left out; a dataset with no readable item is an :class:`InputError`.

Out of GPU memory: the batch is halved and the same rows retried (said in a progress message);
only a batch of one that still does not fit is an error. Cancellation (``gen.close()``) stops
at the next batch and shuts the loader's workers down; nothing is written to a workspace.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional

import numpy as np

from explorer.core.device import PRECISIONS, autocast_dtype, resolve_device
from explorer.core.errors import InputError
from explorer.core.jobs import Job, Progress
from explorer.store import EMBEDDINGS, Workspace, content_key  # EMBEDDINGS: re-exported

__all__ = ["EmbedParams", "EmbedResult", "embed", "embed_cached", "embedding_key", "embedding_rows",
           "auto_workers", "EMBEDDINGS"]

#: Rows per step when copying precomputed vectors.
_VECTOR_STEP = 65536
#: ITU-R BT.601 luma weights for RGB -> grey.
_LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class EmbedParams:
    """How to embed (not what: that is the dataset and the encoder).

    device: "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:1", "mps".
    batch_size: rows per forward pass (halved automatically on out-of-memory).
    precision: "fp32", or "bf16"/"fp16" autocast.
    num_workers: DataLoader worker processes; None = 0 for items in memory (arrays, vectors,
    text), ``min(4, cpus - 1)`` for image files that must be decoded.
    pin_memory: None = on when the device is CUDA.
    """

    device: str = "auto"
    batch_size: int = 256
    precision: str = "fp32"
    num_workers: Optional[int] = None
    pin_memory: Optional[bool] = None

    def __post_init__(self) -> None:
        if int(self.batch_size) < 1:
            raise InputError(f"Batch size must be at least 1, not {self.batch_size}.")
        if self.precision not in PRECISIONS:
            raise InputError(f"Unknown precision {self.precision!r}; use one of {', '.join(PRECISIONS)}.")
        if self.num_workers is not None and int(self.num_workers) < 0:
            raise InputError(f"Number of workers must be 0 or more, not {self.num_workers}.")


@dataclass
class EmbedResult:
    """vectors: float32 (M, D), one row per *readable* item, in dataset order; ``rows`` (M,)
    are their dataset indices. Items that could not be read get no row (never a made-up
    vector): ``skipped`` holds their (id, reason) and ``skipped_indices`` their dataset
    indices, so ``M + len(skipped) == N``. device: where it ran. seconds: wall time.
    batch_size: the batch finally used (smaller than asked after an out-of-memory retry)."""

    vectors: np.ndarray
    skipped: list = field(default_factory=list)
    device: str = "cpu"
    seconds: float = 0.0
    batch_size: int = 0
    precision: str = "fp32"
    skipped_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    messages: list = field(default_factory=list)
    rows: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        if self.rows is None:
            self.rows = np.arange(len(self.vectors), dtype=np.int64)

    @property
    def complete(self) -> bool:
        """True when every item of the dataset has a row."""
        return len(self.skipped_indices) == 0


# ---------------------------------------------------------------------------------------------
# cache keys
# ---------------------------------------------------------------------------------------------
def embedding_key(dataset, encoder, precision: str = "fp32") -> str:
    """Content key of ``encoder`` applied to ``dataset``: hash of the dataset's fingerprint (its
    files), the encoder's fingerprint (its weights), the layer, the pooling, the preprocessing
    and the precision (bf16/fp16 vectors differ from fp32 ones, so one never stands in for the
    other). Precomputed vectors (``encoder is None``) are keyed by the dataset alone."""
    if encoder is None:
        return content_key(dataset.fingerprint(), "precomputed")
    parts = [dataset.fingerprint(), encoder.fingerprint(), encoder.layer, encoder.pooling,
             encoder.preprocess.to_dict()]
    if precision != "fp32":  # fp32 keys stay as they were
        parts.append(precision)
    return content_key(*parts)


# ---------------------------------------------------------------------------------------------
# reading batches
# ---------------------------------------------------------------------------------------------
def auto_workers(dataset) -> int:
    """DataLoader workers for ``dataset``: decoding image files benefits from processes;
    rows already in memory (or cheap array reads) do not (TRAPS #4)."""
    if dataset.kind != "image" or not _reads_files(dataset):
        return 0
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def _reads_files(dataset) -> bool:
    decode = getattr(dataset, "decodes_files", None)
    if decode is not None:
        return bool(decode)
    return getattr(dataset, "files", None) is not None or dataset.format in ("image-folder", "images")


class _Batches:
    """Map-style dataset whose item ``b`` is batch ``b``: (start, payload, ok). Picklable, so
    worker processes can read batches themselves."""

    def __init__(self, dataset, kind: str, n: int, batch_size: int, size: int,
                 resize: Optional[int] = None, interpolation: str = "bilinear") -> None:
        self.dataset, self.kind, self.n, self.bs, self.size = dataset, kind, n, batch_size, size
        self.resize, self.interpolation = resize, interpolation

    def __len__(self) -> int:
        return (self.n + self.bs - 1) // self.bs

    def __getitem__(self, b: int):
        import torch

        start = b * self.bs
        idx = np.arange(start, min(self.n, start + self.bs), dtype=np.int64)
        if self.kind == "image":
            x, ok = read_images_for(self.dataset, idx, self.size, self.resize, self.interpolation)
            return start, torch.from_numpy(np.ascontiguousarray(x, dtype=np.uint8)), torch.from_numpy(ok)
        if self.kind == "vector":
            v = np.ascontiguousarray(self.dataset.vectors(idx), dtype=np.float32)
            return start, torch.from_numpy(v.reshape(len(idx), -1)), None
        return start, list(self.dataset.texts(idx)), None


class _ThreadedBatches:
    """Reads batches of a :class:`_Batches` ahead in a small thread pool, in order.

    Used instead of DataLoader worker *processes* when the engine runs off the main thread
    (the GUI's workers): forking a process that has other threads running can deadlock the
    child on a lock another thread held at fork time (seen: the demo hung in a forked loader
    worker). Image decoding and resizing in Pillow release the GIL, so threads still overlap
    reading with the forward pass. ``close()`` stops it."""

    def __init__(self, batches: "_Batches", workers: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.batches = batches
        self.pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="embed-read")
        self.ahead = 2 * max(1, workers)

    def __iter__(self):
        from collections import deque

        pending: deque = deque()
        nb = len(self.batches)
        nxt = 0
        try:
            while nxt < nb or pending:
                while nxt < nb and len(pending) < self.ahead:
                    pending.append(self.pool.submit(self.batches.__getitem__, nxt))
                    nxt += 1
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _read_images(dataset, idx: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    reader = getattr(dataset, "read_images", None)
    if reader is not None:
        x, ok = reader(idx, size)
        return x, np.asarray(ok, dtype=bool)
    try:
        return dataset.images(idx, size), np.ones(len(idx), dtype=bool)
    except Exception:  # one bad item: read them one by one, blank the bad ones
        out = np.zeros((len(idx), size, size, 3), dtype=np.uint8)
        ok = np.ones(len(idx), dtype=bool)
        for j, i in enumerate(idx.tolist()):
            try:
                out[j] = dataset.image(i, size)
            except Exception:
                ok[j] = False
        return out, ok


def read_images_for(dataset, idx: np.ndarray, size: int, resize: Optional[int] = None,
                    interpolation: str = "bilinear") -> tuple[np.ndarray, np.ndarray]:
    """uint8 (B, size, size, 3) and ``ok`` (B,): each image's shorter side resized to ``resize``
    with ``interpolation``, then the centre ``size`` crop, as torchvision's ``Resize(resize)``
    + ``CenterCrop(size)`` on a PIL image (same output sizes and crop offsets).

    Bilinear with an even margin reads through the dataset at ``resize`` (its fast path) and
    crops the centre; other cases decode each image at full size and resize it here."""
    resize = int(resize or size)
    if resize == size and interpolation == "bilinear":
        return _read_images(dataset, idx, size)
    if interpolation == "bilinear" and (resize - size) % 2 == 0:
        x, ok = _read_images(dataset, idx, resize)
        o = (resize - size) // 2  # centre crop of a centre crop: the same offsets as one crop
        return np.ascontiguousarray(x[:, o:o + size, o:o + size]), ok
    out = np.zeros((len(idx), size, size, 3), dtype=np.uint8)
    ok = np.ones(len(idx), dtype=bool)
    for j, i in enumerate(idx.tolist()):
        try:
            out[j] = resize_center_crop(np.asarray(dataset.image(int(i))), resize, size, interpolation)
        except Exception:
            ok[j] = False
    return out, ok


def resize_center_crop(rgb: np.ndarray, resize: int, size: int, interpolation: str = "bilinear") -> np.ndarray:
    """uint8 (H, W, 3) -> (size, size, 3): shorter side to ``resize`` (PIL, antialiased; no
    resampling when already that size), then the centre crop with torchvision's offsets
    ``round((h - size) / 2)``."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB")
    w, h = img.size
    if w <= h:
        nw, nh = resize, int(resize * h / w)
    else:
        nw, nh = int(resize * w / h), resize
    if (nw, nh) != (w, h):
        mode = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST,
                "lanczos": Image.LANCZOS}[interpolation]
        img = img.resize((nw, nh), mode)
    left, top = int(round((nw - size) / 2.0)), int(round((nh - size) / 2.0))
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


def _identity(x):
    return x


# ---------------------------------------------------------------------------------------------
# running the encoder: layer hook and pooling live in explorer.encoders.hooks
# ---------------------------------------------------------------------------------------------
def pool(h, pooling: str = "auto", has_cls: bool = False, mask=None):
    """Pool a layer output to (B, D) float32: :func:`explorer.encoders.hooks.pool` (the one
    definition; avg = mean over spatial dims, cls = token 0, mean = masked mean over tokens)."""
    from explorer.encoders.hooks import pool as _pool

    return _pool(h, pooling, has_cls, mask)


class _Runner:
    """Calls :func:`explorer.encoders.hooks.embed_batch` (forward up to ``encoder.layer``, then
    its pooling) and checks the layer name once, before the first batch."""

    def __init__(self, encoder, device) -> None:
        from explorer.encoders.hooks import embed_batch, resolve_layer

        self.encoder = encoder
        self._embed_batch = embed_batch
        if encoder.layer:
            resolve_layer(encoder.module, encoder.layer)  # InputError naming the layer

    def close(self) -> None:
        pass

    def __call__(self, x, mask=None):
        return self._embed_batch(self.encoder, x)


def _is_oom(exc: BaseException) -> bool:
    import torch

    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _free_memory(device) -> None:
    if device.type == "cpu":
        return
    import gc

    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()


# ---------------------------------------------------------------------------------------------
# the job
# ---------------------------------------------------------------------------------------------
def embed(dataset, encoder, params: EmbedParams = EmbedParams()) -> Job:
    """Job: embed every item of ``dataset`` with ``encoder``; returns :class:`EmbedResult`.

    ``encoder=None`` is allowed for vector datasets: the vectors are the embeddings.
    Yields :class:`~explorer.core.jobs.Progress` (rows done of N) after every batch.
    """
    t0 = time.perf_counter()
    n = len(dataset)
    if encoder is None:
        if dataset.kind != "vector":
            raise InputError(f"{dataset.name} holds {dataset.kind} items; choose an encoder to embed them.")
        out = None
        for a in range(0, n, _VECTOR_STEP):
            rows = np.asarray(dataset.vectors(np.arange(a, min(n, a + _VECTOR_STEP))), dtype=np.float32)
            if out is None:
                out = np.empty((n, rows.reshape(len(rows), -1).shape[1]), dtype=np.float32)
            out[a:a + len(rows)] = rows.reshape(len(rows), -1)
            _refuse_nonfinite(out[a:a + len(rows)], a, dataset, None)
            yield Progress(a + len(rows), n, f"Reading vectors {a + len(rows)}/{n}")
        if out is None:
            out = np.zeros((0, 0), dtype=np.float32)
        return EmbedResult(out, [], "none", time.perf_counter() - t0, 0, "fp32")

    import torch

    from explorer.encoders import match_input_kind

    match_input_kind(encoder, dataset)  # follows the data when the encoder declares no kind
    pp = encoder.preprocess
    kind = dataset.kind
    device = resolve_device(params.device)
    amp = autocast_dtype(params.precision)
    if amp is not None and device.type == "cpu" and amp == torch.float16 and not _cpu_fp16_ok():
        raise InputError("fp16 autocast is not supported on this CPU build of PyTorch; use bf16 or fp32.")
    workers = auto_workers(dataset) if params.num_workers is None else int(params.num_workers)
    pin = (device.type == "cuda") if params.pin_memory is None else bool(params.pin_memory and device.type == "cuda")
    bs = int(params.batch_size)

    module = encoder.module
    module.eval()
    module.to(device)
    runner = _Runner(encoder, device)

    mean = std = luma = None
    if kind == "image":
        c = int(pp.channels)
        mean = torch.tensor([float(m) * 255.0 for m in _per_channel(pp.mean, c)], device=device).view(1, c, 1, 1)
        std = torch.tensor([1.0 / (float(s) * 255.0) for s in _per_channel(pp.std, c)], device=device).view(1, c, 1, 1)
        if c == 1:
            luma = torch.tensor(_LUMA, device=device).view(1, 3, 1, 1)

    def prepare(x):
        if kind == "image":
            x = x.to(device, non_blocking=pin).permute(0, 3, 1, 2).float()
            if luma is not None:
                x = (x * luma).sum(1, keepdim=True)
            return (x - mean) * std, None
        if kind == "vector":
            return x.to(device, non_blocking=pin), None
        tok = encoder.tokenizer
        if tok is None:
            return x, None
        enc = tok(x, padding=True, truncation=True, max_length=int(pp.max_length), return_tensors="pt")
        enc = {k: v.to(device) for k, v in dict(enc).items()}
        return enc, enc.get("attention_mask")

    batches = _Batches(dataset, kind, n, bs, int(pp.size), getattr(pp, "resize", None),
                       getattr(pp, "interpolation", "bilinear"))
    if workers > 0 and threading.current_thread() is not threading.main_thread():
        loader = _ThreadedBatches(batches, workers)  # no fork from a multi-threaded process
    else:
        loader = torch.utils.data.DataLoader(
            batches, batch_size=None, shuffle=False, num_workers=workers, pin_memory=pin,
            collate_fn=_identity, persistent_workers=False, prefetch_factor=2 if workers else None)
    out: Optional[np.ndarray] = None
    bad: list[int] = []
    kept: list[np.ndarray] = []  # dataset indices of the rows written, batch by batch
    written = 0  # rows of ``out`` filled: unreadable items get none
    messages: list[str] = []
    cur = bs  # rows per forward pass; shrinks on out-of-memory
    done = 0
    noun = {"image": "images", "text": "texts", "vector": "vectors"}[kind]
    it = None
    try:
        it = iter(loader)
        for start, xb, ok in it:
            m = len(xb)
            if ok is not None and not bool(ok.all()):
                okn = ok.numpy()
                bad.extend((start + np.flatnonzero(~okn)).tolist())
                done += m - int(okn.sum())
                xb = xb[ok]  # an unreadable item is left out, never embedded as a blank
                kept.append(start + np.flatnonzero(okn))
                m = len(xb)
            else:
                kept.append(np.arange(start, start + m, dtype=np.int64))
            pos = 0
            while pos < m:
                sub = min(cur, m - pos)
                failed = False
                try:
                    with torch.inference_mode(), torch.autocast(device.type, dtype=amp or torch.bfloat16,
                                                                enabled=amp is not None):
                        inp, mask = prepare(xb[pos:pos + sub])
                        y = runner(inp, mask)
                    y = y.float()
                    if y.ndim != 2 or y.shape[0] != sub:
                        raise InputError(f"Encoder {encoder.name} gave {tuple(y.shape)} for a batch of {sub}; "
                                         "choose a layer or pooling that gives one vector per item.")
                    if out is None:
                        out = np.empty((n, y.shape[1]), dtype=np.float32)
                    out[written + pos:written + pos + sub] = y.cpu().numpy()
                    _refuse_nonfinite(out[written + pos:written + pos + sub], kept[-1][pos:pos + sub], dataset, encoder)
                except Exception as exc:
                    if not _is_oom(exc):
                        raise
                    failed = True
                if failed:
                    y = inp = mask = None
                    _free_memory(device)
                    if sub == 1:
                        raise InputError(f"Out of memory on {device} even with a batch of 1: encoder "
                                         f"{encoder.name} needs more memory than is free; try another device.")
                    cur = max(1, sub // 2)
                    msg = f"Out of memory on {device} at batch {sub}; retrying with {cur}."
                    messages.append(msg)
                    yield Progress(done, n, msg)
                    continue
                pos += sub
                done += sub
            written += m
            yield Progress(done, n, f"{done}/{n} {noun} on {device}"
                           + (f" ({len(bad)} unreadable, left out)" if bad else ""))
    finally:
        runner.close()
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()
        if it is not None and hasattr(it, "close"):
            it.close()
        if isinstance(loader, _ThreadedBatches):
            loader.close()
        del it
    skipped = _describe_skipped(dataset, bad, int(pp.size) if kind == "image" else 0)
    if n and not written:
        why = f"; {skipped[0][1].rstrip('.')}" if skipped else ""
        raise InputError(f"None of the {n} items of {dataset.name} could be read{why}.")
    if out is None:
        out = np.zeros((0, 0), dtype=np.float32)
    elif written < n:
        out = out[:written].copy()  # release the rows unreadable items would have taken
    rows = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
    return EmbedResult(out, skipped, str(device), time.perf_counter() - t0, cur, params.precision,
                       np.asarray(bad, dtype=np.int64), messages, rows.astype(np.int64))


def _refuse_nonfinite(rows: np.ndarray, items, dataset, encoder) -> None:
    """InputError naming the first item whose vector holds NaN or inf: such vectors are never
    stored. ``items``: the dataset index of each row (or the first one's, for consecutive rows)."""
    fin = np.isfinite(rows).all(axis=1)
    if fin.all():
        return
    j = int(np.argmin(fin))
    i = int(items[j]) if np.ndim(items) else int(items) + j
    ident = f" ({dataset.ids[i]})" if getattr(dataset, "ids", None) is not None else ""
    if encoder is None:
        raise InputError(f"{dataset.name}: row {i}{ident} has NaN or infinite values; nothing was stored.")
    raise InputError(f"Encoder {encoder.name} gave NaN or infinite values for item {i}{ident} of {dataset.name}; "
                     "nothing was stored (a diverged checkpoint, or try --precision fp32).")


def _per_channel(values, c: int) -> list:
    v = list(values) if isinstance(values, (list, tuple)) else [values]
    if len(v) == c:
        return v
    if len(v) == 1:
        return v * c
    if c == 1:
        return [float(np.dot(_LUMA, v[:3]))] if len(v) >= 3 else v[:1]
    raise InputError(f"The encoder's normalisation has {len(v)} values for {c} channels.")


def _cpu_fp16_ok() -> bool:
    import torch

    try:
        with torch.autocast("cpu", dtype=torch.float16):
            torch.ones(2, 2) @ torch.ones(2, 2)
        return True
    except Exception:
        return False


def _describe_skipped(dataset, bad: list, size: int) -> list:
    """(id, reason) for each unreadable item (reasons re-read in this process, at most 100)."""
    out = []
    ids = dataset.ids
    for j, i in enumerate(bad):
        ident = str(ids[i]) if ids is not None else str(i)
        reason = "could not be read"
        if j < 100 and size:
            try:
                dataset.image(int(i), size)
            except Exception as exc:
                reason = str(exc)
        out.append((ident, reason))
    return out


# ---------------------------------------------------------------------------------------------
# cached
# ---------------------------------------------------------------------------------------------
def embed_cached(workspace: Workspace, dataset, encoder, params: EmbedParams = EmbedParams(),
                 key: Optional[str] = None) -> Job:
    """Job: the embeddings of ``dataset`` by ``encoder`` from ``workspace`` if it holds them
    (same data files, same weights, layer, pooling and preprocessing: a cache hit, no model
    call), else :func:`embed` and store them. Returns ``(key, vectors)``; the record's
    attributes (:meth:`Workspace.list`) say how and when they were computed. ``key``: the
    :func:`embedding_key` if the caller computed it already (fingerprints can be costly)."""
    if key is None and encoder is not None:
        from explorer.encoders import match_input_kind

        match_input_kind(encoder, dataset)  # before the key: the input kind is part of it
    key = key or embedding_key(dataset, encoder, params.precision)
    if workspace.has(EMBEDDINGS, key):
        vectors = workspace.get(EMBEDDINGS, key, names=["vectors"]).arrays["vectors"]
        yield Progress(len(vectors), len(vectors), "Cache hit: loaded from the workspace")
        return key, vectors
    res = yield from embed(dataset, encoder, params)
    yield Progress(len(res.vectors), len(res.vectors), f"Saving to {workspace.name}")
    arrays = {"vectors": res.vectors}
    if len(res.skipped_indices):
        arrays["skipped"] = res.skipped_indices
        arrays["rows"] = res.rows
    workspace.put(EMBEDDINGS, key, arrays, record_attrs(dataset, encoder, res))
    return key, res.vectors


def embedding_rows(workspace: Workspace, key: str) -> Optional[np.ndarray]:
    """Dataset indices (M,) of the rows of the stored embedding ``key`` when some items could
    not be read and were left out; None when every item has its row (all records written
    before rows were stored are of this kind, so older workspaces read as before)."""
    rec = workspace.get(EMBEDDINGS, key, names=["rows"])
    rows = rec.arrays.get("rows")
    return None if rows is None else np.asarray(rows, dtype=np.int64)


def record_attrs(dataset, encoder, res: EmbedResult) -> dict:
    """The attributes stored with an embedding record."""

    def safe(d) -> Any:
        try:
            content_key(d)
            return d
        except TypeError:
            return {str(k): str(v) for k, v in dict(d).items()}

    attrs = {
        "model": "precomputed" if encoder is None else encoder.name,
        "layer": None if encoder is None else encoder.layer,
        "pooling": None if encoder is None else encoder.pooling,
        "dataset": dataset.name,
        "dataset_source": str(dataset.source),
        "dataset_format": dataset.format,
        "dataset_options": safe(dataset.options),
        "dataset_fingerprint": dataset.fingerprint(),
        "encoder_fingerprint": None if encoder is None else encoder.fingerprint(),
        "encoder_source": None if encoder is None else str(encoder.source),
        "encoder_format": None if encoder is None else encoder.format,
        "preprocess": None if encoder is None else encoder.preprocess.to_dict(),
        "n": int(res.vectors.shape[0]),
        "n_items": int(res.vectors.shape[0]) + len(res.skipped_indices),
        "dim": int(res.vectors.shape[1]) if res.vectors.ndim == 2 else 0,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": res.device,
        "precision": res.precision,
        "batch_size": res.batch_size,
        "seconds": round(float(res.seconds), 3),
        "skipped": [list(s) for s in res.skipped[:1000]],
        "n_skipped": len(res.skipped),
    }
    return attrs
