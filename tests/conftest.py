import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session writes caches and settings under a temporary folder, never in $HOME.
    numba's cache is shared across the session so its compiled kernels are reused."""
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("EMBEDDING_EXPLORER_CACHE", str(base / "cache"))
    monkeypatch.setenv("NUMBA_CACHE_DIR", os.environ.get("NUMBA_CACHE_DIR", str(base / "numba")))
    yield


def cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


requires_cuda = pytest.mark.skipif(not cuda_available(), reason="needs a CUDA GPU")
