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


def data(n, d, seed=0, n_clusters=30, latent=4):
    """Clustered data with structure inside each cluster: point = centre + a random linear image
    of a 4-D Gaussian latent + small isotropic noise. (Isotropic blobs have no local structure,
    so 10-NN preservation is at chance level for any layout and cannot tell layouts apart.)"""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_clusters, d)) * 4.0
    A = rng.normal(size=(n_clusters, latent, d)) / np.sqrt(latent)
    c = rng.integers(0, n_clusters, n)
    L = rng.normal(size=(n, latent))
    X = centers[c] + np.einsum("nl,nld->nd", L, A[c]) + 0.1 * rng.normal(size=(n, d))
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
    from explorer.core.resources import setup_numba_cache
    setup_numba_cache()
    from explorer.core.jobs import drain
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
    ap.add_argument("--seeded", action="store_true", help="also compare seed=0 runs (serial epochs)")
    ap.add_argument("--epochs", default="", help="comma list of extra n_epochs variants of ours")
    a = ap.parse_args()
    skip = set(a.skip.split(","))
    from explorer.core.resources import setup_numba_cache

    setup_numba_cache()
    if "umap" not in skip:
        import umap
        from sklearn.manifold import trustworthiness

        from explorer.core.jobs import drain
        from explorer.maps import MapParams, make_layout, projection_trust, warmup
        from explorer.neighbors import KnnParams, knn_graph

        X = data(a.n, a.dim)
        print(f"== UMAP of {a.n} x {a.dim} clustered float32 (umap-learn {umap.__version__}), "
              f"load average {os.getloadavg()}")
        drain(warmup())
        umap.UMAP(n_epochs=5).fit(X[:5000])  # compile umap-learn's own kernels + pynndescent
        exact = drain(knn_graph(X, KnnParams(k=10, metric="euclidean", method="exact")))
        sub = np.random.default_rng(1).choice(a.n, 5000, replace=False)

        def quality(Y):
            return (trustworthiness(X[sub], Y[sub], n_neighbors=10),
                    float(projection_trust(exact.indices, Y, 10).mean()))

        variants = {"umap-learn defaults": lambda: umap.UMAP().fit_transform(X),
                    "ours (graph + layout)": lambda: drain(make_layout(X, MapParams(metric="euclidean", seed=None)))}
        if a.seeded:
            variants["umap-learn seed=0"] = lambda: umap.UMAP(random_state=0).fit_transform(X)
            variants["ours seed=0"] = lambda: drain(make_layout(X, MapParams(metric="euclidean", seed=0)))
        for ep in [int(e) for e in a.epochs.split(",") if e]:
            variants[f"ours n_epochs={ep}"] = (lambda ep=ep: drain(make_layout(
                X, MapParams(metric="euclidean", seed=None, n_epochs=ep))))
        runs = {k: [] for k in variants}
        outs, loads = {}, []
        for _ in range(a.repeats):  # interleaved, so load changes hit every variant alike
            for name, fn in variants.items():
                t0 = time.perf_counter()
                outs[name] = fn()
                runs[name].append(time.perf_counter() - t0)
                loads.append(os.getloadavg()[0])
        med = {k: statistics.median(v) for k, v in runs.items()}
        base = med["umap-learn defaults"]
        rows = []
        for name in variants:
            out = outs[name]
            Y = out if isinstance(out, np.ndarray) else out.coords
            tw, pres = quality(Y)
            stages = "" if isinstance(out, np.ndarray) else (
                f" graph {out.info['graph_method']} ({out.info.get('graph_seconds', float('nan')):.1f} s, "
                f"recall {out.info['graph_recall']:.4f}), layout {json.dumps({k: round(v, 2) for k, v in out.info['seconds'].items()})}")
            rows.append((name, med[name], base / med[name], tw, pres))
            print(f"{name:24s} median {med[name]:6.2f} s (runs {', '.join(f'{t:.2f}' for t in runs[name])});{stages}")
        print(f"load average (1 min) during the runs: min {min(loads):.1f}, max {max(loads):.1f}")
        print(f"\n{'variant':24s} {'median s':>9s} {'speed-up':>9s} {'trust@10':>9s} {'10-NN pres':>11s}")
        for name, m, sp, tw, pres in rows:
            print(f"{name:24s} {m:9.2f} {sp:8.2f}x {tw:9.4f} {pres:11.4f}")
        print("(speed-up = umap-learn defaults median / variant median; trust@10 = sklearn trustworthiness on "
              "5000 points; 10-NN pres = mean fraction of each point's exact 10-NN kept among its 10-NN in the map)")
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
