"""Embedding throughput with 1 and 2 workers (``embed --launcher torchrun``) against the plain
single-process ``embed``, and the scaling efficiency.

    python benchmarks/bench_cluster_embed.py [--repeats 3] [--ray]

Data: the sample digits (1,797 PNGs, 32x32) with sample_data/checkpoints/healthy.pt, on the CPU,
batch 64, no DataLoader worker processes, one OpenMP thread per process. Each configuration runs as a whole command in a fresh
workspace, ``--repeats`` times, interleaved; reported: medians of the wall time of the command
and of the engine time the record stores (``seconds``: embedding + shard files + merge for the
sharded runs), throughput = items / engine time, and scaling efficiency
= T(1 worker) / (2 x T(2 workers)). With ``--ray``: the same on a local Ray instance with 2 actors.

This machine has 2 CPU cores shared with other work and no GPU, so these are the figures of
2 processes on 2 busy cores, not of 2 GPUs; no multi-GPU machine was available.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "sample_data" / "digits"
CKPT = ROOT / "sample_data" / "checkpoints" / "healthy.pt"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(config: str, folder: Path) -> dict:
    ws = folder / f"{config}-{time.time_ns()}.h5"
    base = ["-m", "explorer.cli", "embed", "--data", str(DATA), "--encoder", str(CKPT), "--workspace", str(ws),
            "--batch-size", "64", "--workers", "0", "--device", "cpu", "--quiet", "--json"]
    if config == "local":
        cmd = [sys.executable, *base]
    elif config.startswith("torchrun"):
        n = config[-1]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", n, "--master-addr", "127.0.0.1",
               "--master-port", str(_port()), *base, "--launcher", "torchrun"]
    else:  # ray-2
        cmd = [sys.executable, *base, "--launcher", "ray", "--address", "local", "--ray-actors", "2"]
    # one thread per process everywhere (torchrun sets this for 2 ranks; on 2 busy cores a
    # second OpenMP thread per process only adds contention), so workers are the one variable
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{config}: {r.stderr[-2000:]}")
    s = json.loads([ln for ln in r.stdout.splitlines() if ln.startswith("{")][-1])
    return {"wall": wall, "engine": float(s["seconds"]), "n": int(s["n"])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ray", action="store_true")
    a = ap.parse_args()
    configs = ["local", "torchrun-1", "torchrun-2"] + (["ray-2"] if a.ray else [])
    folder = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    res: dict = {c: [] for c in configs}
    try:
        for _ in range(a.repeats):
            for c in configs:
                res[c].append(run(c, folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    out = {}
    for c, rs in res.items():
        eng = statistics.median(r["engine"] for r in rs)
        out[c] = {"wall_s": round(statistics.median(r["wall"] for r in rs), 2), "engine_s": round(eng, 2),
                  "items_per_s": round(rs[0]["n"] / eng, 1), "runs": len(rs)}
    t1, t2 = out["torchrun-1"]["engine_s"], out["torchrun-2"]["engine_s"]
    out["scaling_efficiency_2_workers"] = round(t1 / (2 * t2), 2)
    out["scaling_efficiency_wall"] = round(out["torchrun-1"]["wall_s"] / (2 * out["torchrun-2"]["wall_s"]), 2)
    out["note"] = "CPU, 2 cores shared with other agents; no multi-GPU machine available"
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
