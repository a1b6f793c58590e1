"""``embedding-explorer layers``: collapse and probe metrics at every layer of an encoder.

    embedding-explorer layers --data D --encoder E [--layers a b c] [--labels y.npy] [--json]

Embeds the dataset once with forward hooks on every chosen layer (default: the model's blocks)
and prints, per layer, its width, RankMe, dims for 99% of the variance, SIGReg and, with labels
(the dataset's own by default), k-NN and linear-probe accuracy. The first layer named like a
projector or head is marked: collapse often hides there.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from explorer.commands._args import int_range
from explorer.commands._sources import add_encoder_options, check_encoder_fits, encoder_options, load_labels
from explorer.core.errors import InputError


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "layers", help="layer sweep: collapse and probe metrics against depth",
        description="Embed a dataset at every chosen layer of an encoder in one pass and report the "
                    "collapse and probe metrics of each layer.")
    p.add_argument("--data", required=True, metavar="PATH", help="dataset file or folder")
    p.add_argument("--data-format", metavar="F", help="dataset format name (default: detected)")
    p.add_argument("--encoder", required=True, metavar="PATH", help="checkpoint or model folder")
    p.add_argument("--encoder-format", metavar="F", help="encoder format name (default: detected)")
    add_encoder_options(p, layer=False)
    p.add_argument("--layers", nargs="+", metavar="L", help="layers to sweep (default: the model's blocks)")
    p.add_argument("--labels", metavar="y.npy", help="(N,) labels for the probes (default: the dataset's)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--batch-size", type=int_range(1, 65536), default=256, metavar="B",
                   help="items per forward pass (1-65536; default: 256)")
    p.add_argument("--seed", type=int_range(0, 2**31 - 1), default=0, help="probe split and SIGReg directions (0-2147483647; default 0)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args) -> int:
    from explorer.data import open_dataset
    from explorer.embed import EmbedParams
    from explorer.encoders import match_input_kind, open_encoder
    from explorer.core.jobs import run_job
    from explorer.metrics.layers import layer_sweep

    for path in (args.data, args.encoder):
        if not Path(path).expanduser().exists():
            raise InputError(f"{path}: no such file or folder.")
    dataset = open_dataset(Path(args.data).expanduser(), args.data_format)
    encoder = open_encoder(Path(args.encoder).expanduser(), args.encoder_format, **encoder_options(args))
    match_input_kind(encoder, dataset)
    check_encoder_fits(dataset, encoder)
    labels = load_labels(args.labels, len(dataset)) if args.labels else None
    params = EmbedParams(device=args.device, batch_size=args.batch_size)
    res = run_job(layer_sweep(dataset, encoder, args.layers, labels, params, seed=args.seed,
                              device=None if args.device == "auto" else args.device),
                  desc="layer sweep", quiet=args.quiet)
    if args.json:
        print(json.dumps(res))
        return 0
    start = res["projector_starts"]
    print(f"{'layer':24s} {'dim':>5} {'RankMe':>8} {'dims99':>7} {'SIGReg':>9} {'k-NN':>7} {'probe':>7}")
    for row in res["layers"]:
        if start is not None and row["depth"] == start:
            print("-- projector / head --")
        acc = ["-" if row[k] is None else f"{row[k]:.1%}" for k in ("knn_accuracy", "linear_probe_accuracy")]
        print(f"{row['layer'][:24]:24s} {row['dim']:>5} {row['rankme']:>8.1f} {row['dims_99']:>7} "
              f"{row['sigreg']:>9.3g} {acc[0]:>7} {acc[1]:>7}")
    return 0
