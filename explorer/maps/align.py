"""Aligned layouts: one layout rotated onto another (orthogonal Procrustes) and umap-learn's
AlignedUMAP over a series of embeddings of the same points."""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from explorer.core.errors import InputError
from explorer.core.jobs import Job, Progress
from explorer.maps.params import MapParams, _validate
from explorer.maps.umap import _umap_metric
from explorer.neighbors.search import _as_matrix

__all__ = ["procrustes_align", "aligned_umap"]


def procrustes_align(Y: np.ndarray, X: np.ndarray, scale: bool = True,
                     allow_reflection: bool = True) -> Tuple[np.ndarray, dict]:
    """Orthogonal Procrustes (Schoenemann 1966; Gower 1975) of layout ``Y`` (N, c) onto ``X``
    (N, c): find rotation R (c, c, orthogonal), scale s and translation t minimising
    ||s (Y - mean Y) R + t - X||_F. With Y0, X0 centred and U S V^T = svd(Y0^T X0):
    R = U V^T, s = trace(S) / ||Y0||_F^2, t = mean X. Reflections are allowed unless
    ``allow_reflection=False`` (then the last singular direction is flipped if det < 0).
    Returns (aligned Y (N, c) float32, {rotation, scale, translation, rmsd})."""
    Y = np.asarray(Y, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    if Y.shape != X.shape or Y.ndim != 2:
        raise InputError(f"Procrustes needs two layouts of the same shape, got {Y.shape} and {X.shape}.")
    my, mx = Y.mean(0), X.mean(0)
    Y0, X0 = Y - my, X - mx
    U_, S_, Vt = np.linalg.svd(Y0.T @ X0)
    if not allow_reflection and np.linalg.det(U_ @ Vt) < 0:
        U_[:, -1] *= -1
        S_ = S_.copy()
        S_[-1] *= -1
    R = U_ @ Vt
    ny = float((Y0 ** 2).sum())
    s = float(S_.sum() / ny) if (scale and ny > 0) else 1.0
    out = s * Y0 @ R + mx
    rmsd = float(np.sqrt(((out - X) ** 2).sum(1).mean()))
    return out.astype(np.float32), {"rotation": R.tolist(), "scale": s, "translation": (mx - s * my @ R).tolist(),
                                    "rmsd": rmsd}


def aligned_umap(embeddings: Sequence[np.ndarray], params: MapParams = MapParams(),
                 alignment_regularisation: float = 1e-2, alignment_window_size: int = 3) -> Job:
    """umap-learn's AlignedUMAP (McInnes 2021, umap-learn docs "AlignedUMAP") over a series of
    embeddings of the SAME points (e.g. checkpoints), relations = identity between
    neighbours in the series. AlignedUMAP builds its own graphs (it takes no precomputed k-NN)
    and has no per-epoch callback, so progress is coarse (start, end) and cancelling takes
    effect after the fit. -> list of (N, c) float32 layouts."""
    from explorer.core.resources import setup_numba_cache

    setup_numba_cache()
    import umap

    arrs = [_as_matrix(E, f"embedding {i}") for i, E in enumerate(embeddings)]
    if len(arrs) < 2:
        raise InputError("AlignedUMAP needs at least two embeddings of the same points.")
    n = arrs[0].shape[0]
    if any(a.shape[0] != n for a in arrs):
        raise InputError("AlignedUMAP needs embeddings of the same points (same number of rows).")
    _validate(params, n)
    rel = {i: i for i in range(n)}
    yield Progress(0, 1, f"AlignedUMAP of {len(arrs)} embeddings")
    m = umap.AlignedUMAP(n_neighbors=params.n_neighbors, min_dist=params.min_dist,
                         metric=_umap_metric(params.metric), n_components=params.n_components,
                         n_epochs=params.n_epochs or 200, random_state=params.seed,
                         alignment_regularisation=alignment_regularisation,
                         alignment_window_size=alignment_window_size)
    m.fit(arrs, relations=[rel] * (len(arrs) - 1))
    out = [np.asarray(e, dtype=np.float32) for e in m.embeddings_]
    yield Progress(1, 1, "AlignedUMAP done")
    return out
