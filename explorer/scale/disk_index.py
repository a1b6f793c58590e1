"""A neighbour index of an embedding too big for memory, kept on disk (issue 20): IVF lists
(Jegou, Douze & Schmid, TPAMI 2011, the inverted-file part) whose members are stored in list
order, so that a query reads only the lists it probes, each one contiguous run of the file.

    index = drain(DiskIvf.build(Z, "big.h5.ivf/k-cosine", "cosine"))   # two streaming passes
    idx, scores = index.search(q, k=10)                               # reads nprobe lists

Build: k-means lists on a sample (:class:`explorer.neighbors.ivf.IvfIndex`), then one pass over
the rows assigning each to its nearest list while the exact neighbours of a few calibration
rows are found by the same pass, then a second pass writing every row (float16, normalised for
cosine) at its place in list order. ``nprobe`` is the smallest whose recall on the calibration
rows reaches the target (:class:`explorer.neighbors.ivf.IvfCurve`: no trial searches); the
index states it and the predicted recall. A search scores the probed lists' float16 rows,
then rescores its best candidates exactly from the original rows (float64), so the scores it
returns are exact; only a neighbour in an unprobed list can be missed.

Memory: the sample, one block of rows, and per row a list id and a position (12 bytes; 120 MB
at 10M). Disk: N x D float16 plus N int64 ids (15.4 + 0.08 GB at 10M x 768).
The folder is written under a temporary name and renamed when complete, so an interrupted
build leaves no index behind.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from explorer.core.errors import InputError
from explorer.core.jobs import Job, Progress, scaled
from explorer.neighbors.blocks import _ranking_matrix

__all__ = ["DiskIvf"]

VERSION = 1
_FP16_MAX = 60000.0  # rows with larger entries are stored as float32


def _ranking_rows(X: np.ndarray, metric: str) -> np.ndarray:
    """float32 rows whose dot products rank neighbours (unit rows for cosine, raw rows for
    euclidean, whose scores also take the bias of :func:`_ranking_matrix`)."""
    return _ranking_matrix(np.asarray(X, dtype=np.float32), metric)[0]


class DiskIvf:
    """An IVF index on disk (see the module): open one with ``DiskIvf(folder)``, make one with
    :meth:`build`. Attributes: ``metric``, ``n``, ``dim``, ``nlist``, ``nprobe`` (the default
    of :meth:`search`), ``predicted_recall`` (recall@``calib_k`` at that nprobe on the
    calibration rows), ``info`` (the whole metadata)."""

    def __init__(self, folder, source=None) -> None:
        self.folder = Path(folder)
        meta = self.folder / "meta.json"
        if not meta.exists():
            raise InputError(f"{self.folder} holds no neighbour index (no meta.json).")
        self.info = json.loads(meta.read_text())
        if self.info.get("version") != VERSION:
            raise InputError(f"The neighbour index in {self.folder} is of another version; build it again.")
        self.metric = self.info["metric"]
        self.n, self.dim = int(self.info["n"]), int(self.info["dim"])
        self.nlist, self.nprobe = int(self.info["nlist"]), int(self.info["nprobe"])
        self.predicted_recall = float(self.info["predicted_recall"])
        self.centroids = np.load(self.folder / "centroids.npy")
        cb = self.folder / "centroid_bias.npy"
        self.centroid_bias = np.load(cb) if cb.exists() else None
        self.starts = np.load(self.folder / "starts.npy")
        self.ids = np.load(self.folder / "ids.npy", mmap_mode="r")
        self.rows = np.load(self.folder / "rows.npy", mmap_mode="r")
        self.source = source  # the original rows, for the exact rescoring (any row source)

    # ------------------------------------------------------------------ build
    @staticmethod
    def build(Z, folder, metric: str = "cosine", nlist: Optional[int] = None, sample: int = 100_000,
              calib: int = 200, calib_k: int = 10, target: float = 0.99, block_rows: int = 65536,
              seed: int = 0, source_key: Optional[str] = None) -> Job:
        """Job -> :class:`DiskIvf` of the rows of ``Z`` (anything sliced by rows: a workspace
        :class:`~explorer.store.LazyArray`, a memory-mapped ``.npy``) in ``folder``. ``nlist``
        (None: sqrt(N), 16 to 4096); k-means on ``sample`` rows (runs spread over the file);
        ``calib`` of them calibrate ``nprobe`` for recall@``calib_k`` >= ``target``."""
        from explorer.maps.stream import _drop_pages, read_rows
        from explorer.neighbors.blocks import _empty_top, _merge_kernels
        from explorer.neighbors.ivf import IvfCurve, IvfIndex
        from explorer.scale.out_of_core import sample_rows

        if metric not in ("cosine", "euclidean"):
            raise InputError(f"A disk index ranks by cosine or euclidean, not {metric!r}.")
        t0 = time.perf_counter()
        N, D = int(Z.shape[0]), int(Z.shape[1])
        if N < 2:
            raise InputError("A neighbour index needs at least 2 rows.")
        nl = int(nlist or min(4096, max(16, round(math.sqrt(N)))))
        nl = max(1, min(nl, N // 2 or 1))
        folder = Path(folder)
        tmp = folder.with_name(folder.name + f".building-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            # 1. lists: k-means on a sample read in runs
            yield Progress(0, None, "neighbour index: reading a sample")
            srows = sample_rows(N, max(sample, 32 * nl))
            S = np.asarray(Z[srows] if len(srows) < N else Z[0:N], dtype=np.float32)
            ivf = IvfIndex(S, metric, nlist=nl, seed=seed, balance=2.0)
            yield from scaled(ivf.train(), 0.0, 0.1, "neighbour index: k-means lists")
            C, cb = ivf._C.numpy(), (None if ivf._cb is None else ivf._cb.numpy())
            nl = C.shape[0]
            rng = np.random.default_rng(seed)
            cal = np.sort(rng.choice(srows, size=min(calib, len(srows)), replace=False))
            Q = _ranking_rows(S[np.searchsorted(srows, cal)], metric)
            K = _merge_kernels()
            top_v, top_i = _empty_top(len(cal), min(calib_k, N - 1))
            qpos = np.arange(len(cal), dtype=np.int64)
            own = np.empty(N, np.int32)
            big = False
            # 2. every row's list, and the calibration rows' exact neighbours, in one pass
            for a in range(0, N, block_rows):
                b = min(N, a + block_rows)
                X = read_rows(Z, a, b)  # float32, finite (else one sentence), the file's pages let go
                big = big or bool(np.abs(X).max(initial=0.0) > _FP16_MAX)
                R, bias = _ranking_matrix(X, metric)
                sc = R @ C.T
                if cb is not None:
                    sc += cb[None, :]
                own[a:b] = sc.argmax(1)
                G = Q @ R.T
                K["rows"](G, qpos, cal, np.arange(a, b, dtype=np.int64),
                          bias if bias is not None else np.zeros(1, np.float32), bias is not None, True,
                          top_v, top_i, 0, len(cal))
                yield Progress(0.1 + 0.4 * b / N, 1.0, f"neighbour index: lists {b:,}/{N:,}")
            counts = np.bincount(own, minlength=nl).astype(np.int64)
            starts = np.concatenate([[0], np.cumsum(counts)])
            ids = np.argsort(own, kind="stable").astype(np.int64)
            pos = np.empty(N, np.int64)
            pos[ids] = np.arange(N, dtype=np.int64)
            # 3. the rows in list order (float16 unless an entry would overflow it)
            dtype = np.float32 if big else np.float16
            out = np.lib.format.open_memmap(tmp / "rows.npy", mode="w+", dtype=dtype, shape=(N, D))
            for a in range(0, N, block_rows):
                b = min(N, a + block_rows)
                R = _ranking_rows(read_rows(Z, a, b), metric)
                p = pos[a:b]
                order = np.argsort(p)
                out[p[order]] = R[order].astype(dtype)
                out.flush()  # written back, then no longer counted in this process's memory
                _drop_pages(out, 0, N)
                yield Progress(0.5 + 0.5 * b / N, 1.0, f"neighbour index: writing {b:,}/{N:,}")
            out.flush()
            del out
            # 4. nprobe from the calibration rows: the rank of each exact neighbour's list
            cs = Q @ C.T
            if cb is not None:
                cs += cb[None, :]
            order = np.argsort(-cs, axis=1, kind="stable")
            rank = np.empty_like(order)
            np.put_along_axis(rank, order, np.arange(nl)[None, :].repeat(len(cal), 0), 1)
            got = top_i >= 0
            ranks = np.take_along_axis(rank, own[np.where(got, top_i, 0)].astype(np.int64), 1)[got]
            scanned = np.cumsum(counts[order], axis=1).mean(0)
            curve = IvfCurve(np.sort(ranks.ravel()), scanned, nl, N)
            nprobe = max(1, curve.nprobe_for(target))
            np.save(tmp / "centroids.npy", C)
            np.save(tmp / "starts.npy", starts)
            np.save(tmp / "ids.npy", ids)
            info = {"version": VERSION, "metric": metric, "n": N, "dim": D, "nlist": int(nl),
                    "nprobe": int(nprobe), "target_recall": float(target), "calib_rows": int(len(cal)),
                    "calib_k": int(top_i.shape[1]), "predicted_recall": curve.recall(nprobe),
                    "fraction_scanned": round(curve.fraction_scanned(nprobe), 5), "stored_dtype": np.dtype(dtype).name,
                    "source_key": source_key, "build_seconds": round(time.perf_counter() - t0, 2)}
            if cb is not None:
                np.save(tmp / "centroid_bias.npy", cb)
            (tmp / "meta.json").write_text(json.dumps(info, indent=1))
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return DiskIvf(folder, source=Z)

    # ------------------------------------------------------------------ search
    def search(self, q: np.ndarray, k: int = 10, nprobe: Optional[int] = None, exclude: Optional[int] = None,
               rescore: int = 4) -> Tuple[np.ndarray, np.ndarray]:
        """The k nearest rows to the query ``q`` (D,) among the members of its ``nprobe``
        nearest lists (default: the index's) -> (indices (k,), scores (k,)), best first:
        cosine similarity, or minus the euclidean distance, computed exactly in float64 from
        the original rows (``source``) for the ``rescore * k`` best float16 candidates.
        ``exclude``: a row never returned (the query's own)."""
        q = np.asarray(q, dtype=np.float32).reshape(-1)
        if q.shape[0] != self.dim:
            raise InputError(f"The query has {q.shape[0]} dimensions; the index has {self.dim}.")
        qr = _ranking_rows(q[None, :], self.metric)[0]
        cs = self.centroids @ qr
        if self.metric == "euclidean":
            cs = cs + self.centroid_bias
        p = int(min(self.nlist, max(1, nprobe or self.nprobe)))
        lists = np.sort(np.argpartition(-cs, p - 1)[:p]) if p < self.nlist else np.arange(self.nlist)
        cand, score = [], []
        for c in lists:
            a, b = int(self.starts[c]), int(self.starts[c + 1])
            if b > a:
                R = np.asarray(self.rows[a:b], dtype=np.float32)
                s = R @ qr
                if self.metric == "euclidean":
                    s -= 0.5 * np.einsum("ij,ij->i", R, R)
                cand.append(np.asarray(self.ids[a:b]))
                score.append(s)
        if not cand:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        cand, score = np.concatenate(cand), np.concatenate(score)
        if exclude is not None:
            keep = cand != exclude
            cand, score = cand[keep], score[keep]
        m = int(min(len(cand), max(k, rescore * k)))
        best = np.sort(cand[np.argpartition(-score, m - 1)[:m]] if m < len(cand) else cand)
        exact = self._exact(q, best)
        o = np.lexsort((best, -exact))[:k]  # best first, ties by row
        return best[o], exact[o].astype(np.float32)

    def _exact(self, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if self.source is None:
            raise InputError("The neighbour index needs the original rows to score its candidates exactly.")
        X = np.asarray(self.source[rows], dtype=np.float64)
        q = q.astype(np.float64)
        if self.metric == "cosine":
            return (X @ q) / np.maximum(np.linalg.norm(X, axis=1) * np.linalg.norm(q), 1e-12)
        return -np.sqrt(((X - q) ** 2).sum(1))
