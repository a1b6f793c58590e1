"""Every metric the app reports, in one place: its key, how it is labelled and formatted,
how to read it, whether it needs labels, where it comes from, and where it is shown.

The diagnostics (``diagnose --json`` and the diagnostics panel), the comparison table, the
checkpoint timeline and the fine-tune panel all read their lists from here, so adding a metric
is one entry (and, for a per-checkpoint series, one function):

    @series("my_metric")
    def _my_metric(Z, Zref, labels, ctx):        # ctx: seed, device, knn_k, mutual_k
        return float(...)

    METRICS.append(Metric("my_metric", "My metric", "{:.3f}", "How to read it.",
                          shown=("diagnose", "panel", "timeline")))

``shown``: "diagnose" (a scalar of the diagnostics result), "panel" (a row of the diagnostics
panel), "timeline" (a curve over checkpoints; needs a series function), "compare" (a column
of the comparison table: a similarity between two models), "compare_diag" (a column of the
comparison's per-model table).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    fmt: str  # a str.format spec: "{:.3f}", "{:d}", "{:.1%}"
    explanation: str  # how to read it, one or two sentences
    shown: tuple = ("diagnose", "panel")
    needs_labels: bool = False
    paper: str = ""
    short: str = ""  # a narrow table's column title
    reading: str = ""  # how to read a value (the panels show it next to the value)

    @property
    def column(self) -> str:
        return self.short or self.label


METRICS: list[Metric] = [
    Metric("rankme", "RankMe (effective rank)", "{:.1f}",
           "Effective rank of the embeddings (exp of the entropy of the singular values); close to the "
           "dimension when all directions are used, 1 for complete collapse.",
           ("diagnose", "panel", "timeline", "compare_diag"), paper="Garrido et al., ICML 2023", short="RankMe",
           reading=(
               "Effective number of directions the embeddings use. Near the dimension: all directions used; near "
               "1: everything lies along one direction (collapse). Compare models of the same dimension.")),
    Metric("dims_90", "Dimensions for 90% variance", "{:d}",
           "Number of principal directions carrying 90% of the variance of the normalised embeddings.",
           reading=(
               "Principal directions holding 90% of the variance of the unit-length embeddings.")),
    Metric("dims_99", "Dimensions for 99% variance", "{:d}",
           "Number of principal directions carrying 99% of the variance; far below the dimension means "
           "dimensional collapse.", ("diagnose", "panel", "compare_diag"), short="dims 99%",
           reading=(
               "Principal directions holding 99% of the variance. Few is normal for data with few factors; "
               "dimensional collapse shows as many directions with no variance at all (see the spectrum).")),
    Metric("numerical_rank", "Directions with variance", "{:d}",
           "Number of covariance eigenvalues above 1e-5 of the largest; far below the dimension means "
           "dimensional collapse (directions with no variance at all).", ("diagnose", "panel"),
           reading=(
               "Directions with any variance (eigenvalue above 1e-5 of the largest).")),
    Metric("dead_dims", "Dead dimensions", "{:d}",
           "Dimensions whose value barely changes (std below 1e-6 of the largest): unused by the model.",
           reading=(
               "Coordinates that never change: unused by the model. 0 is normal.")),
    Metric("alpha_req", "α-ReQ (eigen-decay)", "{:.2f}",
           "Power-law decay of the covariance eigenvalues (lambda_i ~ i^-alpha); near 0 for a flat spectrum, "
           "large when a few directions dominate.", paper="Agrawal et al., NeurIPS 2022",
           reading=(
               "Slope of the spectrum on log-log axes: about 0 when all directions are equal, about 1 for many "
               "well-trained self-supervised encoders, large when a few directions dominate.")),
    Metric("std_l2_normalized", "Std of L2-normalised", "{:.4g}",
           "Mean per-dimension std of the L2-normalised embeddings; about 1/sqrt(d) when they spread over "
           "the sphere, 0 for complete collapse.", paper="Chen & He, CVPR 2021",
           reading=(
               "Std per dimension of the unit-length embeddings: about 1/√d when they spread over the sphere, "
               "near 0 when they all point the same way (complete collapse).")),
    Metric("sigreg", "SIGReg (Epps-Pulley), raw", "{:.3g}",
           "LeJEPA's SIGReg (Epps-Pulley distance to N(0, I) along random directions) on the raw embeddings; "
           "compare with its value for Gaussian data.",
           ("diagnose", "panel", "timeline", "compare_diag"), paper="Balestriero & LeCun 2025", short="SIGReg",
           reading=(
               "Distance of the embeddings from an isotropic Gaussian N(0, I) along random directions (LeJEPA). "
               "Meaningful for models trained towards a Gaussian; others are far from it even when healthy.")),
    Metric("sigreg_standardized", "SIGReg, standardised", "{:.3g}",
           "SIGReg after centring and one global rescaling to unit mean variance: the shape of the "
           "distribution, whatever its scale.",
           reading=(
               "SIGReg after centring and one global rescaling: tests the shape of the distribution, not its "
               "scale or offset.")),
    Metric("sigreg_gaussian_reference", "SIGReg of Gaussian data", "{:.3g}",
           "SIGReg expected for isotropic standard Gaussian data (any number of points).",
           reading=(
               "What SIGReg gives for Gaussian data with these settings: the target value.")),
    Metric("sigreg_standardized_gaussian_reference", "SIGReg standardised, Gaussian data", "{:.3g}",
           "Standardised SIGReg expected for Gaussian data (lower than the raw reference because centring "
           "removes some noise).", ("diagnose",),
           reading=(
               "What the standardised SIGReg gives for Gaussian data.")),
    Metric("uniformity", "Uniformity", "{:.3g}",
           "Wang & Isola uniformity, log mean exp(-2 ||zi - zj||^2) on the sphere; 0 when collapsed, more "
           "negative when spread out.", paper="Wang & Isola, ICML 2020",
           reading=(
               "How evenly the unit-length embeddings cover the sphere (Wang & Isola): 0 when all points "
               "coincide, about -4 when spread over a high-dimensional sphere; more negative = more spread.")),
    Metric("alignment", "Alignment", "{:.3f}",
           "Mean squared distance between the normalised embeddings of two views of the same item; 0 is "
           "perfect invariance.", ("diagnose",), paper="Wang & Isola, ICML 2020",
           reading=(
               "Mean squared distance between two views of the same item on the sphere: 0 is perfect invariance, "
               "about 2 means unrelated.")),
    Metric("mean_cosine", "Mean pairwise cosine", "{:.3f}",
           "Mean cosine similarity over all pairs; near 0 for a spread-out space, near 1 when everything "
           "points the same way.",
           reading=(
               "Average cosine between two embeddings: near 0 when spread out, near 1 when all point the same "
               "way.")),
    Metric("twonn_dimension", "Intrinsic dim. (TwoNN)", "{:.1f}",
           "Intrinsic dimension from the ratio of the two nearest-neighbour distances (TwoNN).",
           paper="Facco et al., Sci. Rep. 2017",
           reading=(
               "Local degrees of freedom around each point, whatever d; small values are normal for simple data.")),
    Metric("mle_dimension", "Intrinsic dim. (MLE, k=20)", "{:.1f}",
           "Intrinsic dimension by the Levina-Bickel maximum-likelihood estimator with 20 neighbours.",
           paper="Levina & Bickel, NeurIPS 2004",
           reading=(
               "Local degrees of freedom (maximum likelihood over 20 neighbours); compare with TwoNN.")),
    Metric("knn_accuracy", "kNN accuracy (k=20)", "{:.1%}",
           "Held-out accuracy of a weighted 20-nearest-neighbour classifier (cosine, as in DINO).",
           ("diagnose", "panel", "timeline"), needs_labels=True, paper="Caron et al., ICCV 2021",
           short="k-NN accuracy",
           reading=(
               "Held-out points whose 20 nearest neighbours by cosine vote for the right label: what search and "
               "maps see.")),
    Metric("linear_probe_accuracy", "Linear-probe accuracy", "{:.1%}",
           "Held-out accuracy of a logistic-regression probe on the embeddings (standardised with the "
           "training split's statistics, scikit-learn's objective with C = 1, solved to convergence); with "
           "its 95% Wilson interval and the split sizes.", needs_labels=True,
           reading=(
               "Held-out accuracy of a logistic regression on the standardised coordinates. It can find classes "
               "in directions of tiny variance, so alone it does not rule out collapse.")),
    # similarities between two models (the comparison table; the timeline compares to the last checkpoint)
    Metric("linear_cka", "linear CKA", "{:.3f}",
           "Linear centred kernel alignment: 1 when one space is a rotation and scaling of the other, "
           "near 0 when unrelated.", ("compare", "timeline"), paper="Kornblith et al., ICML 2019",
           reading=(
               "Same geometry up to rotation and scale? 1 identical, near 0 unrelated. Weighted by variance: the "
               "largest directions dominate (Kornblith et al. 2019).")),
    Metric("debiased_cka", "debiased CKA", "{:.3f}",
           "Linear CKA with the finite-sample bias removed (unbiased HSIC); lower than CKA on few points.",
           ("compare",), paper="Nguyen et al., ICLR 2021",
           reading=(
               "Linear CKA corrected for the finite sample; trust it over plain CKA when n is not much larger "
               "than the dimensions (it can be slightly negative for unrelated spaces).")),
    Metric("rbf_cka", "RBF CKA", "{:.3f}",
           "CKA with a Gaussian kernel (bandwidth 0.8 x the median distance): weighs local geometry "
           "more than linear CKA.", ("compare",),
           reading=(
               "CKA with a Gaussian kernel: weighs local distances more than the large directions.")),
    Metric("mutual_knn", "mutual kNN", "{:.3f}",
           "Mean fraction of each item's k nearest neighbours shared by the two spaces (Huh et al.'s "
           "mutual k-NN): 1 when the neighbourhoods agree, about k/n by chance.",
           ("compare", "timeline"), paper="Huh et al., ICML 2024",
           reading=(
               "Share of each point's nearest neighbours (cosine) that are the same in both models (Huh et al. "
               "2024): 1 same neighbours. Local: what search sees.")),
    Metric("procrustes_similarity", "Procrustes", "{:.3f}",
           "Orthogonal Procrustes similarity of the centred, unit-norm spaces (the best overlap after "
           "rotating one onto the other): 1 for a rotated and rescaled copy, near 0 when unrelated.", ("compare",),
           reading=(
               "How well one space matches the other after the best rotation: 1 a rotated copy, near 0 "
               "unrelated.")),
    Metric("svcca", "SVCCA", "{:.3f}",
           "Mean canonical correlation after reducing each space to the directions holding 99% of its "
           "variance: high when they share a linear subspace, even if distances differ (and near 1 by "
           "overfitting when there are few points per dimension).", ("compare",),
           paper="Raghu et al., NeurIPS 2017",
           reading=(
               "Mean correlation of the best-matched directions, keeping the directions with 99% of each model's "
               "variance: the same information linearly, however much variance each direction has. Near 1 by "
               "overfitting when n is small relative to the kept directions.")),
    Metric("knn_jaccard_mean", "mean Jaccard", "{:.3f}",
           "Mean Jaccard overlap of each item's k-NN sets in the two spaces.", ("compare",),
           reading=(
               "Mean Jaccard overlap of each point's nearest neighbours in the two models: 1 same "
               "neighbourhoods.")),
]

#: The timeline labels its curves differently where it compares to the last checkpoint.
TIMELINE_LABELS = {"linear_cka": "linear CKA to last", "mutual_knn": "mutual k-NN to last"}

_SERIES: dict[str, Callable] = {}


def series(key: str):
    """Register the per-checkpoint function of metric ``key``: ``fn(Z, Zref, labels, ctx)`` ->
    float or None (``Zref``: the last checkpoint's embeddings; ``ctx``: seed, device, knn_k, mutual_k)."""
    def deco(fn):
        _SERIES[key] = fn
        return fn
    return deco


def get(key: str) -> Metric:
    for m in METRICS:
        if m.key == key:
            return m
    raise KeyError(key)


def shown_in(place: str) -> list[Metric]:
    return [m for m in METRICS if place in m.shown]


def keys(place: str) -> tuple:
    return tuple(m.key for m in shown_in(place))


def explanations() -> dict:
    return {m.key: m.explanation for m in METRICS}


def format_value(key_or_fmt: str, v) -> str:
    """``v`` formatted as the metric (or the format spec) says; "–" when missing."""
    fmt = key_or_fmt if "{" in key_or_fmt else get(key_or_fmt).fmt
    if v is None:
        return "–"
    try:
        return fmt.format(int(v)) if "d}" in fmt else fmt.format(float(v))
    except (TypeError, ValueError):
        return str(v)


def series_function(key: str) -> Callable:
    return _SERIES[key]


def has_series(key: str) -> bool:
    return key in _SERIES


# --------------------------------------------------------------------------- series functions
@series("rankme")
def _rankme(Z, Zref, labels, ctx):
    from explorer.metrics.collapse import rankme

    return float(rankme(Z, ctx.get("device")))


@series("sigreg")
def _sigreg(Z, Zref, labels, ctx):
    from explorer.metrics.collapse import sigreg

    return float(sigreg(Z, seed=ctx.get("seed", 0), device=ctx.get("device")))


@series("knn_accuracy")
def _knn_accuracy(Z, Zref, labels, ctx):
    if labels is None:
        return None
    known = labels >= 0
    if known.sum() < 10 or len(np.unique(labels[known])) < 2:
        return None
    from explorer.metrics.probes import knn_accuracy

    return float(knn_accuracy(Z[known], labels[known], k=ctx.get("knn_k", 20), seed=ctx.get("seed", 0),
                              device=ctx.get("device")))


@series("linear_cka")
def _linear_cka(Z, Zref, labels, ctx):
    from explorer.metrics.compare import linear_cka

    return float(linear_cka(Z, Zref))


@series("mutual_knn")
def _mutual_knn(Z, Zref, labels, ctx):
    from explorer.metrics.compare import mutual_knn

    return float(mutual_knn(Z, Zref, k=min(ctx.get("mutual_k", 10), Z.shape[0] - 1)))
