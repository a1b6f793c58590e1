"""``embed --launcher torchrun|ray`` (and resumable ``--shard-rows`` runs): the command's side
of :mod:`explorer.scale.launchers`."""

from __future__ import annotations

import os
from pathlib import Path


def run_sharded(args, ws, dataset, encoder, params, key: str, data_options: dict):
    """Embed through shard files with the launcher ``args`` names -> (key, vectors or None on
    a torchrun rank other than 0, stats)."""
    from explorer.scale import launchers
    from explorer.core.jobs import drain, run_job

    common = {"block_rows": args.shard_rows, "store_dtype": args.store_dtype, "keep_shards": args.keep_shards}
    if args.launcher == "torchrun":
        rank = int(os.environ.get("RANK", "0"))
        job = launchers.torchrun_embed(ws, dataset, encoder, params, key, **common)
        if rank != 0:
            return drain(job)
        return run_job(job, desc=f"Embedding {dataset.name} (rank 0)", quiet=args.quiet)
    if args.launcher == "ray":
        from explorer.commands._sources import encoder_options

        spec = launchers.EmbedSpec(str(Path(args.data).expanduser().absolute()), args.data_format, dict(data_options),
                                 None if not args.encoder else str(Path(args.encoder).expanduser().absolute()),
                                 args.encoder_format, encoder_options(args) if args.encoder else {})
        job = launchers.ray_embed(ws, spec, dataset, encoder, params, key, address=args.address,
                                actors=args.ray_actors, **common)
        return run_job(job, desc=f"Embedding {dataset.name} on Ray", quiet=args.quiet)
    return run_job(launchers.local_sharded_embed(ws, dataset, encoder, params, key, **common),
                   desc=f"Embedding {dataset.name} (shards)", quiet=args.quiet)
