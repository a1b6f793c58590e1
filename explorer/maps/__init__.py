"""Maps of an embedding space: exact PCA, UMAP on our own k-NN graph, aligned layouts
(Procrustes, AlignedUMAP), per-point projection trust, and the staged workspace cache
embeddings -> k-NN graph -> layout.

* :mod:`explorer.maps.params` - :class:`MapParams`, :class:`Layout`, :data:`STATS`;
* :mod:`explorer.maps.pca` - exact PCA (:func:`pca`, :func:`pca_job`);
* :mod:`explorer.maps.umap` - UMAP (:func:`umap_layout`, its transform for points outside the
  fitted sample) and :func:`make_layout` (PCA or UMAP, graph included);
* :mod:`explorer.maps.sgd` - the fast UMAP optimiser (numba; imported on first use);
* :mod:`explorer.maps.align` - :func:`procrustes_align`, :func:`aligned_umap`;
* :mod:`explorer.maps.trust` - :func:`projection_trust`;
* :mod:`explorer.maps.cache` - the staged cache (:func:`cached_knn`, :func:`cached_layout`);
* :mod:`explorer.maps.warmup` - :func:`warmup` of the numba kernels.

Everything is importable from ``explorer.maps``.
"""

# _umap_inputs: the graph in umap-learn's convention (named in Layout.info['reproduce'])
from explorer.maps.align import aligned_umap, procrustes_align
from explorer.maps.cache import cached_knn, cached_layout, knn_key, layout_key
from explorer.maps.params import STATS, Layout, MapParams
from explorer.maps.pca import PcaResult, pca, pca_job
from explorer.maps.trust import projection_trust
from explorer.maps.umap import _umap_inputs, make_layout, umap_layout  # noqa: F401
from explorer.maps.warmup import warmup

__all__ = [
    "MapParams", "Layout", "PcaResult", "pca", "pca_job", "umap_layout", "make_layout",
    "procrustes_align", "aligned_umap", "projection_trust", "knn_key", "layout_key",
    "cached_knn", "cached_layout", "warmup", "STATS",
]
