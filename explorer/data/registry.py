"""The dataset-format registry.

Each built-in format is one module in :mod:`explorer.data` that registers its opener here;
third parties add theirs through the ``embedding_explorer.datasets`` entry-point group (the
entry point names a module; importing it registers its formats).

An opener is ``open_xxx(path: Path, **options) -> Dataset``.
"""

from __future__ import annotations

from explorer.core.registry import Registry

DATASETS = Registry("dataset", "embedding_explorer.datasets")
