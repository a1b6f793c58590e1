"""All collapse diagnostics of one embedding matrix, as a job, with a verdict.

``diagnose(Z, labels=None, params=DiagnoseParams())`` is a job (a generator yielding
:class:`~explorer.core.jobs.Progress`) returning a dict with one snake_case key per metric (see
:data:`EXPLANATIONS`), the spectrum as a list, the per-dimension std of the L2-normalised
embeddings, the pairwise-cosine histogram, per-class results when labels are given, the sample
sizes actually used (``sampling``), stage timings and the ``verdict``.

What is exact and what is estimated on a sample (all samples random with ``params.seed``):

* exact on all n points: per-dimension std, dead dimensions, std of L2-normalised embeddings,
  mean pairwise cosine (an O(n d) identity) and both SIGReg values -- all from ONE blocked
  pass over the rows (:func:`explorer.metrics.collapse.row_pass`; the SIGReg projections are
  kept, (n, M) in the embeddings' dtype, for the standardised statistic);
* the d x d second moments (spectrum, dims_90/99, numerical rank, alpha-ReQ, RankMe) use at
  most ``max_rows_covariance`` random rows (default 25,600, the sample size Garrido et al. 2023
  use for RankMe; all rows when n is smaller; ``None``: always all). RankMe is scale-free, so
  a row sample estimates it without bias from rescaling;
* uniformity, the cosine histogram and both intrinsic dimensions use all pairs of at most
  ``pair_points`` random points (their neighbours searched within that sample), from one
  m x m product (:func:`explorer.metrics.collapse.pair_products`);
* probes: a held-out split (``test_fraction``), at most ``probe_max_train`` / ``probe_max_test``
  points; per-class effective rank on at most ``per_class_max_points`` points per class.

:func:`diagnose_cached` runs it on a workspace "embeddings" record and keeps the result in the
"diagnostics" group (small values in the attributes, long vectors as arrays).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import numpy as np

from explorer.core.errors import InputError
from explorer.core.jobs import Job, Progress
from explorer.metrics import registry as _registry
from explorer.store import DIAGNOSTICS, EMBEDDINGS

__all__ = ["DiagnoseParams", "Thresholds", "diagnose", "verdict", "numerical_rank", "diagnose_cached",
           "diagnostics_key", "to_json", "EXPLANATIONS", "METRIC_KEYS"]


@dataclass(frozen=True)
class Thresholds:
    """Verdict thresholds (see :func:`verdict`).

    * complete collapse when the std of the L2-normalised embeddings is below
      ``complete_std_ratio`` / sqrt(d) (points all pointing one way), or the mean pairwise cosine
      is above ``complete_mean_cosine``, or at most one dimension carries 99% of the variance;
    * else dimensional collapse when the covariance spectrum has fewer than
      ``dimensional_fraction`` x min(d, n - 1) eigenvalues above ``collapsed_eigenvalue`` x the
      largest (the ``numerical_rank``: Jing et al. 2022 describe dimensional collapse as
      eigenvalues falling to zero), or at least ``dead_fraction`` x d dimensions are dead;
    * else no collapse detected.

    Why not "99% of the variance in few dimensions": real, healthy encoders of data with few
    factors concentrate their variance too. The bundled healthy checkpoint (SimCLR on the 10
    digit classes, d = 128, k-NN accuracy 0.98) has 99% of its variance in 17 dimensions, but
    its spectrum decays smoothly (eigenvalue 100 is still 3e-5 of the first), while the
    dimensionally collapsed one (rank-4 bottleneck) has 123 eigenvalues at 1e-15 of the first.
    """

    complete_std_ratio: float = 0.1
    complete_mean_cosine: float = 0.99
    dimensional_fraction: float = 0.3
    collapsed_eigenvalue: float = 1e-5
    dead_fraction: float = 0.1


def numerical_rank(eigenvalues, rel: float = 1e-5) -> int:
    """Number of eigenvalues above ``rel`` times the largest (0 for an all-zero spectrum)."""
    w = np.asarray(eigenvalues, dtype=np.float64)
    if w.size == 0 or w.max() <= 0:
        return 0
    return int((w > rel * w.max()).sum())


@dataclass(frozen=True)
class DiagnoseParams:
    """Parameters of :func:`diagnose` (frozen; hashed into the workspace cache key)."""

    device: Optional[str] = None              # None/"auto": CUDA, MPS, CPU
    seed: int = 0
    max_rows_covariance: Optional[int] = 25600    # Garrido et al. 2023 compute RankMe on 25,600 rows
    pair_points: int = 4096
    histogram_bins: int = 50
    sigreg_directions: int = 256
    sigreg_points: int = 17
    sigreg_t_max: float = 3.0
    mle_k: int = 20
    knn_k: int = 20
    knn_temperature: float = 0.07
    test_fraction: float = 0.2
    probe_max_train: Optional[int] = 10000
    probe_max_test: Optional[int] = 2000
    linear_C: float = 1.0                     # scikit-learn's LogisticRegression C (inverse L2 strength)
    linear_tol: float = 1e-6                  # L-BFGS: stop when the largest gradient entry is below this
    linear_max_iter: int = 1000
    per_class_max_points: int = 512
    per_class_max_classes: int = 100
    alpha_min_rank: int = 1
    alpha_max_rank: Optional[int] = None
    dead_rel: float = 1e-6
    thresholds: Thresholds = field(default_factory=Thresholds)


#: One line per metric saying what the value means (for the GUI's table and the CLI), from the
#: metric registry, plus the non-scalar results.
EXPLANATIONS = {
    **_registry.explanations(),
    "per_class_effective_rank": "Effective rank of each class's embeddings around its mean: how many directions each class spreads over.",
    "class_centroid_cosine": "Cosine similarity between class centres; high values mean classes are hard to tell apart.",
}

#: Scalar metric keys of the result, in display order.
METRIC_KEYS = _registry.keys("diagnose")
# what the passes of :func:`diagnose` compute themselves; any other metric registered for "diagnose"
# is computed by its registered function (adding a metric is one entry and one function)
NATIVE_KEYS = frozenset({
    "rankme", "dims_90", "dims_99", "numerical_rank", "dead_dims", "alpha_req", "std_l2_normalized",
    "std_l2_reference", "sigreg", "uniformity", "twonn_dimension", "mle_dimension", "alignment",
    "knn_accuracy", "linear_probe_accuracy", "sigreg_standardized", "mean_cosine",
    "sigreg_gaussian_reference", "sigreg_standardized_gaussian_reference"})


def _f(x) -> Optional[float]:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


def verdict(metrics: dict, thresholds: Thresholds = Thresholds()) -> dict:
    """The verdict from the metrics of :func:`diagnose` (needs n, dim, std_l2_normalized,
    mean_cosine, dims_99, dead_dims, rankme, and numerical_rank or the spectrum): {"label", "summary", "evidence": [str],
    "thresholds": dict}. Labels: "complete collapse", "dimensional collapse",
    "no collapse detected"; the rules are those of :class:`Thresholds`."""
    th = thresholds
    d, n = int(metrics["dim"]), int(metrics["n"])
    r_max = max(1, min(d, n - 1))
    std = metrics["std_l2_normalized"]
    ratio = std * math.sqrt(d)
    cos = metrics["mean_cosine"]
    k99 = int(metrics["dims_99"])
    k90 = int(metrics.get("dims_90") or 0)
    rank = metrics.get("numerical_rank")
    if rank is None:
        rank = numerical_rank(metrics.get("spectrum") or [], th.collapsed_eigenvalue) if metrics.get("spectrum") else k99
    rank = int(rank)
    dead = int(metrics["dead_dims"])
    rankme = metrics.get("rankme")
    evidence = [
        f"std of L2-normalised embeddings {std:.4g} vs 1/sqrt(d) = {1 / math.sqrt(d):.4g} "
        f"(ratio {ratio:.3g}; complete collapse below {th.complete_std_ratio:g})",
        f"mean pairwise cosine {cos:.3f} (complete collapse above {th.complete_mean_cosine:g})",
        f"99% of the variance in {k99} of {d} dimensions, 90% in {k90}",
        f"{rank} of {d} covariance eigenvalues above {th.collapsed_eigenvalue:g} x the largest "
        f"(dimensional collapse below {th.dimensional_fraction:.0%} of {r_max} = "
        f"{th.dimensional_fraction * r_max:.0f})",
        f"{dead} dead dimensions of {d} (dimensional collapse from {th.dead_fraction:.0%} = "
        f"{th.dead_fraction * d:.0f})",
    ]
    if rankme is not None:
        evidence.append(f"RankMe {rankme:.1f} of at most {r_max}")
    if ratio < th.complete_std_ratio or cos > th.complete_mean_cosine or k99 <= 1:
        label = "complete collapse"
        if k99 <= 1:
            summary = f"complete collapse ({k99} of {d} dimensions carry 99% of the variance)"
        elif cos > th.complete_mean_cosine:
            summary = f"complete collapse (all embeddings point the same way: mean cosine {cos:.3f})"
        else:
            summary = f"complete collapse (std of L2-normalised embeddings {ratio:.2g} x 1/sqrt(d))"
    elif rank < th.dimensional_fraction * r_max or dead >= max(1.0, th.dead_fraction * d):
        label = "dimensional collapse"
        summary = (f"dimensional collapse ({k99} of {d} dimensions carry 99% of the variance; "
                   f"{rank} eigenvalues above {th.collapsed_eigenvalue:g} of the largest)")
        if dead >= max(1.0, th.dead_fraction * d):
            summary = summary[:-1] + f"; {dead} dead dimensions)"
    else:
        label = "no collapse detected"
        summary = f"no collapse detected ({k99} of {d} dimensions carry 99% of the variance)"
    return {"label": label, "summary": summary, "evidence": evidence, "thresholds": asdict(th)}


def diagnose(Z, labels=None, params: DiagnoseParams = DiagnoseParams(), positives=None) -> Job:
    """Job: every collapse diagnostic of Z (n, d) (numpy or torch), with probes when ``labels``
    (n,) are given and alignment when ``positives`` (n, d) (a second augmented view of each
    item) are given. Returns the result dict described in the module docstring."""
    import torch

    from explorer.core.device import resolve_device
    from explorer.metrics import collapse as C
    from explorer.metrics import intrinsic as I
    from explorer.metrics import probes as P

    p = params
    dev = resolve_device(p.device)
    has_labels = labels is not None
    stages = 7 + (3 if has_labels else 0) + (positives is not None)
    # registered metrics shown in "diagnose" that the passes below do not compute: their function
    extra = [m for m in _registry.shown_in("diagnose") if m.key not in NATIVE_KEYS and _registry.has_series(m.key)]
    stages += len(extra)
    step = [0]
    timings: dict = {}
    t_last = [time.perf_counter()]

    def tick(name: str, msg: str) -> Progress:
        now = time.perf_counter()
        timings[name] = round(now - t_last[0], 4)
        t_last[0] = now
        step[0] += 1
        return Progress(step[0], stages, msg)

    with torch.no_grad():
        X = C.as_tensor(Z, dev)
        n, d = X.shape
        if has_labels:
            y, classes = P.encode_labels(labels, n)
        rng = np.random.default_rng(p.seed)
        out: dict[str, Any] = {"n": int(n), "dim": int(d)}
        yield Progress(0, stages, "loading")
        t_last[0] = time.perf_counter()

        # O(n d) statistics and the SIGReg projections: one blocked pass over all points
        groups, top = None, None
        if has_labels:
            counts = np.bincount(y, minlength=len(classes))
            top = np.sort(np.argsort(-counts, kind="stable")[: p.per_class_max_classes])
            pos = np.full(len(classes), -1, dtype=np.int64)
            pos[top] = np.arange(top.size)
            groups = torch.from_numpy(pos[y])
        A = C.random_directions(d, p.sigreg_directions, p.seed, X.device, X.dtype)
        st = C.row_pass(X, directions=(A, (p.sigreg_t_max, p.sigreg_points)), groups=groups,
                        n_groups=0 if top is None else top.size)
        raw_std = st["var"].sqrt().cpu().numpy()
        norm_std = st["unit_var"].sqrt().cpu().numpy()
        out["std_l2_normalized"] = float(norm_std.mean())
        out["std_l2_reference"] = 1 / math.sqrt(d)
        out["per_dim_std"] = norm_std.tolist()
        out["dead_dims"] = C.dead_dims(stds=raw_std, rel=p.dead_rel, magnitude=st["magnitude"])
        out["mean_cosine"] = C.mean_cosine_from_stats(st)
        yield tick("moments", "per-dimension statistics and projections")

        # SIGReg on all points (raw from the pass above, standardised from the projections)
        raw, std = C._sigreg_both(X, p.sigreg_directions, p.seed, p.sigreg_points, p.sigreg_t_max,
                                  stats=st)
        del st["projections"]
        out["sigreg"] = raw
        out["sigreg_standardized"] = std
        out["sigreg_gaussian_reference"] = C.sigreg_gaussian_reference(p.sigreg_points, p.sigreg_t_max)
        out["sigreg_standardized_gaussian_reference"] = C.sigreg_gaussian_reference(
            p.sigreg_points, p.sigreg_t_max, centered=True)
        yield tick("sigreg", "SIGReg")

        # d x d second moments on (a sample of) the rows
        rows = None
        if p.max_rows_covariance is not None and n > p.max_rows_covariance:
            rows = torch.from_numpy(np.sort(rng.choice(n, p.max_rows_covariance, replace=False))).to(dev)
        Xs = X if rows is None else X[rows]
        eig = C.covariance_eigenvalues(Xs)
        out["spectrum"] = eig.tolist()
        out["dims_90"] = C.dims_for_variance(eig, 0.90)
        out["dims_99"] = C.dims_for_variance(eig, 0.99)
        out["numerical_rank"] = numerical_rank(eig, p.thresholds.collapsed_eigenvalue)
        out["alpha_req"] = C.alpha_req_from_eigenvalues(eig, p.alpha_min_rank, p.alpha_max_rank)
        yield tick("spectrum", "covariance spectrum")
        out["rankme"] = C.rankme_from_singular_values(C.singular_values(Xs))
        del Xs
        yield tick("rankme", "RankMe")

        # pairwise statistics on a sample of points, from one m x m product
        pidx = C._pair_sample(n, p.pair_points, p.seed + 1)
        sel = None if pidx is None else torch.from_numpy(pidx).to(dev)
        Xp = X if sel is None else X[sel]
        pp = C.pair_products(Xp)
        out["uniformity"] = C._uniformity_from_cos(pp["cos"])
        out["cosine_histogram"] = C._hist_from_cos(pp["cos"], p.histogram_bins)
        del pp["cos"]
        yield tick("pairwise", "uniformity and cosine histogram")

        k_id = min(p.mle_k, Xp.shape[0] - 1)
        dist = I.distances_from_products(pp, k_id)
        del pp
        yield tick("neighbours", "nearest-neighbour distances")
        out["twonn_dimension"] = I.twonn_from_distances(dist)
        out["mle_dimension"] = I.mle_from_distances(dist, k_id) if k_id >= 2 else float("nan")
        yield tick("intrinsic", "intrinsic dimension")

        if positives is not None:
            out["alignment"] = C.alignment(X, positives)
            yield tick("alignment", "alignment")
        else:
            out["alignment"] = None

        out["knn_accuracy"] = None
        out["linear_probe_accuracy"] = None
        if has_labels:
            out["knn_accuracy"] = P.knn_accuracy(X, y, p.knn_k, p.knn_temperature, p.test_fraction,
                                                 p.seed, p.probe_max_train, p.probe_max_test)
            yield tick("knn", "k-NN probe")
            lp = P.linear_probe(X, y, p.test_fraction, p.seed, p.probe_max_train, p.probe_max_test,
                                p.linear_C, p.linear_tol, p.linear_max_iter)
            out["linear_probe_accuracy"] = lp["accuracy"]
            out["linear_probe"] = lp
            yield tick("linear", "linear probe")
            keep = np.isin(y, top)
            if keep.all():
                Xc, yc = X, classes[y]
            else:
                Xc, yc = X[torch.from_numpy(np.flatnonzero(keep)).to(dev)], classes[y[keep]]
            out["per_class_effective_rank"] = P.per_class_effective_rank(
                Xc, yc, p.per_class_max_points, p.seed)
            del Xc
            cent = C.l2_normalize(st["group_sums"])           # centroids of the L2-normalised rows
            M = (cent @ cent.T).cpu().numpy()
            out["class_centroid_cosine"] = {"classes": [str(c) for c in classes[top]], "matrix": M.tolist()}
            yield tick("classes", "per-class statistics")

        if extra:
            Znp = Z if isinstance(Z, np.ndarray) else X.cpu().numpy()
            ctx = {"seed": p.seed, "device": dev, "knn_k": p.knn_k}
            for m in extra:
                out[m.key] = _registry.series_function(m.key)(Znp, None, y if has_labels else None, ctx)
                yield tick(m.key, m.label)

    n_tr, n_te = None, None
    if has_labels:
        tr, te = P.split_indices(n, p.test_fraction, p.seed, p.probe_max_train, p.probe_max_test)
        n_tr, n_te = int(tr.size), int(te.size)
    out["sampling"] = {
        "covariance_rows": int(n if rows is None else rows.numel()),
        "pair_points": int(n if pidx is None else pidx.size),
        "probe_train": n_tr, "probe_test": n_te,
        "sigreg_points": int(n), "sigreg_directions": int(p.sigreg_directions),
    }
    out["device"] = str(dev)
    out["timings"] = timings
    for k in _registry.keys("diagnose"):
        if k in out and out[k] is not None and not isinstance(out[k], int):
            out[k] = _f(out[k])
    out["verdict"] = verdict(out, p.thresholds)
    return out


def to_json(result: dict) -> dict:
    """``result`` with NaN/inf as None, numpy values as Python ones (strict JSON)."""
    from explorer.store import jsonable

    return jsonable(result, finite=True)


# --------------------------------------------------------------------------- workspace cache

_ARRAY_KEYS = ("spectrum", "per_dim_std")


def diagnostics_key(emb_key: str, params: DiagnoseParams, labels_fingerprint: Optional[str] = None) -> str:
    from explorer.store import content_key

    return content_key("diagnostics", 1, emb_key, asdict(params), labels_fingerprint)


def diagnose_cached(ws, emb_key: str, params: DiagnoseParams = DiagnoseParams(), labels=None,
                    recompute: bool = False) -> Job:
    """Job: the diagnostics of workspace record ``embeddings/emb_key`` (labels: ``labels`` if
    given, else the record's "labels" array if it has one), read from the "diagnostics" group
    when already computed with the same parameters, else computed and stored there
    (attrs: embedding, params, metrics; arrays: spectrum, per_dim_std, centroid matrix)."""
    from explorer.core.errors import WorkspaceError
    from explorer.store import content_key

    lab_fp = None
    if labels is not None:
        lab = np.asarray(labels)
        lab_fp = content_key(lab.astype(str).tolist())
    key = diagnostics_key(emb_key, params, lab_fp)
    if not recompute and ws.has(DIAGNOSTICS, key):
        rec = ws.get(DIAGNOSTICS, key)
        return _from_record(rec)
    if not ws.has(EMBEDDINGS, emb_key):
        raise WorkspaceError(f"{ws.path} has no embeddings record {emb_key}.")
    rec = ws.get(EMBEDDINGS, emb_key)
    Z = rec.arrays.get("vectors")
    if Z is None:
        raise WorkspaceError(f"The embeddings record {emb_key} in {ws.path} has no 'vectors' array.")
    if labels is None:
        labels = rec.arrays.get("labels")
    result = yield from diagnose(Z, labels, params)
    result["embedding"] = emb_key
    for a in ("model", "layer", "dataset"):
        if a in rec.attrs:
            result[a] = rec.attrs[a]
    js = to_json(result)
    arrays = {k: np.asarray(js.get(k) or [], dtype=np.float64) for k in _ARRAY_KEYS}
    small = {k: v for k, v in js.items() if k not in _ARRAY_KEYS and k != "class_centroid_cosine"}
    cc = js.get("class_centroid_cosine")
    if cc:
        arrays["class_centroid_cosine"] = np.asarray(cc["matrix"], dtype=np.float64)
        small["centroid_classes"] = cc["classes"]
    ws.put(DIAGNOSTICS, key, arrays, {"embedding": emb_key, "params": asdict(params), "metrics": small})
    return result


def _from_record(rec) -> dict:
    m = dict(rec.attrs.get("metrics", {}))
    for k in _ARRAY_KEYS:
        if k in rec.arrays:
            m[k] = rec.arrays[k].tolist()
    if "class_centroid_cosine" in rec.arrays:
        m["class_centroid_cosine"] = {"classes": m.pop("centroid_classes", []),
                                      "matrix": rec.arrays["class_centroid_cosine"].tolist()}
    m["cached"] = True
    return m
