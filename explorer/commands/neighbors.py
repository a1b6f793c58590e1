"""``embedding-explorer neighbors``: exact (or measured-recall approximate) nearest neighbours.

    embedding-explorer neighbors --vectors Z.npy -k 10 --query-index 42 --json
    embedding-explorer neighbors --workspace project.h5 --model resnet -k 15 --out knn.npy

``--json`` prints each query's neighbour indices and similarities (self excluded; larger is
closer: cosine similarity, dot product, or minus the Euclidean distance). ``--out`` writes the
(N, k) int64 neighbour indices of all points. All-points graphs report their measured recall;
the automatic method always reaches ``--target-recall`` (exact search when the approximate one
cannot, cheaply); an explicit ``--approx`` (or ``--max-nprobe``) that falls short prints a
warning line on stderr and ``"recall_below_target": true`` in ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys

from explorer.commands._args import float_range, int_range
from explorer.commands._sources import add_encoder_options, warn_zero_rows
from explorer.commands.project import add_source_args, load_vectors
from explorer.core.errors import InputError


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "neighbors", help="nearest neighbours of one point or of all points",
        description="Nearest neighbours in the embedding space (self excluded). Scores: larger is "
                    "closer (cosine similarity, dot product, or minus the Euclidean distance).")
    add_source_args(p)
    p.add_argument("-k", type=int_range(1, 10000), default=10,
                   help="neighbours per point (1-10000 and below N; default 10)")
    p.add_argument("--metric", choices=("cosine", "euclidean", "dot"), default="cosine")
    p.add_argument("--query-index", type=int_range(0), action="append", metavar="I",
                   help="row to query (>= 0 and below N; repeatable); default: all points")
    p.add_argument("--query-file", action="append", metavar="IMAGE",
                   help="a new image to embed with --encoder and search with (repeatable)")
    p.add_argument("--query-text", action="append", metavar="TEXT",
                   help="a new text to embed with --encoder and search with (repeatable)")
    p.add_argument("--encoder", help="encoder for --query-file/--query-text (the one that made the vectors)")
    add_encoder_options(p, trust=False, layer=False, pooling=False)
    p.add_argument("--method", choices=("auto", "exact", "approx"), default="auto",
                   help="for all points: exact, approximate (recall measured) or auto by size")
    p.add_argument("--approx", choices=("auto", "ivf", "hnsw", "nndescent"), default="auto",
                   help="approximate method: auto (always reaches --target-recall, exact search when "
                        "that is cheaper) or an explicit one, whose recall may fall short (then a warning)")
    p.add_argument("--target-recall", type=float_range(0, 1, lo_open=True), default=0.99, metavar="R",
                   help="recall@k the approximate search must reach, measured on 1000 rows "
                        "(> 0 and <= 1; default 0.99)")
    p.add_argument("--max-nprobe", type=int_range(1, 1_000_000), default=None, metavar="P",
                   help="with --approx ivf: probe at most P lists, 1-1000000 (may give less than the target recall)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--out", metavar="FILE.npy", help="write the (N, k) int64 neighbour indices of all points")
    p.add_argument("--json", action="store_true", help="print neighbours and similarities as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args) -> int:
    from explorer.core.jobs import run_job
    from explorer.maps import cached_knn
    from explorer.neighbors import KnnParams, VectorIndex, knn_graph

    from explorer.store import check_output_path, save_npy

    if args.out:
        check_output_path(args.out)
    Z, ws, key = load_vectors(args)
    n = Z.shape[0]
    if not 1 <= args.k < n:
        raise InputError(f"-k must be between 1 and N-1 = {n - 1}, got {args.k}.")
    for qi in args.query_index or ():
        if not 0 <= qi < n:
            raise InputError(f"--query-index {qi} is outside 0..{n - 1}.")
    warn_zero_rows(Z, args.vectors or args.workspace, args.metric)
    out = {"metric": args.metric, "k": args.k, "n": int(n), "embedding_key": key, "queries": []}
    if args.query_file or args.query_text:
        _query_new(args, Z, out)
    elif args.query_index and not args.out:
        vi = VectorIndex(Z, args.metric)
        for qi in args.query_index:
            if not 0 <= qi < n:
                raise InputError(f"--query-index {qi} is outside 0..{n - 1}.")
            idx, sc = vi.query(index=qi, k=args.k)
            out["queries"].append({"index": qi, "neighbors": idx.tolist(),
                                   "similarities": [float(s) for s in sc]})
        out["method"] = "exact"
    else:
        params = KnnParams(k=args.k, metric=args.metric, method=args.method, device=args.device,
                           approx=args.approx, target_recall=args.target_recall, max_nprobe=args.max_nprobe)
        if ws is not None:
            _, r = run_job(cached_knn(ws, key, params, Z), desc="k-NN graph", quiet=args.quiet)
        else:
            r = run_job(knn_graph(Z, params), desc="k-NN graph", quiet=args.quiet)
        out.update({"method": r.method, "recall": r.recall, "seconds": r.seconds,
                    "target_recall": args.target_recall, "recall_below_target": r.below_target})
        if r.info.get("fallback"):
            out["fallback"] = r.info["fallback"]
        warning = r.warning()
        if warning:
            out["warning"] = warning
            print(f"warning: {warning}", file=sys.stderr)
        rows = args.query_index if args.query_index else range(n)
        for qi in rows:
            if not 0 <= qi < n:
                raise InputError(f"--query-index {qi} is outside 0..{n - 1}.")
        if args.json:
            out["queries"] = [{"index": int(i), "neighbors": r.indices[i].tolist(),
                               "similarities": [float(s) for s in r.scores[i]]} for i in rows]
        if args.out:
            save_npy(args.out, r.indices)
            out["out"] = args.out
    if args.json:
        print(json.dumps(out))
    else:
        for q in out["queries"]:
            if "query" in q:
                pairs = ", ".join(f"{i} ({s:.4f})" for i, s in zip(q["neighbors"], q["similarities"]))
                print(f"{q['query']}: {pairs}")
                continue
            pairs = ", ".join(f"{i} ({s:.4f})" for i, s in zip(q["neighbors"], q["similarities"]))
            print(f"{q['index']}: {pairs}")
        if args.out:
            print(f"{out['method']} {args.k}-NN of {n} points (recall {out.get('recall', 1.0):.3f}); wrote {args.out}")
            if out.get("fallback"):
                print(f"({out['fallback']}; searched exactly)")
    return 0


def _query_new(args, Z, out: dict) -> None:
    """Embed new inputs with --encoder and search ``Z`` exactly."""
    from explorer.data import query_items
    from explorer.embed import EmbedParams, embed
    from explorer.encoders import open_encoder
    from explorer.core.jobs import drain
    from explorer.neighbors import VectorIndex

    if not args.encoder:
        raise InputError("--query-file/--query-text need --encoder: the model that made the vectors.")
    items, kind = (args.query_file, "image") if args.query_file else (args.query_text, "text")
    from explorer.commands._sources import encoder_options

    enc = open_encoder(args.encoder, **encoder_options(args))
    res = drain(embed(query_items(items, kind), enc, EmbedParams(device=args.device or "auto", num_workers=0)))
    if res.skipped:
        raise InputError(f"{res.skipped[0][0]} could not be read: {res.skipped[0][1]}")
    if res.vectors.shape[1] != Z.shape[1]:
        raise InputError(f"{args.encoder} gives {res.vectors.shape[1]}-d vectors but the searched ones are "
                         f"{Z.shape[1]}-d; use the encoder (and layer) that made them.")
    vi = VectorIndex(Z, args.metric)
    for item, v in zip(items, res.vectors):
        idx, sc = vi.query(q=v, k=args.k)
        out["queries"].append({"query": item, "neighbors": idx.tolist(), "similarities": [float(s) for s in sc]})
    out["method"] = "exact"
