"""ONNX models (``.onnx``) through onnxruntime, under the ``[onnx]`` extra.

The session is wrapped in a module-like object (an ``nn.Module`` without parameters whose
``forward`` runs the session on CPU numpy arrays), so the rest of the app treats it like any
encoder. ONNX graphs cannot take forward hooks: only the model's output (its first output)
can be the embedding. The weights' fingerprint is the file's sha256.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from explorer.encoders.base import Encoder, Preprocess
from explorer.encoders.checkpoint import as_preprocess, read_sidecar
from explorer.encoders.registry import ENCODERS
from explorer.errors import CheckpointError, InputError

INSTALL_HINT = "pip install 'embedding-explorer[onnx]'"


def _require_onnxruntime(path: Path):
    try:
        import onnxruntime
    except ImportError:
        raise InputError(f"{path.name} is an ONNX model; opening it needs the optional package "
                         f"onnxruntime: install embedding-explorer[onnx] ({INSTALL_HINT}).") from None
    return onnxruntime


def _module_class():
    import numpy as np
    import torch
    import torch.nn as nn

    class OnnxModule(nn.Module):
        """``forward(x)`` runs the ONNX session on ``x`` (its first input) and returns the first
        output as a tensor on ``x``'s device."""

        def __init__(self, session):
            super().__init__()
            self.session = session
            self.input_name = session.get_inputs()[0].name

        def forward(self, x=None, **features):
            if features:
                feeds = {k: v.detach().cpu().numpy() for k, v in features.items()}
                device = next(iter(features.values())).device
            else:
                feeds = {self.input_name: x.detach().cpu().float().numpy()}
                device = x.device
            out = self.session.run(None, feeds)[0]
            return torch.from_numpy(np.ascontiguousarray(out)).to(device)

    return OnnxModule


@ENCODERS.register("onnx", label="ONNX model", extensions=(".onnx",), priority=10, extra_package="onnx",
                   description="An ONNX model run by onnxruntime (needs [onnx]).")
def open_onnx(path: Path, *, preprocess: Any = None, **_options) -> Encoder:
    """An ONNX model run by onnxruntime (needs [onnx])."""
    path = Path(path)
    ort = _require_onnxruntime(path)
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    try:
        session = ort.InferenceSession(str(path), providers=providers or None)
    except Exception as exc:
        raise CheckpointError(f"{path.name} is not a loadable ONNX model "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}).") from None
    meta = read_sidecar(path)
    pre = as_preprocess(preprocess, path.name) or as_preprocess(meta.get("preprocess"), path.name)
    if pre is None:
        shape = list(session.get_inputs()[0].shape)
        if len(shape) == 4 and isinstance(shape[1], int) and isinstance(shape[2], int):
            pre = Preprocess(kind="image", size=int(shape[2]), channels=int(shape[1]),
                             mean=(0.5,) * int(shape[1]), std=(0.5,) * int(shape[1]))
        elif len(shape) == 2:
            pre = Preprocess(kind="vector")
        else:
            pre = Preprocess()
    module = _module_class()(session).eval()
    return Encoder(name=path.stem, source=path, format="onnx", module=module, preprocess=pre,
                   info={"arch": "onnx", "inputs": [i.name for i in session.get_inputs()]})
