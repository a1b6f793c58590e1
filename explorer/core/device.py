"""Device choice, made once: CUDA, then Apple MPS, then CPU, unless the user says otherwise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from explorer.core.errors import InputError

PRECISIONS = ("fp32", "bf16", "fp16")


def strict_fp32() -> None:
    """fp32 means fp32 on a GPU too. PyTorch lets cuDNN run float32 convolutions in TF32
    (a 10-bit mantissa) on Ampere and later by default, which moved a query's cosine to its own
    stored vector by 8e-5 on an H100; bf16/fp16 autocast, where asked for, is unaffected.
    Called whenever a CUDA device is chosen or a batch meets one."""
    import torch

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def resolve_device(name: Optional[str] = None):
    """``None``/"auto" picks CUDA, then MPS, then CPU. Returns a ``torch.device``."""
    dev = _resolve_device(name)
    if dev.type == "cuda":
        strict_fp32()
    return dev


def _resolve_device(name: Optional[str]):
    import torch

    if name in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise InputError(f"Unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"Device {name!r} was asked for, but this PyTorch build sees no CUDA GPU.")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError("Device 'mps' was asked for, but Apple's MPS is not available here.")
    return dev


def autocast_dtype(precision: str):
    import torch

    if precision not in PRECISIONS:
        raise InputError(f"Unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}.")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


@dataclass(frozen=True)
class DeviceInfo:
    name: str
    kind: str
    total_memory: Optional[int] = None
    free_memory: Optional[int] = None

    def describe(self) -> str:
        if self.free_memory is not None and self.total_memory:
            return f"{self.name} ({self.free_memory / 2**30:.1f} of {self.total_memory / 2**30:.1f} GiB free)"
        return self.name


def device_info(device=None) -> DeviceInfo:
    import torch

    dev = resolve_device(None if device is None else str(device))
    if dev.type == "cuda":
        free, total = torch.cuda.mem_get_info(dev)
        return DeviceInfo(torch.cuda.get_device_name(dev), "cuda", total, free)
    if dev.type == "mps":
        return DeviceInfo("Apple MPS", "mps")
    return DeviceInfo(f"CPU ({torch.get_num_threads()} threads)", "cpu")
