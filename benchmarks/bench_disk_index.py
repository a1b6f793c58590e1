"""The on-disk neighbour index of an out-of-core embedding (issue 20): build time and peak
memory (a fresh process that reads the vectors block by block from a memory-mapped .npy, never
all at once), then per-query latency and recall@10 against exact search, and the peer: the
exact block scan of every row from disk (:func:`explorer.scale.out_of_core.scan_neighbors`,
what the window could do before).

    python benchmarks/bench_disk_index.py /tmp/perf1m/blobs_1m.npy --index /tmp/ix --queries 200

The recall reference is the exact engine on the whole matrix in memory (float32 ranking,
checked against float64 brute force in the test suite).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BUILD = r"""
import json, resource, sys, time
import numpy as np
sys.path.insert(0, sys.argv[3])
from explorer.core.jobs import drain
from explorer.scale.disk_index import DiskIvf
Z = np.load(sys.argv[1], mmap_mode="r")
t = time.perf_counter()
ix = drain(DiskIvf.build(Z, sys.argv[2], sys.argv[4]))
print(json.dumps({"build_s": round(time.perf_counter() - t, 2), "max_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
                  "nlist": ix.nlist, "nprobe": ix.nprobe, "predicted_recall": ix.predicted_recall,
                  "fraction_scanned": ix.info["fraction_scanned"]}))
"""


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("vectors")
    ap.add_argument("--index", default="/tmp/bench_disk_index")
    ap.add_argument("--metric", default="cosine")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--peer-queries", type=int, default=5)
    a = ap.parse_args(argv)
    shutil.rmtree(a.index, ignore_errors=True)
    r = subprocess.run([sys.executable, "-c", BUILD, a.vectors, a.index, str(ROOT), a.metric],
                       capture_output=True, text=True, check=True)
    built = json.loads(r.stdout.strip().splitlines()[-1])
    print("build (fresh process):", json.dumps(built), flush=True)

    from explorer.core.jobs import drain
    from explorer.neighbors.search import exact_rows
    from explorer.scale.disk_index import DiskIvf
    from explorer.scale.out_of_core import scan_neighbors

    Z = np.load(a.vectors, mmap_mode="r")
    ix = DiskIvf(a.index, source=Z)
    rows = np.sort(np.random.default_rng(7).choice(len(Z), a.queries, replace=False))
    lat, got = [], []
    for i in rows:
        t = time.perf_counter()
        idx, _ = ix.search(np.asarray(Z[i]), k=10, exclude=int(i))
        lat.append(time.perf_counter() - t)
        got.append(idx)
    ex, _ = exact_rows(np.asarray(Z, dtype=np.float32), rows, 10, a.metric)
    recall = float(np.mean([len(set(g) & set(e)) / 10 for g, e in zip(got, ex)]))
    peer = []
    for i in rows[: a.peer_queries]:
        t = time.perf_counter()
        drain(scan_neighbors(Z, np.asarray(Z[i]), 10, a.metric, exclude=int(i)))
        peer.append(time.perf_counter() - t)
    q, p = statistics.median(lat), statistics.median(peer)
    print(json.dumps({"n": len(Z), "dim": Z.shape[1], "queries": len(rows), "query_ms_median": round(q * 1e3, 2),
                      "query_ms_p90": round(float(np.percentile(lat, 90)) * 1e3, 2), "recall_at_10": recall,
                      "exact_scan_ms_median": round(p * 1e3, 1), "speedup_vs_scan": round(p / q, 1)}))
    shutil.rmtree(a.index, ignore_errors=True)


if __name__ == "__main__":
    main()
