#!/usr/bin/env python
"""Make the bundled sample data: a small real image dataset and small checkpoints trained on it.

Seeded and deterministic, CPU only, a couple of minutes on two cores::

    python scripts/make_sample_data.py [--out sample_data]

Dataset: scikit-learn's bundled ``load_digits`` (1797 real 8x8 handwritten digits, 10 classes,
from the UCI "Optical Recognition of Handwritten Digits" set; no download), upscaled bicubically
to 32x32 RGB PNGs in ``digits/<class>/<id>.png`` (bright ink on black) plus
``digits_metadata.csv`` (path, id, label, split, ink, mean_intensity, stroke_width).

Checkpoints in ``checkpoints/`` (architecture ``small_cnn``, weights-only ``state_dict``s saved
with ``torch.save``, each with a JSON sidecar ``<file>.json``):

    healthy.pt          SimCLR (NT-Xent on the projector) + a cross-entropy linear head on the
                        embedding; high-rank, linearly separable embedding
    collapsed.pt        invariance-only loss (MSE between two views of the embedding) with weight
                        decay: every image maps to (nearly) one point: complete collapse
    dimcollapsed.pt     SimCLR trained through a rank-4 linear bottleneck in the ``embed`` layer,
                        folded back into one Linear: the 128-d embeddings span 4 dimensions
    run/epoch_01..05.pt the first five epochs of the healthy run (for comparison and timelines)
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SEED = 0
SIZE = 32
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
ARCH = "small_cnn"
ARCH_KWARGS = {"in_channels": 3, "width": 16, "embed_dim": 128, "proj_dim": 64, "projector": True}
BOTTLENECK = 4


def make_images(out: Path):
    """Write the PNGs and the metadata table; return (uint8 images (N,32,32,3), labels (N,))."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    raw = d.images.astype(np.float64)  # (1797, 8, 8) in [0, 16]
    labels = d.target.astype(np.int64)
    n = len(labels)
    rng = np.random.default_rng(SEED)
    split = np.where(rng.random(n) < 0.8, "train", "test")
    img_dir = out / "digits"
    if img_dir.exists():
        shutil.rmtree(img_dir)
    images = np.empty((n, SIZE, SIZE, 3), np.uint8)
    rows = []
    for i in range(n):
        small = Image.fromarray(np.round(raw[i] * (255.0 / 16.0)).astype(np.uint8), mode="L")
        big = small.resize((SIZE, SIZE), Image.BICUBIC).convert("RGB")
        arr = np.asarray(big)
        images[i] = arr
        rel = Path("digits") / str(labels[i]) / f"{i:04d}.png"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        big.save(out / rel, optimize=True)
        ink = float((raw[i] > 4).mean())
        rows.append({
            "path": rel.as_posix(), "id": i, "label": int(labels[i]), "split": split[i],
            "ink": round(ink, 4),
            "mean_intensity": round(float(arr[..., 0].mean() / 255.0), 4),
            # mean number of inked pixels per inked row: a rough stroke-width proxy
            "stroke_width": round(float((raw[i] > 4).sum() / max(1, (raw[i] > 4).any(1).sum())), 3),
        })
    with open(out / "digits_metadata.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return images, labels, split


def _to_tensor(images):
    import torch

    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0)


def _normalise(x):
    import torch

    m = torch.tensor(MEAN).view(1, 3, 1, 1)
    s = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - m) / s


def nt_xent(p1, p2, temperature=0.2):
    import torch
    import torch.nn.functional as F

    z = F.normalize(torch.cat([p1, p2]), dim=1)
    sim = z @ z.t() / temperature
    n = p1.shape[0]
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(sim, target)


def embed_all(model, x, bs=512):
    import torch

    model.eval()
    with torch.no_grad():
        return torch.cat([model(_normalise(x[i:i + bs])) for i in range(0, len(x), bs)]).numpy()


