"""Sharded embedding: the dataset cut into blocks of rows, each embedded into a shard file of
its own, then merged into one workspace record.

    plan = make_plan(dataset, encoder, params, key)          # blocks of whole batches
    folder = prepare(shard_folder(ws.path, key), plan)       # manifest; stale shards removed
    drain(embed_blocks(dataset, encoder, params, plan, folder, plan.blocks_of(rank, world)))
    key, vectors = merge(ws, dataset, encoder, plan, folder)  # one atomic workspace put

The launchers (:mod:`explorer.scale.launchers`: ``torchrun`` ranks, a Ray actor pool) only decide
who embeds which block; this module owns the files and the record.

**Same record as one process.** A block holds a whole number of batches and starts on a batch
boundary, so every forward pass sees exactly the rows it sees in a single-process
:func:`explorer.embed.embed` with the same batch size; the merged record has the same content
key (:func:`explorer.embed.embedding_key`), the same attributes that describe the data and the
model, and the same vectors (bit for bit in fp32 on the CPU with the same thread count; within
the precision's tolerance on a GPU).

**Resumable.** Blocks do not depend on the number of workers (rank ``r`` of ``W`` takes blocks
``r, r + W, ...``), so a run restarted after a failure, with any number of workers, skips every
block whose shard file is on disk; a killed worker loses only the block it was writing. A
shard is written to a temporary name, flushed and renamed, so a file under a shard's name is
always whole. The folder's ``manifest.json`` records what the shards were made from (dataset
and encoder fingerprints, layer, pooling, preprocessing, precision, batch size, block size);
shards made under another manifest are removed, never reused. The merge is one workspace
``put`` (atomic: temporary file, then rename) that streams the shards block by block, so its
memory is bounded by a block, not by the dataset.

Shard files live in ``.<workspace name>.shards/<key>/`` next to the workspace; every worker
must see that folder (a shared file system on a cluster). The folder is removed after the merge.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from explorer.core.errors import InputError, WorkspaceError
from explorer.core.jobs import Job, Progress
from explorer.store import EMBEDDINGS, ArraySource, jsonable

__all__ = ["ShardPlan", "make_plan", "shard_folder", "prepare", "shard_path", "done_blocks",
           "embed_blocks", "merge", "MANIFEST", "SHARD_FORMAT", "STORE_DTYPES"]

SHARD_FORMAT = 1
MANIFEST = "manifest.json"
#: About how many blocks a dataset is cut into by default (blocks are whole batches).
TARGET_BLOCKS = 256
#: Dtypes the merged vectors may be stored in (float16 halves the file; flagged in the record).
STORE_DTYPES = ("float32", "float16")


@dataclass(frozen=True)
class ShardPlan:
    """What the shards are made from and how the rows are cut. ``block_rows`` is a multiple of
    ``batch_size``; block ``b`` holds rows ``[b * block_rows, min(n, (b + 1) * block_rows))``."""

    key: str
    n_items: int
    batch_size: int
    block_rows: int
    dataset_fingerprint: str
    encoder_fingerprint: Optional[str]
    layer: Optional[str]
    pooling: Optional[str]
    preprocess: Optional[dict]
    precision: str
    format: int = SHARD_FORMAT

    @property
    def n_blocks(self) -> int:
        return (self.n_items + self.block_rows - 1) // self.block_rows

    def rows(self, b: int) -> tuple[int, int]:
        return b * self.block_rows, min(self.n_items, (b + 1) * self.block_rows)

    def blocks_of(self, rank: int, world: int) -> range:
        """Rank ``rank`` of ``world`` embeds blocks ``rank, rank + world, ...`` (strided, so
        the ranks finish together and the cut does not depend on ``world``)."""
        return range(int(rank), self.n_blocks, max(1, int(world)))

    def manifest(self) -> dict:
        return jsonable(asdict(self), strict=True)


def make_plan(dataset, encoder, params, key: str, block_rows: Optional[int] = None) -> ShardPlan:
    """The plan for embedding ``dataset`` with ``encoder`` under ``params``
    (:class:`explorer.embed.EmbedParams`); ``block_rows`` (rounded up to whole batches) or by
    default about :data:`TARGET_BLOCKS` blocks."""
    n = len(dataset)
    bs = int(params.batch_size)
    if block_rows is None:
        per = max(1, -(-n // TARGET_BLOCKS))
    else:
        if int(block_rows) < 1:
            raise InputError(f"Rows per shard must be at least 1, not {block_rows}.")
        per = int(block_rows)
    per = bs * max(1, -(-per // bs))
    return ShardPlan(
        key=key, n_items=n, batch_size=bs, block_rows=per,
        dataset_fingerprint=dataset.fingerprint(),
        encoder_fingerprint=None if encoder is None else encoder.fingerprint(),
        layer=None if encoder is None else encoder.layer,
        pooling=None if encoder is None else encoder.pooling,
        preprocess=None if encoder is None else jsonable(encoder.preprocess.to_dict(), strict=True),
        precision=str(params.precision))


# ---------------------------------------------------------------------------------------------
# the folder
# ---------------------------------------------------------------------------------------------
def shard_folder(workspace_path, key: str) -> Path:
    """``.<workspace name>.shards/<key>/`` next to the workspace."""
    p = Path(workspace_path).expanduser().absolute()
    return p.with_name(f".{p.name}.shards") / key


def shard_path(folder: Path, b: int) -> Path:
    return Path(folder) / f"shard-{int(b):06d}.npz"


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_manifest(folder: Path) -> Optional[dict]:
    try:
        with open(Path(folder) / MANIFEST, encoding="utf-8") as f:
            m = json.load(f)
        return m if isinstance(m, dict) else None
    except (OSError, ValueError):
        return None


def prepare(folder: Path, plan: ShardPlan) -> dict:
    """Make ``folder`` ready for ``plan``: create it, remove temporary files of killed writers,
    and, when its manifest is not ``plan``'s (other data, weights, layer, preprocessing,
    precision, batch or block size) or is missing while shards are there, remove those shards
    (they would not give the same vectors). Call it once, before any worker writes. Returns
    ``{"stale": n shards removed, "kept": n shards found}``."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"Cannot create the shard folder {folder}: {exc.strerror or exc}.") from None
    names = os.listdir(folder)
    for n in names:
        if n.endswith(".tmp"):
            _unlink(folder / n)
    shards = [n for n in names if n.startswith("shard-") and n.endswith(".npz")]
    stale = 0
    if read_manifest(folder) != plan.manifest():
        for n in shards:
            _unlink(folder / n)
        stale, shards = len(shards), []
        _write_json(folder / MANIFEST, plan.manifest())
    return {"stale": stale, "kept": len(shards)}


