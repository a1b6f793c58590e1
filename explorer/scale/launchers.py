"""Embedding on more than one worker with an engine that already exists: ``torchrun`` ranks
(``torch.distributed``) or a Ray actor pool (Ray Data ``map_batches``). Both cut the dataset
with :mod:`explorer.scale.shards` and end with the same workspace record as one process.

    # every rank runs the same command; rank 0 merges
    torchrun --nproc-per-node 2 -m explorer.cli embed --data D --encoder E --workspace W --launcher torchrun
    # one driver against a running Ray cluster (pip install embedding-explorer[cluster])
    embedding-explorer embed --data D --encoder E --workspace W --launcher ray --address auto

The dataset and the encoder are named by an :class:`EmbedSpec` (paths and options, picklable)
so each worker opens them itself; only block numbers travel. Shard files are written by the
workers into the folder next to the workspace, which every worker must see.
"""

from __future__ import annotations

import datetime
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from explorer.core.errors import InputError
from explorer.core.jobs import Job, Progress

__all__ = ["EmbedSpec", "LAUNCHERS", "torchrun_env", "torchrun_embed", "ray_embed"]

LAUNCHERS = ("local", "torchrun", "ray")


@dataclass(frozen=True)
class EmbedSpec:
    """What to embed, as paths and options a worker on another machine can open."""

    data: str
    data_format: Optional[str] = None
    data_options: dict = field(default_factory=dict)
    encoder: Optional[str] = None
    encoder_format: Optional[str] = None
    encoder_options: dict = field(default_factory=dict)

    def open(self):
        """-> (dataset, encoder or None), the encoder matched to the data's kind."""
        from explorer.data import open_dataset

        dataset = open_dataset(Path(self.data).expanduser(), self.data_format, **self.data_options)
        encoder = None
        if self.encoder:
            from explorer.encoders import match_input_kind, open_encoder

            encoder = open_encoder(Path(self.encoder).expanduser(), self.encoder_format, **self.encoder_options)
            match_input_kind(encoder, dataset)
        return dataset, encoder


# ---------------------------------------------------------------------------------------------
# torchrun
# ---------------------------------------------------------------------------------------------
def torchrun_env() -> Optional[tuple[int, int, int]]:
    """(rank, world size, local rank) from the variables torchrun sets, or None outside it."""
    try:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0"))
    except (KeyError, ValueError):
        return None


def _rank_params(params, local_rank: int):
    """Each rank on its own GPU (``cuda:LOCAL_RANK``) when the device is CUDA; with more ranks
    than GPUs they share them in turn (two ranks on one GPU is a fair use where decoding is
    the bottleneck, and was a crash on a one-GPU machine)."""
    from dataclasses import replace

    from explorer.core.device import resolve_device

    dev = resolve_device(params.device)
    if dev.type == "cuda":
        import torch

        return replace(params, device=f"cuda:{local_rank % max(1, torch.cuda.device_count())}")
    return params


