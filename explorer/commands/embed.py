"""``embedding-explorer embed``: embed a dataset with an encoder into a workspace (cached).

    embedding-explorer embed --data photos/ --encoder resnet.pt --arch resnet18 \\
        --workspace project.h5 --out vectors.npy

(``resnet18`` and the other torchvision/timm names need the ``[vision]`` extra.) How the
encoder was set up (network chosen, classifier removed, preprocessing and where it came from)
is printed on stderr.

Prints one summary line (or a JSON object with ``--json``) on stdout; the progress bar goes to
stderr. A second run with the same data and weights is a cache hit and calls no model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from explorer.commands._args import int_range
from explorer.commands._sources import add_encoder_options, check_encoder_fits, encoder_options, print_encoder_notes
from explorer.core.errors import InputError

#: Most data-loading worker processes --workers accepts.
MAX_WORKERS = 64


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "embed", help="embed a dataset with an encoder into a workspace (cached)",
        description="Embed every item of a dataset with an encoder; the vectors are stored in "
                    "the workspace (a second run with the same data and weights is a cache hit).")
    d = p.add_argument_group("data")
    d.add_argument("--data", required=True, metavar="PATH", help="dataset file or folder")
    d.add_argument("--data-format", metavar="F", help="dataset format name (default: detected)")
    d.add_argument("--key", metavar="K", help="array key inside an .npz/HDF5 file")
    d.add_argument("--labels-key", metavar="K", help="labels array key inside an .npz/HDF5 file")
    d.add_argument("--column", metavar="C",
                   help="item column of a table: text (CSV/TSV/JSONL), or vectors/images/text (Parquet, Arrow)")
    d.add_argument("--label-column", metavar="C", help="label column of a table")
    d.add_argument("--id-column", metavar="C", help="id column of a table (unique values)")
    d.add_argument("--split", metavar="S", help="split of a Hugging Face DatasetDict folder (default: train)")
    e = p.add_argument_group("encoder")
    e.add_argument("--encoder", metavar="PATH",
                   help="checkpoint or model folder (omit for precomputed vector datasets)")
    e.add_argument("--encoder-format", metavar="F", help="encoder format name (default: detected)")
    add_encoder_options(e)
    r = p.add_argument_group("run")
    r.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    r.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    r.add_argument("--batch-size", type=int_range(1, 65536), default=256, metavar="B",
                   help="items per forward pass (1-65536; default: 256)")
    r.add_argument("--workers", type=int_range(0, MAX_WORKERS), default=None, metavar="N",
                   help=f"data-loading worker processes (0-{MAX_WORKERS}; default: by data type)")
    c = p.add_argument_group("cluster (README: Bigger than one machine)")
    c.add_argument("--launcher", choices=("local", "torchrun", "ray"), default="local",
                   help="local (this process), torchrun (run under torchrun: each rank embeds shards, "
                        "rank 0 merges) or ray (a Ray actor pool; needs the [cluster] extra)")
    c.add_argument("--address", default="auto", metavar="A",
                   help="Ray cluster address for --launcher ray: auto, ray://host:port, or local "
                        "(start Ray here; default: auto)")
    c.add_argument("--ray-actors", type=int_range(1, 4096), default=None, metavar="N",
                   help="Ray embedding actors (1-4096; default: one per GPU of the cluster, else one per CPU)")
    c.add_argument("--shard-rows", type=int_range(1, 1 << 30), default=None, metavar="R",
                   help="rows per shard file, rounded up to whole batches (1-1073741824; default: about "
                        "256 shards); with --launcher local it makes the run resumable")
    c.add_argument("--store-dtype", choices=("float32", "float16"), default="float32",
                   help="dtype of the stored vectors (float16 halves the file; flagged in the record)")
    c.add_argument("--keep-shards", action="store_true", help="keep the shard files after the merge")
    o = p.add_argument_group("output")
    o.add_argument("--workspace", required=True, metavar="FILE", help="workspace file (.h5), created if missing")
    o.add_argument("--out", metavar="FILE",
                   help="also write the vectors (float32, dataset order, readable items only) to .npy "
                        "(ids in NAME.ids.txt) or .h5 (datasets vectors and ids)")
    o.add_argument("--json", action="store_true", help="print the summary as JSON")
    o.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args) -> int:
    from explorer.embed import EMBEDDINGS, EmbedParams, embed_cached, embedding_key, embedding_rows
    from explorer.core.jobs import run_job
    from explorer.store import Workspace

    data = Path(args.data).expanduser()
    if not data.exists():
        raise InputError(f"{data}: no such file or folder.")
    if args.encoder and not Path(args.encoder).expanduser().exists():
        raise InputError(f"{args.encoder}: no such file or folder.")
    from explorer.store import check_output_path

    out = Path(args.out).expanduser() if args.out else None
    if out is not None and out.suffix.lower() not in (".npy", ".h5", ".hdf5"):
        raise InputError(f"{out}: --out must end in .npy or .h5.")
    if out is not None:
        check_output_path(out)
    from explorer.core.device import resolve_device

    resolve_device(args.device)  # an impossible device is an error even on a cache hit
    params = EmbedParams(device=args.device, batch_size=args.batch_size, precision=args.precision,
                         num_workers=args.workers)
    ws = Workspace(args.workspace)

    from explorer.data import open_dataset

    options = {k: v for k, v in (("key", args.key), ("labels_key", args.labels_key),
                                 ("column", args.column), ("label_column", args.label_column),
                                 ("id_column", args.id_column), ("split", args.split))
               if v is not None}
    dataset = open_dataset(data, args.data_format, **options)

    encoder = None
    if args.encoder:
        try:
            from explorer.encoders import open_encoder
        except ImportError:
            raise InputError("This installation has no encoder formats (explorer.encoders.open_encoder is missing).") from None
        encoder = open_encoder(Path(args.encoder).expanduser(), args.encoder_format, **encoder_options(args))
        from explorer.encoders import match_input_kind

        match_input_kind(encoder, dataset)
    elif dataset.kind != "vector":
        raise InputError(f"{data} holds {dataset.kind} items; give --encoder to embed them.")
    if encoder is not None:
        check_encoder_fits(dataset, encoder)

    key = embedding_key(dataset, encoder, params.precision)
    hit = ws.has(EMBEDDINGS, key)
    if not hit and ws.read_only:
        raise InputError(f"{ws.path} is read-only and embed stores its vectors there; choose a writable "
                         "--workspace.")
    sharded = args.launcher != "local" or args.shard_rows is not None or args.store_dtype != "float32"
    shard_stats = None
    if sharded and not hit:
        from explorer.commands._sharded import run_sharded

        key, vectors, shard_stats = run_sharded(args, ws, dataset, encoder, params, key, options)
        if vectors is None:
            return 0  # a torchrun rank other than 0: rank 0 merged and reports
    elif args.launcher == "torchrun" and int(os.environ.get("RANK", "0")) != 0:
        return 0  # a cache hit: rank 0 reports it
    else:
        key, vectors = run_job(embed_cached(ws, dataset, encoder, params, key=key),
                               desc=f"Embedding {dataset.name}", quiet=args.quiet)
    attrs = dict(ws.list(EMBEDDINGS)).get(key, {})
    rows = embedding_rows(ws, key)
    ids = None if dataset.ids is None else (dataset.ids if rows is None else dataset.ids[rows])
    ids_path = None
    if out is not None:
        ids_path = write_vectors(out, vectors, ids)
    dropped = [str(s[0]) for s in attrs.get("skipped", [])]
    print_encoder_notes(encoder, args.quiet and args.json)  # after the work: an error stays one line
    summary = {
        "key": key, "n": int(vectors.shape[0]), "dim": int(vectors.shape[1]),
        "model": attrs.get("model"), "layer": attrs.get("layer"),
        "device": attrs.get("device"), "precision": attrs.get("precision"),
        "seconds": attrs.get("seconds"), "cache_hit": hit,
        "skipped": attrs.get("n_skipped", 0), "skipped_items": dropped,
        "workspace": str(ws.path), "out": str(out) if out else None,
        "ids": str(ids_path) if ids_path else None,
    }
    if shard_stats is not None:
        summary.update(launcher=attrs.get("launcher"), workers=attrs.get("workers"), **shard_stats)
    if args.json:
        print(json.dumps(summary))
    else:
        how = ("cache hit (computed earlier in "
               f"{summary['seconds']} s on {summary['device']})" if hit
               else f"computed in {summary['seconds']} s on {summary['device']} ({summary['precision']})")
        extra = ""
        if summary["skipped"]:
            named = ", ".join(dropped[:5]) + (f" and {summary['skipped'] - 5} more" if summary["skipped"] > 5 else "")
            extra = f", {summary['skipped']} unreadable items left out ({named})"
        print(f"{summary['n']} x {summary['dim']} embeddings of {dataset.name} by {summary['model']}: "
              f"{how}{extra}; key {key} in {ws.path.name}"
              + (f"; vectors written to {out}" if out else "")
              + (f", their ids to {ids_path}" if ids_path and ids_path != out else ""))
    return 0


def ids_path_for(path: Path) -> Path:
    """Where ``--out vectors.npy`` writes the ids of its rows: ``vectors.ids.txt``."""
    return path.with_name(path.stem + ".ids.txt")


def write_vectors(path: Path, vectors: np.ndarray, ids=None) -> Optional[Path]:
    """float32 (M, D) rows (the readable items, in dataset order) to ``.npy`` or ``.h5``,
    with the ids of those rows so they can be matched to the items: the ``ids`` dataset of
    the ``.h5`` file, or ``<name>.ids.txt`` (one id a line) next to a ``.npy``. Each file is
    written to a temporary file then renamed (never half-written). Returns where the ids
    went (``path`` itself for ``.h5``), or None when there are none."""
    from explorer.store import atomic_file, save_npy

    if ids is not None and len(ids) != len(vectors):
        raise InputError(f"{path}: {len(ids)} ids for {len(vectors)} vectors.")
    if path.suffix.lower() == ".npy":
        save_npy(path, np.ascontiguousarray(vectors, dtype=np.float32))
        if ids is None:
            return None
        with atomic_file(ids_path_for(path)) as tmp:
            tmp.write_text("".join(str(i).replace("\n", " ") + "\n" for i in ids), encoding="utf-8")
        return ids_path_for(path)
    import h5py

    with atomic_file(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("vectors", data=np.asarray(vectors, dtype=np.float32))
            if ids is not None:
                f.create_dataset("ids", data=np.asarray([str(i) for i in ids], dtype=object),
                                 dtype=h5py.string_dtype("utf-8"))
    return None if ids is None else path


if __name__ == "__main__":  # pragma: no cover
    from explorer.cli import main

    sys.exit(main(["embed", *sys.argv[1:]]))