def _unlink(p: Path) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass


def _shard_ok(path: Path, plan: ShardPlan, b: int) -> bool:
    """A shard file that is whole and holds block ``b`` of ``plan``."""
    try:
        with np.load(path, allow_pickle=False) as z:
            a, e = plan.rows(b)
            rows, skipped = z["rows"], z["skipped"]
            return (int(z["block"]) == b and z["key"].item() == plan.key
                    and len(rows) + len(skipped) == e - a and len(z["vectors"]) == len(rows))
    except Exception:
        return False


def done_blocks(folder: Path, plan: ShardPlan, blocks: Optional[Iterable[int]] = None) -> list[int]:
    """The blocks (of ``blocks``, default all) whose shard file is on disk and whole."""
    blocks = range(plan.n_blocks) if blocks is None else blocks
    return [b for b in blocks if shard_path(folder, b).is_file() and _shard_ok(shard_path(folder, b), plan, b)]


# ---------------------------------------------------------------------------------------------
# embedding blocks
# ---------------------------------------------------------------------------------------------
def _test_pause() -> float:
    """Seconds to wait after each shard written (``EXPLORER_TEST_SHARD_PAUSE``): lets a test
    kill a worker between two shards. Unset in normal use."""
    try:
        return float(os.environ.get("EXPLORER_TEST_SHARD_PAUSE", "0") or 0)
    except ValueError:
        return 0.0