def torchrun_embed(workspace, dataset, encoder, params, key: str, *, block_rows: Optional[int] = None,
                   store_dtype: str = "float32", keep_shards: bool = False) -> Job:
    """Job run by every rank of a ``torchrun`` launch: rank ``r`` of ``W`` embeds shard blocks
    ``r, r + W, ...``; after a barrier rank 0 merges them into ``workspace`` (one atomic put).
    Returns ``(key, vectors, stats)`` on rank 0 and ``(key, None, stats)`` elsewhere; stats says
    how many shards were written and reused by this run."""
    import torch.distributed as dist

    from explorer.scale import shards

    env = torchrun_env()
    if env is None:
        raise InputError("--launcher torchrun runs under torchrun (torchrun --nproc-per-node N "
                         "-m explorer.cli embed ...); RANK and WORLD_SIZE are not set.")
    rank, world, local = env
    params = _rank_params(params, local)
    own = not dist.is_initialized()
    if own:
        # gloo on GPUs too: the ranks only coordinate (a barrier, the plan, the shard counts) and
        # the vectors travel through shard files; NCCL refuses two ranks on one GPU
        timeout = datetime.timedelta(seconds=float(os.environ.get("EXPLORER_DIST_TIMEOUT", 6 * 3600)))
        dist.init_process_group("gloo", timeout=timeout)
    t0 = time.perf_counter()
    try:
        plan = shards.make_plan(dataset, encoder, params, key, block_rows)
        folder = shards.shard_folder(workspace.path, key)
        prep = [None]
        if rank == 0:
            prep[0] = shards.prepare(folder, plan)
        dist.barrier()
        dist.broadcast_object_list(prep, src=0)
        out = yield from shards.embed_blocks(dataset, encoder, params, plan, folder, plan.blocks_of(rank, world))
        counts = [len(out["written"]), len(out["reused"])]
        gathered = [None] * world
        dist.all_gather_object(gathered, counts)
        stats = {"shards_written": sum(c[0] for c in gathered), "shards_reused": sum(c[1] for c in gathered),
                 "shards_stale": int(prep[0]["stale"])}
        vectors = None
        if rank == 0:
            yield Progress(plan.n_items, plan.n_items, f"Merging {plan.n_blocks} shards into {workspace.name}")
            key, vectors = shards.merge(workspace, dataset, encoder, plan, folder,
                                        seconds=time.perf_counter() - t0, launcher="torchrun", workers=world,
                                        store_dtype=store_dtype, keep_shards=keep_shards)
        dist.barrier()  # the record is there before any rank returns
        return key, vectors, stats
    finally:
        if own and dist.is_initialized():
            dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------
# Ray
# ---------------------------------------------------------------------------------------------
class _BlockEmbedder:
    """A Ray Data actor: opens the dataset and the encoder once, then embeds the blocks it is
    given into their shard files (skipping whole ones)."""

    def __init__(self, spec: EmbedSpec, params, plan, folder: str) -> None:
        self.dataset, self.encoder = spec.open()
        self.params, self.plan, self.folder = params, plan, Path(folder)
        from explorer.core.device import resolve_device

        dev = resolve_device(params.device)
        if dev.type == "cuda":  # Ray shows each actor its own GPU as cuda:0
            from dataclasses import replace

            self.params = replace(params, device="cuda")

    def __call__(self, batch: dict) -> dict:
        from explorer.scale import shards
        from explorer.core.jobs import drain

        status = []
        for b in batch["block"]:
            status.append(drain(shards.embed_block(self.dataset, self.encoder, self.params, self.plan,
                                                   self.folder, int(b))))
        return {"block": [int(b) for b in batch["block"]], "status": status}


