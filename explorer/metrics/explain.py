"""How to read each diagnostic and similarity value, and why some of them seem to disagree.

Plain sentences for the diagnostics panel, the Compare view's similarity table and the CLI,
computed from the result dicts of :func:`explorer.metrics.diagnose.diagnose` and
:func:`explorer.metrics.compare.compare` (Qt-free, no torch):

    readings(metrics)          -> {metric key: "how to read it" (with this model's reference values)}
    disagreements(metrics)     -> {rule key: one or two sentences}, only where values seem to contradict
    compare_readings(n, k)     -> {similarity key: "how to read it"}
    compare_disagreements(row, n, k, diagnostics, names) -> {rule key: sentences}

The rule keys (``DISAGREEMENTS``, ``COMPARE_DISAGREEMENTS``) are stable, so tests and the GUI
can tell which explanation fired; the texts quote the values they explain.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

from explorer.metrics import registry as _registry

__all__ = ["READING", "COMPARE_READING", "DISAGREEMENTS", "COMPARE_DISAGREEMENTS", "readings",
           "disagreements", "compare_readings", "compare_disagreements", "chance_level"]

#: How to read each metric (from the metric registry): the diagnostics panel's texts.
READING = {m.key: m.reading for m in _registry.METRICS
           if m.reading and {"diagnose", "panel"} & set(m.shown)}

#: One short "how to read" text per similarity measure of the Compare view.
COMPARE_READING = {m.key: m.reading for m in _registry.shown_in("compare") if m.reading}

#: Rule keys of :func:`disagreements`, in display order.
DISAGREEMENTS = ("variance_left_is_tiny", "rankme_uncentred", "probe_despite_collapse", "knn_below_probe",
                 "knn_above_probe", "few_dims_but_healthy", "separates_despite_dimensional",
                 "dead_dims_with_spread_variance", "sigreg_not_gaussian")

#: Rule keys of :func:`compare_disagreements`, in display order.
COMPARE_DISAGREEMENTS = ("collapsed_model", "neighbours_at_chance", "svcca_above_cka", "knn_above_cka",
                         "cka_biased")

#: Accuracy gap (absolute) between kNN and the linear probe worth explaining.
ACCURACY_GAP = 0.2


def _num(m: dict, key: str) -> Optional[float]:
    v = m.get(key)
    if v is None or isinstance(v, (dict, list, str)):
        return None
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) or math.isinf(v) else v


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _g(x: float) -> str:
    return f"{x:.2g}" if abs(x) < 1e-3 or abs(x) >= 1e4 else f"{x:.3g}"


def n_classes(metrics: dict) -> Optional[int]:
    """Number of classes the probes saw (from the per-class results), None without labels."""
    pc = metrics.get("per_class_effective_rank")
    if isinstance(pc, dict) and pc:
        return len(pc)
    cc = metrics.get("class_centroid_cosine")
    if isinstance(cc, dict) and cc.get("classes"):
        return len(cc["classes"])
    return None


def chance_level(metrics: dict) -> Optional[float]:
    """1 / number of classes (the accuracy of guessing, for balanced classes), None without labels."""
    c = n_classes(metrics)
    return 1.0 / c if c else None


def _well_above_chance(acc: Optional[float], chance: Optional[float]) -> bool:
    """Accuracy at least halfway from chance to 100%."""
    if acc is None:
        return False
    c = chance if chance is not None else 0.0
    return acc >= c + 0.5 * (1.0 - c)


def _thresholds(metrics: dict) -> dict:
    th = {"complete_std_ratio": 0.1, "complete_mean_cosine": 0.99, "dimensional_fraction": 0.3,
          "collapsed_eigenvalue": 1e-5, "dead_fraction": 0.1}
    th.update(((metrics.get("verdict") or {}).get("thresholds")) or {})
    return th


def _label(metrics: dict) -> str:
    return (metrics.get("verdict") or {}).get("label", "")


def readings(metrics: dict) -> dict:
    """``{key: text}``: how to read each metric present in ``metrics`` (a :func:`diagnose`
    result), with this model's reference values and thresholds where they help (1/√d, the
    verdict's limits, chance level)."""
    th = _thresholds(metrics)
    d = _num(metrics, "dim")
    n = _num(metrics, "n")
    chance = chance_level(metrics)
    extra: dict = {}
    if d:
        r_max = int(min(d, n - 1)) if n else int(d)
        extra["rankme"] = f"At most {r_max} here."
        ref = 1 / math.sqrt(d)
        std = _num(metrics, "std_l2_normalized")
        extra["std_l2_normalized"] = (f"1/√d = {ref:.4f} here" + (f"; this is {_g(std / ref)} × that" if std is not None else "")
                                      + f" (complete collapse below {th['complete_std_ratio']:g} ×).")
        extra["numerical_rank"] = (f"Dimensional collapse below {th['dimensional_fraction']:.0%} of {r_max} = "
                                   f"{th['dimensional_fraction'] * r_max:.0f}.")
        extra["dead_dims"] = f"From {th['dead_fraction']:.0%} of {int(d)} = {th['dead_fraction'] * d:.0f} the verdict says dimensional collapse."
        extra["dims_99"] = f"Out of {int(d)}."
    extra["mean_cosine"] = f"Complete collapse above {th['complete_mean_cosine']:g}."
    ref = _num(metrics, "sigreg_gaussian_reference")
    if ref is not None:
        extra["sigreg"] = f"Gaussian data give {ref:.3g}; larger is further from Gaussian."
    ref = _num(metrics, "sigreg_standardized_gaussian_reference")
    if ref is not None:
        extra["sigreg_standardized"] = f"Gaussian data give {ref:.3g}."
    if chance is not None:
        c = n_classes(metrics)
        for k in ("knn_accuracy", "linear_probe_accuracy"):
            extra[k] = f"Chance is about {_pct(chance)} ({c} classes)."
    out = {}
    for key, text in READING.items():
        if key in metrics and metrics.get(key) is not None:
            out[key] = text + (" " + extra[key] if key in extra else "")
    return out


