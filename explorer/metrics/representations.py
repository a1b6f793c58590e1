"""Three readings of a representation that the usual tools do not offer.

- **Truncation curve** (Matryoshka representations, Kusupati et al., NeurIPS 2022): how much of
  the quality lives in the first m dimensions, m = 8, 16, 32, ... D. A Matryoshka-trained model
  keeps its accuracy at small m; an ordinary one needs all of D.
- **Compatibility** (backward-compatible representations, Shen et al., CVPR 2020): can a new
  model's queries be searched against a gallery embedded by the old one? Top-1/top-5 retrieval
  accuracy by label for every (query model, gallery model) pair; the new model is compatible when
  new-vs-old beats old-vs-old.
- **Relative representations** (Moschella et al., ICLR 2023): each item as its cosine similarity
  to the same K anchor items. Models of different widths (or rotated copies) then live in the
  same K-dimensional space and compare directly.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from explorer.core.errors import InputError
from explorer.core.jobs import Job, Progress

__all__ = ["truncation_dims", "truncation_curve", "compatibility", "choose_anchors", "relative_representation"]


def truncation_dims(d: int, start: int = 8) -> list:
    """8, 16, 32, ... below ``d``, then ``d`` itself (all of it when d <= start)."""
    out, m = [], start
    while m < d:
        out.append(m)
        m *= 2
    return out + [d]


def truncation_curve(Z, labels=None, dims: Optional[Sequence[int]] = None, seed: int = 0,
                     knn_k: int = 20, device=None) -> Job:
    """Job -> rows {"dims": m, "rankme", "knn_accuracy", "linear_probe_accuracy"} for the first m
    dimensions of Z (accuracies None without labels), one row per m of ``dims``
    (default :func:`truncation_dims`). Cancellable between rows."""
    from explorer.metrics.collapse import rankme
    from explorer.metrics.probes import knn_accuracy, linear_probe_accuracy

    Z = np.asarray(Z, dtype=np.float32)
    if Z.ndim != 2 or Z.shape[0] < 2:
        raise InputError(f"Expected an (N, D) array of at least 2 vectors, got shape {Z.shape}.")
    d = Z.shape[1]
    dims = truncation_dims(d) if dims is None else sorted({int(m) for m in dims})
    bad = [m for m in dims if not 1 <= m <= d]
    if bad:
        raise InputError(f"Truncation to {bad[0]} dimensions: choose between 1 and {d}.")
    rows = []
    for i, m in enumerate(dims):
        yield Progress(i, len(dims), f"first {m} of {d} dimensions")
        Zm = np.ascontiguousarray(Z[:, :m])
        row = {"dims": int(m), "rankme": float(rankme(Zm, device)), "knn_accuracy": None,
               "linear_probe_accuracy": None}
        if labels is not None:
            row["knn_accuracy"] = float(knn_accuracy(Zm, labels, k=knn_k, seed=seed, device=device))
            row["linear_probe_accuracy"] = float(linear_probe_accuracy(Zm, labels, seed=seed, device=device))
        rows.append(row)
    yield Progress(len(dims), len(dims), "done")
    return rows


def _unit(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def _topk_hits(Q: np.ndarray, G: np.ndarray, yq: np.ndarray, yg: np.ndarray, ks: Sequence[int],
               block: int = 4096) -> dict:
    """Fraction of queries whose k most cosine-similar gallery items include their label."""
    kmax = max(ks)
    hits = {k: 0 for k in ks}
    Qn, Gn = _unit(Q), _unit(G)
    for s in range(0, len(Qn), block):
        S = Qn[s:s + block] @ Gn.T
        top = np.argpartition(-S, kth=min(kmax, S.shape[1]) - 1, axis=1)[:, :kmax]
        order = np.take_along_axis(S, top, 1).argsort(axis=1)[:, ::-1]
        top = np.take_along_axis(top, order, 1)
        match = yg[top] == yq[s:s + block, None]
        for k in ks:
            hits[k] += int(match[:, :k].any(axis=1).sum())
    return {k: hits[k] / len(Qn) for k in ks}


def compatibility(Z_old, Z_new, labels, query_fraction: float = 0.2, seed: int = 0,
                  ks: Sequence[int] = (1, 5)) -> dict:
    """Retrieval by label between two models' embeddings of the same items: a random
    ``query_fraction`` of the items are queries, the rest the gallery; for each (query model,
    gallery model) pair, top-k accuracy = the fraction of queries whose k most cosine-similar
    gallery items include one of their label. ``compatible``: new-vs-old top-1 >= old-vs-old top-1
    (Shen et al.'s criterion)."""
    A, B = np.asarray(Z_old, np.float32), np.asarray(Z_new, np.float32)
    if A.ndim != 2 or B.ndim != 2 or A.shape[0] != B.shape[0]:
        raise InputError(f"Compatibility needs the two models' vectors of the same items; got {A.shape} and {B.shape}.")
    if A.shape[1] != B.shape[1]:
        raise InputError(f"A new model can only be searched against an old gallery in the same space: "
                         f"{A.shape[1]} and {B.shape[1]} dimensions differ.")
    y = np.asarray(labels)
    if y.shape != (A.shape[0],):
        raise InputError(f"Expected {A.shape[0]} labels (one per row), found shape {y.shape}.")
    n = A.shape[0]
    n_q = int(round(n * query_fraction))
    if not 1 <= n_q < n - max(ks) + 1:
        raise InputError(f"{n} items are too few for {query_fraction:.0%} queries and top-{max(ks)} retrieval.")
    perm = np.random.default_rng(seed).permutation(n)
    q, g = np.sort(perm[:n_q]), np.sort(perm[n_q:])
    out = {"n_queries": int(n_q), "n_gallery": int(n - n_q), "pairs": {}}
    for qname, Q in (("old", A), ("new", B)):
        for gname, G in (("old", A), ("new", B)):
            acc = _topk_hits(Q[q], G[g], y[q], y[g], ks)
            out["pairs"][f"{qname}-vs-{gname}"] = {f"top{k}": acc[k] for k in ks}
    out["compatible"] = bool(out["pairs"]["new-vs-old"]["top1"] >= out["pairs"]["old-vs-old"]["top1"])
    return out


def choose_anchors(n: int, k: int, labels=None, seed: int = 0) -> np.ndarray:
    """``k`` anchor items of ``n``, sorted: at random, or stratified by label (each class gets
    anchors in proportion to its size, largest remainders first)."""
    if not 1 <= k <= n:
        raise InputError(f"Choose between 1 and {n} anchors, not {k}.")
    rng = np.random.default_rng(seed)
    if labels is None:
        return np.sort(rng.choice(n, k, replace=False))
    y = np.asarray(labels)
    if y.shape != (n,):
        raise InputError(f"Expected {n} labels (one per row), found shape {y.shape}.")
    classes, counts = np.unique(y, return_counts=True)
    quota = k * counts / n
    share = np.floor(quota).astype(int)
    share[np.argsort(-(quota - share), kind="stable")[: k - share.sum()]] += 1
    picked = [rng.choice(np.flatnonzero(y == c), s, replace=False) for c, s in zip(classes, share) if s > 0]
    return np.sort(np.concatenate(picked))


def relative_representation(Z, anchors: np.ndarray) -> np.ndarray:
    """(N, K) float32 cosine similarities of every row of Z to the rows ``anchors``."""
    U = _unit(Z)
    return (U @ U[np.asarray(anchors)].T).astype(np.float32)
