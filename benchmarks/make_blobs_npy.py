"""Write an (N, D) float32 .npy of Gaussian blobs in chunks (bounded memory at any N), for the
1M / 10M map benchmarks (issue 22).

    python benchmarks/make_blobs_npy.py /tmp/perf1m/blobs_1m.npy --n 1000000 --dim 128 --blobs 50

Centres uniform in [-10, 10]^D (scikit-learn ``make_blobs``' box), unit standard deviation;
labels (int16) go to ``<stem>_labels.npy``. Deterministic for a given --seed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--blobs", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunk", type=int, default=250_000)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(a.seed)
    centres = rng.uniform(-10, 10, size=(a.blobs, a.dim)).astype(np.float32)
    out = np.lib.format.open_memmap(a.out, mode="w+", dtype=np.float32, shape=(a.n, a.dim))
    labels = np.empty(a.n, np.int16)
    for s in range(0, a.n, a.chunk):
        e = min(a.n, s + a.chunk)
        r = np.random.default_rng([a.seed, s])
        lab = r.integers(0, a.blobs, e - s)
        out[s:e] = centres[lab] + r.standard_normal((e - s, a.dim), dtype=np.float32)
        labels[s:e] = lab
        out.flush()
    del out
    np.save(str(Path(a.out).with_name(Path(a.out).stem + "_labels.npy")), labels)


if __name__ == "__main__":
    main()
