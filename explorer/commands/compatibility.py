"""``embedding-explorer compatibility``: can a new model replace an old one without re-indexing?

    embedding-explorer compatibility --old OLD.npy --new NEW.npy --labels y.npy [--json]

Both files hold the same items. A random 20% are queries, the rest the gallery; for each
(query model, gallery model) pair, top-1 and top-5 retrieval accuracy by label. The new model is
compatible (Shen et al., CVPR 2020) when its queries against the old gallery do at least as
well as the old model against itself.
"""

from __future__ import annotations

import argparse
import json

from explorer.commands._args import int_range
from explorer.commands._sources import check_labels, load_npy, load_vectors_npy
from explorer.core.errors import InputError


def _fraction(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a number") from None
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"{s} is not between 0 and 1")
    return v


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "compatibility", help="new queries against an old gallery: backward-compatible embeddings",
        description="Top-1/top-5 retrieval accuracy by label for old/new queries against old/new galleries.")
    p.add_argument("--old", required=True, metavar="OLD.npy", help="(N, D) vectors from the old model")
    p.add_argument("--new", required=True, metavar="NEW.npy", help="(N, D) vectors of the same items from the new model")
    p.add_argument("--labels", required=True, metavar="y.npy", help="(N,) labels: a retrieved item is right when it shares the label")
    p.add_argument("--query-fraction", type=_fraction, default=0.2, help="share of items used as queries (default 0.2)")
    p.add_argument("--seed", type=int_range(0, 2**31 - 1), default=0, help="which items are queries (0-2147483647; default 0)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def run(args) -> int:
    from explorer.metrics.representations import compatibility

    A, B = load_vectors_npy(args.old), load_vectors_npy(args.new)
    if A.shape[0] != B.shape[0]:
        raise InputError(f"{args.old} has {A.shape[0]} rows but {args.new} has {B.shape[0]}; give vectors of the same items.")
    y = check_labels(load_npy(args.labels, "labels"), A.shape[0], args.labels)
    if y is None:
        raise InputError(f"{args.labels}: retrieval accuracy needs at least two classes.")
    r = compatibility(A, B, y, query_fraction=args.query_fraction, seed=args.seed)
    if args.json:
        print(json.dumps(r))
        return 0
    print(f"{r['n_queries']} queries, {r['n_gallery']} gallery items")
    for pair, acc in r["pairs"].items():
        print(f"  {pair:14s} top-1 {acc['top1']:.1%}  top-5 {acc['top5']:.1%}")
    print("compatible: the new model can search the old gallery" if r["compatible"] else
          "not compatible: re-embed the gallery with the new model")
    return 0
