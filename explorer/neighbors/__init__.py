"""Nearest neighbours in the original embedding space.

* :mod:`explorer.neighbors.search` - the public API: :class:`KnnParams`, :class:`KnnResult`,
  exact search (:func:`knn_search`, :func:`knn_graph_exact`), the all-points graph
  (:func:`knn_graph`: exact, IVF, HNSW or NN-descent, recall measured), :func:`recall_at_k`,
  :func:`scores_to_distances`; the score convention (larger is closer) is spelled out there.
* :mod:`explorer.neighbors.blocks` - the numba tiles of the exact CPU self-search and exact
  pair scores.
* :mod:`explorer.neighbors.ivf` - the inverted-file index (:class:`IvfIndex`, :class:`IvfCurve`).
* :mod:`explorer.neighbors.index` - :class:`VectorIndex` (repeated exact queries, int8
  pre-ranking for large sets) and :func:`query`.

Everything is importable from ``explorer.neighbors``. The numba modules (blocks, ivf) are
imported on first use, so importing this package stays cheap.
"""

# the underscored names are used by explorer.maps and the warm-up
from explorer.neighbors.index import VectorIndex, query
from explorer.neighbors.search import (  # noqa: F401
    APPROX, METHODS, METRICS, KnnParams, KnnResult, _as_matrix, _check_metric, _hnsw_available,
    exact_rows, knn_graph, knn_graph_exact, knn_search, recall_at_k, scores_to_distances,
)

__all__ = [
    "METRICS", "KnnParams", "KnnResult", "knn_graph", "knn_graph_exact", "knn_search",
    "query", "VectorIndex", "recall_at_k", "scores_to_distances", "exact_rows",
]

# the numba modules' names, imported when first asked for (importing numba takes seconds)
_LAZY = {"exact_self_knn": "blocks", "pair_scores": "blocks",
         "IvfIndex": "ivf", "IvfCurve": "ivf", "ivf_self_knn": "ivf"}


def __getattr__(name: str):
    if name in _LAZY:
        from explorer.neighbors import blocks, ivf

        return getattr(blocks if _LAZY[name] == "blocks" else ivf, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

