"""``embedding-explorer project``: a 2-D/3-D map (PCA or UMAP) of stored embeddings or of a
plain ``.npy`` array.

    embedding-explorer project --workspace project.h5 --model resnet --method umap --out map.npy
    embedding-explorer project --vectors Z.npy --method pca --dims 3 --json

With ``--workspace`` the k-NN graph and the layout are cached in the workspace (changing
``--min-dist`` re-runs only the layout; the same parameters recompute nothing).
"""

from __future__ import annotations

import argparse
import json
from typing import Optional, Tuple

import numpy as np

from explorer.commands._args import float_range, int_range, seed_type
from explorer.commands._sources import describe, load_vectors_npy, select_records, stored_vectors, warn_zero_rows
from explorer.core.errors import InputError


def add_source_args(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--workspace", metavar="FILE", help="workspace file (.h5) holding embeddings")
    src.add_argument("--vectors", metavar="Z.npy", help="a (N, D) array of vectors in a .npy file")
    p.add_argument("--model", metavar="M", help="which stored embedding: its model name")
    p.add_argument("--layer", metavar="L", help="which stored embedding: its layer")
    p.add_argument("--embedding-key", metavar="KEY", help="which stored embedding: its key")


#: a --vectors file larger than this is memory-mapped, not read in: the maps read it block by
#: block (and check each block for NaN/inf as they go), so memory stays bounded (issue 22)
MAP_IN_PLACE_BYTES = 2 * 2**30


def open_vectors_npy(path: str) -> np.ndarray:
    """A checked (N, D) array from a .npy file: read in, or memory-mapped read-only above
    :data:`MAP_IN_PLACE_BYTES` (real numbers, two rows at least; finiteness checked later,
    block by block)."""
    import os

    try:
        big = os.path.getsize(path) > MAP_IN_PLACE_BYTES
    except OSError:
        big = False
    if big:
        try:
            a = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception:
            a = None
        if isinstance(a, np.memmap) and a.ndim == 2 and a.dtype.kind == "f" and a.shape[0] >= 2 and a.shape[1] >= 1:
            return a
    return load_vectors_npy(path)


def load_vectors(args) -> Tuple[np.ndarray, Optional[object], Optional[str]]:
    """-> (vectors (N, D), workspace or None, embedding key or None), checked: real, finite,
    at least two rows (a very large .npy: memory-mapped, see :func:`open_vectors_npy`)."""
    if args.vectors:
        return open_vectors_npy(args.vectors), None, None
    from explorer.store import Workspace

    ws = Workspace(args.workspace)
    recs = select_records(ws, args.model, args.layer, args.workspace, key=args.embedding_key)
    if len(recs) != 1:
        raise InputError(f"{args.workspace}: several stored embeddings match --model/--layer; choose one of: "
                         f"{describe(recs)}.")
    key = recs[0][0]
    return stored_vectors(ws, key, args.workspace), ws, key


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "project", help="2-D/3-D map (PCA or UMAP) of embeddings",
        description="Compute a PCA or UMAP map of stored embeddings (cached in the workspace) or of a .npy array.")
    add_source_args(p)
    p.add_argument("--method", choices=("pca", "umap"), default="umap")
    p.add_argument("--dims", type=int, choices=(2, 3), default=2)
    p.add_argument("--n-neighbors", type=int_range(2, 1000), default=15, metavar="K",
                   help="UMAP neighbours (2-1000 and at most N; default 15)")
    p.add_argument("--min-dist", type=float_range(0.0, 1.0), default=0.1,
                   help="UMAP minimum distance (0-1; default 0.1)")
    p.add_argument("--metric", choices=("cosine", "euclidean", "dot"), default="cosine")
    p.add_argument("--n-epochs", type=int_range(1, 10000), default=None, metavar="E",
                   help="UMAP epochs (1-10000; default: umap-learn's, 500 up to 10k points, else 200)")
    p.add_argument("--seed", type=seed_type(allow_none=True), default=0,
                   help="random seed (0-4294967295; -1: none, faster parallel optimisation, not reproducible)")
    p.add_argument("--knn-method", choices=("auto", "exact", "approx"), default="auto")
    p.add_argument("--optimizer", choices=("fast", "umap-learn"), default="fast",
                   help="UMAP optimiser: fast (default) or umap-learn's own kernel (bit-identical to "
                        "umap.UMAP with the same seed and graph, slower)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--out", metavar="FILE.npy", help="write the (N, dims) float32 coordinates")
    p.add_argument("--json", action="store_true", help="print a JSON summary (parameters, info)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args) -> int:
    from explorer.core.jobs import run_job
    from explorer.maps import MapParams, cached_layout, make_layout

    from explorer.store import check_output_path, save_npy

    if args.out:
        check_output_path(args.out)
    Z, ws, key = load_vectors(args)
    if args.method == "umap" and args.n_neighbors > Z.shape[0]:
        raise InputError(f"--n-neighbors {args.n_neighbors} is more than the {Z.shape[0]} points; "
                         f"use at most {Z.shape[0]}.")
    if args.method == "umap" and not isinstance(Z, np.memmap):
        warn_zero_rows(Z, args.vectors or args.workspace, args.metric)
    params = MapParams(method=args.method, n_components=args.dims, n_neighbors=args.n_neighbors,
                       min_dist=args.min_dist, metric=args.metric, n_epochs=args.n_epochs,
                       seed=None if args.seed is not None and args.seed < 0 else args.seed,
                       knn_method=args.knn_method, device=args.device, optimizer=args.optimizer)
    if ws is not None:
        lkey, lay = run_job(cached_layout(ws, key, params), desc=f"{args.method} map", quiet=args.quiet)
    else:
        lkey, lay = None, run_job(make_layout(Z, params), desc=f"{args.method} map", quiet=args.quiet)
    if args.out:
        save_npy(args.out, lay.coords)
    summary = {"method": lay.method, "n": int(lay.coords.shape[0]), "dims": int(lay.coords.shape[1]),
               "params": lay.params, "info": lay.info, "layout_key": lkey, "embedding_key": key,
               "out": args.out}
    if args.json:
        print(json.dumps(summary, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
    else:
        extra = ""
        if lay.method == "pca":
            extra = " explained variance " + ", ".join(f"{v:.3f}" for v in lay.info["explained_variance_ratio"])
        elif lay.info:
            extra = f" graph {lay.info.get('graph_method')} (recall {lay.info.get('graph_recall', 1.0):.3f})"
            if lay.info.get("fitted_on_sample"):
                extra += f", fitted on {lay.info['fitted_on_sample']} points, rest placed by transform"
        print(f"{lay.method} map of {summary['n']} points in {summary['dims']}-D;{extra}"
              + (f"; wrote {args.out}" if args.out else ""))
    return 0
