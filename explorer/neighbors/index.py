"""Exact single and multi-query search over a fixed set of vectors: :class:`VectorIndex`
(prepared once; above 2^24 elements on a CPU it pre-ranks on int8 codes with a provable error
bound, then rescores the candidates exactly) and :func:`query` for one-off queries. Scores follow
the convention of :mod:`explorer.neighbors.search` (larger is closer)."""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np

from explorer.core.parallel import run_rows
from explorer.core.errors import InputError
from explorer.neighbors.search import _as_matrix, _check_metric, _prepare

__all__ = ["VectorIndex", "query"]

_SCAN = None


def _scan_kernel():
    """numba kernel (compiled once, cached on disk, releases the GIL): for rows [r0, r1) of the
    int8 codes C, a_i = s_i * sum_j q_j C_ij (+ bias_i), lo_i = a_i - qn w_i, hi_i = a_i + qn w_i."""
    global _SCAN
    if _SCAN is None:
        from explorer.core.resources import setup_numba_cache

        setup_numba_cache()
        import numba

        @numba.njit(cache=True, nogil=True, fastmath=True, boundscheck=False)
        def scan(C, q, s, w, bias, has_bias, qn, lo, hi, r0, r1):  # pragma: no cover - numba
            d = C.shape[1]
            for i in range(r0, r1):
                acc = np.float32(0.0)
                for j in range(d):
                    acc += q[j] * np.float32(C[i, j])
                a = s[i] * acc
                if has_bias:
                    a += bias[i]
                e = qn * w[i]
                lo[i] = a - e
                hi[i] = a + e

        _SCAN = scan
    return _SCAN


_QUANT = None


def _quant_kernel():
    global _QUANT
    if _QUANT is None:
        from explorer.core.resources import setup_numba_cache

        setup_numba_cache()
        import numba

        @numba.njit(cache=True, nogil=True, boundscheck=False)
        def quant(D, C, s, w, gamma, r0, r1):  # pragma: no cover - numba
            d = D.shape[1]
            for i in range(r0, r1):
                m = np.float32(0.0)
                for j in range(d):
                    m = max(m, abs(D[i, j]))
                sc = max(m / np.float32(127.0), np.float32(1e-30))
                err = 0.0
                r = 0.0
                for j in range(d):
                    c = min(127.0, max(-127.0, np.rint(D[i, j] / sc)))
                    C[i, j] = np.int8(c)
                    rec = c * np.float64(sc)
                    diff = np.float64(D[i, j]) - rec
                    err += diff * diff
                    r += rec * rec
                s[i] = sc
                w[i] = 2.0 * (np.sqrt(err) + gamma * np.sqrt(r)) * (1 + 1e-6) + 1e-30

        _QUANT = quant
    return _QUANT


def _quantize(D: np.ndarray):
    """Per-row symmetric int8 codes of ``D`` (N, d): s_i = max_j |D_ij| / 127,
    C_ij = round(D_ij / s_i). Returns (C int8 (N, d), s float32 (N,), w float32 (N,)) where
    w_i = 2 (||D_i - s_i C_i||_2 + gamma_{d+2} s_i ||C_i||_2) (computed in float64, rounded up):
    for any query q the float32 kernel value s_i fl(<q, C_i>) is within ||q|| w_i / 2 of
    <q, D_i> (Cauchy-Schwarz for the quantisation error; Higham's gamma_n = n u / (1 - n u),
    u = 2^-24, for float32 summation in any order and the final scaling); the factor 2 is a
    safety margin."""
    N, d = D.shape
    C = np.empty((N, d), np.int8)
    s = np.empty(N, np.float32)
    w = np.empty(N, np.float64)
    u = 2.0 ** -24
    gamma = (d + 2) * u / (1 - (d + 2) * u)
    run_rows(_quant_kernel(), N, D, C, s, w, gamma)
    w32 = w.astype(np.float32)
    w32 = np.where(w32.astype(np.float64) < w, np.nextafter(w32, np.float32(np.inf)), w32)
    return C, s, w32.astype(np.float32)


