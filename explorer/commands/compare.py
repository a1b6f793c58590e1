"""``embedding-explorer compare``: similarity of two or more embeddings of the same items.

    embedding-explorer compare --vectors A.npy B.npy --json [--overlap-out F.npy]
    embedding-explorer compare --workspace project.h5 --models A B [C ...] [--layer L] [--json]
    embedding-explorer compare --vectors A.npy B.npy --anchors 300 [--anchor-labels y.npy]

Prints linear CKA, debiased CKA, RBF CKA, mutual k-NN, Procrustes similarity, SVCCA and the
mean per-point k-NN Jaccard overlap for every pair. ``--overlap-out`` writes the per-point
Jaccard (N,) float32 of the first pair, computed for every point (slow for large N: exact
all-points k-NN). With ``--workspace`` the per-point overlaps of every pair are stored in the
workspace's "comparisons" group.
"""

from __future__ import annotations

import argparse
import itertools
import json
import numpy as np

from explorer.commands._args import int_range
from explorer.commands._sources import load_vectors_npy, select_records, stored_vectors, warn_zero_rows
from explorer.core.errors import InputError
from explorer.store import COMPARISONS


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "compare", help="compare embeddings: CKA, mutual k-NN, Procrustes, SVCCA, k-NN overlap",
        description="Global and per-point similarity of embeddings of the same items by different "
                    "models, layers or checkpoints.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--workspace", metavar="FILE", help="workspace file (.h5) holding embeddings")
    src.add_argument("--vectors", nargs="+", metavar="Z.npy", help="two or more (N, D) .npy arrays")
    p.add_argument("--models", nargs="+", metavar="M", help="with --workspace: the models to compare (two or more)")
    p.add_argument("--layer", metavar="L", help="with --workspace: which layer of each model")
    p.add_argument("-k", type=int_range(1, 1000), default=50,
                   help="neighbours for the per-point Jaccard overlap (1-1000 and below N; default 50)")
    p.add_argument("--mutual-k", type=int_range(1, 1000), default=10,
                   help="neighbours for mutual k-NN (1-1000, at most -k and below N; default 10)")
    p.add_argument("--knn-points", type=int_range(0, 10**9), default=2000, metavar="Q",
                   help="random points whose neighbourhoods are compared (0-1000000000, 0: all; default 2000)")
    p.add_argument("--anchors", type=int_range(1, 10**6), metavar="K",
                   help="compare relative representations: each item as its cosine similarity to the same K "
                        "anchor items (1-1000000, at most N; Moschella et al. 2023), so models of different widths compare directly")
    p.add_argument("--anchor-labels", metavar="y.npy", help="with --anchors: choose the anchors stratified by these labels")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--overlap-out", metavar="F.npy", help="write the per-point Jaccard overlap (N,) of all points")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args) -> int:
    from explorer.core.jobs import run_job
    from explorer.metrics.compare import COMPARE_KEYS, CompareParams, compare
    from explorer.metrics.diagnose import to_json
    from explorer.store import check_output_path, save_npy

    if args.overlap_out:
        check_output_path(args.overlap_out, "--overlap-out")

    all_points = bool(args.overlap_out) or args.knn_points == 0
    params = CompareParams(device=args.device, knn_k=args.k, mutual_k=args.mutual_k,
                           knn_points=None if all_points else args.knn_points)
    ws = None
    if args.vectors:
        if len(args.vectors) < 2:
            raise InputError("--vectors needs at least two .npy files to compare.")
        names = list(args.vectors)
        mats = [load_vectors_npy(v) for v in args.vectors]
        keys = [None] * len(mats)
    else:
        if not args.models or len(args.models) < 2:
            raise InputError("--workspace needs --models with at least two model names to compare.")
        from explorer.store import Workspace

        ws = Workspace(args.workspace)
        names, mats, keys = [], [], []
        for m in args.models:
            recs = select_records(ws, m, args.layer, args.workspace)
            if len(recs) > 1:
                raise InputError(f"{args.workspace}: model {m} has several stored embeddings; choose one with --layer.")
            key, attrs = recs[0]
            names.append(m)
            keys.append(key)
            mats.append(stored_vectors(ws, key, args.workspace))
    for name, M in zip(names, mats):
        if M.shape[0] != mats[0].shape[0]:
            raise InputError(f"{name} has {M.shape[0]} rows but {names[0]} has {mats[0].shape[0]}; "
                             "compare embeddings of the same items.")
    n = mats[0].shape[0]
    anchors = None
    if args.anchors:
        from explorer.commands._sources import check_labels, load_npy
        from explorer.metrics.representations import choose_anchors, relative_representation

        y = (check_labels(load_npy(args.anchor_labels, "labels"), n, args.anchor_labels)
             if args.anchor_labels else None)
        anchors = choose_anchors(n, args.anchors, y)
        mats = [relative_representation(M, anchors) for M in mats]
    for opt, k in (("-k", args.k), ("--mutual-k", args.mutual_k)):
        if k >= n:
            raise InputError(f"{opt} {k} needs more than {k} items; these embeddings have {n}.")
    for name, M in zip(names, mats):
        warn_zero_rows(M, name)
    table = []
    for (i, a), (j, b) in itertools.combinations(enumerate(mats), 2):
        r = run_job(compare(a, b, params), desc=f"compare {names[i]} / {names[j]}", quiet=args.quiet)
        row = {"a": names[i], "b": names[j], **{k: r[k] for k in COMPARE_KEYS},
               "sampling": r["sampling"], "n": r["n"]}
        if anchors is not None:
            row["anchors"] = anchors.tolist()
        table.append((row, r))
        if ws is not None:
            from explorer.store import content_key

            ck = content_key("comparison", 1, keys[i], keys[j], params,
                             *([] if anchors is None else [{"anchors": anchors}]))
            ws.put(COMPARISONS, ck, {"knn_jaccard": r["knn_jaccard"], "knn_rows": r["knn_rows"]},
                   to_json({"a": keys[i], "b": keys[j], "model_a": names[i], "model_b": names[j],
                            "params": params, **{k: r[k] for k in COMPARE_KEYS}, "sampling": r["sampling"]}))
    if args.overlap_out:
        save_npy(args.overlap_out, table[0][1]["knn_jaccard"].astype(np.float32), "--overlap-out")
    if args.json:
        rows = [to_json(row) for row, _ in table]
        print(json.dumps(rows[0] if len(rows) == 1 else rows))
    else:
        for row, _ in table:
            print(f"{row['a']} vs {row['b']} (n={row['n']}):")
            for k in COMPARE_KEYS:
                v = row[k]
                print(f"  {k:24s} {'-' if v is None or v != v else f'{v:.4f}'}")
        if args.overlap_out:
            print(f"wrote per-point k-NN Jaccard of {table[0][0]['a']} / {table[0][0]['b']} to {args.overlap_out}")
    return 0