def quick_metrics(z, labels, split):
    """Numbers for the sidecar: RankMe, relative spread, dims for 99% variance, kNN accuracy."""
    z = z.astype(np.float64)
    s = np.linalg.svd(z, compute_uv=False)
    p = s / s.sum() + 1e-7
    rankme = float(np.exp(-(p * np.log(p)).sum()))
    c = z - z.mean(0)
    ev = np.linalg.svd(c, compute_uv=False) ** 2
    dims99 = int(np.searchsorted(np.cumsum(ev) / ev.sum(), 0.99) + 1) if ev.sum() > 0 else 0
    spread = float(np.sqrt((c ** 2).sum(1).mean()) / (np.linalg.norm(z, axis=1).mean() + 1e-12))
    zn = z / (np.linalg.norm(z, axis=1, keepdims=True) + 1e-12)
    tr, te = split == "train", split == "test"
    sim = zn[te] @ zn[tr].T
    nn = np.argsort(-sim, 1)[:, :5]
    votes = labels[tr][nn]
    pred = np.array([np.bincount(v, minlength=10).argmax() for v in votes])
    knn = float((pred == labels[te]).mean())
    return {"rankme": round(rankme, 3), "dims_99": dims99, "relative_spread": round(spread, 6),
            "knn5_accuracy_test": round(knn, 4)}


