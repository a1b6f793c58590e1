"""Cross-filtering charts (issue 19): bars, brushes and counts against numpy written here.

Every expected count is computed in the test from the raw column with plain comparisons
(``(v >= lo) & (v < hi)``), ``collections.Counter`` or datetime arithmetic, never through the
module's bin numbers."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from explorer.app.crossfilter import MISSING, OTHER, CrossFilter, bin_column, column_kind, nice_edges
from explorer.core.errors import InputError

rng = np.random.default_rng(7)
N = 5000


def _ref_histogram(v, edges):
    """Counts of v per [e_i, e_{i+1}), the last bar closed, by plain comparisons."""
    out = []
    for i in range(len(edges) - 1):
        hi_ok = v <= edges[i + 1] if i == len(edges) - 2 else v < edges[i + 1]
        out.append(int(np.sum((v >= edges[i]) & hi_ok)))
    return np.array(out)


def test_numeric_histogram_matches_comparisons():
    v = rng.gamma(2.0, 1.5, N)
    v[:17] = np.nan
    b = bin_column("x", v)
    assert b.kind == "number"
    e = b.edges
    # round edges covering every value, equally spaced
    assert e[0] <= np.nanmin(v) and e[-1] >= np.nanmax(v)
    steps = np.diff(e)
    assert np.allclose(steps, steps[0])
    mant = steps[0] / 10 ** np.floor(np.log10(steps[0]))
    assert any(np.isclose(mant, m) for m in (1, 2, 2.5, 5, 10))
    assert 10 <= len(e) - 1 <= 50
    finite = v[np.isfinite(v)]
    assert np.array_equal(b.totals[:-1], _ref_histogram(finite, e))
    assert b.labels[-1] == MISSING and b.totals[-1] == 17
    assert b.totals.sum() == N


def test_nice_edges_include_the_extremes():
    for lo, hi in ((0.0, 1.0), (-3.3, 7.1), (1e-6, 3e-6), (5.0, 5.0), (100.0, 100000.0)):
        e = nice_edges(lo, hi)
        assert e[0] <= lo and e[-1] >= hi and np.all(np.diff(e) > 0)


def test_categories_top_bars_and_other():
    names = np.array([f"c{i:02d}" for i in range(30)])
    p = np.arange(30, 0, -1, dtype=float)
    col = rng.choice(names, size=N, p=p / p.sum()).astype(object)
    col[:11] = ""
    b = bin_column("cat", col, max_bars=20)
    assert b.kind == "category"
    cnt = Counter(col[11:].tolist())
    top = sorted(cnt, key=lambda k: (-cnt[k], k))[:19]
    assert sorted(b.labels[:19]) == sorted(top)
    for lab, total in zip(b.labels[:19], b.totals[:19]):
        assert total == cnt[lab]
    assert b.labels[19] == OTHER and b.totals[19] == sum(c for k, c in cnt.items() if k not in top)
    assert b.labels[20] == MISSING and b.totals[20] == 11
    # few categories: all shown, in natural order (numbers by value)
    b2 = bin_column("d", np.array(["10", "9", "2", "10"], dtype=object))
    assert b2.labels == ["2", "9", "10"] and list(b2.totals) == [1, 1, 2]


def test_dates_by_month_and_day():
    start = np.datetime64("2023-01-01")
    days = rng.integers(0, 700, 400)
    col = np.array([str(start + int(d)) for d in days], dtype=object)
    col[:5] = ""
    assert column_kind(col) == "date"
    b = bin_column("when", col)
    assert b.unit == "M"
    months = Counter(str(start + int(d))[:7] for d in days[5:])
    assert dict(zip(b.labels[:-1], b.totals[:-1].tolist())) == {m: months.get(m, 0) for m in b.labels[:-1]}
    assert sum(months.values()) == b.totals[:-1].sum() and b.totals[-1] == 5
    short = np.array([str(start + int(d)) + "T12:30" for d in rng.integers(0, 20, 50)], dtype=object)
    b = bin_column("t", short)
    assert b.unit == "D" and b.labels[0] == str(start + int(min(int(s[8:10]) for s in short) - 1))


def _columns():
    return {"x": rng.normal(size=N), "cat": rng.choice(list("abcdefg"), size=N).astype(object),
            "y": rng.uniform(0, 100, N)}


def test_two_brushes_give_the_and_mask_and_crossed_counts():
    cols = _columns()
    cf = CrossFilter(cols)
    for c in cols:
        cf.add(c)
    assert cf.mask() is None
    keep_x = cf.brush_range("x", -0.5, 0.8)
    e = cf.charts["x"].edges
    lo, hi = e[np.flatnonzero(keep_x)[0]], e[np.flatnonzero(keep_x)[-1] + 1]
    assert lo <= -0.5 and hi >= 0.8 and hi - lo < 0.5 + 0.8 + 2 * (e[1] - e[0]) + 1e-9
    cf.set_keep("cat", ["b", "e"])
    in_x = (cols["x"] >= lo) & (cols["x"] < hi)
    in_cat = np.isin(cols["cat"].astype(str), ["b", "e"])
    assert np.array_equal(cf.mask(), in_x & in_cat)
    # a chart's own brush does not filter its own bars: it counts the rows passing the others
    assert np.array_equal(cf.counts("x"), _ref_histogram(cols["x"][in_cat], e))
    cat_counts = dict(zip(cf.charts["cat"].labels, cf.counts("cat").tolist()))
    assert cat_counts == {k: int(np.sum(in_x & (cols["cat"] == k))) for k in "abcdefg"}
    ey = cf.charts["y"].edges
    assert np.array_equal(cf.counts("y"), _ref_histogram(cols["y"][in_x & in_cat], ey))
    # the search narrows every chart; the mask stays the brushes'
    search = cols["y"] > 50
    cf.set_base(search)
    assert np.array_equal(cf.mask(), in_x & in_cat)
    assert np.array_equal(cf.counts("y"), _ref_histogram(cols["y"][in_x & in_cat & search], ey))
    assert np.array_equal(cf.counts("x"), _ref_histogram(cols["x"][in_cat & search], e))
    # selection overlay
    sel = rng.choice(N, 300, replace=False)
    assert dict(zip(cf.charts["cat"].labels, cf.selected_counts("cat", sel).tolist())) == \
        {k: int(np.sum(cols["cat"][sel] == k)) for k in "abcdefg"}
    cf.clear("cat")
    assert np.array_equal(cf.mask(), in_x)
    cf.clear()
    assert cf.mask() is None


def test_clicks_state_and_restore():
    cols = _columns()
    cf = CrossFilter(cols)
    cf.add("cat")
    cf.add("x")
    seen = []
    cf.changed.connect(seen.append)
    labels = cf.charts["cat"].labels
    cf.toggle_bar("cat", 2)
    assert np.array_equal(cf.mask(), cols["cat"] == labels[2])
    cf.toggle_bar("cat", 4, add=True)
    assert np.array_equal(cf.mask(), np.isin(cols["cat"], [labels[2], labels[4]]))
    cf.toggle_bar("cat", 2, add=True)
    cf.toggle_bar("cat", 4)  # the only kept bar clicked again: no brush
    assert cf.mask() is None and seen == ["cat"] * 4
    cf.toggle_bar("cat", 1)
    cf.brush_range("x", 0, 1)
    state = cf.state()
    m = cf.mask().copy()
    other = CrossFilter(cols)
    assert other.restore(state) == [] and list(other.charts) == ["cat", "x"]
    assert np.array_equal(other.mask(), m)
    assert CrossFilter({"x": cols["x"]}).restore(state) == ["cat"]
    with pytest.raises(InputError):
        cf.add("nope")
    with pytest.raises(InputError):
        cf.brush_range("cat", 0, 1)


def test_a_long_brushing_session_stays_exact():
    """Brushes moved bar by bar are applied to the rows of the changed bars only; after every
    step the mask and all crossed counts equal a fresh numpy evaluation."""
    cols = _columns()
    cf = CrossFilter(cols)
    for c in cols:
        cf.add(c)
    cf.set_base(cols["y"] < 80)
    steps = np.random.default_rng(3)
    for step in range(60):
        c = ["x", "cat", "y"][steps.integers(0, 3)]
        nb = cf.charts[c].n_bars
        r = steps.random()
        if r < 0.15:
            cf.clear(c)
        elif r < 0.25:
            cf.toggle_bar(c, int(steps.integers(0, nb)), add=True)
        else:
            a = int(steps.integers(0, nb))
            cf.set_keep(c, list(range(a, min(nb, a + int(steps.integers(1, 6))))))
        if step % 7 == 0:
            cf.mask()  # read in between (the running state is then brought forward bar by bar)
        passes = {}
        for k in cols:
            keep = cf.keep(k)
            if keep is not None:
                labels = np.array(cf.charts[k].labels, dtype=object)[keep]
                if k == "cat":
                    passes[k] = np.isin(cols[k], labels.tolist())
                else:
                    e = cf.charts[k].edges
                    kept = np.flatnonzero(keep)
                    passes[k] = np.zeros(N, bool)
                    for b in kept:
                        hi_ok = cols[k] <= e[b + 1] if b == len(e) - 2 else cols[k] < e[b + 1]
                        passes[k] |= (cols[k] >= e[b]) & hi_ok
        expect = np.logical_and.reduce(list(passes.values())) if passes else None
        if expect is None:
            assert cf.mask() is None
        else:
            assert np.array_equal(cf.mask(), expect), step
        base = cols["y"] < 80
        for k in cols:
            others = [p for q, p in passes.items() if q != k] + [base]
            m = np.logical_and.reduce(others)
            if k == "cat":
                ref = [int(np.sum(m & (cols[k] == lab))) for lab in cf.charts[k].labels]
            else:
                ref = _ref_histogram(cols[k][m], cf.charts[k].edges)
            assert np.array_equal(cf.counts(k), ref), (step, k)
