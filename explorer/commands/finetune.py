"""``embedding-explorer finetune``: adapt an encoder on a dataset and save it as a new checkpoint.

    embedding-explorer finetune --data sample_data/digits --encoder sample_data/checkpoints/collapsed.pt \\
        --objective sigreg --epochs 3 --out fixed.pt --json

Writes NEW.pt (weights-only state_dict) and NEW.pt.json (base checkpoint, objective,
hyper-parameters, steps, metrics); for ``linear`` also NEW.head.pt (the probe). Text datasets
(.txt/.csv/.tsv/.jsonl) are tokenised with the encoder's tokenizer; the self-supervised objectives
then use SimCSE views (the same batch twice, different dropout) and need dropout in the encoder.
``--json``
prints the final metrics (for ``linear`` and ``ce`` the held-out ``probe_accuracy`` with its 95%
Wilson interval ``probe_accuracy_ci`` and the split sizes ``probe_train`` / ``probe_test``).
``linear`` solves the probe to convergence on the frozen features (scikit-learn's logistic
regression objective with ``--probe-c``, full-batch L-BFGS), so ``--epochs``/``--lr`` do not
apply and the same command gives the same number.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from explorer.commands._args import float_range, int_range, seed_type
from explorer.commands._sources import add_encoder_options, check_encoder_fits, check_labels, load_npy
from explorer.core.errors import InputError

OBJECTIVE_NAMES = ("linear", "ce", "simclr", "vicreg", "sigreg", "invariance")
#: Objectives that train a classifier on the labels.
SUPERVISED = ("linear", "ce")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("finetune", help="fine-tune an encoder and save it as a new checkpoint",
                              description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, metavar="PATH",
                   help="image, vector or text dataset (text: SimCSE dropout views for the SSL objectives)")
    p.add_argument("--labels", metavar="PATH", help=".npy labels (one per item) overriding the dataset's")
    p.add_argument("--data-format", metavar="F", help="dataset format name (default: detected)")
    p.add_argument("--encoder", required=True, metavar="PATH", help="checkpoint to start from")
    add_encoder_options(p, trust=False, pooling=False)
    p.add_argument("--objective", required=True, choices=OBJECTIVE_NAMES)
    p.add_argument("--epochs", type=int_range(1, 10000), default=5, help="passes over the data (1-10000; default 5)")
    p.add_argument("--lr", type=float_range(0.0, 10.0, lo_open=True), default=None,
                   help="learning rate (> 0 and <= 10; default: 1e-2 for linear, else 1e-3)")
    p.add_argument("--batch-size", type=int_range(2, 65536), default=256, help="items per step (2-65536; default 256)")
    p.add_argument("--temperature", type=float_range(0.0, 100.0, lo_open=True), default=0.1,
                   help="SimCLR temperature (> 0 and <= 100; default 0.1)")
    p.add_argument("--lambda", dest="lambda_", type=float_range(0.0, 1000.0), default=0.05,
                   help="SIGReg weight, LeJEPA lambda (0-1000; default 0.05)")
    p.add_argument("--last-n-blocks", type=int_range(1, 1000), default=None, metavar="N",
                   help="train only the last N blocks (1-1000; default: all)")
    p.add_argument("--no-flip", action="store_true", help="no horizontal flips in the image views")
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", action="store_true", help="bf16/fp16 autocast on CUDA")
    p.add_argument("--probe-c", dest="probe_c", type=float_range(1e-6, 1e6), default=1.0, metavar="C",
                   help="linear: inverse L2 strength, as scikit-learn's LogisticRegression C (1e-06-1e+06; default 1)")
    p.add_argument("--seed", type=seed_type(), default=0,
                   help="split, shuffling and augmentation seed (0-4294967295; default 0)")
    p.add_argument("--out", required=True, metavar="NEW.pt")
    p.add_argument("--json", action="store_true", help="print the final metrics as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args) -> int:
    from explorer.data import open_dataset
    from explorer.encoders import open_encoder
    from explorer.finetune import FinetuneParams, FinetuneResult, ImageAugment, finetune, save_finetuned
    from explorer.core.jobs import run_job

    from explorer.store import check_output_path

    out = Path(args.out).expanduser()
    if out.suffix.lower() not in (".pt", ".pth"):
        raise InputError(f"{out}: --out must end in .pt or .pth.")
    check_output_path(out)
    enc_path = Path(args.encoder).expanduser()
    if not enc_path.exists():
        raise InputError(f"{enc_path}: no such file or folder.")
    if out.resolve() == enc_path.resolve():
        raise InputError(f"{out}: choose a new file for --out; the base checkpoint is never overwritten.")
    dataset = open_dataset(Path(args.data).expanduser(), args.data_format)
    supervised = args.objective in SUPERVISED
    labels = None
    if args.labels:
        labels = check_labels(load_npy(args.labels, "labels"), len(dataset), args.labels, training=supervised)
    elif supervised and dataset.labels is not None:
        check_labels(dataset.labels, len(dataset), f"the labels of {dataset.name}", training=True)
    from explorer.commands._sources import encoder_options, print_encoder_notes
    from explorer.encoders import match_input_kind

    encoder = open_encoder(enc_path, **encoder_options(args))
    match_input_kind(encoder, dataset)
    check_encoder_fits(dataset, encoder)
    params = FinetuneParams(objective=args.objective, epochs=args.epochs,
                            lr=args.lr if args.lr is not None else (1e-2 if args.objective == "linear" else 1e-3),
                            batch_size=args.batch_size, temperature=args.temperature, lambda_=args.lambda_,
                            last_n_blocks=args.last_n_blocks, device=args.device, amp=args.amp,
                            seed=args.seed, image_augment=ImageAugment(flip=0.0 if args.no_flip else 0.5),
                            probe_C=args.probe_c)
    res = FinetuneResult()
    run_job(finetune(encoder, dataset, params, labels=labels, result=res),
            desc=f"Fine-tuning ({args.objective})", quiet=args.quiet)
    extra = {"arch": encoder.info.get("arch") or args.arch, "layer": encoder.layer,
             "preprocess": encoder.preprocess.to_dict(), "dataset": str(dataset.source),
             "seed": args.seed}
    for k in ("arch_kwargs",):
        if k in encoder.info:
            extra[k] = encoder.info[k]
    save_finetuned(res.module, out, res.sidecar(base=str(enc_path), extra=extra), head=res.head)
    summary = {"out": str(out), "objective": args.objective, "steps": res.steps, **res.metrics}
    print_encoder_notes(encoder, args.quiet)  # after the work: an error stays one line
    if args.json:
        print(json.dumps(summary, default=float))
    else:
        print(f"Saved {out} after {res.steps} steps: " +
              ", ".join(f"{k} {v:.4g}" for k, v in res.metrics.items() if isinstance(v, float)))
        ci = res.metrics.get("probe_accuracy_ci")
        if ci and ci[0] is not None:
            print(f"probe accuracy {res.metrics['probe_accuracy']:.4f}, 95% Wilson CI [{ci[0]:.4f}, {ci[1]:.4f}], "
                  f"{res.metrics.get('probe_train')} train / {res.metrics.get('probe_test')} test")
    return 0
