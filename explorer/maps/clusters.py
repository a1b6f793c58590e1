"""Clusters of a map, and a name for each: what a reader of the map calls "that island".

Clusters are found with HDBSCAN (Campello, Moulavi & Sander, "Density-based clustering based
on hierarchical density estimates", PAKDD 2013; McInnes, Healy & Astels, JOSS 2017) on the
map's coordinates, computed by scikit-learn's own :class:`sklearn.cluster.HDBSCAN`:

* up to ``sample_size`` points, HDBSCAN runs on all of them and the result *is* scikit-learn's
  (the labels renumbered by size, largest first; noise stays -1);
* above it (scikit-learn's HDBSCAN is quadratic in time: ~1 s for 10k points, ~4 s for 20k on
  2 cores), it runs on a uniform random sample of ``sample_size`` points (``seed``), with
  ``min_cluster_size`` scaled to the sample, and every other point joins the cluster of its
  nearest sampled point (exact, :class:`scipy.spatial.cKDTree`), noise included. This keeps a
  million points under a few seconds; ``info['sampled']`` says it was done.

Each cluster gets a name (:func:`name_clusters`): the majority value of a label or metadata
column with its share (``"7 (92%)"``), or, for texts, its top TF-IDF terms (:func:`top_terms`:
each cluster's texts taken as one document, scikit-learn's ``TfidfVectorizer`` weighting, the
class-based TF-IDF of Grootendorst's BERTopic, arXiv:2203.05794).

The result is cached in the workspace group ``clusters`` under the layout's key and the
parameters (:func:`cached_clusters`). Everything is a job (see :mod:`explorer.core.jobs`): it yields
progress between stages and between blocks of the nearest-point assignment, where it can be
cancelled; the HDBSCAN fit itself is one scikit-learn call.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence

import numpy as np

from explorer.core.errors import InputError
from explorer.core.jobs import Job, Progress

__all__ = ["ClusterParams", "Clusters", "find_clusters", "cached_clusters", "clusters_key",
           "majority_values", "top_terms", "name_clusters", "cluster_column"]

#: Rows per block of the nearest-sampled-point assignment (a progress report and a chance to
#: cancel after each).
ASSIGN_BLOCK = 100_000


@dataclass(frozen=True)
class ClusterParams:
    """How clusters are found.

    min_cluster_size: fewest points of a cluster, counted on the whole map (None: 1% of the
        points, at least 5). Under sampling it is scaled to the sample.
    min_samples: HDBSCAN's density neighbourhood (None: min(min_cluster_size, 10)); larger
        calls more points noise.
    sample_size: HDBSCAN runs on at most this many points (see the module docstring).
    seed: which points are sampled.
    """

    min_cluster_size: Optional[int] = None
    min_samples: Optional[int] = None
    sample_size: int = 10_000
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Clusters:
    """Clusters of N points.

    labels: (N,) int32, 0 the largest cluster, 1 the next, ...; -1 noise.
    sizes: (K,) int64 points per cluster.   centres: (K, d) float32, a member of each cluster
    next to its coordinate-wise median (inside the cluster, where its name is drawn).
    spread: (K,) float32, root-mean-square distance of the members to the centre (how large it
    is on the map).   info: the resolved parameters, ``sampled`` (points HDBSCAN ran on, or
    None), seconds.
    """

    labels: np.ndarray
    sizes: np.ndarray
    centres: np.ndarray
    spread: np.ndarray
    info: dict = field(default_factory=dict)
    #: the rows HDBSCAN ran on when it ran on a sample (sorted), else None
    sample: Optional[np.ndarray] = None

    @property
    def n_clusters(self) -> int:
        return int(len(self.sizes))


def _resolve(n: int, params: ClusterParams) -> tuple[int, int]:
    mcs = params.min_cluster_size
    if mcs is None:
        mcs = max(2, min(n, max(5, math.ceil(n / 100))))
    mcs = int(mcs)
    if mcs < 2:
        raise InputError(f"The minimum cluster size must be at least 2, not {mcs}.")
    if mcs > n:
        raise InputError(f"The minimum cluster size {mcs} is more than the {n} points.")
    ms = params.min_samples if params.min_samples is not None else min(mcs, 10)
    if int(ms) < 1:
        raise InputError(f"min_samples must be at least 1, not {ms}.")
    if params.sample_size < 2:
        raise InputError(f"The sample size must be at least 2, not {params.sample_size}.")
    return mcs, int(ms)


def _hdbscan(X: np.ndarray, min_cluster_size: int, min_samples: int) -> np.ndarray:
    import warnings

    from sklearn.cluster import HDBSCAN

    min_samples = min(min_samples, len(X))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # sklearn 1.8-1.9: "copy" default changes
        return HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples).fit(X).labels_


def find_clusters(coords, params: ClusterParams = ClusterParams()) -> Job:
    """HDBSCAN clusters of a map's ``coords`` (N, d), d usually 2 -> :class:`Clusters`.
    See the module docstring for the sampling above ``params.sample_size`` points."""
    t0 = time.perf_counter()
    X = np.asarray(coords)
    if X.ndim != 2 or X.shape[1] < 1 or X.dtype.kind not in "biuf":
        raise InputError(f"Clusters need (N, d) coordinates of a map, got shape {X.shape}.")
    n = X.shape[0]
    if n < 2:
        raise InputError(f"Clusters need at least 2 points, got {n}.")
    X = np.ascontiguousarray(X, dtype=np.float64)
    if not np.isfinite(X).all():
        raise InputError("The map has NaN or infinite coordinates; recompute it.")
    mcs, ms = _resolve(n, params)
    m = min(n, int(params.sample_size))
    total = 2.0 + (0 if m == n else math.ceil(n / ASSIGN_BLOCK))
    if m == n:
        yield Progress(0, total, f"HDBSCAN of {n:,} points")
        labels = _hdbscan(X, mcs, ms).astype(np.int32)
        sampled = None
        mcs_used = mcs
        idx = slice(None)
    else:
        rng = np.random.default_rng(params.seed)
        idx = np.sort(rng.choice(n, m, replace=False))
        mcs_used = max(2, round(mcs * m / n))
        yield Progress(0, total, f"HDBSCAN of a {m:,}-point sample")
        lab_s = _hdbscan(X[idx], mcs_used, ms).astype(np.int32)
        yield Progress(1, total, f"assigning {n:,} points to their nearest sampled point")
        from scipy.spatial import cKDTree

        tree = cKDTree(X[idx])
        labels = np.empty(n, np.int32)
        for k, a in enumerate(range(0, n, ASSIGN_BLOCK)):
            _, nn = tree.query(X[a:a + ASSIGN_BLOCK], k=1, workers=-1)
            labels[a:a + ASSIGN_BLOCK] = lab_s[nn]
            yield Progress(1 + k + 1, total, "assigning points to the sampled clusters")
        labels[idx] = lab_s  # duplicates of a sampled point keep their own label
        sampled = m
    yield Progress(total - 1, total, "cluster centres")
    labels, sizes = _by_size(labels)
    # the centres of a sampled run come from the sample (every cluster has its members there)
    centres, spread = _centres(X[idx], labels[idx], len(sizes))
    info = {"min_cluster_size": mcs, "min_samples": ms, "min_cluster_size_in_sample": mcs_used,
            "sample_size": int(params.sample_size), "seed": int(params.seed), "sampled": sampled,
            "n": int(n), "n_clusters": int(len(sizes)), "noise": int((labels < 0).sum()),
            "seconds": time.perf_counter() - t0, "method": "hdbscan (scikit-learn)"}
    yield Progress(total, total, f"{len(sizes)} clusters")
    return Clusters(labels, sizes, centres.astype(np.float32), spread.astype(np.float32), info,
                    None if sampled is None else idx)


def _by_size(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber clusters by size, largest first (ties: the lower old number first); -1 stays."""
    k = int(labels.max()) + 1 if labels.size else 0
    if k <= 0:
        return np.full_like(labels, -1), np.zeros(0, np.int64)
    counts = np.bincount(labels[labels >= 0], minlength=k)
    keep = np.flatnonzero(counts > 0)
    order = keep[np.argsort(-counts[keep], kind="stable")]
    remap = np.full(k + 1, -1, np.int32)  # index k: noise (-1 wraps to the last entry)
    remap[order] = np.arange(len(order), dtype=np.int32)
    return remap[labels], counts[order].astype(np.int64)


