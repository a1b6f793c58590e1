"""One process-wide thread pool for the numba kernels of the engines (exact kNN blocks, the
int8 scan of :class:`explorer.neighbors.VectorIndex`, the layout SGD). The kernels release the
GIL, so threads give real parallelism; one pool means the engines never oversubscribe the
cores between them (it has as many workers as torch uses threads)."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional

import numpy as np

_POOL: Optional[ThreadPoolExecutor] = None


def pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        import torch

        _POOL = ThreadPoolExecutor(max_workers=max(1, torch.get_num_threads()), thread_name_prefix="kernels")
    return _POOL


def workers() -> int:
    return pool()._max_workers


def run_rows(fn: Callable, n: int, *args, min_rows: int = 65536) -> None:
    """Run ``fn(*args, r0, r1)`` over contiguous row ranges of [0, n) on the pool, one range
    per ``min_rows`` rows at most; returns when all ranges are done (re-raising the first error)."""
    nt = max(1, min(workers(), n // min_rows + 1))
    if nt == 1:
        fn(*args, 0, n)
        return
    bounds = np.linspace(0, n, nt + 1).astype(np.int64)
    futs = [pool().submit(fn, *args, int(bounds[t]), int(bounds[t + 1])) for t in range(nt)]
    for f in futs:
        f.result()


_BLAS_LOCK = threading.Lock()
_BLAS_USERS = [0, None]  # how many callers are inside single_blas(), and the limiter to undo


@contextlib.contextmanager
def single_blas():
    """A context in which numpy's BLAS runs on one thread, for work that the pool's threads
    share out themselves (each thread its own products): OpenBLAS's threads spin for a while
    after each product and, on 2 busy cores, slowed the merges between products by 1.5-3x
    (measured on the IVF join). Process-wide; counted, so that overlapping users (two jobs'
    joins) restore the BLAS's threads only when the last one leaves."""
    from threadpoolctl import threadpool_limits

    with _BLAS_LOCK:
        if _BLAS_USERS[0] == 0:
            _BLAS_USERS[1] = threadpool_limits(1, user_api="blas")
        _BLAS_USERS[0] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_USERS[0] -= 1
            if _BLAS_USERS[0] == 0:
                _BLAS_USERS[1].restore_original_limits()
                _BLAS_USERS[1] = None


def run_tasks(fn: Callable, items) -> list:
    """``[fn(item) for item in items]`` on the pool's threads, with single-threaded BLAS
    products (:func:`single_blas`) when there is more than one thread; re-raises the first error."""
    items = list(items)
    if workers() == 1 or len(items) <= 1:
        return [fn(it) for it in items]
    with single_blas():
        return list(pool().map(fn, items))
