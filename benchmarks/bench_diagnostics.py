"""All collapse diagnostics of a 100k x 2048 embedding (pairwise metrics subsampled), with labels.

    python benchmarks/bench_diagnostics.py [--n 100000] [--d 2048] [--repeats 3] [--device cpu]

Prints the median wall time of ``diagnose`` (every metric, probes included) and, measured in the
same run as the peer, the median time of one exact covariance eigendecomposition of the same
data by scikit-learn's PCA (svd_solver="covariance_eigh"), with their ratio. Goal: < 10 s on a
2-core CPU.
"""

import argparse
import statistics
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--d", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-peer", action="store_true")
    a = ap.parse_args()

    from explorer.jobs import drain
    from explorer.metrics.diagnose import DiagnoseParams, diagnose

    r = np.random.default_rng(0)
    y = r.integers(0, 10, a.n)
    # 64 strong directions + isotropic noise + class offsets: a mildly collapsed space
    Z = (r.standard_normal((a.n, 64), dtype=np.float32) @ r.standard_normal((64, a.d), dtype=np.float32)
         + 0.3 * r.standard_normal((a.n, a.d), dtype=np.float32)
         + 2 * r.standard_normal((10, a.d), dtype=np.float32)[y])
    params = DiagnoseParams(device=a.device)
    times, res = [], None
    for _ in range(a.repeats):
        t = time.perf_counter()
        res = drain(diagnose(Z, y, params))
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    print(f"diagnose {a.n} x {a.d} on {res['device']}: median {med:.2f} s over {a.repeats} "
          f"(runs: {', '.join(f'{t:.2f}' for t in times)})")
    print("  stages (last run):", ", ".join(f"{k} {v:.2f}" for k, v in res["timings"].items()))
    print("  sampling:", res["sampling"])
    print(f"  verdict: {res['verdict']['summary']}; rankme {res['rankme']:.1f}, knn {res['knn_accuracy']:.3f}, "
          f"linear {res['linear_probe_accuracy']:.3f}")
    if not a.no_peer:
        from sklearn.decomposition import PCA

        pt = []
        for _ in range(a.repeats):
            t = time.perf_counter()
            PCA(svd_solver="covariance_eigh").fit(Z)
            pt.append(time.perf_counter() - t)
        pm = statistics.median(pt)
        print(f"peer: sklearn PCA(covariance_eigh) of the same data: median {pm:.2f} s; "
              f"diagnose / peer = {med / pm:.2f}")


if __name__ == "__main__":
    main()
