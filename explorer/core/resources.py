"""Where bundled files and per-user folders live.

``assets/`` and ``sample_data/`` sit at the top of the repository and ship in the wheel as the
package data of ``explorer.assets`` / ``explorer.sample_data``; they are always found through
importlib.resources (never by a path relative to the working directory), with the source tree
as a fallback when running from a checkout without installing.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]  # explorer/core/resources.py -> the repository


def _package_dir(package: str, fallback: str) -> Path:
    try:
        from importlib.resources import files

        p = Path(str(files(package)))
        if p.is_dir():
            return p
    except (ModuleNotFoundError, TypeError):
        pass
    return _REPO / fallback


@lru_cache(maxsize=None)
def assets_dir() -> Path:
    return _package_dir("explorer.assets", "assets")


@lru_cache(maxsize=None)
def sample_data_dir() -> Path:
    return _package_dir("explorer.sample_data", "sample_data")


def cache_dir() -> Path:
    """Per-user cache folder (workspaces of the demo, numba's compiled kernels).
    ``EMBEDDING_EXPLORER_CACHE`` overrides it (tests point it at a temporary folder)."""
    env = os.environ.get("EMBEDDING_EXPLORER_CACHE")
    if env:
        p = Path(env)
    else:
        from platformdirs import user_cache_dir

        p = Path(user_cache_dir("embedding-explorer", appauthor=False))
    p.mkdir(parents=True, exist_ok=True)
    return p


def setup_numba_cache() -> Path:
    """Point numba's on-disk cache at our cache folder, unless the user chose one already.
    Must run before umap/pynndescent are imported (TRAPS.md #2: first compile costs ~20-40 s)."""
    d = cache_dir() / "numba"
    d.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("NUMBA_CACHE_DIR", str(d))
    return Path(os.environ["NUMBA_CACHE_DIR"])