def _centres(X: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per cluster: the member nearest its coordinate-wise median, and the RMS distance of the
    members to it."""
    d = X.shape[1]
    centres = np.zeros((k, d))
    spread = np.zeros(k)
    if k == 0:
        return centres, spread
    order = np.argsort(labels, kind="stable")
    sl = labels[order]
    starts = np.searchsorted(sl, np.arange(k + 1))
    for c in range(k):
        rows = order[starts[c]:starts[c + 1]]
        P = X[rows]
        med = np.median(P, axis=0)
        centres[c] = P[np.argmin(((P - med) ** 2).sum(1))]
        spread[c] = math.sqrt(float(((P - centres[c]) ** 2).sum(1).mean()))
    return centres, spread


# ---------------------------------------------------------------------------------------------
# names
# ---------------------------------------------------------------------------------------------
def _factorize(values) -> tuple[np.ndarray, list]:
    """(codes (N,) int64, -1 where missing; the distinct values in sorted order). Missing: NaN,
    and for strings "", "nan", "None". Strings are coded with a dict (one pass; np.unique on a
    million Python strings took ~8 s here)."""
    v = np.asarray(values)
    if v.dtype.kind in "biuf":
        ok = np.isfinite(v) if v.dtype.kind == "f" else np.ones(len(v), bool)
        names, inv = np.unique(v[ok], return_inverse=True)
        codes = np.full(len(v), -1, np.int64)
        codes[ok] = inv.reshape(-1)
        return codes, [x.item() for x in names]
    seen: dict = {}
    raw = np.fromiter((seen.setdefault(x, len(seen)) for x in v.tolist()), dtype=np.int64, count=len(v))
    strs = [str(x) for x in seen]
    kept = sorted({t for t in strs if t not in _MISSING})
    pos = {t: i for i, t in enumerate(kept)}
    table = np.array([pos.get(t, -1) for t in strs], np.int64)
    return (table[raw] if len(strs) else raw), kept


_MISSING = ("", "nan", "None")


def majority_values(labels: np.ndarray, values, n_clusters: Optional[int] = None) -> list:
    """Per cluster ``k`` (0..K-1): ``(value, share)``, the most frequent non-missing value of
    ``values`` among its points and the fraction of its points that have it; ``(None, 0.0)``
    when all are missing. Ties go to the value that sorts first. ``values`` may also be a pair
    ``(codes, names)``: int codes into ``names``, -1 missing (a dataset's labels)."""
    labels = np.asarray(labels)
    k = max(int(labels.max()) + 1 if n_clusters is None else int(n_clusters), 0)
    if isinstance(values, tuple):
        codes, names = np.asarray(values[0], np.int64), list(values[1])
        order = sorted(range(len(names)), key=lambda i: str(names[i]))  # ties: the name sorting first
        rank = np.empty(len(names), np.int64)
        rank[order] = np.arange(len(names))
        codes = np.where(codes >= 0, rank[np.maximum(codes, 0)] if len(names) else -1, -1)
        names = [names[i] for i in order]
    else:
        codes, names = _factorize(values)
    if codes.shape[0] != labels.shape[0]:
        raise InputError(f"{codes.shape[0]} values for {labels.shape[0]} points.")
    if not names or k == 0:
        return [(None, 0.0)] * k
    ok = (labels >= 0) & (codes >= 0)
    counts = np.bincount(labels[ok].astype(np.int64) * len(names) + codes[ok],
                         minlength=k * len(names)).reshape(k, len(names))
    sizes = np.bincount(labels[labels >= 0], minlength=k)[:k]
    best = counts.argmax(axis=1)
    out = []
    for c in range(k):
        cnt = int(counts[c, best[c]])
        out.append((None, 0.0) if cnt == 0 else (names[best[c]], cnt / int(sizes[c])))
    return out


#: scikit-learn's default token pattern: words of 2+ word characters.
TOKEN = re.compile(r"(?u)\b\w\w+\b")


def _stop_words() -> frozenset:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


def top_terms(labels: np.ndarray, texts: Sequence[str], n_terms: int = 3, n_clusters: Optional[int] = None,
              stop_words: bool = True) -> list[list[str]]:
    """Per cluster, its ``n_terms`` top TF-IDF terms: each cluster's texts joined into one
    document; terms are lower-cased words of 2+ characters (scikit-learn's token pattern),
    English stop words left out; weight = count x idf with idf = ln((1 + K) / (1 + df)) + 1
    (K documents, df the documents holding the term; scikit-learn's smooth idf); ties go to the
    term that sorts first. Noise (-1) takes no part."""
    labels = np.asarray(labels)
    k = int(labels.max()) + 1 if n_clusters is None else int(n_clusters)
    if len(texts) != labels.shape[0]:
        raise InputError(f"{len(texts)} texts for {labels.shape[0]} points.")
    stop = _stop_words() if stop_words else frozenset()
    counts = [Counter() for _ in range(max(k, 0))]
    for lab, text in zip(labels.tolist(), texts):
        if lab >= 0:
            counts[lab].update(t for t in TOKEN.findall(str(text).lower()) if t not in stop)
    df: Counter = Counter()
    for c in counts:
        df.update(c.keys())
    out = []
    for c in counts:
        w = {t: n * (math.log((1 + k) / (1 + df[t])) + 1.0) for t, n in c.items()}
        out.append([t for t, _ in sorted(w.items(), key=lambda tw: (-tw[1], tw[0]))[:n_terms]])
    return out


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def name_clusters(labels: np.ndarray, dataset=None, column: Optional[str] = None, n_terms: int = 3,
                  n_clusters: Optional[int] = None) -> tuple[list[str], dict]:
    """A name per cluster, from ``dataset``: for a text dataset with no ``column`` asked, the top
    TF-IDF terms ("goal, match, team"); otherwise the majority value of ``column`` (default:
    "label" if the dataset has labels, else the first metadata column of at most 50 distinct
    values) with its share ("7 (92%)"); else "cluster k". Returns (names, {"by": what named
    them, "values", "shares" or "terms"})."""
    labels = np.asarray(labels)
    k = int(labels.max()) + 1 if n_clusters is None else int(n_clusters)
    plain = [f"cluster {c}" for c in range(k)]
    if dataset is None:
        return plain, {"by": None}
    if column is None and getattr(dataset, "kind", None) == "text":
        terms = top_terms(labels, dataset.texts(range(len(dataset))), n_terms, k)
        return [", ".join(t) or f"cluster {c}" for c, t in enumerate(terms)], {"by": "tf-idf", "terms": terms}
    cols = dataset.columns()
    if column is None:
        if "label" in cols:
            column = "label"
        else:
            column = next((c for c, v in cols.items()
                           if len(np.unique(np.asarray(v)[:100_000].astype(str))) <= 50), None)
        if column is None:
            return plain, {"by": None}
    if column not in cols:
        raise InputError(f"{getattr(dataset, 'name', 'The dataset')} has no column {column!r}; "
                         f"columns: {', '.join(cols) or 'none'}.")
    if column == "label" and getattr(dataset, "labels", None) is not None:
        maj = majority_values(labels, (dataset.labels, list(dataset.label_names)), k)
    else:
        maj = majority_values(labels, cols[column], k)
    names = [f"{_fmt(v)} ({s:.0%})" if v is not None else f"cluster {c}" for c, (v, s) in enumerate(maj)]
    return names, {"by": column, "values": [None if v is None else _fmt(v) for v, _ in maj],
                   "shares": [float(s) for _, s in maj]}


def cluster_column(labels: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """The "cluster" column the map colours, filters and exports by: ``"03: 7 (92%)"`` (number
    zero-padded so the legend sorts), ``"noise"`` for -1. (N,) object array of str."""
    k = len(names)
    width = len(str(max(k - 1, 0)))
    table = np.array([f"{c:0{width}d}: {nm}" for c, nm in enumerate(names)] + ["noise"], dtype=object)
    return table[np.where(np.asarray(labels) < 0, k, labels)]


# ---------------------------------------------------------------------------------------------
# the workspace cache
# ---------------------------------------------------------------------------------------------
def clusters_key(layout_key: str, params: ClusterParams) -> str:
    from explorer.store import content_key

    return content_key("clusters", layout_key, params.to_dict())


def cached_clusters(ws, layout_key: Optional[str], coords, params: ClusterParams = ClusterParams(),
                    recompute: bool = False) -> Job:
    """:func:`find_clusters` of a stored layout, cached in the workspace's ``clusters`` group
    under :func:`clusters_key`. ``layout_key`` None (a map that is not stored): computed, not
    cached. -> (key or None, :class:`Clusters`)."""
    from explorer.store import CLUSTERS, jsonable

    if ws is None or layout_key is None:
        return None, (yield from find_clusters(coords, params))
    key = clusters_key(layout_key, params)
    n = len(coords)
    if not recompute and ws.has(CLUSTERS, key):
        rec = ws.get(CLUSTERS, key)
        lab = rec.arrays.get("labels")
        if lab is not None and len(lab) == n:
            return key, Clusters(lab.astype(np.int32), rec.arrays["sizes"].astype(np.int64),
                                 rec.arrays["centres"].astype(np.float32), rec.arrays["spread"].astype(np.float32),
                                 dict(rec.attrs.get("info", {}), cached=True), rec.arrays.get("sample"))
    res = yield from find_clusters(coords, params)
    arrays = {"labels": res.labels, "sizes": res.sizes, "centres": res.centres, "spread": res.spread}
    if res.sample is not None:
        arrays["sample"] = res.sample
    ws.put(CLUSTERS, key, arrays,
           {"layout": layout_key, "params": params.to_dict(), "info": jsonable(res.info)})
    return key, res
