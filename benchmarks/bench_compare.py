"""Comparison table for two models of 50k x 768.

    python benchmarks/bench_compare.py [--n 50000] [--d 768] [--repeats 3] [--knn-points 2000]

Prints the median wall time of ``compare`` (linear / debiased / RBF CKA, mutual k-NN,
Procrustes, SVCCA, k-NN Jaccard on ``--knn-points`` sampled queries among all points) and, as
the peer in the same run, the median time of numpy's float64 X^T Y for the same pair, with the
ratio. Goal: < 10 s on a 2-core CPU.
"""

import argparse
import statistics
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--d", type=int, default=768)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--knn-points", type=int, default=2000)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()

    from explorer.jobs import drain
    from explorer.metrics.compare import COMPARE_KEYS, CompareParams, compare

    r = np.random.default_rng(0)
    A = r.standard_normal((a.n, a.d), dtype=np.float32)
    Q, _ = np.linalg.qr(r.standard_normal((a.d, a.d)))
    B = (A @ Q.astype(np.float32) + 0.5 * r.standard_normal((a.n, a.d), dtype=np.float32))
    params = CompareParams(device=a.device, knn_points=a.knn_points or None)
    times, res = [], None
    for _ in range(a.repeats):
        t = time.perf_counter()
        res = drain(compare(A, B, params))
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    print(f"compare 2 x {a.n} x {a.d} on {res['device']}: median {med:.2f} s over {a.repeats} "
          f"(runs: {', '.join(f'{t:.2f}' for t in times)})")
    print("  stages (last run):", ", ".join(f"{k} {v:.2f}" for k, v in res["timings"].items()))
    print("  sampling:", res["sampling"])
    print("  " + ", ".join(f"{k} {res[k]:.4f}" for k in COMPARE_KEYS))
    pt = []
    A64, B64 = A.astype(np.float64), B.astype(np.float64)
    for _ in range(a.repeats):
        t = time.perf_counter()
        A64.T @ B64
        pt.append(time.perf_counter() - t)
    pm = statistics.median(pt)
    print(f"peer: numpy float64 X^T Y of the pair: median {pm:.2f} s; compare / peer = {med / pm:.2f}")


if __name__ == "__main__":
    main()
