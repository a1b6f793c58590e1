"""What the image preprocessing paths cost when reading files (issue 14).

    python benchmarks/bench_preprocess.py            # 240 JPEGs of 500 x 375, 5 repeats
    python benchmarks/bench_preprocess.py --quick    # 60 JPEGs, 3 repeats

Reads every image of an image folder as the engine does (``explorer.embed.read_images_for``)
and reports images/s (median of the repeats, the paths alternating within each repeat):

    crop      shorter side to 224, centre crop (the dataset's own path; JPEG draft decoding)
    bilinear  resize 256 then crop 224, bilinear: read through the dataset at 256, then crop
    bicubic   resize 256 then crop 224, bicubic: each image decoded at full size, resized here

The decode, not the model, is what these paths change; no model runs here.
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
    args = ap.parse_args()
    n, reps = (60, 3) if args.quick else (240, 5)
    from PIL import Image

    from explorer.data import open_dataset
    from explorer.embed import read_images_for

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "imgs"
        folder.mkdir()
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0:375, 0:500]
        for i in range(n):
            base = np.stack([xx * 255 / 500, yy * 255 / 375, (xx + yy) * 127 / 875], -1)
            img = np.clip(base + rng.normal(0, 20, size=base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img, "RGB").save(folder / f"{i:04d}.jpg", quality=90)
        ds = open_dataset(folder)
        idx = np.arange(len(ds))
        paths = {"crop": (224, None, "bilinear"), "bilinear": (224, 256, "bilinear"),
                 "bicubic": (224, 256, "bicubic")}
        times: dict = {k: [] for k in paths}
        for _ in range(reps):
            for name, (size, resize, interp) in paths.items():
                t0 = time.perf_counter()
                x, ok = read_images_for(ds, idx, size, resize, interp)
                times[name].append(time.perf_counter() - t0)
                assert x.shape == (n, 224, 224, 3) and ok.all()
        for name, ts in times.items():
            med = statistics.median(ts)
            print(f"{name:9s} {n / med:8.0f} images/s  (median of {reps}: {med:.3f} s for {n})")


if __name__ == "__main__":
    main()