def disagreements(metrics: dict) -> dict:
    """``{rule key: text}`` for the values of ``metrics`` (a :func:`diagnose` result) that seem to
    contradict each other or the verdict, each explained in one or two plain sentences; empty
    when nothing needs explaining. Rules, in the order of :data:`DISAGREEMENTS`:

    * ``variance_left_is_tiny``: complete collapse, yet dims_99 / the numerical rank are high
      (the directions share a variance that is almost zero);
    * ``rankme_uncentred``: RankMe near 1 while dims_99 is much larger (RankMe is uncentred);
    * ``probe_despite_collapse``: complete collapse, yet the linear probe is well above chance;
    * ``knn_below_probe`` / ``knn_above_probe``: kNN and linear-probe accuracies at least
      :data:`ACCURACY_GAP` apart;
    * ``few_dims_but_healthy``: no collapse although dims_99 is below the dimensional fraction of d;
    * ``separates_despite_dimensional``: dimensional collapse, yet kNN or the probe is well above chance;
    * ``dead_dims_with_spread_variance``: dimensional collapse from dead dimensions while dims_99 is high;
    * ``sigreg_not_gaussian``: SIGReg more than 10x its Gaussian value on a model that is not
      completely collapsed.
    """
    th = _thresholds(metrics)
    label = _label(metrics)
    d = _num(metrics, "dim")
    n = _num(metrics, "n")
    k99 = _num(metrics, "dims_99")
    rank = _num(metrics, "numerical_rank")
    rankme = _num(metrics, "rankme")
    std = _num(metrics, "std_l2_normalized")
    cos = _num(metrics, "mean_cosine")
    knn = _num(metrics, "knn_accuracy")
    probe = _num(metrics, "linear_probe_accuracy")
    dead = _num(metrics, "dead_dims")
    chance = chance_level(metrics)
    c = n_classes(metrics)
    r_max = int(min(d, n - 1)) if d and n else (int(d) if d else None)
    complete = label == "complete collapse"
    dimensional = label == "dimensional collapse"
    tiny = std is not None and d is not None and std * math.sqrt(d) < th["complete_std_ratio"]
    spec = metrics.get("spectrum")
    total = None
    if isinstance(spec, (list, tuple)) and spec:
        total = float(sum(max(float(v), 0.0) for v in spec))
    out: dict = {}

    many = k99 is not None and d is not None and k99 >= max(3.0, th["dimensional_fraction"] * (r_max or d))
    many_rank = rank is not None and r_max is not None and rank >= th["dimensional_fraction"] * r_max
    if complete and (many or many_rank):
        what = (f"The count dims_99 ({int(k99)} of {int(d)})" if many else f"The {int(rank)} non-zero eigenvalues")
        amount = (f"here the unit-length embeddings' total variance is {_g(total)} (about 1 when they spread "
                  f"over the sphere)" if total is not None else
                  f"here the unit-length embeddings barely vary (std {_g(std)} per dimension)" if std is not None
                  else "here there is almost none")
        why = "the mean cosine" if cos is not None and cos > th["complete_mean_cosine"] else "the std of the unit-length embeddings"
        out["variance_left_is_tiny"] = (
            f"{what} only says how the variance that is left is shared, however little "
            f"there is: {amount}, so these directions share almost nothing. The verdict follows {why}, "
            f"which shows that all points face the same way.")

    if rankme is not None and k99 is not None and rankme <= 2.0 and k99 >= 5 * max(rankme, 1.0):
        out["rankme_uncentred"] = (
            f"RankMe ({rankme:.1f}) is computed on the embeddings as they are, not centred: an offset shared by "
            f"all points and much larger than their differences makes one direction dominate. dims_99 "
            f"({int(k99)}) measures the spread around the mean, however small.")

    if complete and _well_above_chance(probe, chance):
        size = f" (std {_g(std)} per dimension of unit-length vectors)" if std is not None else ""
        out["probe_despite_collapse"] = (
            f"The linear probe still reaches {_pct(probe)} because it standardises every coordinate before "
            f"fitting: it magnifies differences far too small for cosine similarity to see{size}. The class "
            f"information survives in those tiny variations, but search, kNN, clustering and the maps see "
            f"one point.")

    if knn is not None and probe is not None and probe - knn >= ACCURACY_GAP:
        at_chance = chance is not None and knn <= chance + 0.1 * (1 - chance)
        if (complete or tiny) and at_chance:
            out["knn_below_probe"] = (
                f"kNN accuracy ({_pct(knn)}) is about chance ({_pct(chance)} for {c} classes): all cosines are 1 "
                f"to within rounding, so the nearest neighbours are arbitrary. The probe ({_pct(probe)}) uses "
                f"the standardised coordinates instead.")
        else:
            out["knn_below_probe"] = (
                f"kNN ({_pct(knn)}) is well below the linear probe ({_pct(probe)}): the classes differ along a "
                f"few directions, which the probe finds and weights, while other, larger directions decide "
                f"who is whose nearest neighbour by cosine.")
    elif knn is not None and probe is not None and knn - probe >= ACCURACY_GAP:
        out["knn_above_probe"] = (
            f"kNN ({_pct(knn)}) is well above the linear probe ({_pct(probe)}): the classes form local clusters "
            f"that no single hyperplane separates (several clusters per class, or curved shapes). kNN follows "
            f"local structure; a linear probe cannot.")

    if (label == "no collapse detected" and k99 is not None and d is not None
            and k99 < th["dimensional_fraction"] * d):
        used = (f": {int(rank)} of {r_max} eigenvalues are above {th['collapsed_eigenvalue']:g} of the largest"
                if rank is not None and r_max else "")
        cls = f" (e.g. {c} classes)" if c else ""
        out["few_dims_but_healthy"] = (
            f"99% of the variance in only {int(k99)} of {int(d)} dimensions is not collapse by itself: data with "
            f"few factors{cls} concentrate their variance. The verdict looks for directions with no variance "
            f"at all, and the other directions are still used a little{used}.")

    best = max((a for a in (knn, probe) if a is not None), default=None)
    if dimensional and _well_above_chance(best, chance):
        which = "kNN" if knn is not None and best == knn else "the linear probe"
        few = f"only {int(k99)} directions carry the variance" if k99 is not None else "few directions carry the variance"
        cls = f" {c} classes" if c else " the classes"
        out["separates_despite_dimensional"] = (
            f"The space still separates the classes ({which} {_pct(best)}) although {few}: that many directions "
            f"are enough to place{cls} apart. Dimensional collapse limits what else the embeddings can "
            f"represent (other tasks, finer distinctions), not necessarily these labels.")

    if (dimensional and dead is not None and d is not None and dead >= max(1.0, th["dead_fraction"] * d)
            and k99 is not None and k99 >= th["dimensional_fraction"] * d):
        out["dead_dims_with_spread_variance"] = (
            f"The variance is spread over many directions (dims_99 = {int(k99)}), but {int(dead)} of {int(d)} "
            f"coordinates never change: the model does not use them, which is what the verdict reports.")

    sig, ref = _num(metrics, "sigreg"), _num(metrics, "sigreg_gaussian_reference")
    if sig is not None and ref and sig > 10 * ref and not complete:
        out["sigreg_not_gaussian"] = (
            f"SIGReg ({_g(sig)}, Gaussian data {ref:.3g}) only says the embeddings are far from an isotropic "
            f"Gaussian, which only SIGReg/LeJEPA training aims for; other models can be healthy and far from it. "
            f"Compare SIGReg across checkpoints of one such training.")
    return out