def train(model, x, labels, objective, epochs, seed, on_epoch=None, lr=2e-3, batch_size=256, head=None,
          optimizer=None):
    import torch
    import torch.nn.functional as F

    from explorer.finetune.augment import ImageAugment, augment_images

    aug = ImageAugment(crop_scale=(0.5, 1.0), flip=0.0, blur_sigma=(0.1, 1.0))
    g = torch.Generator().manual_seed(seed)
    params = list(model.parameters()) + (list(head.parameters()) if head is not None else [])
    opt = optimizer if optimizer is not None else torch.optim.Adam(params, lr=lr)
    y = torch.from_numpy(labels)
    n = len(x)
    step = 0
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=g)
        for i in range(0, n - batch_size + 1, batch_size):
            idx = perm[i:i + batch_size]
            xb = x[idx]
            v1 = _normalise(augment_images(xb, aug, g))
            v2 = _normalise(augment_images(xb, aug, g))
            h = model(torch.cat([v1, v2]))
            h1, h2 = h.chunk(2)
            if objective == "invariance":
                loss = F.mse_loss(h1, h2)
            else:
                p = model.projector(h)
                p1, p2 = p.chunk(2)
                loss = nt_xent(p1, p2)
                if head is not None:
                    loss = loss + F.cross_entropy(head(h), torch.cat([y[idx], y[idx]]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        if on_epoch is not None:
            on_epoch(epoch, step, loss.item())
    return step


def save(model, path: Path, sidecar: dict):
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    torch.save(state, path)
    with open(str(path) + ".json", "w") as f:
        json.dump(sidecar, f, indent=2, sort_keys=True)
        f.write("\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "sample_data"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import torch

    from explorer.encoders.archs import build
    from explorer.encoders.base import Preprocess

    torch.set_num_threads(min(2, torch.get_num_threads()))
    t0 = time.time()
    images, labels, split = make_images(out)
    print(f"images: {len(labels)} in {time.time() - t0:.1f} s", flush=True)
    x = _to_tensor(images)
    ck = out / "checkpoints"
    if ck.exists():
        shutil.rmtree(ck)
    pre = Preprocess(kind="image", size=SIZE, channels=3, mean=MEAN, std=STD).to_dict()
    base = {"arch": ARCH, "arch_kwargs": ARCH_KWARGS, "preprocess": pre, "seed": SEED,
            "dataset": "digits (scikit-learn load_digits, 1797 images upscaled to 32x32)",
            "layer": "embed", "made_by": "scripts/make_sample_data.py"}

    # healthy: SimCLR + CE head, 5 epochs saved as the run, then continued
    torch.manual_seed(SEED)
    model = build(ARCH, **ARCH_KWARGS)
    head = torch.nn.Linear(ARCH_KWARGS["embed_dim"], 10)
    healthy_epochs = 8

    def on_epoch(epoch, step, loss):
        print(f"healthy epoch {epoch} loss {loss:.3f} ({time.time() - t0:.0f} s)", flush=True)
        if epoch <= 5:
            m = quick_metrics(embed_all(model, x), labels, split)
            save(model, ck / "run" / f"epoch_{epoch:02d}.pt",
                 {**base, "objective": "simclr+ce", "epoch": epoch, "step": step, "loss": round(loss, 4),
                  "metrics": m, "description": f"epoch {epoch} of the healthy run"})

    steps = train(model, x, labels, "simclr", healthy_epochs, SEED, on_epoch, head=head)
    m = quick_metrics(embed_all(model, x), labels, split)
    save(model, ck / "healthy.pt", {**base, "objective": "simclr+ce", "epoch": healthy_epochs, "step": steps,
                                    "metrics": m, "expected": "healthy",
                                    "description": "SimCLR (T=0.2) on the projector + cross-entropy linear head"})
    print("healthy", m, flush=True)

    # collapsed: invariance only, with weight decay
    torch.manual_seed(SEED + 1)
    model = build(ARCH, **ARCH_KWARGS)
    # plain SGD; weight decay on the `embed` weight only, so the trivial solution (every image at
    # the embed bias) is reached within a few epochs
    others = [p for n, p in model.named_parameters() if n != "embed.weight"]
    sgd = torch.optim.SGD([{"params": [model.embed.weight], "weight_decay": 0.5},
                           {"params": others, "weight_decay": 0.0}], lr=0.5)
    steps = train(model, x, labels, "invariance", 3, SEED + 1, batch_size=128, optimizer=sgd,
                  on_epoch=lambda e, s, l: print(f"collapsed epoch {e} loss {l:.2e} ({time.time() - t0:.0f} s)", flush=True))
    m = quick_metrics(embed_all(model, x), labels, split)
    save(model, ck / "collapsed.pt", {**base, "objective": "invariance", "epoch": 3, "step": steps,
                                      "metrics": m, "expected": "complete collapse",
                                      "description": "invariance-only MSE between two views of the embedding; SGD lr 0.5, weight decay 0.5 on embed.weight"})
    print("collapsed", m, flush=True)

    # dimensional collapse: SimCLR through a rank-4 bottleneck in `embed`, folded afterwards
    torch.manual_seed(SEED + 2)
    model = build(ARCH, **ARCH_KWARGS)
    c_in = model.embed.in_features
    low = torch.nn.Linear(c_in, BOTTLENECK, bias=False)
    up = torch.nn.Linear(BOTTLENECK, ARCH_KWARGS["embed_dim"])
    model.embed = torch.nn.Sequential(low, up)
    steps = train(model, x, labels, "simclr", 4, SEED + 2,
                  on_epoch=lambda e, s, l: print(f"dimcollapsed epoch {e} loss {l:.3f} ({time.time() - t0:.0f} s)", flush=True))
    folded = torch.nn.Linear(c_in, ARCH_KWARGS["embed_dim"])
    with torch.no_grad():
        folded.weight.copy_(up.weight @ low.weight)
        folded.bias.copy_(up.bias)
    model.embed = folded
    m = quick_metrics(embed_all(model, x), labels, split)
    save(model, ck / "dimcollapsed.pt",
         {**base, "objective": "simclr", "epoch": 4, "step": steps, "metrics": m, "bottleneck_rank": BOTTLENECK,
          "expected": f"dimensional collapse ({BOTTLENECK} of 128 dimensions)",
          "description": f"SimCLR trained through a rank-{BOTTLENECK} linear bottleneck in `embed`, folded into one Linear"})
    print("dimcollapsed", m, flush=True)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"done in {time.time() - t0:.0f} s; {total / 2**20:.1f} MiB under {out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
