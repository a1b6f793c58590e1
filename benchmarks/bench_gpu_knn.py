"""Exact all-points k-NN on a GPU against the plain torch loop a user would write.

    python benchmarks/bench_gpu_knn.py [--n 1000000] [--dim 384] [--k 10] [--repeats 1]

The plain loop: 8,192-row query blocks, ``normalize`` then ``q @ Z.T`` in float32 (TF32 off,
PyTorch's default for matrix products) and ``topk(k + 1)``, self dropped. Ours:
``knn_graph_exact(..., device="cuda")`` with its default block budget, and with the 512 MB
budget it used before (128-row blocks at 1M). Both are checked against a float64 search of
200 sampled rows: the neighbour sets must be identical (ties at the k-th score aside).
Prints one JSON line per figure (medians of ``--repeats``), with the device's name.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def plain_loop(Z, k: int, block: int = 8192):
    import torch

    dev = torch.device("cuda")
    X = torch.nn.functional.normalize(torch.from_numpy(Z).to(dev), dim=1)
    out = np.empty((len(Z), k), dtype=np.int64)
    for r0 in range(0, len(Z), block):
        S = X[r0:r0 + block] @ X.T
        rows = torch.arange(S.shape[0], device=dev)
        S[rows, rows + r0] = -float("inf")
        out[r0:r0 + block] = S.topk(k, dim=1).indices.cpu().numpy()
    torch.cuda.synchronize()
    return out


def float64_sets(Z, rows, k: int):
    X = Z.astype(np.float64)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    S = X[rows] @ X.T
    S[np.arange(len(rows)), rows] = -np.inf
    return S


def agree(idx, S, rows, k: int) -> float:
    """Share of sampled rows whose neighbours score as high as float64's k best (ties allowed)."""
    ok = 0
    for r, i in enumerate(rows):
        kth = np.sort(S[r])[::-1][k - 1]
        ok += bool(np.all(S[r, idx[i]] >= kth - 1e-7))
    return ok / len(rows)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--skip-old", action="store_true", help="skip the 512 MB budget run")
    a = ap.parse_args()
    import torch

    from explorer.core.jobs import drain
    from explorer.neighbors.search import knn_graph_exact

    rng = np.random.default_rng(0)
    centers = rng.standard_normal((100, a.dim)).astype(np.float32) * 2
    Z = centers[rng.integers(0, 100, a.n)] + rng.standard_normal((a.n, a.dim)).astype(np.float32)
    rows = rng.choice(a.n, 200, replace=False)
    S = float64_sets(Z, rows, a.k)
    dev = torch.cuda.get_device_name()
    runs = {"plain": lambda: plain_loop(Z, a.k),
            "ours": lambda: drain(knn_graph_exact(Z, a.k, "cosine", "cuda"))[0]}
    if not a.skip_old:
        runs["ours_512MB"] = lambda: drain(knn_graph_exact(Z, a.k, "cosine", "cuda", memory_mb=512))[0]
    times = {name: [] for name in runs}
    found = {}
    runs["plain"]()  # warm-up: CUDA context, cuBLAS handles
    for _ in range(a.repeats):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            found[name] = fn()
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["plain"])
    for name in runs:
        t = statistics.median(times[name])
        print(json.dumps({"figure": f"exact self {a.k}-NN {a.n}x{a.dim} cosine", "device": dev, "run": name,
                          "seconds": round(t, 2), "ratio_to_plain": round(t / base, 3),
                          "agree_float64": agree(found[name], S, rows, a.k)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
