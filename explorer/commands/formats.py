"""``embedding-explorer formats``: the dataset formats, encoder formats and built-in
architectures this installation can read (including third-party plugins).

    embedding-explorer formats          # a readable list
    embedding-explorer formats --json   # the same as JSON
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys

EXTRA_MODULES = {"hf": ("transformers",), "onnx": ("onnxruntime",), "ann": ("hnswlib",),
                 "vision": ("torchvision", "timm")}


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "formats", help="list the dataset and encoder formats and the built-in architectures",
        description="List the dataset formats, encoder formats and built-in architectures "
                    "this installation can read (plugins included).")
    p.add_argument("--json", action="store_true", help="print the lists as JSON")
    return p


def _extra_missing(extra: str | None) -> bool:
    if not extra:
        return False
    return any(importlib.util.find_spec(m) is None for m in EXTRA_MODULES.get(extra, ()))


def _entry_row(e) -> dict:
    extra = e.extra.get("extra_package")
    row = {"name": e.name, "label": e.label, "extensions": list(e.extensions), "folder": e.directory,
           "description": e.description}
    if extra:
        row["extra"] = extra
        row["available"] = not _extra_missing(extra)
    return row


def collect() -> dict:
    """{"datasets": [...], "encoders": [...], "architectures": [...]}; a part that cannot be
    imported in this installation is an empty list."""
    out: dict = {"datasets": [], "encoders": [], "architectures": []}
    try:
        from explorer.data import DATASETS
    except ImportError:
        DATASETS = None
    if DATASETS is not None:
        out["datasets"] = [_entry_row(e) for e in DATASETS.entries()]
    try:
        from explorer.encoders import ENCODERS
    except ImportError:
        ENCODERS = None
    if ENCODERS is not None:
        out["encoders"] = [_entry_row(e) for e in ENCODERS.entries()]
    try:
        from explorer.encoders.archs import ARCHITECTURES
    except ImportError:
        ARCHITECTURES = None
    if ARCHITECTURES is not None:
        for e in ARCHITECTURES.entries():
            pre = e.extra.get("preprocess")
            out["architectures"].append({
                "name": e.name, "label": e.label, "description": e.description,
                "kwargs": dict(e.extra.get("kwargs", {})),
                "preprocess": pre.to_dict() if hasattr(pre, "to_dict") else pre})
    return out


def _where(row: dict) -> str:
    parts = []
    if row["extensions"]:
        parts.append(" ".join(row["extensions"]))
    if row["folder"]:
        parts.append("folder")
    if row.get("extra"):
        parts.append(f"[{row['extra']}]" + ("" if row.get("available") else
                                             f" not installed: pip install 'embedding-explorer[{row['extra']}]'"))
    return ", ".join(parts)


def render(info: dict) -> str:
    lines = []
    for title, key in (("Dataset formats (--data-format NAME)", "datasets"),
                       ("Encoder formats (--encoder-format NAME)", "encoders")):
        lines.append(f"{title}:")
        rows = info[key]
        if not rows:
            lines.append("  (none available in this installation)")
        width = max([len(r["name"]) for r in rows] + [4])
        for r in rows:
            lines.append(f"  {r['name']:<{width}}  {r['label']}  ({_where(r)})" if _where(r)
                         else f"  {r['name']:<{width}}  {r['label']}")
        lines.append("")
    lines.append("Built-in architectures (--arch NAME, for weights-only checkpoints):")
    archs = info["architectures"]
    if not archs:
        lines.append("  (none available in this installation)")
    width = max([len(a["name"]) for a in archs] + [4])
    for a in archs:
        pre = a.get("preprocess") or {}
        kind = pre.get("kind", "")
        what = f"{kind} {pre.get('size')}px" if kind == "image" else kind
        kw = ", ".join(f"{k}={v}" for k, v in a["kwargs"].items())
        lines.append(f"  {a['name']:<{width}}  {a['label']}" + (f"; input: {what}" if what else "")
                     + (f"; settings: {kw}" if kw else ""))
    vision = "" if not _extra_missing("vision") else " ([vision] not installed: pip install 'embedding-explorer[vision]')"
    lines.append(f"  torchvision and timm: any torchvision classification model name (resnet50, vit_b_16, ...) "
                 f"or timm:NAME{vision}")
    lines.append("Or your own: --factory path/to/file.py:function (a function returning an nn.Module).")
    return "\n".join(lines)


def run(args) -> int:
    info = collect()
    if getattr(args, "json", False):
        json.dump(info, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print(render(info))
    return 0
