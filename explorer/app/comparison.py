"""The jobs behind a comparison of 2-4 models of one dataset (Qt-free; the Compare view runs
them): the per-point neighbourhood overlap of a pair, the layouts aligned onto a reference,
and the similarity table of every pair with each model's diagnostics.

    res = run_job(overlap_job(Za, Zb, k=50))            # {"jaccard": (N,), ...}
    aligned = run_job(align_job([c0, c1, c2], reference=0))
    table = run_job(table_job(names, vectors, [(0, 1)], [None, None]))

``TABLE_KEYS``/``DIAG_KEYS`` are the (key, column title) pairs of the similarity and per-model
tables, from the metric registry.
"""

from __future__ import annotations

from explorer.metrics import registry as _registry

TABLE_KEYS = tuple((m.key, m.column) for m in _registry.shown_in("compare"))  # the similarity table
DIAG_KEYS = tuple((m.key, m.column) for m in _registry.shown_in("compare_diag"))  # the per-model table


def overlap_job(Za, Zb, k: int):
    """Every point's neighbourhood overlap in A and B (k nearest, cosine, self excluded), with
    the pair's global similarities: :func:`explorer.metrics.compare.compare` over all points."""
    from explorer.metrics.compare import CompareParams, compare

    res = yield from compare(Za, Zb, CompareParams(knn_k=k, knn_points=None, mutual_k=min(10, k)))
    return res


def align_job(coords, reference: int):
    """Every layout aligned onto ``coords[reference]`` (orthogonal Procrustes); the reference
    itself as it is."""
    from explorer.core.jobs import Progress
    from explorer.maps import procrustes_align

    out = []
    for i, c in enumerate(coords):
        yield Progress(i, len(coords), "aligning the maps")
        out.append(c if i == reference else procrustes_align(c, coords[reference])[0])
    return out


def table_job(names, vectors, pairs, diagnostics):
    """The similarity table: ``TABLE_KEYS`` of every pair in ``pairs`` and each model's
    diagnostics (``None`` in ``diagnostics``: computed here) -> {"pairs": [...], "diagnostics": [...]}."""
    from explorer.core.jobs import Progress
    from explorer.metrics.compare import CompareParams, compare
    from explorer.metrics.diagnose import DiagnoseParams, diagnose

    total = len(pairs) + sum(d is None for d in diagnostics)
    done = 0
    rows = []
    for a, b in pairs:
        yield Progress(done, total, f"{names[a]} vs {names[b]}")
        r = yield from compare(vectors[a], vectors[b], CompareParams())
        rows.append({"pair": (a, b), **{k: r.get(k) for k, _ in TABLE_KEYS}})
        done += 1
    diags = []
    for i, d in enumerate(diagnostics):
        if d is None:
            yield Progress(done, total, f"diagnostics of {names[i]}")
            d = yield from diagnose(vectors[i], None, DiagnoseParams())
            done += 1
        diags.append(d)
    return {"pairs": rows, "diagnostics": diags}
