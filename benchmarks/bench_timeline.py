"""Timeline of a training run: 10 checkpoints embedded on a 5k-point probe set, metrics and
aligned maps, seconds per stage (medians of repeats).

    python benchmarks/bench_timeline.py [--repeats 3] [--probe 5000] [--checkpoints 10]
                                        [--map pca|umap] [--align procrustes|aligned_umap|none]
                                        [--device auto] [--json]

Data: the sample digits (1797 images) grown to 6000 by random shifts and noise (seeded), in an
.npz. Checkpoints: 10 small_cnn checkpoints along the sample run, the weights interpolated
between its first and last epoch (sidecars carry the step); the sample run itself when it has
10 or more. Peer, in the same run: a bare torch loop that forwards the same probe tensor through
each checkpoint's module (batch 256, no hooks, no loader) - the floor for the embed stage.
Each repeat uses a fresh process state except numba's disk cache (UMAP kernels).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_data(folder: Path, n: int = 6000, seed: int = 0) -> Path:
    from explorer.data import open_dataset

    digits = open_dataset(ROOT / "sample_data" / "digits")
    base = digits.images(np.arange(len(digits)), 32)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(digits), n)
    out = np.empty((n, 32, 32, 3), np.uint8)
    for j, i in enumerate(pick):
        dx, dy = rng.integers(-2, 3, 2)
        img = np.roll(np.roll(base[i], dx, axis=1), dy, axis=0).astype(np.int16)
        img += rng.integers(-12, 13, img.shape, dtype=np.int16)
        out[j] = np.clip(img, 0, 255).astype(np.uint8)
    path = folder / "digits6k.npz"
    np.savez(path, x=out, labels=np.asarray(digits.labels)[pick])
    return path


def make_checkpoints(folder: Path, count: int) -> Path:
    import torch

    run = ROOT / "sample_data" / "checkpoints" / "run"
    files = sorted(run.glob("*.pt"))
    if len(files) >= count:
        return run
    first = torch.load(files[0], map_location="cpu", weights_only=True)
    last = torch.load(files[-1], map_location="cpu", weights_only=True)
    meta = json.loads(Path(str(files[0]) + ".json").read_text())
    folder.mkdir(parents=True, exist_ok=True)
    for t, a in enumerate(np.linspace(0.0, 1.0, count)):
        sd = {k: ((1 - a) * v.double() + a * last[k].double()).to(v.dtype) if v.is_floating_point() else
              (last[k] if a > 0.5 else v) for k, v in first.items()}
        name = folder / f"step_{(t + 1) * 100:05d}.pt"
        torch.save(sd, name)
        Path(str(name) + ".json").write_text(json.dumps({**meta, "step": (t + 1) * 100, "epoch": None}))
    return folder


def bare_loop(ckpts: list, dataset, probe_idx: np.ndarray, device: str) -> float:
    """Peer: forward the probe through each checkpoint with a plain torch loop."""
    import torch

    from explorer.core.device import resolve_device
    from explorer.encoders import open_encoder

    dev = resolve_device(device)
    x = dataset.images(probe_idx, 32).astype(np.float32) / 255.0
    x = torch.from_numpy((x - 0.5) / 0.5).permute(0, 3, 1, 2).contiguous()
    t0 = time.perf_counter()
    for p in ckpts:
        m = open_encoder(p).module.to(dev).eval()
        with torch.inference_mode():
            for s in range(0, len(x), 256):
                m(x[s:s + 256].to(dev)).float().cpu()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--probe", type=int, default=5000)
    ap.add_argument("--checkpoints", type=int, default=10)
    ap.add_argument("--map", default="pca", choices=("pca", "umap"))
    ap.add_argument("--align", default="procrustes", choices=("procrustes", "aligned_umap", "none"))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    from explorer.data import open_dataset
    from explorer.core.jobs import drain
    from explorer.app.timeline import TimelineParams, list_checkpoints, probe_indices, timeline_job

    tmp = Path(tempfile.mkdtemp(prefix="bench-timeline-"))
    data = open_dataset(make_data(tmp))
    run = make_checkpoints(tmp / "run", args.checkpoints)
    ckpts = list_checkpoints(run)[: args.checkpoints]
    params = TimelineParams(probe_size=args.probe, device=args.device, map_method=args.map, align=args.align)
    idx = probe_indices(len(data), args.probe, params.seed)
    stages = {k: [] for k in ("open", "embed", "metrics", "layouts", "total", "bare_embed")}
    for r in range(args.repeats):
        t0 = time.perf_counter()
        res = drain(timeline_job(ckpts, data, params))
        total = time.perf_counter() - t0
        for k, v in res.info["timings"].items():
            if k in stages:
                stages[k].append(v)
        stages["total"].append(total)
        stages["bare_embed"].append(bare_loop(ckpts, data, idx, args.device))
        print(f"repeat {r + 1}: total {total:.2f} s, " + ", ".join(
            f"{k} {v:.2f}" for k, v in res.info["timings"].items()) + f"; bare torch loop {stages['bare_embed'][-1]:.2f} s",
            file=sys.stderr)
    med = {k: round(statistics.median(v), 3) for k, v in stages.items() if v}
    summary = {"checkpoints": len(ckpts), "probe": len(idx), "map": args.map, "align": args.align,
               "device": res.info.get("device"), "repeats": args.repeats, "median_seconds": med,
               "embed_vs_bare_loop": round(med["embed"] / med["bare_embed"], 2) if med.get("bare_embed") else None,
               "cka_to_last": [round(x, 3) for x in res.series("linear_cka").tolist()]}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"timeline of {summary['checkpoints']} checkpoints x {summary['probe']} probe points "
              f"({args.map}, {args.align}) on {summary['device']}, median of {args.repeats}:")
        for k in ("open", "embed", "metrics", "layouts", "total"):
            print(f"  {k:8s} {med[k]:8.2f} s")
        print(f"  bare torch forward loop (peer): {med['bare_embed']:.2f} s -> embed stage "
              f"{summary['embed_vs_bare_loop']}x the bare loop")
        print(f"  CKA to last: {summary['cka_to_last']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
