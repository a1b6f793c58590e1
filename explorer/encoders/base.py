"""The encoder contract every encoder format produces.

An :class:`Encoder` wraps a ``torch.nn.Module`` with what is needed to embed a dataset with
it: the kind of input it takes, its preprocessing (saved with it), the layer whose output is
the embedding (any named submodule, through a forward hook) and the pooling that output
needs. The embedding engine (:mod:`explorer.embed`) only talks to this interface.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional


@dataclass(frozen=True)
class Preprocess:
    """How raw items become model input. Saved with the encoder and part of the cache key.

    image: each image's shorter side is resized to ``resize`` (``None``: to ``size``) with
    ``interpolation``, then the centre ``size`` x ``size`` crop is taken (torchvision's
    ``Resize(resize)`` + ``CenterCrop(size)``); the engine scales the uint8 RGB to [0, 1],
    converts to grey if ``channels == 1`` and normalises with ``mean``/``std`` on the device.
    text: ``tokenizer`` names how to tokenise (``max_length``). vector: rows are used as they are.
    """

    kind: str = "image"  # "image" | "text" | "vector"
    size: int = 32
    channels: int = 3
    mean: tuple = (0.5, 0.5, 0.5)
    std: tuple = (0.5, 0.5, 0.5)
    tokenizer: Optional[str] = None
    max_length: int = 128
    resize: Optional[int] = None  # shorter side before the centre crop (None: size)
    interpolation: str = "bilinear"  # "bilinear" | "bicubic" | "nearest" | "lanczos"

    def __post_init__(self) -> None:
        from explorer.core.errors import InputError

        if self.kind not in INPUT_KINDS:
            raise InputError(f"Unknown input kind {self.kind!r}; use one of {', '.join(INPUT_KINDS)}.")
        if self.interpolation not in INTERPOLATIONS:
            raise InputError(f"Unknown interpolation {self.interpolation!r}; use one of "
                             f"{', '.join(INTERPOLATIONS)}.")
        if int(self.size) < 1 or (self.resize is not None and int(self.resize) < int(self.size)):
            raise InputError(f"Image size must be at least 1 and the resize at least the image size "
                             f"(got size {self.size}, resize {self.resize}).")

    @property
    def resize_to(self) -> int:
        """The shorter side before the centre crop."""
        return int(self.resize) if self.resize else int(self.size)

    def to_dict(self) -> dict:
        """All fields; ``resize``/``interpolation`` only when they differ from the defaults, so
        cache keys of encoders that never set them stay as they were."""
        d = asdict(self)
        if d["resize"] is None or int(d["resize"]) == int(d["size"]):
            d.pop("resize")
        if d["interpolation"] == "bilinear":
            d.pop("interpolation")
        return d

    def describe(self) -> str:
        """One line: ``224 px (resize 256, bicubic), mean 0.485,0.456,0.406, std ...``."""
        if self.kind != "image":
            return f"{self.kind} input" + (f", tokenizer {self.tokenizer}" if self.tokenizer else "")
        r = f"resize {self.resize_to}, " if self.resize_to != int(self.size) else ""
        fmt = ",".join
        return (f"{self.size} px ({r}{self.interpolation}, centre crop), mean {fmt(f'{v:g}' for v in self.mean)}, "
                f"std {fmt(f'{v:g}' for v in self.std)}" + (", grey" if int(self.channels) == 1 else ""))

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocess":
        d = dict(d)
        for k in ("mean", "std"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


INPUT_KINDS = ("image", "text", "vector")
#: What ``Encoder.info["preprocess_source"]`` says when nothing declared the preprocessing.
DEFAULTS_NOTE = "defaults (nothing declared the preprocessing)"
INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "lanczos")


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


@dataclass
class Architecture:
    """Something that builds an ``nn.Module``: ``build(**kwargs)``."""

    name: str  # "small_cnn", or the factory spec "f.py:make"
    build: Callable[..., Any]
    preprocess: Optional[Preprocess] = None
    kwargs: dict = field(default_factory=dict)  # defaults, shown to users
    builtin: bool = False
    spec: Optional[str] = None  # how to find it again: absolute "file.py:function" for factories
    preprocess_note: str = ""  # where the default preprocessing came from (library metadata...)
    preprocess_from: Optional[Callable[[Any], Any]] = None  # model -> (Preprocess, note), after build
