"""The registry of encoder formats.

Each format is one module in this package that registers a loader::

    @ENCODERS.register("safetensors", label="safetensors weights", extensions=(".safetensors",))
    def open_safetensors(path: Path, **options) -> Encoder: ...

A loader receives the path and the keyword options of :func:`explorer.encoders.open_encoder`
(``arch``, ``factory``, ``trust``, ``arch_kwargs``, ``preprocess``) and returns an
:class:`~explorer.encoders.base.Encoder`; it must accept and ignore options it does not use.
Third parties register theirs through the entry-point group ``embedding_explorer.encoders``.
"""

from __future__ import annotations

from explorer.core.registry import Registry

ENCODERS = Registry("encoder", "embedding_explorer.encoders")
