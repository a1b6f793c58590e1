import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    """Every fine-tuning test (tiny models) runs on one thread (see tests/conftest.py)."""
    yield
