"""The engine's CPU matrix products: numpy's BLAS against torch's CPU build, same shapes.

    python benchmarks/bench_gemm.py [--repeats 10]

The k-NN engine (exact tiles, recall samples, IVF lists and join) multiplies float32 row
blocks ``A @ B.T`` with d = 64..768. Both libraries ship their own BLAS (numpy: OpenBLAS;
torch's CPU wheel: MKL), and which is faster depends on the processor: on the 2-core AMD EPYC of
this project's measurements, numpy's ran 0.97-2.7x as fast (1.5-2x on most shapes), so the
engine multiplies with numpy (:func:`explorer.neighbors.blocks.gemm_nt`). Prints GFLOP/s (median of ``--repeats``) and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def rate(fn, flop: float, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return flop / statistics.median(times) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=10)
    a = ap.parse_args()
    import torch

    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), numpy {np.__version__}")
    print(f"{'d':>4} {'rows':>6} {'cols':>6} {'torch GFLOP/s':>14} {'numpy GFLOP/s':>14} {'numpy/torch':>12}")
    for d in (64, 128, 384, 768):
        D = np.random.default_rng(0).standard_normal((20000, d)).astype(np.float32)
        Dt = torch.from_numpy(D)
        for m, n in ((1000, 1000), (2048, 4096), (256, 16384), (8192, 1221)):
            out = np.empty((m, n), np.float32)
            outt = torch.from_numpy(out)
            flop = 2.0 * m * n * d
            t = rate(lambda: torch.mm(Dt[:m], Dt[-n:].T, out=outt), flop, a.repeats)
            u = rate(lambda: np.matmul(D[:m], D[-n:].T, out=out), flop, a.repeats)
            print(f"{d:>4} {m:>6} {n:>6} {t:>14.1f} {u:>14.1f} {u / t:>12.2f}")


if __name__ == "__main__":
    main()
