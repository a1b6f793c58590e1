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


def _blas_threads(n=None):
    """Set OpenBLAS's (process-wide) thread count to ``n`` and return a limiter whose
    ``restore_original_limits`` undoes it; with ``n=None``, just undo ``_BLAS_USERS[1]``.

    threadpoolctl >= 3.8 lets only one "controlling" Python thread change OpenBLAS's pthreads
    pool and silently ignores the others; a bare ``threadpool_limits(1)`` call (not a ``with``)
    never hands control back. So a job thread of the app, or the main thread after a worker
    had once set a limit, changed nothing (measured: the CI run of stop 27 read 2 threads
    inside single_blas). Our own count already makes single_blas the one owner in this
    process, so it takes control for the call and hands it back after it.

    scipy.linalg is loaded first: its wheels bring their own OpenBLAS, which a limit set
    before it loaded would not cover (the eigensolvers of the metrics run on it)."""
    import scipy.linalg  # noqa: F401
    from threadpoolctl import threadpool_limits

    try:
        from threadpoolctl import OpenBLASController

        release = getattr(OpenBLASController, "clear_controlling_thread", None)
    except ImportError:  # threadpoolctl < 3.8: any thread may set the limit
        release = None
    if release is not None:
        release(force=True)
    try:
        if n is None:
            _BLAS_USERS[1].restore_original_limits()
            return None
        return threadpool_limits(n, user_api="blas")
    finally:
        if release is not None:
            release(force=True)


@contextlib.contextmanager
def single_blas():
    """A context in which numpy's BLAS runs on one thread, for work that the pool's threads
    share out themselves (each thread its own products): OpenBLAS's threads spin for a while
    after each product and, on 2 busy cores, slowed the merges between products by 1.5-3x
    (measured on the IVF join). Process-wide, whichever thread enters it (the app's job
    threads included); counted, so that overlapping users (two jobs' joins, a join and a
    diagnosis's eigensolver) restore the BLAS's threads only when the last one leaves."""
    with _BLAS_LOCK:
        if _BLAS_USERS[0] == 0:
            _BLAS_USERS[1] = _blas_threads(1)
        _BLAS_USERS[0] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_USERS[0] -= 1
            if _BLAS_USERS[0] == 0:
                _blas_threads()
                _BLAS_USERS[1] = None


def run_tasks(fn: Callable, items) -> list:
    """``[fn(item) for item in items]`` on the pool's threads, with single-threaded BLAS
    products (:func:`single_blas`) when there is more than one thread; re-raises the first error."""
    items = list(items)
    if workers() == 1 or len(items) <= 1:
        return [fn(it) for it in items]
    with single_blas():
        return list(pool().map(fn, items))
