"""Clusters + names of a 1M-point map (issue 19), median of fresh processes.

    python benchmarks/bench_clusters.py [--n 1000000] [--runs 5] [--sample-size 10000]

The map: 40 Gaussian islands of different sizes (1.2-3.7% of the points) and widths (0.4-1.6,
10 apart) plus 5% uniform background noise,
2-D, float32 (what a UMAP of a large dataset looks like to the clusterer), with a label per
island. Each run is a fresh Python process that times

* ``import``: scikit-learn's HDBSCAN and scipy's cKDTree (paid once per app session);
* ``clusters``: :func:`explorer.maps.clusters.find_clusters` (HDBSCAN on the sample, then
  every point to its nearest sampled point);
* ``names``: :func:`explorer.maps.clusters.name_clusters` from the labels (majority + share);
* ``total`` = clusters + names (the figure of the issue), and ``with_import``.

Quality: adjusted Rand index of the clusters against the islands, over the points drawn from
an island and not called noise, and the share of islands recovered as a cluster whose name is
the island's label. The machine's load average is printed before and after: the 2 cores are
shared with other work, so the figures are upper bounds of an idle machine's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np


def make_map(n: int, seed: int = 0, islands: int = 40):
    rng = np.random.default_rng(seed)
    # islands on a jittered 8 x 5 grid, 10 units apart (apart as a UMAP's islands are), each
    # holding 1.2-3.7% of the points (above the default minimum cluster size of 1%)
    gx, gy = np.meshgrid(np.arange(8) * 10.0 - 35, np.arange(5) * 10.0 - 20)
    centres = np.column_stack([gx.ravel(), gy.ravel()])[:islands] + rng.uniform(-2, 2, size=(islands, 2))
    weights = rng.uniform(1.0, 3.0, islands)
    weights /= weights.sum()
    widths = rng.uniform(0.4, 1.6, islands)
    n_noise = n // 20
    y = rng.choice(islands, n - n_noise, p=weights)
    X = centres[y] + rng.normal(size=(len(y), 2)) * widths[y, None]
    noise = rng.uniform(-45, 45, size=(n_noise, 2))
    X = np.vstack([X, noise]).astype(np.float32)
    y = np.concatenate([y, np.full(n_noise, -1)])
    return X, y


CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
sys.path.insert(0, os.getcwd())
import numpy as np
n, sample = int(sys.argv[1]), int(sys.argv[2])
from benchmarks.bench_clusters import make_map
X, y = make_map(n)
from explorer.data.base import Dataset
names = [f"island {k}" for k in range(int(y.max()) + 1)]
ds = Dataset(name="map", source=".", kind="vector", n=n, labels=y, label_names=names)
t = time.perf_counter()
import sklearn.cluster, scipy.spatial  # noqa: F401
t_import = time.perf_counter() - t
from explorer.core.jobs import drain
from explorer.maps.clusters import ClusterParams, find_clusters, name_clusters
t = time.perf_counter()
res = drain(find_clusters(X, ClusterParams(sample_size=sample)))
t_clusters = time.perf_counter() - t
t = time.perf_counter()
cluster_names, how = name_clusters(res.labels, ds)
t_names = time.perf_counter() - t
from sklearn.metrics import adjusted_rand_score
keep = (y >= 0) & (res.labels >= 0)
ari = adjusted_rand_score(y[keep], res.labels[keep])
found = {v for v, s in zip(how["values"], how["shares"]) if v is not None and s >= 0.5}
print(json.dumps({"import": t_import, "clusters": t_clusters, "names": t_names,
                  "total": t_clusters + t_names, "with_import": t_import + t_clusters + t_names,
                  "n_clusters": res.n_clusters, "noise": res.info["noise"], "sampled": res.info["sampled"],
                  "ari": ari, "islands_named": len(found) / len(names)}))
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sample-size", type=int, default=10_000)
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    print(f"load average before: {os.getloadavg()}, cores: {os.cpu_count()}")
    runs = []
    for r in range(args.runs):
        out = subprocess.run([sys.executable, "-c", CHILD, str(args.n), str(args.sample_size)], cwd=root,
                             capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"run {r + 1}: " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                                          for k, v in runs[-1].items()), flush=True)
    med = {k: statistics.median(r[k] for r in runs) for k in ("import", "clusters", "names", "total", "with_import",
                                                                 "ari", "islands_named")}
    print(f"load average after: {os.getloadavg()}")
    print(f"median of {args.runs} fresh runs, {args.n:,} points, HDBSCAN on {args.sample_size:,}: "
          f"clusters {med['clusters']:.2f} s + names {med['names']:.2f} s = {med['total']:.2f} s "
          f"(imports {med['import']:.2f} s more, once per process); ARI vs islands {med['ari']:.3f}, "
          f"islands named {med['islands_named']:.0%}")
    print(json.dumps({"n": args.n, "sample_size": args.sample_size, "runs": runs, "median": med,
                      "time": time.strftime("%Y-%m-%d %H:%M:%S")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
