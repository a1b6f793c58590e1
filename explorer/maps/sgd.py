"""UMAP's layout optimisation, the fast way.

The same stochastic gradient descent as umap-learn's ``optimize_layout_euclidean`` (McInnes,
Healy & Melville, "UMAP: Uniform Manifold Approximation and Projection", 2018, section 3 and
appendix; umap/layouts.py): per epoch, every edge whose turn has come pulls its two ends
together with the attractive gradient

    -2ab d^(2(b-1)) / (1 + a d^(2b)) (y_i - y_j),

then its head is pushed from ``negative_sample_rate`` random points with the repulsive gradient

    2 gamma b / ((0.001 + d^2)(1 + a d^(2b))) (y_i - y_k),

each coordinate step clipped to [-4, 4] and scaled by the learning rate, which falls linearly
to 0. Edge schedules (``epochs_per_sample``), the learning-rate schedule and the fuzzy graph
are umap-learn's own. What differs, and why it is faster (measured in
``benchmarks/bench_maps.py``):

* the negative samples of one edge all push from the point's position before them and their
  (individually clipped) steps are added, instead of moving the point after each: the five
  evaluations no longer wait on each other;
* float32 arithmetic throughout, with ``d^(2b)`` read from a table of x^b indexed by the top
  16 bits of x and interpolated (relative error ~1e-6; umap-learn evaluates two float64
  ``pow`` per edge and one per negative sample);
* the random negative sample is ``(r * n) >> 32`` of a 32-bit xorshift kept in registers per
  thread (umap-learn: a modulo and a state array per head vertex);
* edges are split into contiguous ranges, one per core, each run by a GIL-free kernel on our
  thread pool (umap-learn: numba ``prange``). Like umap-learn's parallel mode (Hogwild-style
  lock-free updates), a multi-threaded run is not bit-reproducible; one thread is.

For bit-identical agreement with ``umap.UMAP`` use ``MapParams(optimizer="umap-learn")``.
"""

from __future__ import annotations

from typing import Optional

import numba
import numpy as np
from numba.core import types
from numba.extending import intrinsic

from explorer.core.jobs import Job, Progress
from explorer.core.resources import setup_numba_cache

__all__ = ["optimize_fast"]

# Kernels at module level: numba's disk cache keys a function by its code and globals; a
# closure over another jitted function got a new key in every process and was compiled again
# on every start (measured: 3 s of a first map).
setup_numba_cache()


def power_table(b: float) -> np.ndarray:
    """x^b for every float32 x whose low 16 bits are zero (sign 0): entry ``key`` is
    (float32 with bits ``key << 16``)^b in float64, rounded to float32 (overflow -> the largest
    float32). :func:`_powb` interpolates linearly between neighbouring entries, which
    are 1/128 of an octave apart: relative error below |b (b - 1)| / 8 * 2^-14 (+ float32
    rounding) for positive normal x, 1e-6 at umap's default b = 0.895."""
    keys = np.arange(1 << 15, dtype=np.uint32)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        x = (keys << np.uint32(16)).view(np.float32).astype(np.float64)
        t = np.power(x, float(b))
    t = np.nan_to_num(t, nan=0.0, posinf=float(np.finfo(np.float32).max))
    t = np.minimum(t, float(np.finfo(np.float32).max)).astype(np.float32)
    return np.append(t, t[-1]).astype(np.float32)


@intrinsic
def _f2i(typingctx, x):  # pragma: no cover - compile-time
    """The bits of a float32 as an int32 (a bit cast, no conversion)."""
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(types.int32))
    return types.int32(types.float32), codegen


@numba.njit(cache=True, nogil=True, fastmath=True, inline="always")
def _powb(x, T):  # pragma: no cover - numba
    """numba function ``powb(x, T)`` = x^b for float32 x > 0 with ``T = power_table(b)``: the
    top 16 bits of x (exponent and 7 mantissa bits) index the table, the low 16 bits
    interpolate. umap-learn evaluates a float64 ``pow`` here, and float32 ``powf`` /
    ``exp(b log x)`` still cost as much as the rest of an epoch together (measured)."""
    bits = _f2i(x)
    key = bits >> 16
    frac = np.float32(bits & 0xFFFF) * np.float32(1.0 / 65536.0)
    lo = T[key]
    return lo + frac * (T[key + 1] - lo)


def _power_kernel():
    """The jitted ``_powb`` (for tests)."""
    return _powb