def embed_block(dataset, encoder, params, plan: ShardPlan, folder: Path, b: int) -> Job:
    """Job: embed block ``b`` into its shard file, unless a whole one is there already.
    Returns "reused" or "written"."""
    from explorer.embed import embed

    path = shard_path(folder, b)
    if path.is_file() and _shard_ok(path, plan, b):
        return "reused"
    a, e = plan.rows(b)
    part = dataset.subset(np.arange(a, e, dtype=np.int64))
    try:
        res = yield from embed(part, encoder, params)
    except InputError as exc:
        if "could be read" not in str(exc):
            raise
        # no readable item in this block: a shard with no rows (the merge decides)
        from explorer.embed import EmbedResult

        ids = dataset.ids
        res = EmbedResult(np.zeros((0, 0), np.float32),
                          [(str(ids[i]) if ids is not None else str(i), "could not be read") for i in range(a, e)],
                          "none", 0.0, plan.batch_size, plan.precision,
                          np.arange(e - a, dtype=np.int64), [], np.zeros(0, np.int64))
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, vectors=np.ascontiguousarray(res.vectors, dtype=np.float32),
                     rows=np.asarray(res.rows, dtype=np.int64) + a,
                     skipped=np.asarray(res.skipped_indices, dtype=np.int64) + a,
                     skipped_why=np.asarray([str(s[1]) for s in res.skipped], dtype=str),
                     skipped_ids=np.asarray([str(s[0]) for s in res.skipped], dtype=str),
                     block=np.int64(b), key=np.asarray(plan.key),
                     info=np.asarray(json.dumps({"device": res.device, "seconds": res.seconds,
                                                 "batch_size": res.batch_size, "messages": res.messages})))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        _unlink(tmp)
    pause = _test_pause()
    if pause:
        time.sleep(pause)
    return "written"


def embed_blocks(dataset, encoder, params, plan: ShardPlan, folder: Path, blocks: Iterable[int]) -> Job:
    """Job: :func:`embed_block` for each of ``blocks``, in order. Returns
    ``{"written": [...], "reused": [...]}``; progress counts rows of these blocks."""
    blocks = list(blocks)
    total = sum(plan.rows(b)[1] - plan.rows(b)[0] for b in blocks)
    done = 0
    out: dict = {"written": [], "reused": []}
    for b in blocks:
        a, e = plan.rows(b)
        base = done
        job = embed_block(dataset, encoder, params, plan, folder, b)
        try:
            while True:
                p = next(job)
                yield Progress(base + min(p.done, e - a), total, f"shard {b}: {p.message}")
        except StopIteration as stop:
            status = stop.value
        out[status].append(b)
        done = base + (e - a)
        yield Progress(done, total, f"shard {b} {status}")
    return out


# ---------------------------------------------------------------------------------------------
# the merge
# ---------------------------------------------------------------------------------------------
class ShardVectors(ArraySource):
    """The merged (M, D) vectors, read from the shard files a block of rows at a time, so a
    workspace put streams them (memory bounded by a shard). Converts to ``dtype`` on read."""

    def __init__(self, folder: Path, blocks: list, counts: list, dim: int, dtype="float32") -> None:
        self.folder, self.blocks, self.counts = Path(folder), blocks, np.asarray(counts, dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)
        super().__init__((int(self.starts[-1]), int(dim)), np.dtype(dtype))

    def read(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, self.shape[1]), dtype=self.dtype)
        j = int(np.searchsorted(self.starts, start, side="right") - 1)
        pos = start
        while pos < stop:
            a, e = int(self.starts[j]), int(self.starts[j + 1])
            if e > pos:
                with np.load(shard_path(self.folder, self.blocks[j]), allow_pickle=False) as z:
                    v = z["vectors"]
                take = v[pos - a:min(e, stop) - a]
                out[pos - start:pos - start + len(take)] = take
                pos += len(take)
            j += 1
        return out


