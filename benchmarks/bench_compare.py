"""Comparison table for two models of 50k x 768.

    python benchmarks/bench_compare.py [--n 50000] [--d 768] [--repeats 3] [--knn-points 2000] [--threads N]

Prints the median wall time of ``compare`` (linear / debiased / RBF CKA, mutual k-NN,
Procrustes, SVCCA, k-NN Jaccard on ``--knn-points`` sampled queries among all points) with
per-stage medians and, as the peer in the same run and interleaved with it, the median time of
numpy's float64 X^T Y for the same pair, with the ratio. ``--threads`` sets torch's and the
BLAS libraries' thread count for both (default: all cores). One untimed warm-up first.
Goal (issue 7): < 10 s on a 2-core CPU.

What is sampled (printed from ``result['sampling']``, with the standard errors of the two
sampled means): the neighbour measures on 2,000 random query points (neighbours among all
50,000), RBF CKA on 2,000 random rows; the linear measures and SVCCA use all rows.

Measured on the shared 2-core development machine (medians of 3, peer in the same run):
  before (8ceeec6, old script, 2 threads, load ~4): 32.9 s; peer 3.19 s; ratio 10.3
    (the first helper's run: 40.8 s)
  after, 2 threads, load 1.8: 5.30 s (linear 1.97, svcca 0.26, rbf_cka 0.42, knn 2.65);
    peer 0.65 s; ratio 8.2
  after, 2 threads, load 4.3: 14.8 s; peer 2.26 s; ratio 6.5
  after, 1 thread, load 3.2: 9.14 s; peer 1.81 s; ratio 5.0
  The exact k-NN of the 2 x 2,000 sampled queries among 50,000 (explorer.neighbors.knn_search)
  is half the time and is GEMM-bound (2 x 7.7e10 multiply-adds).
"""

import argparse
import os
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
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()

    import torch
    from threadpoolctl import threadpool_limits

    from explorer.core.jobs import drain
    from explorer.metrics.compare import COMPARE_KEYS, CompareParams, compare

    torch.set_num_threads(a.threads)
    r = np.random.default_rng(0)
    A = r.standard_normal((a.n, a.d), dtype=np.float32)
    Q, _ = np.linalg.qr(r.standard_normal((a.d, a.d)))
    B = (A @ Q.astype(np.float32) + 0.5 * r.standard_normal((a.n, a.d), dtype=np.float32))
    params = CompareParams(device=a.device, knn_points=a.knn_points or None)
    A64, B64 = A.astype(np.float64), B.astype(np.float64)
    times, peer, stages, res = [], [], {}, None
    with threadpool_limits(a.threads):
        drain(compare(A[:3000], B[:3000], params))                     # warm-up
        for _ in range(a.repeats):
            t = time.perf_counter()
            res = drain(compare(A, B, params))
            times.append(time.perf_counter() - t)
            for k, v in res["timings"].items():
                stages.setdefault(k, []).append(v)
            t = time.perf_counter()
            A64.T @ B64
            peer.append(time.perf_counter() - t)
    med = statistics.median(times)
    pm = statistics.median(peer)
    print(f"compare 2 x {a.n} x {a.d} on {res['device']}, {a.threads} thread(s): median {med:.2f} s over "
          f"{a.repeats} (runs: {', '.join(f'{t:.2f}' for t in times)}); load average {os.getloadavg()[0]:.1f}")
    print("  stage medians:", ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in stages.items()))
    print("  sampling:", res["sampling"])
    print("  " + ", ".join(f"{k} {res[k]:.4f}" for k in COMPARE_KEYS))
    print(f"peer: numpy float64 X^T Y of the pair, interleaved: median {pm:.2f} s "
          f"(runs: {', '.join(f'{t:.2f}' for t in peer)}); compare / peer = {med / pm:.2f}")


if __name__ == "__main__":
    main()