@numba.njit(cache=True, nogil=True, fastmath=True, boundscheck=False, error_model="numpy")
def _epoch(head_emb, tail_emb, head, tail, n_vertices, eps, a, b, gamma, move_other, alpha,
           eps_neg, next_neg, next_sample, n, T, rng, lo, hi):  # pragma: no cover - numba
    dim = head_emb.shape[1]
    a32 = np.float32(a)
    att = np.float32(-2.0 * a * b)
    rep = np.float32(2.0 * gamma * b)
    al = np.float32(alpha)
    nv = np.uint64(n_vertices)
    mask = np.uint64(0xFFFFFFFF)
    s = np.uint64(rng[0]) & mask
    if s == 0:
        s = np.uint64(2463534242)
    fn = np.float64(n)
    cur = np.empty(dim, np.float32)
    acc = np.empty(dim, np.float32)
    for i in range(lo, hi):
        if next_sample[i] > fn:
            continue
        j = head[i]
        k = tail[i]
        d2 = np.float32(0.0)
        for d in range(dim):
            diff = head_emb[j, d] - tail_emb[k, d]
            d2 += diff * diff
        if d2 > 0.0:
            pb = _powb(d2, T)
            gc = att * pb / (d2 * (a32 * pb + np.float32(1.0)))
        else:
            gc = np.float32(0.0)
        for d in range(dim):
            g = gc * (head_emb[j, d] - tail_emb[k, d])
            g = min(max(g, np.float32(-4.0)), np.float32(4.0))
            head_emb[j, d] += g * al
            if move_other:
                tail_emb[k, d] -= g * al
        next_sample[i] += eps[i]
        n_neg = int((fn - next_neg[i]) / eps_neg[i])
        # all negative samples of this edge push from the same position, their steps
        # summed (each clipped): independent work the core can overlap, where
        # umap-learn moves the point after each one (a chain of dependent pow calls)
        for d in range(dim):
            cur[d] = head_emb[j, d]
            acc[d] = np.float32(0.0)
        for _p in range(n_neg):
            s ^= (s << np.uint64(13)) & mask  # xorshift32 (Marsaglia 2003)
            s ^= s >> np.uint64(17)
            s ^= (s << np.uint64(5)) & mask
            kk = np.int64((s * nv) >> np.uint64(32))
            d2 = np.float32(0.0)
            for d in range(dim):
                diff = cur[d] - tail_emb[kk, d]
                d2 += diff * diff
            if d2 > 0.0:  # else the point itself or one on top of it: no push
                pb = _powb(d2, T)
                gc = rep / ((np.float32(0.001) + d2) * (a32 * pb + np.float32(1.0)))
                for d in range(dim):
                    g = gc * (cur[d] - tail_emb[kk, d])
                    acc[d] += min(max(g, np.float32(-4.0)), np.float32(4.0))
        for d in range(dim):
            head_emb[j, d] += acc[d] * al
        next_neg[i] += n_neg * eps_neg[i]
    rng[0] = np.int64(s)



def optimize_fast(head_emb: np.ndarray, tail_emb: np.ndarray, head: np.ndarray, tail: np.ndarray,
                  n_epochs: int, n_vertices: int, epochs_per_sample: np.ndarray, a: float, b: float,
                  seed: int, gamma: float, initial_alpha: float, negative_sample_rate: float,
                  threads: int, move_other: bool, label: str = "optimising layout",
                  report_every: Optional[int] = None) -> Job:
    """The SGD above, one epoch per step (progress with the current layout, cancellable
    between epochs), on ``threads`` threads. Arguments as umap-learn's
    ``optimize_layout_euclidean``; ``seed`` seeds the per-thread generators. Returns
    ``head_emb`` (updated in place)."""
    from explorer.core.parallel import pool as kernel_pool

    kern = _epoch
    T = power_table(b)
    head = np.ascontiguousarray(head, dtype=np.int64)
    tail = np.ascontiguousarray(tail, dtype=np.int64)
    eps = np.ascontiguousarray(epochs_per_sample, dtype=np.float64)
    eps_neg = eps / negative_sample_rate
    next_neg = eps_neg.copy()
    next_sample = eps.copy()
    m = len(eps)
    threads = int(max(1, min(threads, m // 1024 + 1)))
    bounds = np.linspace(0, m, threads + 1).astype(np.int64)
    ss = np.random.SeedSequence(int(seed) & 0xFFFFFFFF)
    rngs = [np.array([int(x) or 1], dtype=np.int64) for x in ss.generate_state(threads, np.uint32)]
    pool = kernel_pool() if threads > 1 else None
    every = report_every or max(1, n_epochs // 50)
    alpha = float(initial_alpha)
    for n in range(n_epochs):
        args = (head_emb, tail_emb, head, tail, n_vertices, eps, a, b, gamma, move_other, alpha,
                eps_neg, next_neg, next_sample, n, T)
        if pool is None:
            kern(*args, rngs[0], 0, m)
        else:
            futs = [pool.submit(kern, *args, rngs[t], int(bounds[t]), int(bounds[t + 1]))
                    for t in range(threads)]
            for f in futs:
                f.result()
        alpha = initial_alpha * (1.0 - (float(n) / float(n_epochs)))
        if (n + 1) % every == 0 or n + 1 == n_epochs:
            yield Progress(n + 1, n_epochs, label, partial=head_emb)
    return head_emb
