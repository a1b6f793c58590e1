"""Built-in architectures, registered by name.

A weights-only checkpoint (a ``state_dict``) needs an architecture to load into; the built-in
ones are registered here and the encoders package builds them with
``ARCHITECTURES.get(name).func(**kwargs)``. Each entry carries its default preprocessing in
``entry.extra["preprocess"]`` (also :func:`default_preprocess`), which a checkpoint's JSON
sidecar may override.

    small_cnn   compact CNN for 32 x 32 RGB images (the sample checkpoints use it)
    mlp         multi-layer perceptron for feature vectors

Third parties can register theirs the same way::

    from explorer.encoders.archs import ARCHITECTURES

    @ARCHITECTURES.register("my_net", label="My net", preprocess=Preprocess(size=64))
    def my_net(**kwargs): ...
"""

from __future__ import annotations

from collections import OrderedDict

from explorer.encoders.base import Preprocess
from explorer.core.registry import Registry

__all__ = ["ARCHITECTURES", "default_preprocess", "build", "SmallCNN", "MLP", "small_cnn", "mlp"]

ARCHITECTURES = Registry("architecture", "embedding_explorer.architectures")

_IMAGE_PREPROCESS = Preprocess(kind="image", size=32, channels=3, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
_VECTOR_PREPROCESS = Preprocess(kind="vector")


def default_preprocess(name: str) -> Preprocess:
    """The preprocessing a built-in (or registered) architecture expects by default."""
    return ARCHITECTURES.get(name).extra.get("preprocess", Preprocess())


def build(name: str, **kwargs):
    """Instantiate the architecture ``name`` with ``kwargs`` (an ``nn.Module`` in eval mode)."""
    module = ARCHITECTURES.get(name).func(**kwargs)
    return module.eval()


def _make_small_cnn_class():
    import torch
    import torch.nn as nn

    class SmallCNN(nn.Module):
        """Compact CNN for 32 x 32 inputs: 4 conv blocks (conv3x3-BN-ReLU-maxpool, widths
        w, 2w, 4w, 8w; w=16) -> global average pool -> ``embed`` (Linear to ``embed_dim``).

        ``forward(x)`` maps (B, C, 32, 32) to the embedding (B, embed_dim). The optional
        ``projector`` (Linear-ReLU-Linear to ``proj_dim``, as in SimCLR) also runs in every
        forward pass so that a forward hook on ``projector`` (or ``projector.2``) sees its output;
        pick it as the embedding layer to look at the projector instead of the backbone.
        Named layers: ``features.block1`` .. ``features.block4``, ``pool``, ``embed``,
        ``projector``.
        """

        def __init__(self, in_channels: int = 3, width: int = 16, embed_dim: int = 128,
                     proj_dim: int = 64, projector: bool = True) -> None:
            super().__init__()
            widths = [width, 2 * width, 4 * width, 8 * width]
            blocks = OrderedDict()
            c = in_channels
            for i, w in enumerate(widths, 1):
                blocks[f"block{i}"] = nn.Sequential(OrderedDict(
                    conv=nn.Conv2d(c, w, 3, padding=1, bias=False),
                    bn=nn.BatchNorm2d(w),
                    relu=nn.ReLU(inplace=True),
                    pool=nn.MaxPool2d(2),
                ))
                c = w
            self.features = nn.Sequential(blocks)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.embed = nn.Linear(c, embed_dim)
            self.projector = (nn.Sequential(nn.Linear(embed_dim, embed_dim), nn.ReLU(inplace=True),
                                            nn.Linear(embed_dim, proj_dim)) if projector else None)
            self.embed_dim = embed_dim

        def forward(self, x: "torch.Tensor") -> "torch.Tensor":
            h = self.embed(torch.flatten(self.pool(self.features(x)), 1))
            if self.projector is not None:
                self.projector(h)  # for forward hooks on the projector; the output is the embedding
            return h

        def finetune_blocks(self) -> list:
            """Trainable blocks, input to output (used by ``last_n_blocks`` in fine-tuning)."""
            return [*self.features.children(), self.embed]

    return SmallCNN


def _make_mlp_class():
    import torch.nn as nn

    class MLP(nn.Module):
        """Multi-layer perceptron for feature vectors: ``layers`` hidden blocks
        (Linear-ReLU, width ``hidden``) then ``embed`` (Linear to ``out_dim``).
        ``forward(x)``: (B, in_dim) -> (B, out_dim). Named layers ``hidden.0`` .., ``embed``."""

        def __init__(self, in_dim: int = 64, hidden: int = 256, out_dim: int = 128, layers: int = 2) -> None:
            super().__init__()
            mods = []
            d = in_dim
            for _ in range(max(0, int(layers))):
                mods.append(nn.Sequential(nn.Linear(d, hidden), nn.ReLU(inplace=True)))
                d = hidden
            self.hidden = nn.Sequential(*mods)
            self.embed = nn.Linear(d, out_dim)
            self.embed_dim = out_dim

        def forward(self, x):
            return self.embed(self.hidden(x.flatten(1)))

        def finetune_blocks(self) -> list:
            return [*self.hidden.children(), self.embed]

    return MLP


_CLASSES: dict = {}


def __getattr__(name):  # lazy: importing this module must not import torch
    if name in ("SmallCNN", "MLP"):
        if name not in _CLASSES:
            _CLASSES[name] = _make_small_cnn_class() if name == "SmallCNN" else _make_mlp_class()
        return _CLASSES[name]
    raise AttributeError(name)


@ARCHITECTURES.register("small_cnn", label="Small CNN (32x32 images)", preprocess=_IMAGE_PREPROCESS,
                        kwargs={"in_channels": 3, "width": 16, "embed_dim": 128, "proj_dim": 64,
                                "projector": True})
def small_cnn(in_channels: int = 3, width: int = 16, embed_dim: int = 128, proj_dim: int = 64,
              projector: bool = True):
    """Compact 4-block CNN for 32x32 images with a 128-d `embed` layer and a `projector` head."""
    return __getattr__("SmallCNN")(in_channels=in_channels, width=width, embed_dim=embed_dim,
                                   proj_dim=proj_dim, projector=projector)


@ARCHITECTURES.register("mlp", label="MLP (feature vectors)", preprocess=_VECTOR_PREPROCESS,
                        kwargs={"in_dim": 64, "hidden": 256, "out_dim": 128, "layers": 2})
def mlp(in_dim: int = 64, hidden: int = 256, out_dim: int = 128, layers: int = 2):
    """Multi-layer perceptron for feature vectors (in_dim -> hidden x layers -> out_dim)."""
    return __getattr__("MLP")(in_dim=in_dim, hidden=hidden, out_dim=out_dim, layers=layers)
