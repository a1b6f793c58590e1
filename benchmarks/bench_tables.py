"""Opening a CSV of vectors: the numpy.loadtxt path against the csv-module path.

    python benchmarks/bench_tables.py            # 20k x 384 (about a minute on 2 CPU cores)
    python benchmarks/bench_tables.py --quick    # 2k x 384, a smoke test

The same N x 384 float32 vectors (``%.9g``, exact) are written twice, as a plain CSV and with
the ids quoted; quotes send a file through Python's csv module (``vectors_from_rows``), a plain
file through ``numpy.loadtxt`` (``fast_vectors``). Both are opened with ``open_dataset`` in
alternation; the figures are medians of the repeats, with ``numpy.loadtxt`` alone on the same
plain file as the peer. Both paths must give the written vectors exactly.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    n = 2000 if a.quick else 20000
    from explorer.data import open_dataset

    v = np.random.default_rng(0).standard_normal((n, 384)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        plain, quoted = Path(tmp) / "plain.csv", Path(tmp) / "quoted.csv"
        head = "id," + ",".join(f"embedding_{k}" for k in range(384))
        body = [",".join(f"{x:.9g}" for x in row) for row in v]
        plain.write_text("\n".join([head] + [f"r{i},{b}" for i, b in enumerate(body)]) + "\n")
        quoted.write_text("\n".join([head] + [f'"r{i}",{b}' for i, b in enumerate(body)]) + "\n")
        times: dict = {"loadtxt path": [], "csv-module path": [], "numpy.loadtxt alone": []}
        for _ in range(a.repeats):
            t = time.perf_counter()
            ds = open_dataset(plain)
            times["loadtxt path"].append(time.perf_counter() - t)
            assert np.array_equal(ds.vectors(), v)
            t = time.perf_counter()
            ds = open_dataset(quoted)
            times["csv-module path"].append(time.perf_counter() - t)
            assert np.array_equal(ds.vectors(), v)
            t = time.perf_counter()
            np.loadtxt(plain, delimiter=",", skiprows=1, usecols=range(1, 385), dtype=np.float64)
            times["numpy.loadtxt alone"].append(time.perf_counter() - t)
    print(f"open a {n} x 384 CSV (median of {a.repeats}):")
    for k, ts in times.items():
        print(f"  {k:22s} {statistics.median(ts):7.2f} s")


if __name__ == "__main__":
    main()
