"""Map figures (issue 3), same run, medians of repeats.

    python benchmarks/bench_maps.py [--n 70000] [--dim 128] [--repeats 2] [--skip umap,warmup]

1. UMAP of N x D clustered data: umap-learn with its defaults (``UMAP().fit_transform``: its
   own pynndescent graph, parallel SGD since no seed) vs our pipeline (our k-NN graph, then
   umap-learn's kernels epoch by epoch, seed=None so also parallel). Both runs after a warm-up
   in this process (compile excluded). Quality on a 5000-point subsample: sklearn
   trustworthiness (k=10), and 10-NN preservation: mean fraction of each point's exact
   high-dimensional 10-NN among its 10-NN in the map (all points), for both; plus the overlap
   of the two maps' 10-NN lists.
2. numba compile cost for the first UMAP of 20k points: a fresh process with an empty
   NUMBA_CACHE_DIR (cold), a fresh process with the cache filled by the cold run (cached), and
   a second UMAP in the same process (warm). For umap-learn's own ``UMAP.fit`` and for ours.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np


def data(n, d, seed=0, n_clusters=30):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_clusters, d)) * 2.0
    X = centers[rng.integers(0, n_clusters, n)] + rng.normal(size=(n, d))
    return X.astype(np.float32)


CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
sys.path.insert(0, os.getcwd())
import numpy as np
which, n = sys.argv[1], int(sys.argv[2])
from benchmarks.bench_maps import data
X = data(n, 64, seed=3)
out = {}
if which == "umap-learn":
    import umap
    out["import"] = time.perf_counter() - t0
    for name in ("first", "second"):
        t = time.perf_counter(); umap.UMAP(random_state=0).fit(X); out[name] = time.perf_counter() - t
else:
    from explorer.resources import setup_numba_cache
    setup_numba_cache()
    from explorer.jobs import drain
    from explorer.maps import MapParams, make_layout
    import umap
    out["import"] = time.perf_counter() - t0
    for name in ("first", "second"):
        t = time.perf_counter(); drain(make_layout(X, MapParams(seed=0, metric="euclidean"))); out[name] = time.perf_counter() - t
out["process_total"] = time.perf_counter() - t0
print("RESULT " + json.dumps(out))
"""


def child(which, n, cache):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache, EMBEDDING_EXPLORER_CACHE=cache)
    r = subprocess.run([sys.executable, "-c", CHILD, which, str(n)], env=env, capture_output=True, text=True,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(r.stderr[-2000:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=70_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--warm-n", type=int, default=20_000)
    ap.add_argument("--skip", default="")
    a = ap.parse_args()
    skip = set(a.skip.split(","))
    from explorer.resources import setup_numba_cache

    setup_numba_cache()
    if "umap" not in skip:
        import umap
        from sklearn.manifold import trustworthiness

        from explorer.jobs import drain
        from explorer.maps import MapParams, make_layout, projection_trust, warmup
        from explorer.neighbors import KnnParams, knn_graph

        X = data(a.n, a.dim)
        print(f"== UMAP of {a.n} x {a.dim} clustered float32 (umap-learn {umap.__version__})")
        drain(warmup())
        umap.UMAP(n_epochs=5).fit(X[:5000])  # compile umap-learn's own kernels + pynndescent
        exact = drain(knn_graph(X, KnnParams(k=10, metric="euclidean", method="exact")))

        def default():
            return umap.UMAP().fit_transform(X)

        def ours():
            lay = drain(make_layout(X, MapParams(metric="euclidean", seed=None)))
            return lay

        runs = {"umap-learn defaults": [], "ours (graph + layout)": []}
        outs = {}
        for _ in range(a.repeats):
            for name, fn in (("umap-learn defaults", default), ("ours (graph + layout)", ours)):
                t0 = time.perf_counter()
                outs[name] = fn()
                runs[name].append(time.perf_counter() - t0)
        lay = outs["ours (graph + layout)"]
        Yd, Yo = outs["umap-learn defaults"], lay.coords
        sub = np.random.default_rng(1).choice(a.n, 5000, replace=False)
        med = {k: statistics.median(v) for k, v in runs.items()}
        for name in runs:
            Y = Yd if name.startswith("umap") else Yo
            tw = trustworthiness(X[sub], Y[sub], n_neighbors=10)
            pres = float(projection_trust(exact.indices, Y, 10).mean())
            print(f"{name:24s} median {med[name]:6.2f} s (runs {', '.join(f'{t:.2f}' for t in runs[name])}); "
                  f"trustworthiness@10 {tw:.4f}; 10-NN preservation {pres:.4f}")
        print(f"speed-up ours vs defaults: {med['umap-learn defaults'] / med['ours (graph + layout)']:.2f}x")
        from scipy.spatial import cKDTree

        _, nd = cKDTree(Yd).query(Yd, 11)
        _, no = cKDTree(Yo).query(Yo, 11)
        ov = np.mean([len(set(p[1:]) & set(q[1:])) / 10 for p, q in zip(nd[sub], no[sub])])
        print(f"10-NN overlap between the two maps (5000 points): {ov:.4f}")
        print(f"our stages: {json.dumps(lay.info.get('seconds'))}, graph {lay.info['graph_method']} "
              f"recall {lay.info['graph_recall']:.4f}")
    if "warmup" not in skip:
        print(f"\n== numba compile cost: first UMAP of {a.warm_n} points in a fresh process")
        for which in ("umap-learn", "ours"):
            cache = tempfile.mkdtemp(prefix="nbc_")
            try:
                cold = child(which, a.warm_n, cache)
                cached = child(which, a.warm_n, cache)
            finally:
                shutil.rmtree(cache, ignore_errors=True)
            print(f"{which:11s} cold (empty cache): import {cold['import']:.1f} s + first {cold['first']:.1f} s | "
                  f"cached: import {cached['import']:.1f} s + first {cached['first']:.1f} s | "
                  f"warm (2nd in process): {cached['second']:.1f} s")


if __name__ == "__main__":
    main()