class VectorIndex:
    """Exact single/multi-query search over a fixed ``Z`` (N, D), prepared once.

    For large ``Z`` on a CPU the ranking rows are also kept as int8 codes with one float32
    scale per row (a quarter of the float32 bytes; memory traffic is what a scan costs). A query
    first scans the codes (numba, all cores, GIL released) giving for every point an interval
    [lo_i, hi_i] that provably holds its exact score (see :func:`_quantize` for the bound);
    every point whose ``hi`` reaches the k-th largest ``lo`` is then rescored exactly in float32,
    so the answer is the exact top-k, whatever the data. ``half`` is the historical name of the
    switch for this compressed pre-ranking (None: automatic, on above 2^24 elements)."""

    COMPRESS_MIN_ELEMENTS = 1 << 24
    HALF_MIN_ELEMENTS = COMPRESS_MIN_ELEMENTS

    def __init__(self, Z: np.ndarray, metric: str = "cosine", half: Optional[bool] = None):
        import torch

        _check_metric(metric)
        Z = _as_matrix(Z)
        self.metric = metric
        self.n, self.dim = Z.shape
        with torch.no_grad():
            Zt = torch.from_numpy(Z)
            self._Z = Zt
            self._D, bias = _prepare(Zt, metric)
            self._bias = None if bias is None else bias * 0.5  # argmax <q,z> - ||z||^2/2
            use = (self.n * self.dim >= self.COMPRESS_MIN_ELEMENTS) if half is None else half
            self._codes = None
            self.last_candidates = None
            if use:
                self._codes, self._scale, self._w = _quantize(self._D.numpy())
                self._bias_np = (np.zeros(1, np.float32) if self._bias is None
                                 else np.ascontiguousarray(self._bias.numpy()))
                _scan_kernel()

    @property
    def compressed(self) -> bool:
        """True when queries pre-rank on the int8 codes (then rescore exactly)."""
        return self._codes is not None

    def _intervals(self, qp: np.ndarray, qn: float):
        lo = np.empty(self.n, np.float32)
        hi = np.empty(self.n, np.float32)
        run_rows(_scan_kernel(), self.n, self._codes, qp, self._scale, self._w, self._bias_np,
                  self._bias is not None, np.float32(qn), lo, hi)
        return lo, hi

    def query(self, q: Optional[np.ndarray] = None, k: int = 10, index: Optional[int] = None,
              exclude: Optional[Sequence[int]] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Top-k of one query vector ``q`` (D,) or of dataset row ``index`` (itself excluded).
        Returns (indices (k,) int64, scores (k,) float32), sorted by descending score."""
        import torch

        excl = set(int(e) for e in (exclude or ()))
        if index is not None:
            if not 0 <= index < self.n:
                raise InputError(f"Query index {index} is outside 0..{self.n - 1}.")
            q = self._Z[index].numpy()
            excl.add(int(index))
        if q is None:
            raise InputError("Give a query vector or a query index.")
        q = np.asarray(q, dtype=np.float32).reshape(-1)
        if q.shape[0] != self.dim:
            raise InputError(f"The query has {q.shape[0]} dimensions, the vectors have {self.dim}.")
        if not np.isfinite(q).all():
            raise InputError("The query vector contains NaN or infinite values.")
        kk = min(k, self.n - len([e for e in excl if 0 <= e < self.n]))
        if kk < 1:
            raise InputError("There are no points left to return as neighbours.")
        with torch.no_grad():
            qt = torch.from_numpy(q)
            qp = torch.nn.functional.normalize(qt, dim=0, eps=1e-12) if self.metric == "cosine" else qt
            ex = torch.tensor(sorted(e for e in excl if 0 <= e < self.n), dtype=torch.long) if excl else None
            if self._codes is None:
                s = self._D @ qp
                if self._bias is not None:
                    s = s + self._bias
                if ex is not None and len(ex):
                    s[ex] = -math.inf
                v, i = s.topk(kk)
            else:
                qnp = np.ascontiguousarray(qp.numpy(), dtype=np.float32)
                qn = float(np.sqrt(np.dot(qnp.astype(np.float64), qnp.astype(np.float64)))) * (1 + 1e-6)
                lo, hi = self._intervals(qnp, qn)
                if ex is not None and len(ex):
                    lo[ex.numpy()] = -np.inf
                    hi[ex.numpy()] = -np.inf
                kth = torch.from_numpy(lo).topk(kk).values[-1]
                cand = torch.from_numpy(np.flatnonzero(hi >= kth.item()))
                self.last_candidates = int(len(cand))
                s = self._D[cand] @ qp
                if self._bias is not None:
                    s = s + self._bias[cand]
                v, p = s.topk(kk)
                i = cand[p]
            if self.metric == "euclidean":
                v = -(self._Z[i] - qt).norm(dim=1)
                v, p = v.sort(descending=True, stable=True)
                i = i[p]
        return i.numpy().astype(np.int64), v.numpy().astype(np.float32)


def query(Z: np.ndarray, q: Optional[np.ndarray] = None, k: int = 10, metric: str = "cosine",
          index: Optional[int] = None, exclude: Optional[Sequence[int]] = None):
    """One exact query (vector ``q`` or dataset row ``index``, itself excluded) against ``Z``.
    For repeated queries keep a :class:`VectorIndex` (it prepares Z once)."""
    return VectorIndex(Z, metric, half=False).query(q, k, index=index, exclude=exclude)
