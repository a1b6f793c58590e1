import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch/BLAS thread for the metric tests: these small problems gain nothing from two,
    and on a busy machine (CI runners, parallel jobs) two spinning threads made them 5-10x
    slower."""
    import torch
    from threadpoolctl import threadpool_limits

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(old)
