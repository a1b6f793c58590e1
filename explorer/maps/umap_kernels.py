"""umap-learn's numba kernels, re-jitted once with a disk cache (shared by the UMAP fit in
:mod:`explorer.maps.umap` and the streamed placement in :mod:`explorer.maps.stream`)."""

from __future__ import annotations

import types

_KERNELS: dict = {}


def _kernels() -> dict:
    """umap-learn's numba kernels re-jitted with ``cache=True`` (umap-learn itself compiles them
    without a disk cache, so every fresh process paid the compile). Falls back to umap's own
    dispatchers if re-jitting fails."""
    if _KERNELS:
        return _KERNELS
    from explorer.core.resources import setup_numba_cache

    setup_numba_cache()
    import numba
    import umap.layouts as L
    import umap.umap_ as U

    def rejit(f, tag, **kw):
        # numba's disk cache keys an entry by the function's qualified name and signature, not
        # by its flags: two variants of one umap function (serial/parallel, nogil or not,
        # umap's own) would overwrite or load each other. Each variant therefore gets its own
        # name. nogil: the GUI runs maps in a worker thread, and an epoch that held the GIL
        # stalled the event loop (measured 0.4-1.3 s per 70k-point epoch when a cached
        # non-nogil build was loaded).
        py = getattr(f, "py_func", f)
        try:
            g = types.FunctionType(py.__code__, py.__globals__, f"{py.__name__}__{tag}",
                                   py.__defaults__, py.__closure__)
            g.__qualname__ = f"{py.__qualname__}__{tag}"
            g.__module__ = py.__module__
            return numba.njit(g, cache=True, nogil=True, **kw)
        except Exception:  # pragma: no cover - numba refused; use umap's own
            return f

    _KERNELS.update(
        smooth_knn_dist=rejit(U.smooth_knn_dist, "ee", fastmath=True),
        compute_membership_strengths=rejit(U.compute_membership_strengths, "ee", fastmath=True),
        epoch_serial=rejit(L._optimize_layout_euclidean_single_epoch, "ee_serial", fastmath=True, parallel=False),
        epoch_parallel=rejit(L._optimize_layout_euclidean_single_epoch, "ee_parallel", fastmath=True, parallel=True),
    )
    return _KERNELS