def compare_readings(n: Optional[int] = None, mutual_k: int = 10, jaccard_k: int = 50) -> dict:
    """``{key: text}``: how to read each similarity measure; with ``n`` (the number of items)
    the neighbour measures quote their value for unrelated models (random neighbours)."""
    out = dict(COMPARE_READING)
    if n and n > 1:
        r = mutual_k / (n - 1)
        out["mutual_knn"] += f" Unrelated models give about k/(n-1) = {mutual_k}/{n - 1} = {r:.3f}."
        p = jaccard_k / (n - 1)
        out["knn_jaccard_mean"] += f" Unrelated models give about {p / (2 - p):.3f}."
    return out


def compare_disagreements(row: dict, n: Optional[int] = None, mutual_k: int = 10,
                          diagnostics: Sequence[Optional[dict]] = (), names: Sequence[str] = ()) -> dict:
    """``{rule key: text}`` for one pair's similarity values ``row`` (keys of
    :data:`explorer.metrics.compare.COMPARE_KEYS`) that seem to disagree, explained in plain
    sentences. ``n``: number of items (for the chance level of mutual kNN); ``diagnostics`` /
    ``names``: the two models' :func:`diagnose` results and names, when known. Rules:

    * ``collapsed_model``: one of the two is completely collapsed (its neighbours are arbitrary);
    * ``neighbours_at_chance``: mutual kNN at most 3x chance while CKA or SVCCA is at least 0.5;
    * ``svcca_above_cka``: SVCCA at least 0.15 above linear CKA;
    * ``knn_above_cka``: mutual kNN at least 0.5 while linear CKA is at most 0.3;
    * ``cka_biased``: linear CKA at least 0.2 above debiased CKA.
    """
    cka = _num(row, "linear_cka")
    dcka = _num(row, "debiased_cka")
    sv = _num(row, "svcca")
    mk = _num(row, "mutual_knn")
    names = list(names) + [f"model {i + 1}" for i in range(len(names), 2)]
    out: dict = {}
    collapsed = [names[i] for i, d in enumerate(list(diagnostics)[:2]) if d and _label(d) == "complete collapse"]
    if collapsed and mk is not None:
        who = " and ".join(collapsed)
        out["collapsed_model"] = (
            f"{who} {'is' if len(collapsed) == 1 else 'are'} completely collapsed: all cosines are about 1, so "
            f"nearest neighbours there are arbitrary and no neighbour measure (mutual kNN {mk:.3f}) can be high. "
            f"CKA and SVCCA can still find the tiny variations that remain related to the other model.")
    chance = mutual_k / (n - 1) if n and n > 1 else None
    glob = max((v for v in (cka, sv) if v is not None), default=None)
    if mk is not None and chance is not None and glob is not None and glob >= 0.5 and mk <= 3 * chance:
        parts = ", ".join(f"{k} {v:.3f}" for k, v in (("CKA", cka), ("SVCCA", sv)) if v is not None)
        out["neighbours_at_chance"] = (
            f"Mutual kNN ({mk:.3f}) is what random neighbours give ({mutual_k}/{n - 1} = {chance:.3f}), although "
            f"{parts} find related global structure: the models agree on the broad layout, not on which "
            f"items are each other's closest neighbours.")
    if sv is not None and cka is not None and sv - cka >= 0.15:
        out["svcca_above_cka"] = (
            f"SVCCA ({sv:.3f}) is higher than CKA ({cka:.3f}) because SVCCA matches directions by correlation "
            f"whatever their variance, while CKA weights them by variance: the models carry related "
            f"information, but with different directions dominating.")
    if mk is not None and cka is not None and mk >= 0.5 and cka <= 0.3:
        out["knn_above_cka"] = (
            f"Neighbourhoods agree (mutual kNN {mk:.3f}) while CKA is low ({cka:.3f}): the local structure is "
            f"shared, but the largest directions differ (e.g. one model adds a large direction unrelated "
            f"to the other).")
    if cka is not None and dcka is not None and cka - dcka >= 0.2:
        out["cka_biased"] = (
            f"Plain CKA ({cka:.3f}) is well above debiased CKA ({dcka:.3f}): with few items for the number of "
            f"dimensions plain CKA is inflated; trust the debiased value.")
    return out
