"""Layer sweep cost (issue 19): embedding the sample digits at every block of the sample CNN in
one pass (forward hooks) against one ordinary embedding pass (the model's output), same process,
same device, median of --repeats runs each; and the whole sweep with its metrics.

    python benchmarks/bench_layers.py [--repeats 5] [--device cpu]

The figure asked for: sweep embedding time / one embedding pass < 1.5.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    from explorer.data import open_dataset
    from explorer.embed import EmbedParams, embed
    from explorer.encoders import open_encoder
    from explorer.core.jobs import drain
    from explorer.metrics.layers import default_layers, embed_layers, layer_sweep
    from explorer.core.resources import sample_data_dir

    s = sample_data_dir()
    ds = open_dataset(s / "digits")
    enc = open_encoder(s / "checkpoints" / "healthy.pt")
    layers = default_layers(enc.module)
    p = EmbedParams(device=a.device, num_workers=0)
    drain(embed(ds, enc, p))  # warm-up: file cache, allocator
    one, sweep = [], []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        drain(embed(ds, enc, p))
        one.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        drain(embed_layers(ds, enc, layers, p))
        sweep.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    res = drain(layer_sweep(ds, enc, layers, params=p, device=a.device))
    whole = time.perf_counter() - t0
    m1, ms = statistics.median(one), statistics.median(sweep)
    print(f"{len(ds)} images, {len(layers)} layers ({', '.join(layers)}), device {a.device}")
    print(f"one embedding pass      median {m1:.2f} s")
    print(f"all layers in one pass  median {ms:.2f} s   ratio {ms / m1:.2f} (target < 1.5)")
    print(f"sweep with its metrics  {whole:.1f} s (RankMe, dims_99, SIGReg, k-NN and probe per layer)")
    print(f"projector starts at {layers[res['projector_starts']] if res['projector_starts'] is not None else '-'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
