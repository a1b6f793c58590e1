"""A ``.pt`` / ``.pth`` file holding one tensor (``torch.save(z, "z.pt")``): N x D vectors.

Read with ``torch.load(weights_only=True)`` (memory-mapped when the file is in the zip
format), so opening one never runs code from the file. Any dtype of numbers is read as float32.
A file holding a model or a state dict is not a dataset: it is refused with a sentence that
says so (open it as an encoder instead).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from explorer.data.registry import DATASETS
from explorer.data.vector_table import VectorTableDataset
from explorer.core.errors import InputError


def _load(path: Path):
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True,
                          mmap=zipfile.is_zipfile(path))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: cannot be read as a tensor file without running code ({first}).") from None


def _sniff(path: Path) -> bool:
    import torch

    if not zipfile.is_zipfile(path):
        return False
    obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    return isinstance(obj, torch.Tensor) and obj.ndim == 2


@DATASETS.register("torch-tensor", label="PyTorch tensor (.pt)", extensions=(".pt", ".pth"),
                   priority=10, sniff=_sniff)
def open_tensor_file(path, **options) -> VectorTableDataset:
    """A .pt file holding one N x D tensor of vectors (read with weights_only=True)."""
    import torch

    path = Path(path)
    if options:
        raise InputError(f"{path}: a tensor file takes no options (got {', '.join(options)}).")
    obj = _load(path)
    if not isinstance(obj, torch.Tensor):
        what = "a dict (a state dict or checkpoint?)" if isinstance(obj, dict) else type(obj).__name__
        raise InputError(f"{path}: holds {what}, not one tensor of vectors; open it as an encoder "
                         f"instead.")
    if obj.ndim != 2 or obj.shape[0] == 0:
        raise InputError(f"{path}: the tensor has shape {tuple(obj.shape)}; vectors need N x D.")
    if obj.is_complex() or obj.dtype == torch.bool:
        raise InputError(f"{path}: the tensor holds {obj.dtype} values, not real numbers.")
    data = obj.detach().to(torch.float32).numpy()
    return VectorTableDataset(path, "torch-tensor", np.asarray(data), None, None, [], {}, {})