def merge(workspace, dataset, encoder, plan: ShardPlan, folder: Path, *, seconds: float = 0.0,
          launcher: str = "local", workers: int = 1, store_dtype: str = "float32",
          keep_shards: bool = False, stats: Optional[dict] = None):
    """Merge every shard of ``plan`` into the workspace record ``plan.key`` (one atomic put,
    streamed) with the attributes a single-process embed writes, plus ``launcher``,
    ``workers``, ``shards`` and ``stored_dtype``; then remove the shard folder (unless
    ``keep_shards``). Returns ``(key, vectors)`` where vectors is an array source over the
    shards when they are kept, else the record's vectors read lazily."""
    from explorer.embed import EmbedResult, _describe_skipped, record_attrs

    if store_dtype not in STORE_DTYPES:
        raise InputError(f"Unknown storage dtype {store_dtype!r}; use float32 or float16.")
    missing = [b for b in range(plan.n_blocks) if not _shard_ok(shard_path(folder, b), plan, b)]
    if missing:
        raise WorkspaceError(f"{len(missing)} of {plan.n_blocks} shards are missing (first: block {missing[0]}); "
                             "run the command again to embed them.")
    counts, rows, bad, why, dims, devices, bsizes, messages = [], [], [], [], set(), [], [], []
    for b in range(plan.n_blocks):
        with np.load(shard_path(folder, b), allow_pickle=False) as z:
            counts.append(len(z["rows"]))
            rows.append(z["rows"])
            bad.append(z["skipped"])
            why.extend(zip(z["skipped_ids"].tolist(), z["skipped_why"].tolist()))
            if len(z["rows"]):
                dims.add(int(z["vectors"].shape[1]))
            info = json.loads(z["info"].item())
            devices.append(info.get("device"))
            bsizes.append(int(info.get("batch_size") or plan.batch_size))
            messages.extend(info.get("messages") or [])
    if len(dims) > 1:
        raise WorkspaceError(f"The shards in {folder} disagree on the vectors' width ({sorted(dims)}); "
                             "delete the folder and run again.")
    rows_all = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    bad_all = np.concatenate(bad) if bad else np.zeros(0, np.int64)
    if plan.n_items and not len(rows_all):
        raise InputError(f"None of the {plan.n_items} items of {dataset.name} could be read.")
    dim = dims.pop() if dims else 0
    vec = ShardVectors(folder, list(range(plan.n_blocks)), counts, dim, store_dtype)
    skipped = why
    if len(bad_all) and encoder is not None and dataset.kind == "image":
        skipped = _describe_skipped(dataset, bad_all.tolist(), int(encoder.preprocess.size))
    device = sorted({d for d in devices if d and d != "none"}) or ["none"]
    res = EmbedResult(vec, skipped, ", ".join(device), seconds, min(bsizes) if bsizes else plan.batch_size,
                      plan.precision, bad_all, messages, rows_all)
    arrays = {"vectors": vec}
    if len(bad_all):
        arrays["skipped"] = bad_all
        arrays["rows"] = rows_all
    attrs = record_attrs(dataset, encoder, res)
    attrs.update({"launcher": launcher, "workers": int(workers), "shards": plan.n_blocks,
                  "shard_rows": plan.block_rows, "stored_dtype": store_dtype})
    if stats:
        attrs.update(jsonable(stats, strict=True))
    if store_dtype != "float32":
        attrs["stored_as"] = {"vectors": store_dtype}
    workspace.put(EMBEDDINGS, plan.key, arrays, attrs)
    if keep_shards:
        return plan.key, ShardVectors(folder, list(range(plan.n_blocks)), counts, dim, "float32")
    remove_folder(folder)
    return plan.key, workspace.lazy(EMBEDDINGS, plan.key, "vectors")


def remove_folder(folder: Path) -> None:
    """Remove a shard folder (and the ``.shards`` folder above it once empty)."""
    shutil.rmtree(folder, ignore_errors=True)
    try:
        Path(folder).parent.rmdir()
    except OSError:
        pass
