"""``embedding-explorer diagnose``: collapse diagnostics with a verdict.

    embedding-explorer diagnose --vectors Z.npy [--labels y.npy] --json
    embedding-explorer diagnose --workspace project.h5 [--model M] [--layer L] [--json]

With ``--workspace`` every stored embedding matching ``--model`` / ``--layer`` is diagnosed
(e.g. all layers of one encoder side by side) and the results cached in the workspace's
"diagnostics" group. ``--json`` prints one object (one match) or a list of objects (several),
with one snake_case key per metric (rankme, alpha_req, std_l2_normalized, sigreg, ...), the
spectrum as a list and the verdict with its evidence.
"""

from __future__ import annotations

import argparse
import json


from explorer.commands._args import int_range
from explorer.commands._sources import (check_labels, load_npy as _load_npy, load_vectors_npy, select_records,
                                        stored_vectors)

#: Fewest rows diagnose accepts: the intrinsic dimension needs each point's two nearest neighbours.
MIN_ROWS = 3


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "diagnose", help="collapse diagnostics (RankMe, spectrum, SIGReg, probes, ...) with a verdict",
        description="Tell whether and how a representation collapsed: complete collapse, dimensional "
                    "collapse or none, with the metrics and thresholds behind the verdict.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--workspace", metavar="FILE", help="workspace file (.h5) holding embeddings")
    src.add_argument("--vectors", metavar="Z.npy", help="a (N, D) array of embeddings in a .npy file")
    p.add_argument("--model", metavar="M", help="only stored embeddings of this model")
    p.add_argument("--layer", metavar="L", help="only stored embeddings of this layer")
    p.add_argument("--labels", metavar="y.npy", help="(N,) labels for the k-NN and linear probes")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--max-rows", type=int_range(2, 10**9, extra=(0,)), default=None, metavar="R",
                   help="rows used for the d x d spectrum and RankMe (0: all, or 2-1000000000; "
                        "default 25,600 as Garrido et al.)")
    p.add_argument("--pair-points", type=int_range(3, 20000), default=4096, metavar="P",
                   help="points sampled for pairwise metrics: uniformity, histogram, intrinsic dimension "
                        "(3-20000; default 4096)")
    p.add_argument("--recompute", action="store_true", help="ignore diagnostics cached in the workspace")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _print_text(r: dict) -> None:
    from explorer.metrics.diagnose import METRIC_KEYS

    head = f"{r.get('model', '')} {r.get('layer', '') or ''}".strip()
    v = r["verdict"]
    print(f"{head + ': ' if head else ''}{v['summary']}")
    for e in v["evidence"]:
        print(f"  - {e}")
    for k in METRIC_KEYS:
        val = r.get(k)
        if val is None:
            continue
        print(f"  {k:40s} {val:.4g}" if isinstance(val, float) else f"  {k:40s} {val}")
    lp = r.get("linear_probe") or {}
    if lp.get("accuracy") is not None:
        print(f"  {'linear probe':40s} 95% CI [{lp['ci_low']:.3f}, {lp['ci_high']:.3f}], "
              f"{lp['n_train']} train / {lp['n_test']} test, C={lp['C']:g}")
    s = r.get("sampling") or {}
    if s:
        print("  sampled: " + ", ".join(f"{k}={v}" for k, v in s.items() if v is not None))


def run(args) -> int:
    from explorer.core.jobs import run_job
    from explorer.metrics.diagnose import DiagnoseParams, diagnose, diagnose_cached, to_json

    rows = {} if args.max_rows is None else {"max_rows_covariance": args.max_rows or None}
    params = DiagnoseParams(device=args.device, pair_points=args.pair_points, **rows)
    raw_labels = _load_npy(args.labels, "labels") if args.labels else None
    results = []
    if args.vectors:
        Z = load_vectors_npy(args.vectors, min_rows=MIN_ROWS)
        labels = None if raw_labels is None else check_labels(raw_labels, Z.shape[0], args.labels)
        results.append(run_job(diagnose(Z, labels, params), desc="diagnose", quiet=args.quiet))
    else:
        from explorer.store import Workspace

        ws = Workspace(args.workspace)
        records = select_records(ws, args.model, args.layer, args.workspace)
        todo = []
        for key, attrs in records:  # every record checked before the first is diagnosed
            n = stored_vectors(ws, key, args.workspace, min_rows=MIN_ROWS).shape[0]
            labels = None if raw_labels is None else check_labels(raw_labels, n, args.labels)
            todo.append((key, attrs, labels))
        for key, attrs, labels in todo:
            r = run_job(diagnose_cached(ws, key, params, labels, recompute=args.recompute),
                        desc=f"diagnose {attrs.get('model', key[:8])}", quiet=args.quiet)
            r.setdefault("embedding", key)
            r.setdefault("model", attrs.get("model"))
            r.setdefault("layer", attrs.get("layer"))
            results.append(r)
    if args.json:
        js = [to_json(r) for r in results]
        print(json.dumps(js[0] if len(js) == 1 else js))
    else:
        for r in results:
            _print_text(r)
    return 0
