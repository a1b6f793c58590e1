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
    # the fine-tune dialog saves under the documents folder by default (platformdirs reads this)
    monkeypatch.setenv("XDG_DOCUMENTS_DIR", str(base / "documents"))
    yield


def cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


requires_cuda = pytest.mark.skipif(not cuda_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def one_thread():
    """One torch/BLAS thread for a module of small problems: they gain nothing from two, and on a
    busy machine (CI runners, parallel jobs) two spinning threads made them 5-10x slower.
    Packages of such tests request it from an autouse fixture in their conftest."""
    import torch
    from threadpoolctl import threadpool_limits

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(old)
