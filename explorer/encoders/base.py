"""The encoder contract every encoder format produces.

An :class:`Encoder` wraps a ``torch.nn.Module`` with what is needed to embed a dataset with
it: the kind of input it takes, its preprocessing (saved with it), the layer whose output is
the embedding (any named submodule, through a forward hook) and the pooling that output
needs. The embedding engine (:mod:`explorer.embed`) only talks to this interface.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional


@dataclass(frozen=True)
class Preprocess:
    """How raw items become model input. Saved with the encoder and part of the cache key.

    image: the dataset gives uint8 RGB at ``size`` x ``size`` (shorter side resized, centre
    crop); the engine scales to [0, 1], converts to grey if ``channels == 1`` and normalises
    with ``mean``/``std`` on the device.  text: ``tokenizer`` names how to tokenise (``max_length``).
    vector: rows are used as they are.
    """

    kind: str = "image"  # "image" | "text" | "vector"
    size: int = 32
    channels: int = 3
    mean: tuple = (0.5, 0.5, 0.5)
    std: tuple = (0.5, 0.5, 0.5)
    tokenizer: Optional[str] = None
    max_length: int = 128

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocess":
        d = dict(d)
        for k in ("mean", "std"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


POOLINGS = ("auto", "avg", "cls", "mean", "flatten", "none")


@dataclass
class Encoder:
    """A loaded encoder. ``module`` is in eval mode on the CPU until the engine moves it.

    name: display name. source: the file/folder it came from. format: registry name.
    layer: submodule name whose output is the embedding (None: the model's output).
    pooling: "auto" (avg for (B,C,H,W), cls for (B,T,D) if the model has a CLS token else mean,
    none for (B,D)), or forced. info: what the loader learned (architecture, parameter count,
    prefix stripped, missing/unexpected keys...).
    """

    name: str
    source: Path
    format: str
    module: Any
    preprocess: Preprocess = field(default_factory=Preprocess)
    layer: Optional[str] = None
    pooling: str = "auto"
    info: dict = field(default_factory=dict)
    tokenizer: Any = None

    def layers(self) -> list[str]:
        """Named submodules a user can pick as the embedding layer, in model order."""
        return [n for n, _ in self.module.named_modules() if n]

    def weights_digest(self) -> str:
        """sha256 of the module's tensors (sorted names, dtypes, shapes, bytes); of the source
        file when the module holds none (ONNX)."""
        from explorer.encoders.fingerprint import weights_digest

        return weights_digest(self.module, self.source)

    def fingerprint(self) -> str:
        """Hex digest of the weights, the layer, the pooling and the preprocessing (and the
        architecture's name and settings, from ``info``)."""
        from explorer.encoders.fingerprint import encoder_fingerprint

        return encoder_fingerprint(self.weights_digest(), self.layer, self.pooling,
                                   self.preprocess.to_dict(), self.info.get("arch"),
                                   self.info.get("arch_kwargs"))

    def describe(self) -> dict:
        return {"name": self.name, "source": str(self.source), "format": self.format,
                "layer": self.layer, "pooling": self.pooling,
                "preprocess": self.preprocess.to_dict(), **self.info}
