"""Fine-tuning overhead: steps/s of the finetune job (live probes included) against a bare
PyTorch loop with the same model, batch, augmentations, projector, loss and optimiser.

    python benchmarks/bench_finetune.py [--steps 20] [--repeats 3] [--device auto] [--objective simclr]

Runs are interleaved (bare, job, bare, job...) and the medians compared in the same run, since
the machine is shared. Goal: job overhead under 10%.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def load_digits_tensor():
    import torch
    from PIL import Image

    from explorer.core.resources import sample_data_dir

    sd = sample_data_dir()
    with open(sd / "digits_metadata.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    X = np.stack([np.asarray(Image.open(sd / r["path"]).convert("RGB")) for r in rows])
    y = np.array([int(r["label"]) for r in rows])
    return torch.from_numpy(X).permute(0, 3, 1, 2).contiguous(), y


def bare_loop(model, X, params, steps, dev):
    """The same training step written plainly: views, encoder, projector, loss, AdamW."""
    import torch

    from explorer.finetune.augment import augment_images
    from explorer.finetune.objectives import Projector, lejepa_sigreg, nt_xent

    model = model.to(dev).train()
    proj = Projector(128, params.projector_hidden, params.projector_dim).to(dev).train()
    opt = torch.optim.AdamW(list(model.parameters()) + list(proj.parameters()), lr=params.lr,
                            weight_decay=params.weight_decay)
    g = torch.Generator(device=dev).manual_seed(0)
    gd = torch.Generator().manual_seed(1)
    Xd = X.to(dev)
    mean = torch.tensor([0.5] * 3, device=dev).view(1, 3, 1, 1)
    n = len(Xd)
    bs = params.batch_size
    t0 = time.perf_counter()
    for s in range(steps):
        idx = torch.randint(0, n, (bs,), generator=torch.Generator().manual_seed(s))
        xf = Xd[idx.to(dev)].float() / 255
        v = torch.cat([(augment_images(xf, params.image_augment, g) - mean) / 0.5,
                       (augment_images(xf, params.image_augment, g) - mean) / 0.5])
        z1, z2 = proj(model(v)).chunk(2)
        if params.objective == "simclr":
            loss = nt_xent(z1, z2, params.temperature)
        else:
            loss, _ = lejepa_sigreg(z1, z2, params.lambda_, generator=gd)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss.item()  # the job reads the loss every step on CPU too
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - t0)


def job_run(model, X, y, params, steps):
    import torch

    from explorer.finetune import finetune

    t0 = None
    n = 0
    job = finetune(model, (X, y), params)
    for p in job:
        if t0 is None:  # start the clock after set-up and the step-0 probe, as the bare loop has no set-up
            t0 = time.perf_counter()
            continue
        n = int(p.done)
        if n >= steps:
            break
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    job.close()
    return n / dt


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--objective", default="simclr", choices=("simclr", "sigreg"))
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--probe-every", type=int, default=10)
    args = ap.parse_args(argv)

    import torch

    from explorer.core.device import resolve_device
    from explorer.encoders.archs import build
    from explorer.finetune import FinetuneParams, ImageAugment

    dev = resolve_device(args.device)
    X, y = load_digits_tensor()
    params = FinetuneParams(objective=args.objective, epochs=100, batch_size=args.batch_size,
                            probe_every=args.probe_every, device=str(dev), warmup=0.0,
                            image_augment=ImageAugment(flip=0.0), copy=True)
    bare, job = [], []
    for r in range(args.repeats):
        torch.manual_seed(r)
        bare.append(bare_loop(build("small_cnn"), X, params, args.steps, dev))
        torch.manual_seed(r)
        job.append(job_run(build("small_cnn"), X, y, params, args.steps))
        print(f"repeat {r}: bare {bare[-1]:.2f} steps/s, job {job[-1]:.2f} steps/s", flush=True)
    mb, mj = statistics.median(bare), statistics.median(job)
    print(f"device {dev}, objective {args.objective}, batch {args.batch_size}, {args.steps} steps, "
          f"probe every {args.probe_every} steps (probe set 512)")
    print(f"median steps/s: bare {mb:.3f}, job {mj:.3f}; job/bare {mj / mb:.3f} "
          f"(overhead {100 * (1 - mj / mb):.1f}%; goal < 10%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
