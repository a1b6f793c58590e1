"""``embedding-explorer warmup``: compile and cache the numba kernels a first map needs, so
the first UMAP in the app is not slowed by compilation (TRAPS.md #2)."""

from __future__ import annotations

import argparse
import json


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("warmup", help="compile and cache UMAP's numba kernels",
                              description="Compile UMAP's (and pynndescent's) numba kernels into the on-disk cache.")
    p.add_argument("--json", action="store_true", help="print the timings as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args) -> int:
    from explorer.core.jobs import run_job
    from explorer.maps import warmup

    t = run_job(warmup(), desc="warm-up", quiet=args.quiet)
    if args.json:
        print(json.dumps(t))
    else:
        print(f"warm-up done in {t['total']:.1f} s (umap import {t['import']:.1f} s, kernels {t['umap']:.1f} s); "
              f"cache {t['cache_dir']}")
    return 0
