"""ONNX models (``.onnx``) through onnxruntime, under the ``[onnx]`` extra.

The session is wrapped in a module-like object (an ``nn.Module`` without parameters whose
``forward`` runs the session on CPU numpy arrays), so the rest of the app treats it like any
encoder. ONNX graphs cannot take forward hooks: only the model's output (its first output)
can be the embedding. The weights' fingerprint is the file's sha256.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from explorer.encoders.base import DEFAULTS_NOTE, Encoder, Preprocess
from explorer.encoders.checkpoint import as_preprocess, read_sidecar, sidecar_path
from explorer.encoders.registry import ENCODERS
from explorer.core.errors import CheckpointError, InputError

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

    _ONNX_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
                    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(uint8)": np.uint8,
                    "tensor(int8)": np.int8, "tensor(bool)": np.bool_}

    class OnnxModule(nn.Module):
        """``forward(x)`` runs the ONNX session on ``x`` (its first input) and returns the first
        output as a float32 tensor on ``x``'s device.

        Inputs are cast to the dtype the graph declares (float32, float16, float64, int64...).
        A graph exported with a fixed batch size (``torch.onnx.export`` without ``dynamic_axes``
        fixes it at the example's, often 1) is run in chunks of that size, the last one padded
        with copies of its final row and the padding dropped from the output.
        """

        def __init__(self, session):
            super().__init__()
            self.session = session
            inputs = session.get_inputs()
            self.input_name = inputs[0].name
            self.input_dtypes = {i.name: _ONNX_DTYPES.get(i.type) for i in inputs}
            self.fixed_batch = {i.name: (i.shape[0] if i.shape and isinstance(i.shape[0], int) and i.shape[0] > 0
                                         else None) for i in inputs}

        def _feed(self, name, t):
            a = t.detach().cpu()
            if a.dtype == torch.bfloat16:
                a = a.float()
            a = a.numpy()
            dtype = self.input_dtypes.get(name)
            return a.astype(dtype, copy=False) if dtype is not None else a

        def forward(self, x=None, **features):
            if features:
                feeds = {k: self._feed(k, v) for k, v in features.items()}
                device = next(iter(features.values())).device
            else:
                feeds = {self.input_name: self._feed(self.input_name, x)}
                device = x.device
            n = len(next(iter(feeds.values())))
            fixed = {self.fixed_batch.get(k) for k in feeds} - {None}
            step = min(fixed) if fixed else None
            if step is None or step == n:
                out = self.session.run(None, feeds)[0]
            else:
                parts = []
                for a in range(0, n, step):
                    chunk = {k: v[a:a + step] for k, v in feeds.items()}
                    m = len(next(iter(chunk.values())))
                    if m < step:
                        chunk = {k: np.concatenate([v, np.repeat(v[-1:], step - m, axis=0)]) for k, v in chunk.items()}
                    parts.append(self.session.run(None, chunk)[0][:m])
                out = np.concatenate(parts)
            out = np.ascontiguousarray(out)
            if out.dtype != np.float32 and np.issubdtype(out.dtype, np.floating):
                out = out.astype(np.float32)
            return torch.from_numpy(out).to(device)

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
    info = {"arch": "onnx", "inputs": [i.name for i in session.get_inputs()],
            "preprocess_source": "set by the user" if preprocess is not None else sidecar_path(path).name}
    if pre is None:
        shape = list(session.get_inputs()[0].shape)
        info["preprocess_source"] = DEFAULTS_NOTE
        if len(shape) == 4 and isinstance(shape[1], int) and isinstance(shape[2], int):
            pre = Preprocess(kind="image", size=int(shape[2]), channels=int(shape[1]),
                             mean=(0.5,) * int(shape[1]), std=(0.5,) * int(shape[1]))
            info["preprocess_source"] = "defaults (size from the ONNX input shape; nothing declared mean/std)"
            info["input_kind_declared"] = True
        elif len(shape) == 2:
            pre = Preprocess(kind="vector")
            info["input_kind_declared"] = True
        else:
            pre = Preprocess()
    module = _module_class()(session).eval()
    return Encoder(name=path.stem, source=path, format="onnx", module=module, preprocess=pre,
                   info=info)