def ray_embed(workspace, spec: EmbedSpec, dataset, encoder, params, key: str, *, address: str = "auto",
              actors: Optional[int] = None, block_rows: Optional[int] = None, store_dtype: str = "float32",
              keep_shards: bool = False) -> Job:
    """Job run by one driver: the shard blocks still missing go through a Ray Data pipeline
    (``map_batches`` over block numbers with a pool of ``actors`` :class:`_BlockEmbedder`
    actors, ``num_gpus=1`` each when the cluster has GPUs and the device is not the CPU), then
    the driver merges the shards into ``workspace``. ``address``: a running cluster ("auto",
    "ray://host:port") or "local" for a Ray instance started here. Returns
    ``(key, vectors, stats)``."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise InputError("--launcher ray needs Ray: pip install 'embedding-explorer[cluster]'.") from None
    from explorer.scale import shards

    t0 = time.perf_counter()
    plan = shards.make_plan(dataset, encoder, params, key, block_rows)
    folder = shards.shard_folder(workspace.path, key)
    prep = shards.prepare(folder, plan)
    todo = [b for b in range(plan.n_blocks) if b not in set(shards.done_blocks(folder, plan))]
    yield Progress(plan.n_blocks - len(todo), plan.n_blocks,
                   f"{plan.n_blocks - len(todo)} of {plan.n_blocks} shards already on disk")
    started = False
    workers = 0
    if todo:
        if not ray.is_initialized():
            kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "ignore_reinit_error": True}
            if address == "local":
                import explorer

                # workers import this copy of the package (not another one installed elsewhere)
                root = str(Path(explorer.__file__).resolve().parents[1])
                path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
                kw.update(num_cpus=max(2, int(actors or 2)), runtime_env={"env_vars": {"PYTHONPATH": path}})
            else:
                kw["address"] = address
            try:
                ray.init(**kw)
            except ConnectionError as exc:
                raise InputError(f"No Ray cluster at {address} ({exc}); start one with `ray start --head` "
                                 "or use --address local.") from None
            started = True
        try:
            import logging

            logging.getLogger("ray.data").setLevel(logging.WARNING)  # our progress, not Ray's
            ctx = ray.data.DataContext.get_current()
            ctx.enable_progress_bars = False
            res = ray.cluster_resources()
            from explorer.core.device import resolve_device

            want_gpu = str(params.device) != "cpu" and float(res.get("GPU", 0)) >= 1
            if want_gpu and str(params.device) == "auto":
                from dataclasses import replace

                params = replace(params, device="cuda")
            elif not want_gpu:
                resolve_device("cpu")
                if str(params.device) not in ("auto", "cpu"):
                    raise InputError(f"The Ray cluster has no GPU for --device {params.device}.")
                from dataclasses import replace

                params = replace(params, device="cpu")
            cpus = max(1, int(float(res.get("CPU", 1))))
            workers = int(actors or (int(float(res.get("GPU", 0))) if want_gpu else cpus))
            workers = max(1, min(workers, len(todo)))
            # the pool takes at most the cluster's CPUs, leaving room for Ray Data's own tasks
            per_cpu = 0 if want_gpu else min(1.0, max(0.25, (cpus - 0.5) / workers))
            items = ray.data.from_items([{"block": int(b)} for b in todo])
            out = items.map_batches(
                _BlockEmbedder, fn_constructor_kwargs={"spec": spec, "params": params, "plan": plan,
                                                       "folder": str(folder)},
                batch_size=1, concurrency=workers, num_gpus=1 if want_gpu else 0, num_cpus=per_cpu)
            done = plan.n_blocks - len(todo)
            for _row in out.iter_rows():
                done += 1
                yield Progress(done, plan.n_blocks, f"shard {done}/{plan.n_blocks} on {workers} Ray workers")
        finally:
            if started:
                ray.shutdown()
    stats = {"shards_written": len(todo), "shards_reused": plan.n_blocks - len(todo),
             "shards_stale": int(prep["stale"])}
    yield Progress(plan.n_blocks, plan.n_blocks, f"Merging {plan.n_blocks} shards into {workspace.name}")
    key, vectors = shards.merge(workspace, dataset, encoder, plan, folder, seconds=time.perf_counter() - t0,
                                launcher="ray", workers=max(1, workers), store_dtype=store_dtype,
                                keep_shards=keep_shards)
    return key, vectors, stats


# ---------------------------------------------------------------------------------------------
# one process, through shard files (resumable; float16 storage)
# ---------------------------------------------------------------------------------------------
def local_sharded_embed(workspace, dataset, encoder, params, key: str, *, block_rows: Optional[int] = None,
                        store_dtype: str = "float32", keep_shards: bool = False) -> Job:
    """Job: every shard block in this process, then the merge: a single-process run that a
    restart resumes, and the way to store float16 vectors. Returns ``(key, vectors, stats)``."""
    from explorer.scale import shards

    t0 = time.perf_counter()
    plan = shards.make_plan(dataset, encoder, params, key, block_rows)
    folder = shards.shard_folder(workspace.path, key)
    prep = shards.prepare(folder, plan)
    out = yield from shards.embed_blocks(dataset, encoder, params, plan, folder, range(plan.n_blocks))
    key, vectors = shards.merge(workspace, dataset, encoder, plan, folder, seconds=time.perf_counter() - t0,
                                launcher="local", workers=1, store_dtype=store_dtype, keep_shards=keep_shards)
    return key, vectors, {"shards_written": len(out["written"]), "shards_reused": len(out["reused"]),
                          "shards_stale": int(prep["stale"])}
