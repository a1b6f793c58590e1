"""All collapse diagnostics of a 100k x 2048 embedding (pairwise metrics subsampled), with labels.

    python benchmarks/bench_diagnostics.py [--n 100000] [--d 2048] [--repeats 3] [--threads N]

Prints the median wall time of ``diagnose`` (every metric, probes included) with per-stage
medians and, measured in the same run and interleaved with it (repeat i runs both), the median
time of one exact covariance eigendecomposition of the same data by scikit-learn's PCA
(svd_solver="covariance_eigh"), and their ratio. ``--threads`` sets torch's and the BLAS
libraries' thread count for both (default: all cores). One untimed warm-up run first (imports,
first-use costs). Goal (issue 6): < 10 s on a 2-core CPU.

What is sampled (also printed from ``result['sampling']``): the d x d second moments (spectrum,
RankMe, alpha-ReQ) on 25,600 random rows (Garrido et al.'s RankMe sample size), pairwise
statistics and intrinsic dimension on 4,096 random points, probes on 10,000 / 2,000 points;
per-dimension statistics, mean cosine and both SIGReg values use all rows.

Measured on the shared 2-core development machine (other jobs running; medians of 3 after a
warm-up, peer interleaved in the same run):
  before (8ceeec6, old script, 2 threads, load ~2): 43.0 s; peer 3.42 s; ratio 12.6
    (the first helper's run under heavier load: 236 s vs peer 28.9 s)
  after, 2 threads, load 1.6: 8.17 s (stages: moments 1.68, sigreg 0.44, spectrum 1.52,
    rankme 1.43, pairwise 0.88, neighbours 0.52, knn 0.61, linear 0.71, classes 0.32);
    peer 3.40 s; ratio 2.40
  after, 1 thread, load 3.4: 15.9 s; peer 6.18 s; ratio 2.58
  With busy cores (load > 4) two OpenMP threads were 2-8x slower than one for the O(n d)
  elementwise stages (barrier waits on a descheduled thread): try --threads 1 there.
"""

import argparse
import os
import statistics
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--d", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--no-peer", action="store_true")
    a = ap.parse_args()

    import torch
    from threadpoolctl import threadpool_limits

    from explorer.core.jobs import drain
    from explorer.metrics.diagnose import DiagnoseParams, diagnose

    torch.set_num_threads(a.threads)
    r = np.random.default_rng(0)
    y = r.integers(0, 10, a.n)
    # 64 strong directions + isotropic noise + class offsets: 99% of the variance in ~72 of 2048
    # dimensions, but every direction keeps some variance (numerical rank 2048: no collapse)
    Z = (r.standard_normal((a.n, 64), dtype=np.float32) @ r.standard_normal((64, a.d), dtype=np.float32)
         + 0.3 * r.standard_normal((a.n, a.d), dtype=np.float32)
         + 2 * r.standard_normal((10, a.d), dtype=np.float32)[y])
    params = DiagnoseParams(device=a.device)
    times, peer, stages, res = [], [], {}, None
    with threadpool_limits(a.threads):
        drain(diagnose(Z[:5000], y[:5000], params))                     # warm-up: imports, first use
        for _ in range(a.repeats):
            t = time.perf_counter()
            res = drain(diagnose(Z, y, params))
            times.append(time.perf_counter() - t)
            for k, v in res["timings"].items():
                stages.setdefault(k, []).append(v)
            if not a.no_peer:
                from sklearn.decomposition import PCA

                t = time.perf_counter()
                PCA(svd_solver="covariance_eigh").fit(Z)
                peer.append(time.perf_counter() - t)
    med = statistics.median(times)
    print(f"diagnose {a.n} x {a.d} on {res['device']}, {a.threads} thread(s): median {med:.2f} s over "
          f"{a.repeats} (runs: {', '.join(f'{t:.2f}' for t in times)}); load average {os.getloadavg()[0]:.1f}")
    print("  stage medians:", ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in stages.items()))
    print("  sampling:", res["sampling"])
    print(f"  verdict: {res['verdict']['summary']}; rankme {res['rankme']:.1f}, sigreg {res['sigreg']:.3g}, "
          f"knn {res['knn_accuracy']:.3f}, linear {res['linear_probe_accuracy']:.3f}")
    if peer:
        pm = statistics.median(peer)
        print(f"peer: sklearn PCA(covariance_eigh) of the same data, interleaved: median {pm:.2f} s "
              f"(runs: {', '.join(f'{t:.2f}' for t in peer)}); diagnose / peer = {med / pm:.2f}")


if __name__ == "__main__":
    main()
