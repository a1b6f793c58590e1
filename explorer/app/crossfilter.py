"""Metadata charts that filter the map (Embedding Atlas' cross-filtering), free of Qt.

Each chosen column is binned once: numbers into a histogram with round ("nice") bin edges,
categories into bars (the ``MAX_BARS - 1`` most frequent plus "other" when there are more),
dates into days, months or years. Every row gets its bin number once, as int32, so that a brush
on a chart is a vectorised lookup, ``passes = keep[bin_index]``, and the filter of several
charts is the AND of theirs. The bar heights shown under a brush are ``np.bincount`` of the bin
numbers of the rows that pass; this is what keeps an update at a million rows within a frame
(``benchmarks/bench_crossfilter.py``).

As in dc.js and Embedding Atlas, a chart's own brush does not filter its own bars: each chart
counts the rows that pass every *other* chart (and the search), so the user still sees what
lies outside their brush and can widen it.

Missing values (NaN, empty text, NaT) get a bar of their own, "(missing)", at the end.

::

    cf = CrossFilter(dataset.columns())
    cf.add("ink"); cf.add("label")
    cf.brush_range("ink", 0.3, 0.5)           # numbers/dates: bins overlapping [lo, hi]
    cf.set_keep("label", ["3", "8"])           # categories: the bars kept, by label
    mask = cf.mask()                           # (N,) bool, None when nothing is brushed
    cf.set_base(search_mask)                   # the search narrows every chart's bars
    bars = cf.counts("ink")                    # per bin: rows passing the other charts
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
from numba import njit

from explorer.core.errors import InputError
from explorer.core.events import Signal

MAX_BARS = 20  # categories: the most frequent MAX_BARS - 1, then "other"
TARGET_BINS = 24  # numbers: about this many bins, with round edges
MISSING = "(missing)"
OTHER = "other"
KINDS = ("number", "category", "date")


@dataclass
class Binning:
    """How one column is cut into bars.

    ``labels``: one text per bar (the last is :data:`MISSING` when the column has missing
    values). ``edges``: numbers and dates only, ``len(bars) + 1`` edges of the non-missing bars
    (dates in days since 1970-01-01), bar ``i`` covering ``[edges[i], edges[i+1])`` and the last
    one closed. ``index``: (N,) int32 bar of each row. ``totals``: rows per bar.
    """

    column: str
    kind: str
    labels: list
    index: np.ndarray
    edges: Optional[np.ndarray] = None
    unit: Optional[str] = None  # dates: "D", "M" or "Y"

    def __post_init__(self) -> None:
        self.totals = np.bincount(self.index, minlength=len(self.labels)).astype(np.int64)

    @property
    def n_bars(self) -> int:
        return len(self.labels)

    @property
    def has_missing(self) -> bool:
        return bool(self.labels) and self.labels[-1] == MISSING

    def bars_in_range(self, lo: float, hi: float) -> np.ndarray:
        """(n_bars,) bool: the bars of a number or date chart that overlap ``[lo, hi]`` by more
        than a point (a brush ending on an edge leaves the next bar out); a zero-width range
        keeps the bar that holds it."""
        if self.edges is None:
            raise InputError(f"{self.column} is a category column; choose its bars, not a range.")
        lo, hi = min(lo, hi), max(lo, hi)
        e = self.edges
        keep = np.zeros(self.n_bars, bool)
        k = len(e) - 1
        if hi == lo:
            i = int(np.searchsorted(e, lo, side="right")) - 1
            if 0 <= i < k or (lo == e[-1] and k):
                keep[min(i, k - 1)] = True
            return keep
        keep[:k] = (e[1:] > lo) & (e[:-1] < hi)
        return keep


def nice_step(span: float, target: int = TARGET_BINS) -> float:
    """A round bin width (1, 2 or 5 times a power of ten) giving about ``target`` bins."""
    if not math.isfinite(span) or span <= 0:
        return 1.0
    raw = span / max(int(target), 1)
    p = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if raw <= m * p * (1 + 1e-9):
            return m * p
    return 10.0 * p


def nice_edges(lo: float, hi: float, target: int = TARGET_BINS) -> np.ndarray:
    """Round edges from below ``lo`` to at least ``hi`` (float64)."""
    if hi <= lo:
        step = nice_step(abs(lo) or 1.0, 1) / 10
        start = math.floor(lo / step) * step
        return np.array([start, start + step])
    step = nice_step(hi - lo, target)
    start = math.floor(lo / step) * step
    stop = math.ceil(hi / step) * step
    n = max(int(round((stop - start) / step)), 1)
    edges = start + step * np.arange(n + 1, dtype=np.float64)
    if edges[-1] < hi:  # rounding: never leave the maximum out
        edges = np.append(edges, edges[-1] + step)
    return edges


def _as_dates(col: np.ndarray) -> Optional[np.ndarray]:
    """``col`` as datetime64[D] (NaT for missing) if it holds dates, else None."""
    if col.dtype.kind == "M":
        return col.astype("datetime64[D]")
    if col.dtype.kind not in "OU":
        return None
    s = col.astype(str)
    present = s[(s != "") & (s != "nan") & (s != "None")]
    if present.size == 0:
        return None
    sample = present[: 200]
    if not all(len(x) >= 7 and x[:4].isdigit() and x[4] == "-" for x in sample):
        return None
    try:
        np.asarray(sample, dtype="datetime64[s]")
    except ValueError:
        return None
    out = np.full(s.shape, np.datetime64("NaT"), dtype="datetime64[s]")
    ok = (s != "") & (s != "nan") & (s != "None")
    try:
        out[ok] = np.asarray(s[ok], dtype="datetime64[s]")
    except ValueError:
        return None
    return out.astype("datetime64[D]")


def column_kind(col) -> str:
    """"number", "category" or "date", as the charts bin the column: numbers are a histogram,
    except whole numbers with at most 24 distinct values (class codes, counts), which are bars."""
    col = np.asarray(col)
    if _as_dates(col) is not None:
        return "date"
    if col.dtype.kind in "fiu":
        finite = col[np.isfinite(col)] if col.dtype.kind == "f" else col
        sample = finite[:20000]
        if not np.all(np.mod(sample, 1) == 0) or len(np.unique(sample)) > 24:
            return "number"
    return "category"


def bin_column(name: str, values, kind: Optional[str] = None, max_bars: int = MAX_BARS,
               target_bins: int = TARGET_BINS) -> Binning:
    """Cut column ``name`` (``values``, (N,)) into bars; ``kind`` None: :func:`column_kind`."""
    col = np.asarray(values)
    if col.ndim != 1:
        raise InputError(f"Column {name!r} is not one value per item.")
    kind = kind or column_kind(col)
    if kind not in KINDS:
        raise InputError(f"Chart kind must be one of {', '.join(KINDS)}, not {kind!r}.")
    if kind == "number":
        return _bin_numbers(name, col.astype(np.float64), target_bins)
    if kind == "date":
        d = _as_dates(col)
        if d is None:
            raise InputError(f"Column {name!r} does not hold dates.")
        return _bin_dates(name, d)
    return _bin_categories(name, col, max_bars)


def _with_missing(labels: list, index: np.ndarray, missing: np.ndarray) -> tuple[list, np.ndarray]:
    if missing.any():
        index[missing] = len(labels)
        labels = labels + [MISSING]
    return labels, index


def _fmt(x: float, step: float) -> str:
    digits = max(0, -int(math.floor(math.log10(step)))) if step > 0 and step < 1 else 0
    return f"{x:.{digits}f}"


def _bin_numbers(name: str, v: np.ndarray, target: int) -> Binning:
    finite = np.isfinite(v)
    present = v[finite]
    if present.size == 0:
        labels, index = _with_missing([], np.zeros(len(v), np.int32), ~finite)
        return Binning(name, "number", labels, index, np.zeros(1))
    edges = nice_edges(float(present.min()), float(present.max()), target)
    k = len(edges) - 1
    index = np.searchsorted(edges, np.where(finite, v, edges[0]), side="right").astype(np.int32) - 1
    np.clip(index, 0, k - 1, out=index)
    step = edges[1] - edges[0]
    labels = [f"{_fmt(edges[i], step)}–{_fmt(edges[i + 1], step)}" for i in range(k)]
    labels, index = _with_missing(labels, index, ~finite)
    return Binning(name, "number", labels, index, edges)


def _bin_dates(name: str, d: np.ndarray) -> Binning:
    ok = ~np.isnat(d)
    present = d[ok]
    if present.size == 0:
        labels, index = _with_missing([], np.zeros(len(d), np.int32), ~ok)
        return Binning(name, "date", labels, index, np.zeros(1), "D")
    lo, hi = present.min(), present.max()
    span = int((hi - lo).astype(np.int64))
    unit = "D" if span <= 62 else ("M" if span <= 6 * 366 else "Y")
    start = lo.astype(f"datetime64[{unit}]")
    stop = hi.astype(f"datetime64[{unit}]") + np.timedelta64(1, unit)
    n = int((stop - start).astype(np.int64))
    index = (d.astype(f"datetime64[{unit}]") - start).astype(np.int64)
    index = np.where(ok, index, 0).astype(np.int32)
    bins = start + np.arange(n + 1)
    edges = bins.astype("datetime64[D]").astype(np.int64).astype(np.float64)
    labels = [str(b) for b in bins[:-1]]
    labels, index = _with_missing(labels, index, ~ok)
    return Binning(name, "date", labels, index, edges, unit)


def _natural_key(s: str):
    try:
        return (0, float(s), s)
    except ValueError:
        return (1, 0.0, s)


def _bin_categories(name: str, col: np.ndarray, max_bars: int) -> Binning:
    if col.dtype.kind == "f":
        missing = ~np.isfinite(col)
        s = np.where(missing, "", col.astype(str))
    else:
        s = col.astype(str)
        missing = (s == "") | (s == "nan") | (s == "None")
    names, codes = np.unique(s, return_inverse=True)
    codes = codes.astype(np.int32).ravel()
    counts = np.bincount(codes[~missing], minlength=len(names))
    real = [i for i in range(len(names)) if counts[i] > 0]
    if len(real) <= max_bars:
        kept = sorted(real, key=lambda i: _natural_key(str(names[i])))
        other = False
    else:  # the most frequent keep a bar, ties by name; the rest share "other"
        kept = sorted(real, key=lambda i: (-counts[i], _natural_key(str(names[i]))))[: max_bars - 1]
        other = True
    bar_of_code = np.full(len(names), len(kept), np.int32)
    bar_of_code[kept] = np.arange(len(kept), dtype=np.int32)
    labels = [str(names[i]) for i in kept] + ([OTHER] if other else [])
    index = bar_of_code[codes]
    labels, index = _with_missing(labels, index, missing)
    return Binning(name, "category", labels, index)


@njit(cache=True, nogil=True)
def _filter_counts(index, offsets, keep, base, has_base, nf_out, mask, counts):  # pragma: no cover (numba)
    """One pass over the rows, without data-dependent branches (brushes make them random).

    ``index`` (N, K) int32: each chart's bar per row; ``keep`` (uint8): the charts' kept bars end
    to end, chart k's from ``offsets[k]`` (all 1 for a chart without a brush). Writes ``mask``
    (N,): inside every brush; and ``counts`` (the bars of all charts end to end): a row counts
    for chart k when it passes ``base`` and every chart's brush but k's; ``nf_out`` (N,) uint8:
    how many brushes each row fails (what :func:`_flip_bars` updates)."""
    N, K = index.shape
    counts[:] = 0
    f = np.empty(K, np.int64)
    for i in range(N):
        nf = 0
        for k in range(K):
            fk = 1 - keep[offsets[k] + index[i, k]]
            f[k] = fk
            nf += fk
        nf_out[i] = nf
        mask[i] = nf == 0
        ok = 1
        if has_base:
            ok = base[i]
        for k in range(K):
            counts[offsets[k] + index[i, k]] += ok * (nf - f[k] == 0)


@njit(cache=True, nogil=True)
def _flip_bars(rows, starts, flipped, j, index, offsets, keep, base, has_base, nf, mask, counts):  # pragma: no cover
    """Chart ``j``'s brush changed on the bars ``flipped`` (``keep`` already holds the new
    values): update ``nf``, ``mask`` and every other chart's ``counts`` for the rows of those
    bars only (``rows[starts[b]:starts[b + 1]]`` are bar b's rows), as crossfilter.js does. A
    brush dragged by one bar touches one or two bars' rows instead of all N."""
    K = index.shape[1]
    for t in range(flipped.shape[0]):
        b = flipped[t]
        new_f = 1 - np.int64(keep[offsets[j] + b])
        old_f = 1 - new_f
        for p in range(starts[b], starts[b + 1]):
            i = rows[p]
            n_old = np.int64(nf[i])
            n_new = n_old - old_f + new_f
            nf[i] = n_new
            mask[i] = n_new == 0
            if has_base and not base[i]:
                continue
            for k in range(K):
                if k == j:
                    continue
                fk = 1 - np.int64(keep[offsets[k] + index[i, k]])
                counts[offsets[k] + index[i, k]] += np.int64(n_new - fk == 0) - np.int64(n_old - fk == 0)


@njit(cache=True, nogil=True)
def _rows_by_bar(index, n_bars):  # pragma: no cover (numba)
    """Counting sort: (rows grouped by bar, starts (n_bars + 1,))."""
    starts = np.zeros(n_bars + 1, np.int64)
    for i in range(index.shape[0]):
        starts[index[i] + 1] += 1
    for b in range(n_bars):
        starts[b + 1] += starts[b]
    pos = starts[:-1].copy()
    rows = np.empty(index.shape[0], np.int32)
    for i in range(index.shape[0]):
        b = index[i]
        rows[pos[b]] = i
        pos[b] += 1
    return rows, starts


class CrossFilter:
    """The charts of a dataset's columns and their brushes (see the module docstring).

    ``changed(column)`` fires after a brush changes (``column`` None: several or all), and
    ``charts_changed()`` after a chart is added or removed.
    """

    def __init__(self, columns: Optional[dict] = None) -> None:
        self._columns: dict = dict(columns or {})
        self.n = len(next(iter(self._columns.values()))) if self._columns else 0
        self.charts: dict[str, Binning] = {}
        self._keep: dict[str, np.ndarray] = {}  # column -> (n_bars,) bool, only when brushed
        self._stack: Optional[tuple] = None  # ((K, N) int32 bars, offsets), rebuilt when charts change
        self._result: Optional[tuple] = None  # (mask, {column: counts}) handed out, until a brush changes
        self._live: Optional[tuple] = None  # (nf, mask, counts, keep) kept up to date brush by brush
        self._rows: dict = {}  # column -> rows grouped by bar (for _flip_bars), built at its first brush
        self.base: Optional[np.ndarray] = None  # a filter from elsewhere (the search)
        self.changed = Signal()
        self.charts_changed = Signal()

    # -- columns and charts -----------------------------------------------------------------
    def set_columns(self, columns: dict) -> None:
        """New columns (another dataset, or an attached table): charts of columns still there
        with the same number of rows are binned again and keep their brushes by label."""
        state = self.state()
        n = len(next(iter(columns.values()))) if columns else 0
        old_cols, old_charts = self._columns, dict(self.charts)
        self._columns = dict(columns)
        same_n = n == self.n
        self.n = n
        self.charts.clear()
        self._keep.clear()
        self._stack = self._result = self._live = None
        self._rows.clear()
        if self.base is not None and len(self.base) != n:
            self.base = None
        with self.changed.blocked(), self.charts_changed.blocked():
            for c in state["columns"]:
                if c not in self._columns:
                    continue
                if same_n and _same(self._columns[c], old_cols.get(c)):
                    self.charts[c] = old_charts[c]  # unchanged column: no need to bin it again
                else:
                    self.add(c)
            if same_n:
                for b in state["brushes"]:
                    if b["column"] in self.charts:
                        self.set_keep(b["column"], b["bins"])
        self.charts_changed.emit()
        self.changed.emit(None)

    @property
    def columns(self) -> list:
        return list(self._columns)

    def add(self, column: str, kind: Optional[str] = None) -> Binning:
        if column not in self._columns:
            known = ", ".join(list(self._columns)[:8]) or "none"
            raise InputError(f"No column {column!r} to chart (columns: {known}).")
        if column not in self.charts:
            self.charts[column] = bin_column(column, self._columns[column], kind)
            self._stack = self._result = self._live = None
            self._rows.pop(column, None)
            self.charts_changed.emit()
        return self.charts[column]

    def remove(self, column: str) -> None:
        if self.charts.pop(column, None) is None:
            return
        brushed = self._keep.pop(column, None) is not None
        self._stack = self._result = self._live = None
        self._rows.pop(column, None)
        self.charts_changed.emit()
        if brushed:
            self.changed.emit(column)

    # -- brushes -----------------------------------------------------------------------------
    def keep(self, column: str) -> Optional[np.ndarray]:
        """The bars kept by ``column``'s brush ((n_bars,) bool), None when not brushed."""
        k = self._keep.get(column)
        return None if k is None else k.copy()

    def set_keep(self, column: str, bars) -> None:
        """Brush ``column`` to ``bars``: a (n_bars,) bool mask, bar numbers, or bar labels.
        None (or every bar) clears the brush."""
        b = self._chart(column)
        if bars is None:
            return self.clear(column)
        arr = np.asarray(list(bars) if not isinstance(bars, np.ndarray) else bars)
        if arr.dtype == bool and arr.shape == (b.n_bars,):
            keep = arr.copy()
        else:
            keep = np.zeros(b.n_bars, bool)
            pos = {lab: i for i, lab in enumerate(b.labels)}
            for x in arr.tolist():
                if isinstance(x, str):
                    if x in pos:
                        keep[pos[x]] = True
                elif 0 <= int(x) < b.n_bars:
                    keep[int(x)] = True
        if keep.all():
            return self.clear(column)
        old = self._keep.get(column)
        if old is not None and np.array_equal(old, keep):
            return
        self._keep[column] = keep
        self._flip(column, old, keep)
        self.changed.emit(column)

    def brush_range(self, column: str, lo: float, hi: float) -> np.ndarray:
        """Brush a number or date chart to the bars overlapping ``[lo, hi]`` (dates in days
        since 1970-01-01); returns the kept bars."""
        keep = self._chart(column).bars_in_range(float(lo), float(hi))
        self.set_keep(column, keep)
        return keep

    def toggle_bar(self, column: str, bar: int, add: bool = False) -> None:
        """Click on a bar: keep only it (again: clear); ``add`` (Ctrl-click): toggle it in the kept set."""
        b = self._chart(column)
        cur = self._keep.get(column)
        if add:
            keep = np.zeros(b.n_bars, bool) if cur is None else cur.copy()
            keep[bar] = not keep[bar]
            return self.clear(column) if not keep.any() else self.set_keep(column, keep)
        if cur is not None and cur[bar] and cur.sum() == 1:
            return self.clear(column)
        keep = np.zeros(b.n_bars, bool)
        keep[bar] = True
        self.set_keep(column, keep)

    def clear(self, column: Optional[str] = None) -> None:
        """Clear ``column``'s brush (None: every brush)."""
        if column is None:
            if not self._keep:
                return
            self._keep.clear()
            self._result = self._live = None
            return self.changed.emit(None)
        old = self._keep.pop(column, None)
        if old is not None:
            self._flip(column, old, None)
            self.changed.emit(column)

    def set_base(self, mask: Optional[np.ndarray]) -> None:
        """A filter from outside the charts (the search): it narrows every chart's bars."""
        if mask is not None:
            mask = np.asarray(mask, bool)
            if mask.shape != (self.n,):
                raise InputError(f"The filter has {mask.size} values for {self.n} items.")
        self.base = mask
        self._result = self._live = None

    @property
    def brushed(self) -> list:
        return [c for c in self.charts if c in self._keep]

    # -- what passes ---------------------------------------------------------------------------
    def _index_stack(self) -> tuple:
        if self._stack is None:
            names = list(self.charts)
            index = np.empty((self.n, len(names)), np.int32)
            for k, c in enumerate(names):
                index[:, k] = self.charts[c].index
            sizes = [self.charts[c].n_bars for c in names]
            self._stack = (index, np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64))
        return self._stack

    def _base_u8(self) -> np.ndarray:
        return self.base.view(np.uint8) if self.base is not None else np.zeros(0, np.uint8)

    def _flip(self, column: str, old: Optional[np.ndarray], new: Optional[np.ndarray]) -> None:
        """Bring the running state from brush ``old`` to ``new`` of ``column`` (None: no brush)
        by visiting only the rows of the bars that changed."""
        self._result = None
        if self._live is None:
            return
        b = self.charts[column]
        o = np.ones(b.n_bars, bool) if old is None else old
        w = np.ones(b.n_bars, bool) if new is None else new
        flipped = np.flatnonzero(o != w).astype(np.int64)
        if column not in self._rows:
            self._rows[column] = _rows_by_bar(b.index, b.n_bars)
        rows, starts = self._rows[column]
        index, offsets = self._index_stack()
        j = list(self.charts).index(column)
        nf, mask, counts, keep = self._live
        keep[offsets[j]:offsets[j + 1]] = w
        _flip_bars(rows, starts, flipped, j, index, offsets, keep, self._base_u8(), self.base is not None,
                   nf, mask, counts)

    def _compute(self) -> tuple:
        if self._result is not None:
            return self._result
        names = list(self.charts)
        index, offsets = self._index_stack()
        if self._live is None:  # one full pass; then brush by brush
            keep = np.ones(int(offsets[-1]), np.uint8)
            for k, c in enumerate(names):
                if c in self._keep:
                    keep[offsets[k]:offsets[k + 1]] = self._keep[c]
            nf = np.empty(self.n, np.uint8)
            mask = np.empty(self.n, bool)
            counts = np.empty(int(offsets[-1]), np.int64)
            _filter_counts(index, offsets, keep, self._base_u8(), self.base is not None, nf, mask, counts)
            self._live = (nf, mask, counts, keep)
        nf, mask, counts, keep = self._live
        self._result = (mask.copy() if self._keep else None,
                        {c: counts[offsets[k]:offsets[k + 1]].copy() for k, c in enumerate(names)})
        return self._result

    def mask(self) -> Optional[np.ndarray]:
        """(N,) bool: rows inside every brush (the search is not in it); None when no chart is
        brushed. Do not write to it."""
        if not self._keep:
            return None
        return self._compute()[0]

    def counts(self, column: str) -> np.ndarray:
        """Rows per bar of ``column`` that pass every other chart's brush and the search."""
        self._chart(column)
        if not self._keep and self.base is None:
            return self.charts[column].totals.copy()
        return self._compute()[1][column].copy()

    def selected_counts(self, column: str, indices) -> np.ndarray:
        """Rows per bar of ``column`` among the selected ``indices``."""
        b = self._chart(column)
        idx = np.asarray(indices, np.int64).ravel()
        idx = idx[(idx >= 0) & (idx < self.n)]
        return np.bincount(b.index[idx], minlength=b.n_bars).astype(np.int64)

    # -- persistence -----------------------------------------------------------------------------
    def state(self) -> dict:
        """``{"columns": [...], "brushes": [{"column", "bins": [bar labels]}]}`` (plain JSON)."""
        return {"columns": list(self.charts),
                "brushes": [{"column": c, "bins": [self.charts[c].labels[i] for i in np.flatnonzero(k)]}
                            for c, k in self._keep.items()]}

    def restore(self, state: Optional[dict]) -> list:
        """Charts and brushes from :meth:`state`; returns the columns that no longer exist."""
        state = state or {}
        gone = [c for c in state.get("columns", []) if c not in self._columns]
        with self.changed.blocked(), self.charts_changed.blocked():
            for c in list(self.charts):
                if c not in state.get("columns", []):
                    self.remove(c)
            for c in state.get("columns", []):
                if c in self._columns:
                    self.add(c)
            self._keep.clear()
            self._result = self._live = None
            for b in state.get("brushes", []):
                if b.get("column") in self.charts:
                    self.set_keep(b["column"], list(b.get("bins", [])))
        self.charts_changed.emit()
        self.changed.emit(None)
        return gone

    def _chart(self, column: str) -> Binning:
        b = self.charts.get(column)
        if b is None:
            raise InputError(f"There is no chart of {column!r}; add it first.")
        return b


def _same(a, b) -> bool:
    if a is b:
        return True
    if b is None:
        return False
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a, b))
