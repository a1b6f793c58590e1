"""``embedding-explorer truncation``: quality of the first m dimensions (Matryoshka curve).

    embedding-explorer truncation --vectors Z.npy [--labels y.npy] [--dims 8 16 64] [--json]

For m = 8, 16, 32, ... D (or ``--dims``): RankMe of the first m dimensions and, with labels,
the held-out k-NN and linear-probe accuracy. A Matryoshka-trained model keeps its accuracy at
small m.
"""

from __future__ import annotations

import argparse
import json

from explorer.commands._args import int_range
from explorer.commands._sources import check_labels, load_npy, load_vectors_npy


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "truncation", help="quality of the first m dimensions (Matryoshka curve)",
        description="RankMe, k-NN and linear-probe accuracy of the first m dimensions, m = 8, 16, 32, ... D.")
    p.add_argument("--vectors", required=True, metavar="Z.npy", help="(N, D) .npy array")
    p.add_argument("--labels", metavar="y.npy", help="(N,) labels for the k-NN and linear probes")
    p.add_argument("--dims", nargs="+", type=int_range(1, 10**6), metavar="M",
                   help="the prefixes to measure (1-1000000, at most D; default 8, 16, 32, ... D)")
    p.add_argument("--seed", type=int_range(0, 2**31 - 1), default=0, help="split of the probes (0-2147483647; default 0)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args) -> int:
    from explorer.core.jobs import run_job
    from explorer.metrics.representations import truncation_curve

    Z = load_vectors_npy(args.vectors)
    labels = check_labels(load_npy(args.labels, "labels"), Z.shape[0], args.labels) if args.labels else None
    rows = run_job(truncation_curve(Z, labels, args.dims, seed=args.seed, device=args.device),
                   desc="truncation", quiet=args.quiet)
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'dims':>6} {'RankMe':>8} {'k-NN acc':>9} {'probe acc':>10}")
    for r in rows:
        acc = ["-" if r[k] is None else f"{r[k]:.1%}" for k in ("knn_accuracy", "linear_probe_accuracy")]
        print(f"{r['dims']:>6} {r['rankme']:>8.1f} {acc[0]:>9} {acc[1]:>10}")
    return 0
