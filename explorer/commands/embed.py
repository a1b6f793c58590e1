"""``embedding-explorer embed``: embed a dataset with an encoder into a workspace (cached).

    embedding-explorer embed --data photos/ --encoder resnet.pt --arch resnet18 \\
        --workspace project.h5 --out vectors.npy

Prints one summary line (or a JSON object with ``--json``) on stdout; the progress bar goes to
stderr. A second run with the same data and weights is a cache hit and calls no model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from explorer.commands._args import int_range
from explorer.commands._sources import add_encoder_options, check_encoder_fits
from explorer.errors import InputError

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
    d.add_argument("--column", metavar="C", help="text column of a CSV/TSV/JSONL table")
    d.add_argument("--label-column", metavar="C", help="label column of a CSV/TSV/JSONL table")
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
    o = p.add_argument_group("output")
    o.add_argument("--workspace", required=True, metavar="FILE", help="workspace file (.h5), created if missing")
    o.add_argument("--out", metavar="FILE", help="also write the vectors (float32, dataset order) to .npy or .h5")
    o.add_argument("--json", action="store_true", help="print the summary as JSON")
    o.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args) -> int:
    from explorer.embed import EMBEDDINGS, EmbedParams, embed_cached, embedding_key
    from explorer.jobs import run_job
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
    from explorer.device import resolve_device

    resolve_device(args.device)  # an impossible device is an error even on a cache hit
    params = EmbedParams(device=args.device, batch_size=args.batch_size, precision=args.precision,
                         num_workers=args.workers)
    ws = Workspace(args.workspace)

    from explorer.data import open_dataset

    options = {k: v for k, v in (("key", args.key), ("labels_key", args.labels_key),
                                 ("column", args.column), ("label_column", args.label_column))
               if v is not None}
    dataset = open_dataset(data, args.data_format, **options)

    encoder = None
    if args.encoder:
        try:
            from explorer.encoders import open_encoder
        except ImportError:
            raise InputError("This installation has no encoder formats (explorer.encoders.open_encoder is missing).") from None
        encoder = open_encoder(Path(args.encoder).expanduser(), args.encoder_format, arch=args.arch,
                               factory=args.factory, trust=args.trust, layer=args.layer,
                               pooling=args.pooling)
    elif dataset.kind != "vector":
        raise InputError(f"{data} holds {dataset.kind} items; give --encoder to embed them.")
    if encoder is not None:
        check_encoder_fits(dataset, encoder)

    key = embedding_key(dataset, encoder, params.precision)
    hit = ws.has(EMBEDDINGS, key)
    if not hit and ws.read_only:
        raise InputError(f"{ws.path} is read-only and embed stores its vectors there; choose a writable "
                         "--workspace.")
    key, vectors = run_job(embed_cached(ws, dataset, encoder, params, key=key),
                           desc=f"Embedding {dataset.name}", quiet=args.quiet)
    attrs = dict(ws.list(EMBEDDINGS)).get(key, {})
    if out is not None:
        write_vectors(out, vectors, dataset)
    summary = {
        "key": key, "n": int(vectors.shape[0]), "dim": int(vectors.shape[1]),
        "model": attrs.get("model"), "layer": attrs.get("layer"),
        "device": attrs.get("device"), "precision": attrs.get("precision"),
        "seconds": attrs.get("seconds"), "cache_hit": hit,
        "skipped": attrs.get("n_skipped", 0), "workspace": str(ws.path),
        "out": str(out) if out else None,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        how = ("cache hit (computed earlier in "
               f"{summary['seconds']} s on {summary['device']})" if hit
               else f"computed in {summary['seconds']} s on {summary['device']} ({summary['precision']})")
        extra = f", {summary['skipped']} unreadable items skipped" if summary["skipped"] else ""
        print(f"{summary['n']} x {summary['dim']} embeddings of {dataset.name} by {summary['model']}: "
              f"{how}{extra}; key {key} in {ws.path.name}" + (f"; vectors written to {out}" if out else ""))
    return 0


def write_vectors(path: Path, vectors: np.ndarray, dataset=None) -> None:
    """float32 (N, D) rows in dataset order to ``.npy`` or ``.h5`` (dataset ``vectors``, plus
    ``ids`` when known), written to a temporary file then renamed (never half-written)."""
    from explorer.store import atomic_file, save_npy

    if path.suffix.lower() == ".npy":
        save_npy(path, np.ascontiguousarray(vectors, dtype=np.float32))
        return
    import h5py

    with atomic_file(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("vectors", data=np.asarray(vectors, dtype=np.float32))
            if dataset is not None and dataset.ids is not None:
                f.create_dataset("ids", data=np.asarray([str(i) for i in dataset.ids], dtype=object),
                                 dtype=h5py.string_dtype("utf-8"))


if __name__ == "__main__":  # pragma: no cover
    from explorer.cli import main

    sys.exit(main(["embed", *sys.argv[1:]]))
