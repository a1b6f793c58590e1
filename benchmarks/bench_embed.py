"""Embedding engine figures: throughput against a bare torch loop, cache hit, peak memory.

    python benchmarks/bench_embed.py            # full run (a few minutes on 2 CPU cores)
    python benchmarks/bench_embed.py --quick    # smaller sizes, for a smoke test

(a) Throughput: the engine (``explorer.embed.embed``) against a bare ``torch`` loop over the
    SAME uint8 tensor and the SAME model on the same device (a 4-conv-block CNN on 32 x 32
    RGB, batch 256). The bare loop does only what any loop must: slice, uint8 -> float,
    normalise, forward under ``inference_mode``, copy rows out. Runs alternate engine/bare and
    the figure is the median of the repeats; ratio = engine images/s / bare images/s (goal >= 0.95).
(b) Cache hit: ``embed_cached`` of a dataset whose 100k x 768 embeddings the workspace already
    holds (dataset read through the real ``.npy`` format, its fingerprint and the encoder's
    weight hash included); goal < 1 s.
(c) Peak memory: each size in a fresh process, images read per batch from an HDF5 file through
    the real ``hdf5`` format; peak RSS growth during the embedding minus the (N, D) float32
    result. Bounded by the batch if 20k and 100k images need about the same.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def small_cnn(out_dim: int = 128):
    import torch
    from torch import nn

    torch.manual_seed(0)
    layers, c = [], 3
    for w in (16, 32, 64, 128):
        layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        c = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, out_dim)]
    return nn.Sequential(*layers).eval()


def make_encoder(module, size=32):
    from explorer.encoders.base import Encoder, Preprocess

    return Encoder(name="small-cnn", source=Path("small_cnn.pt"), format="bench", module=module,
                   preprocess=Preprocess(kind="image", size=size, channels=3,
                                         mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26)))


def mem_images(x):
    from explorer.data.base import Dataset

    class MemImages(Dataset):
        def images(self, indices, size):
            idx = np.asarray(indices)
            return self.x[idx[0]:idx[-1] + 1] if len(idx) and idx[-1] - idx[0] + 1 == len(idx) else self.x[idx]

        def fingerprint(self):
            return hashlib.sha256(self.x.tobytes()).hexdigest()

    ds = MemImages(name="mem", source=Path("memory"), kind="image", n=len(x))
    ds.x = x
    return ds


# -- (a) ---------------------------------------------------------------------------------------
def bench_throughput(n: int, repeats: int, device: str) -> dict:
    import torch

    from explorer.embed import EmbedParams, embed
    from explorer.core.jobs import drain

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    model = small_cnn()
    enc = make_encoder(model)
    ds = mem_images(x)
    dev = torch.device(device)
    model.to(dev)
    pp = enc.preprocess
    xt = torch.from_numpy(x)
    mean = torch.tensor(pp.mean, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(pp.std, device=dev).view(1, 3, 1, 1)
    bs = 256

    def bare():
        out = np.empty((n, 128), np.float32)
        with torch.inference_mode():
            for i in range(0, n, bs):
                b = xt[i:i + bs].to(dev).permute(0, 3, 1, 2).float().div(255.0).sub(mean).div(std)
                out[i:i + bs] = model(b).float().cpu().numpy()
        return out

    def engine():
        return drain(embed(ds, enc, EmbedParams(device=device, batch_size=bs))).vectors

    ref, got = bare(), engine()  # warm-up, and the two must agree
    assert np.allclose(ref, got, rtol=1e-3, atol=1e-4), float(np.abs(ref - got).max())
    t_bare, t_eng = [], []
    for r in range(repeats):
        pair = ((engine, t_eng), (bare, t_bare))
        for fn, acc in (pair if r % 2 == 0 else pair[::-1]):  # alternate who goes first
            t0 = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t0)
    mb, me = statistics.median(t_bare), statistics.median(t_eng)
    ratios = [b / e for b, e in zip(t_bare, t_eng)]
    return {"n": n, "device": device, "threads": torch.get_num_threads(), "repeats": repeats,
            "bare_img_s": n / mb, "engine_img_s": n / me, "ratio_of_medians": mb / me,
            "median_paired_ratio": statistics.median(ratios), "ratios": ratios}


# -- (b) ---------------------------------------------------------------------------------------
def bench_cache_hit(n: int, dim: int, repeats: int, folder: Path) -> dict:
    from explorer.data import open_dataset
    from explorer.embed import EmbedParams, embed_cached, embedding_key
    from explorer.core.jobs import drain
    from explorer.store import Workspace

    rng = np.random.default_rng(1)
    np.save(folder / "images.npy", rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8))
    ds = open_dataset(folder / "images.npy")
    enc = make_encoder(small_cnn(out_dim=dim))
    ws = Workspace(folder / "cache.h5")
    key = embedding_key(ds, enc)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    t0 = time.perf_counter()
    ws.put("embeddings", key, {"vectors": vectors}, {"model": enc.name, "n": n, "dim": dim})
    t_put = time.perf_counter() - t0
    calls = []
    enc.module.register_forward_pre_hook(lambda m, i: calls.append(1))
    times, t_fp, t_load = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ds2 = open_dataset(folder / "images.npy")
        k, v = drain(embed_cached(ws, ds2, enc, EmbedParams(device="cpu")))
        times.append(time.perf_counter() - t0)
        assert k == key and v.shape == (n, dim) and not calls
        t0 = time.perf_counter()
        embedding_key(ds2, enc)
        t_fp.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ws.get("embeddings", key)
        t_load.append(time.perf_counter() - t0)
    assert np.array_equal(v, vectors)
    # cost of one more put on a workspace this size (copy-on-write of the whole file)
    t0 = time.perf_counter()
    ws.put("layouts", "x", {"coords": np.zeros((n, 2), np.float32)}, {})
    t_put2 = time.perf_counter() - t0
    return {"n": n, "dim": dim, "repeats": repeats, "median_s": statistics.median(times),
            "median_fingerprints_s": statistics.median(t_fp), "median_load_s": statistics.median(t_load),
            "first_put_s": t_put, "next_put_s": t_put2,
            "workspace_mb": (folder / "cache.h5").stat().st_size / 1e6}


# -- (c) ---------------------------------------------------------------------------------------
def _rss() -> int:
    """Current resident set size in bytes (Linux /proc; elsewhere the peak so far)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def light_cnn(out_dim: int = 64):
    """A cheap model for the memory run (memory is the point there, not speed)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 4, stride=4), nn.ReLU(), nn.Conv2d(16, 32, 2, stride=2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, out_dim)).eval()


def _child_memory(path: str, n: int, batch: int) -> None:
    """Run in a fresh process: embed the first ``n`` images of the HDF5 file, print JSON.
    A thread samples the RSS every 2 ms; growth = peak during the run - RSS just before."""
    import threading
    import tracemalloc

    from explorer.data import open_dataset
    from explorer.embed import EmbedParams, embed
    from explorer.core.jobs import drain

    ds = open_dataset(path, key="images")
    ds.n = n  # embed a prefix of the file: same reader, N rows
    enc = make_encoder(light_cnn(out_dim=64))
    drain(embed(mem_images(np.zeros((batch, 32, 32, 3), np.uint8)), enc, EmbedParams(device="cpu", batch_size=batch)))
    peak, stop = [0], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.002)

    base = _rss()
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    tracemalloc.start()
    t0 = time.perf_counter()
    res = drain(embed(ds, enc, EmbedParams(device="cpu", batch_size=batch)))
    secs = time.perf_counter() - t0
    _, tm_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    stop.set()
    th.join()
    peak[0] = max(peak[0], _rss())
    print(json.dumps({"n": n, "rss_growth": peak[0] - base, "tracemalloc_peak": tm_peak,
                      "result_bytes": int(res.vectors.nbytes), "seconds": secs}))


def bench_memory(sizes: list[int], batch: int, folder: Path) -> list[dict]:
    import h5py

    path = folder / "images.h5"
    rng = np.random.default_rng(2)
    with h5py.File(path, "w") as f:
        d = f.create_dataset("images", (max(sizes), 32, 32, 3), np.uint8, chunks=(256, 32, 32, 3))
        for a in range(0, max(sizes), 10000):
            b = min(max(sizes), a + 10000)
            d[a:b] = rng.integers(0, 256, (b - a, 32, 32, 3), dtype=np.uint8)
    rows = []
    for n in sizes:
        out = subprocess.run([sys.executable, __file__, "--child-memory", str(path), str(n), str(batch)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--child-memory", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_memory:
        _child_memory(args.child_memory[0], int(args.child_memory[1]), int(args.child_memory[2]))
        return
    q = args.quick
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        a = bench_throughput(1024 if q else 2560, 3 if q else 15, args.device)
        b = bench_cache_hit(10000 if q else 100000, 768, 3 if q else 5, folder)
        c = bench_memory([2000, 10000] if q else [20000, 100000], 256, folder)
    mib = 2 ** 20
    print()
    print("Embedding engine benchmark (medians)")
    print(f"(a) throughput, small CNN 4 conv blocks, 32x32 RGB, batch 256, {a['device']}, "
          f"{a['threads']} threads, {a['n']} images, {a['repeats']} alternating repeats")
    print(f"    bare torch loop   {a['bare_img_s']:10.0f} images/s")
    print(f"    engine            {a['engine_img_s']:10.0f} images/s")
    print(f"    ratio engine/bare {a['ratio_of_medians']:10.3f}   (median of paired ratios "
          f"{a['median_paired_ratio']:.3f}; each: {', '.join(f'{r:.3f}' for r in a['ratios'])})  goal >= 0.95")
    print(f"(b) cache hit, {b['n']} x {b['dim']} float32 ({b['workspace_mb']:.0f} MB workspace), {b['repeats']} repeats")
    print(f"    embed_cached total  {b['median_s']:.3f} s  (goal < 1 s; of which fingerprints "
          f"{b['median_fingerprints_s']:.3f} s, workspace read {b['median_load_s']:.3f} s)")
    print(f"    first put {b['first_put_s']:.3f} s; a further put (copy-on-write of the file) {b['next_put_s']:.3f} s")
    print("(c) peak memory while embedding 32x32 images from HDF5 (light CNN, D=64, fresh process each; batch 256)")
    print(f"    {'N':>8} {'RSS growth':>11} {'result':>9} {'growth-result':>14} {'tracemalloc peak':>17} {'seconds':>8}")
    for r in c:
        print(f"    {r['n']:>8} {r['rss_growth'] / mib:9.1f} MiB {r['result_bytes'] / mib:6.1f} MiB "
              f"{(r['rss_growth'] - r['result_bytes']) / mib:11.1f} MiB {r['tracemalloc_peak'] / mib:14.1f} MiB "
              f"{r['seconds']:8.1f}")


if __name__ == "__main__":
    main()
