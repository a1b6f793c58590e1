"""``embedding-explorer timeline``: every checkpoint of a training run on one probe set.

    embedding-explorer timeline runs/exp1/ --data images/ --arch small_cnn --probe-size 5000 \\
        --workspace project.h5 [--json]

Embeds each checkpoint of the folder (or the files given) on the same seeded sample of the
dataset and prints one row per checkpoint: its step/epoch, RankMe, SIGReg, k-NN accuracy (when
the dataset has labels), and linear CKA and mutual k-NN against the last checkpoint. ``--json``
prints a list of per-checkpoint dicts (``name``, ``path``, ``step``, ``axis``, the metrics).
``--layouts-out F.npy`` writes the aligned maps, (T, P, 2) float32.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from explorer.commands._args import int_range, seed_type
from explorer.commands._sources import add_encoder_options, check_encoder_fits, encoder_options, preprocess_options
from explorer.core.errors import InputError


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "timeline", help="metrics and aligned maps of every checkpoint of a training run",
        description="Embed every checkpoint of a training run on one fixed probe set of a dataset "
                    "and print the metrics per checkpoint (RankMe, SIGReg, k-NN accuracy, linear "
                    "CKA and mutual k-NN against the last checkpoint).")
    p.add_argument("checkpoints", nargs="+", metavar="CKPT_DIR",
                   help="folder of checkpoints of one run (or checkpoint files in run order)")
    d = p.add_argument_group("data")
    d.add_argument("--data", required=True, metavar="PATH", help="dataset file or folder")
    d.add_argument("--data-format", metavar="F", help="dataset format name (default: detected)")
    d.add_argument("--probe-size", type=int_range(2, 10**7), default=5000, metavar="N",
                   help="points in the probe set, a seeded sample of the dataset (2-10000000; default: 5000)")
    d.add_argument("--seed", type=seed_type(), default=0,
                   help="seed of the probe sample and the metrics (0-4294967295; default: 0)")
    e = p.add_argument_group("encoder")
    add_encoder_options(e)
    m = p.add_argument_group("maps")
    m.add_argument("--align", default="procrustes", choices=("procrustes", "aligned_umap", "none"),
                   help="how the maps are aligned across checkpoints (default: procrustes)")
    m.add_argument("--map", dest="map_method", default="pca", choices=("pca", "umap"),
                   help="map of each checkpoint (default: pca)")
    r = p.add_argument_group("run")
    r.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    r.add_argument("--batch-size", type=int_range(1, 65536), default=256, metavar="B",
                   help="items per forward pass (1-65536; default: 256)")
    o = p.add_argument_group("output")
    o.add_argument("--workspace", metavar="FILE", help="workspace (.h5) keeping the embeddings and the timeline")
    o.add_argument("--layouts-out", metavar="F.npy", help="write the aligned maps (T, P, 2) float32")
    o.add_argument("--json", action="store_true", help="print the table as JSON")
    o.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


_COLUMNS = (("rankme", "RankMe", "{:.2f}"), ("sigreg", "SIGReg", "{:.4g}"), ("knn_accuracy", "kNN acc", "{:.3f}"),
            ("linear_cka", "CKA->last", "{:.3f}"), ("mutual_knn", "mkNN->last", "{:.3f}"))


def format_table(rows: list[dict], axis: str) -> str:
    """The per-checkpoint table as aligned text."""
    head = [axis, "checkpoint"] + [title for _, title, _ in _COLUMNS]
    body = []
    for r in rows:
        cells = [str(r["step"]), r["name"]]
        for key, _, fmt in _COLUMNS:
            v = r.get(key)
            cells.append("-" if v is None else fmt.format(v))
        body.append(cells)
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    lines = ["  ".join(h.rjust(w) if i != 1 else h.ljust(w) for i, (h, w) in enumerate(zip(head, widths)))]
    for b in body:
        lines.append("  ".join(c.rjust(w) if i != 1 else c.ljust(w) for i, (c, w) in enumerate(zip(b, widths))))
    return "\n".join(lines)


def run(args) -> int:
    import numpy as np

    from explorer.data import open_dataset
    from explorer.core.device import resolve_device
    from explorer.core.jobs import run_job
    from explorer.store import Workspace
    from explorer.app.timeline import TimelineParams, timeline_job

    data = Path(args.data).expanduser()
    if not data.exists():
        raise InputError(f"{data}: no such file or folder.")
    from explorer.store import check_output_path, save_npy

    out = Path(args.layouts_out).expanduser() if args.layouts_out else None
    if out is not None and out.suffix.lower() != ".npy":
        raise InputError(f"{out}: --layouts-out must end in .npy.")
    if out is not None:
        check_output_path(out, "--layouts-out")
    resolve_device(args.device)
    params = TimelineParams(probe_size=args.probe_size, seed=args.seed, arch=args.arch, factory=args.factory,
                            trust=args.trust, layer=args.layer, pooling=args.pooling, device=args.device,
                            preprocess=preprocess_options(args), submodel=args.submodel,
                            batch_size=args.batch_size, align=args.align, map_method=args.map_method)
    dataset = open_dataset(data, args.data_format)
    src = args.checkpoints[0] if len(args.checkpoints) == 1 else args.checkpoints
    _check_first_checkpoint(src, dataset, args)
    ws = Workspace(args.workspace) if args.workspace else None
    res = run_job(timeline_job(src, dataset, params, ws), desc="Timeline", quiet=args.quiet)
    if out is not None:
        save_npy(out, np.stack(res.layouts).astype(np.float32), "--layouts-out")
    rows = res.table()
    if args.json:
        print(json.dumps(rows))
    else:
        print(format_table(rows, res.axis))
        t = res.info.get("timings")
        where = f"; stored in {ws.path.name}" if ws is not None else ""
        how = "loaded from the workspace" if res.info.get("cache_hit") else \
            f"{res.info.get('seconds', 0):.1f} s on {res.info.get('device')}"
        print(f"{len(res)} checkpoints on {len(res.probe_indices)} probe points of {dataset.name}, "
              f"maps {res.info.get('map_method')} aligned by {res.info.get('align')}: {how}{where}"
              + (f" (embed {t['embed']:.1f} s, metrics {t['metrics']:.1f} s, maps {t['layouts']:.1f} s)" if t else ""))
    return 0


def _check_first_checkpoint(src, dataset, args) -> None:
    """Open the run's first checkpoint and check it takes the dataset's items, before any
    checkpoint is embedded."""
    from explorer.encoders import open_encoder
    from explorer.app.timeline import _resolve_paths

    paths = _resolve_paths(src)
    if not paths:
        raise InputError(f"{src}: no checkpoints found.")
    from explorer.encoders import match_input_kind

    enc = open_encoder(paths[0], **encoder_options(args))
    match_input_kind(enc, dataset)
    check_encoder_fits(dataset, enc)


if __name__ == "__main__":  # pragma: no cover
    from explorer.cli import main

    sys.exit(main(["timeline", *sys.argv[1:]]))
