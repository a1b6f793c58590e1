"""The staged workspace cache of maps: embeddings -> k-NN graph -> layout, each stage stored
in the workspace under a content key, so a change re-runs only the stages downstream of it."""

from __future__ import annotations

from typing import Optional

import numpy as np

from explorer.core.jobs import Job
from explorer.maps.params import STATS, Layout, MapParams
from explorer.maps.umap import make_layout
from explorer.neighbors.search import KnnParams, KnnResult, knn_graph
from explorer.store import EMBEDDINGS, KNN, LAYOUTS, jsonable

__all__ = ["knn_key", "layout_key", "cached_knn", "cached_layout", "STATS"]


def knn_key(embedding_key: str, k: int, metric: str, method: str) -> str:
    from explorer.store import content_key

    return content_key("knn", embedding_key, int(k), metric, method)


def layout_key(embedding_key: str, params: MapParams, graph_key: Optional[str] = None) -> str:
    from explorer.store import content_key

    return content_key("layout", embedding_key, graph_key, params.layout_dict())


def _knn_from_record(rec, metric: str) -> KnnResult:
    a = rec.attrs
    return KnnResult(rec.arrays["indices"], rec.arrays["similarities"], metric, a.get("method", "exact"),
                     float(a.get("recall", 1.0)), float(a.get("seconds", 0.0)), dict(a.get("info", {})))


def cached_knn(ws, embedding_key: str, params: KnnParams, vectors: Optional[np.ndarray] = None) -> Job:
    """Stage 1 of the cache: the k-NN graph of a workspace embedding. A stored graph with the
    same embedding, metric and method and k >= params.k is reused (its first k columns);
    otherwise it is computed and stored under :func:`knn_key`. -> (key, KnnResult)."""
    best = None
    for key, attrs in ws.list(KNN):
        # a graph below the asked recall (an explicit approximate choice, or one stored by an
        # older version whose automatic IVF fell short) is reused only for the same explicit choice
        good = (float(attrs.get("recall", 1.0)) >= params.target_recall
                or (params.approx != "auto" and attrs.get("requested_approx") == params.approx))
        if (attrs.get("embedding") == embedding_key and attrs.get("metric") == params.metric
                and attrs.get("requested_method") == params.method and int(attrs.get("k", 0)) >= params.k
                and good):
            if best is None or int(attrs["k"]) < best[1]:
                best = (key, int(attrs["k"]))
    if best is not None:
        r = _knn_from_record(ws.get(KNN, best[0]), params.metric)
        if r.k > params.k:
            r = KnnResult(r.indices[:, :params.k].copy(), r.scores[:, :params.k].copy(), r.metric,
                          r.method, r.recall, r.seconds, r.info)
        return best[0], r
    if vectors is None:
        vectors = ws.get(EMBEDDINGS, embedding_key).arrays["vectors"]
    r = yield from knn_graph(vectors, params)
    STATS["knn"] += 1
    key = knn_key(embedding_key, params.k, params.metric, params.method)
    attrs = r.attrs()
    attrs.update({"embedding": embedding_key, "requested_method": params.method,
                  "requested_approx": params.approx})
    ws.put(KNN, key, {"indices": r.indices, "similarities": r.scores}, attrs)
    return key, r


def cached_layout(ws, embedding_key: str, params: MapParams = MapParams(),
                  vectors: Optional[np.ndarray] = None) -> Job:
    """Stages 2-3: embeddings -> k-NN graph -> layout, each stored in the workspace. Changing
    min_dist (or any layout field) re-runs only the layout; changing n_neighbors beyond the
    stored graph's k, the metric or the k-NN method recomputes the graph too; the same
    parameters recompute nothing. ``vectors``: the record ``embedding_key`` already in memory
    (not read again: 2 s for 1M x 128). -> (key, Layout)."""
    graph_key = None
    knn = None
    if params.method == "umap":
        kp = KnnParams(k=params.n_neighbors - 1, metric=params.metric, method=params.knn_method,
                       device=params.device)
        # the graph key must not depend on which stored graph happens to be reused
        graph_key = knn_key(embedding_key, kp.k, kp.metric, kp.method)
    key = layout_key(embedding_key, params, graph_key)
    if ws.has(LAYOUTS, key):
        rec = ws.get(LAYOUTS, key)
        return key, Layout(rec.arrays["coords"], rec.attrs.get("params", {}).get("method", params.method),
                           rec.attrs.get("params", {}), rec.attrs.get("info", {}))
    if vectors is None:
        vectors = ws.get(EMBEDDINGS, embedding_key).arrays["vectors"]
    if params.method == "umap" and len(vectors) <= params.max_fit_points:
        # (above max_fit_points the map fits a sample with its own graph and places the rest:
        # the all-points graph is not needed for it, explorer.maps.stream)
        _, knn = yield from cached_knn(ws, embedding_key, kp, vectors)
    lay = yield from make_layout(vectors, params, knn)
    ws.put(LAYOUTS, key, {"coords": lay.coords},
           {"embedding": embedding_key, "params": lay.params, "info": jsonable(lay.info),
            "method": lay.method})
    return key, lay
