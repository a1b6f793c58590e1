"""``embedding-explorer clusters``: HDBSCAN clusters of a map, each named automatically.

    embedding-explorer clusters --workspace project.h5 --model healthy --data images/ --json
    embedding-explorer clusters --vectors Z.npy --labels y.npy --method pca --out clusters.npy
    embedding-explorer clusters --coords map.npy --data texts.csv --json

The map is the one ``project`` makes (cached in the workspace with ``--workspace``: the same
options reuse it) or, with ``--coords``, a given (N, 2) array. Each cluster is named by the
majority value of ``--column`` (default: the dataset's labels) with its share, or for a text
dataset by its top TF-IDF terms. With ``--workspace`` the clusters are cached in the
workspace's "clusters" group. ``--out`` writes the (N,) int32 cluster of each point (-1 noise;
0 is the largest cluster).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from explorer.commands._args import float_range, int_range, seed_type
from explorer.core.errors import InputError


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "clusters", help="HDBSCAN clusters of a map, named by majority label or top TF-IDF terms",
        description="Find the clusters of a map (HDBSCAN; above --sample-size points on a sample, the "
                    "rest joining their nearest sampled point) and name each one.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--workspace", metavar="FILE", help="workspace file (.h5) holding embeddings")
    src.add_argument("--vectors", metavar="Z.npy", help="a (N, D) array of vectors in a .npy file")
    src.add_argument("--coords", metavar="MAP.npy", help="a (N, 2) map to cluster as it is")
    p.add_argument("--model", metavar="M", help="which stored embedding: its model name")
    p.add_argument("--layer", metavar="L", help="which stored embedding: its layer")
    p.add_argument("--embedding-key", metavar="KEY", help="which stored embedding: its key")
    m = p.add_argument_group("map (as `project` makes it)")
    m.add_argument("--method", choices=("pca", "umap"), default="umap")
    m.add_argument("--n-neighbors", type=int_range(2, 1000), default=15, metavar="K",
                   help="UMAP neighbours (2-1000; default 15)")
    m.add_argument("--min-dist", type=float_range(0.0, 1.0), default=0.1, help="UMAP minimum distance (0-1; default 0.1)")
    m.add_argument("--metric", choices=("cosine", "euclidean", "dot"), default="cosine")
    c = p.add_argument_group("clusters")
    c.add_argument("--min-cluster-size", type=int_range(2, 10**9), default=None, metavar="S",
                   help="fewest points of a cluster (2-1000000000; default 1%% of the points, at least 5)")
    c.add_argument("--min-samples", type=int_range(1, 10**6), default=None, metavar="S",
                   help="HDBSCAN min_samples (1-1000000; default min(min cluster size, 10))")
    c.add_argument("--sample-size", type=int_range(2, 10**7), default=10_000, metavar="M",
                   help="HDBSCAN runs on at most M points, the rest join their nearest sampled point "
                        "(2-10000000; default 10000)")
    c.add_argument("--seed", type=seed_type(), default=0, help="which points are sampled (0-4294967295)")
    n = p.add_argument_group("names")
    n.add_argument("--data", metavar="PATH", help="the dataset the rows belong to (its labels, metadata or texts name the clusters)")
    n.add_argument("--data-format", metavar="F", help="dataset format name (default: detected)")
    n.add_argument("--metadata", metavar="TABLE", help="a metadata table (.csv/.tsv/.jsonl) to join to --data")
    n.add_argument("--id-column", metavar="C", help="the metadata table's id column (default: row order)")
    n.add_argument("--labels", metavar="y.npy", help="(N,) labels naming the clusters (instead of --data)")
    n.add_argument("--column", metavar="C", help="name clusters by this column's majority value (default: label; "
                   "texts: top TF-IDF terms)")
    n.add_argument("--terms", type=int_range(1, 20), default=3, metavar="T", help="TF-IDF terms per text cluster (1-20; default 3)")
    p.add_argument("--recompute", action="store_true", help="ignore clusters cached in the workspace")
    p.add_argument("--out", metavar="FILE.npy", help="write the (N,) int32 cluster of each point (-1: noise)")
    p.add_argument("--json", action="store_true", help="print the clusters as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _map(args):
    """-> (coords, workspace or None, layout key or None, embedding key or None)."""
    from explorer.commands._sources import load_npy, check_vectors
    from explorer.commands.project import load_vectors
    from explorer.core.jobs import run_job
    from explorer.maps import MapParams, cached_layout, make_layout

    if args.coords:
        xy = check_vectors(load_npy(args.coords, "map coordinates", ndim=2), args.coords)
        return xy, None, None, None
    Z, ws, key = load_vectors(args)
    if args.method == "umap" and args.n_neighbors > Z.shape[0]:
        raise InputError(f"--n-neighbors {args.n_neighbors} is more than the {Z.shape[0]} points; "
                         f"use at most {Z.shape[0]}.")
    params = MapParams(method=args.method, n_neighbors=args.n_neighbors, min_dist=args.min_dist,
                       metric=args.metric)
    if ws is not None:
        lkey, lay = run_job(cached_layout(ws, key, params), desc=f"{args.method} map", quiet=args.quiet)
    else:
        lkey, lay = None, run_job(make_layout(Z, params), desc=f"{args.method} map", quiet=args.quiet)
    return lay.coords, ws, lkey, key


def _dataset(args, n: int):
    """The dataset (or a stand-in holding --labels) that names the clusters, or None."""
    if args.labels:
        from explorer.commands._sources import check_labels, load_npy
        from explorer.data.base import Dataset

        raw = load_npy(args.labels, "labels", ndim=1)
        check_labels(raw, n, args.labels)  # one sentence if they are not class numbers or names
        uniq, codes = np.unique(raw, return_inverse=True)
        return Dataset(name=args.labels, source=args.labels, kind="vector", n=n,
                       labels=codes.reshape(-1).astype(np.int64), label_names=[str(u) for u in uniq])
    if not args.data:
        return None
    from explorer.data import attach_metadata, open_dataset

    ds = open_dataset(args.data, args.data_format)
    if args.metadata:
        ds = attach_metadata(ds, args.metadata, id_column=args.id_column)
    if len(ds) != n:
        raise InputError(f"{args.data} has {len(ds)} items but the map has {n} points; give the dataset "
                         "the vectors were made from.")
    return ds


def run(args) -> int:
    from explorer.core.jobs import run_job
    from explorer.maps.clusters import ClusterParams, cached_clusters, name_clusters
    from explorer.store import check_output_path, save_npy

    if args.out:
        check_output_path(args.out)
    if args.data and args.labels:
        raise InputError("Give --data or --labels to name the clusters, not both.")
    xy, ws, lkey, ekey = _map(args)
    n = int(xy.shape[0])
    ds = _dataset(args, n)  # checked before the clustering starts
    params = ClusterParams(min_cluster_size=args.min_cluster_size, min_samples=args.min_samples,
                           sample_size=args.sample_size, seed=args.seed)
    ckey, res = run_job(cached_clusters(ws, lkey, xy, params, recompute=args.recompute), desc="clusters",
                        quiet=args.quiet)
    names, how = name_clusters(res.labels, ds, args.column, args.terms, res.n_clusters)
    if args.out:
        save_npy(args.out, res.labels)
    clusters = []
    for k in range(res.n_clusters):
        c = {"cluster": k, "size": int(res.sizes[k]), "name": names[k],
             "centre": [float(v) for v in res.centres[k]], "spread": float(res.spread[k])}
        if how.get("by") == "tf-idf":
            c["terms"] = how["terms"][k]
        elif how.get("by"):
            c["value"], c["share"] = how["values"][k], how["shares"][k]
        clusters.append(c)
    info = {k: v for k, v in res.info.items() if k != "seconds"}
    summary = {"n": n, "n_clusters": res.n_clusters, "noise": int((res.labels < 0).sum()),
               "named_by": how.get("by"), "params": info, "seconds": res.info.get("seconds"),
               "clusters_key": ckey, "layout_key": lkey, "embedding_key": ekey, "out": args.out,
               "clusters": clusters}
    if args.json:
        print(json.dumps(summary))
    else:
        sampled = f", HDBSCAN on a {info['sampled']:,}-point sample" if info.get("sampled") else ""
        print(f"{res.n_clusters} clusters of {n:,} points ({summary['noise']:,} noise{sampled})"
              + (f"; wrote {args.out}" if args.out else ""))
        for c in clusters:
            print(f"  {c['cluster']:3d}  {c['size']:8,d}  {c['name']}")
    return 0
