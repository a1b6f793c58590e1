"""Shared machinery under every engine: the thread pool the numba kernels run on."""
