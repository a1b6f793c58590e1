"""Bulk point rasteriser and spatial index for the map view (numpy + numba, no Qt).

The map view never hands N points to Qt. Instead, for every frame it turns the points that
fall inside the view into one premultiplied ARGB32 image at device resolution, and Qt draws
that image as a single item. This module holds that work, free of Qt so it can be tested and
timed on its own.

How a frame is made (``PointIndex.render``):

1. **Culling with a grid index.** At ``PointIndex(x, y)`` the points are counting-sorted into a
   G x G grid of cells over their bounding box (O(N)), so the points of a rectangle of cells
   are a handful of contiguous ranges. A zoomed-in view touches only its cells.
2. **Accumulation.** For each visible point a disc stamp (point size in device pixels) adds
   ``1`` to the pixel's count and the point's RGB to the pixel's colour sums. Filtered-out
   points go to a separate grey count, so they sit *under* the matching ones.
3. **Compositing.** Each pixel's colour is the *mean* colour of the points on it (the
   categorical shading of datashader, Bednar et al.), and its opacity is
   ``1 - (1 - opacity) ** count``: exactly what alpha-blending ``count`` points of that colour
   gives, but independent of drawing order. In ``density`` mode (the default when there are
   more points in view than pixels) the opacity is ``0.4 + 0.6 * log1p(n) / log1p(n_max)``,
   so the cores of dense clusters keep their structure instead of saturating.
4. **Overlays.** Selected points are stamped again on top, opaque, with a dark halo one pixel
   wider.

Level of detail: when the visible points times the stamp area exceed ``budget``, every k-th
point of each cell is drawn with weight k (``stride``); the caller can refine with
``stride=1`` later (the kernels release the GIL, so that can run in a worker thread).

Redrawing the same view: when a frame shows the same viewport as the last one with other
colour indices (a brush step greys out points, a legend entry is hidden), the sums of step 2
are kept from the last frame and only the points whose index changed are taken out of their
old sums and added to their new ones (``_accumulate_delta``); a brush step on 1M points
changes a few percent of them. While the view moves the sums are not kept.

Colour indices (``uint16`` per point, in sorted order): ``0..P-1`` index the palette,
``GREY`` draws the point as filtered-out, ``SKIP`` does not draw it (a class hidden in the
legend).
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import numpy as np
from numba import njit

GREY = np.uint16(65534)
SKIP = np.uint16(65535)


# --------------------------------------------------------------------------------- kernels
@njit(cache=True, nogil=True)
def _cell_of(x, y, x0, y0, inv_cw, inv_ch, g):
    """Each point's grid cell; a point with a non-finite coordinate (not placed yet) goes to
    cell g*g, after the grid, which no range of cells ever includes."""
    n = x.shape[0]
    cell = np.empty(n, np.int32)
    for i in range(n):
        if not (np.isfinite(x[i]) and np.isfinite(y[i])):
            cell[i] = g * g
            continue
        cx = int((x[i] - x0) * inv_cw)
        cy = int((y[i] - y0) * inv_ch)
        if cx < 0:
            cx = 0
        elif cx >= g:
            cx = g - 1
        if cy < 0:
            cy = 0
        elif cy >= g:
            cy = g - 1
        cell[i] = cy * g + cx
    return cell


@njit(cache=True, nogil=True)
def _counting_sort(cell, ncells):
    n = cell.shape[0]
    start = np.zeros(ncells + 1, np.int64)
    for i in range(n):
        start[cell[i] + 1] += 1
    for c in range(ncells):
        start[c + 1] += start[c]
    pos = start[:-1].copy()
    perm = np.empty(n, np.int64)
    for i in range(n):
        c = cell[i]
        perm[pos[c]] = i
        pos[c] += 1
    return perm, start


@njit(cache=True, nogil=True, inline="always")
def _stamp(x, y, c, x0, y1, sx, sy, w, h, odx, ody, pal, wt, acc, grey):
    """Add the stamp of a point at (x, y) with colour index ``c`` and weight ``wt`` (uint32) to
    the sums; the sums wrap modulo 2**32, so the weight's two's complement takes it out again."""
    if c == 65535:
        return
    fx = (x - x0) * sx
    fy = (y1 - y) * sy
    if fx < -8.0 or fy < -8.0 or fx >= w + 8.0 or fy >= h + 8.0:
        return
    px = int(math.floor(fx))
    py = int(math.floor(fy))
    for k in range(odx.shape[0]):
        qx = px + odx[k]
        qy = py + ody[k]
        if qx < 0 or qy < 0 or qx >= w or qy >= h:
            continue
        p = qy * w + qx
        if c == 65534:
            grey[p] += wt
        else:
            acc[p, 0] += wt
            acc[p, 1] += wt * pal[c, 0]
            acc[p, 2] += wt * pal[c, 1]
            acc[p, 3] += wt * pal[c, 2]


@njit(cache=True, nogil=True)
def _accumulate(xs, ys, cidx, ranges, stride, x0, y1, sx, sy, w, h, odx, ody, pal, acc, grey):
    """acc: (h*w, 4) uint32 count, r, g, b sums; grey: (h*w,) uint32 count of GREY points."""
    wt = np.uint32(stride)
    for r in range(ranges.shape[0]):
        for i in range(ranges[r, 0], ranges[r, 1], stride):
            _stamp(xs[i], ys[i], cidx[i], x0, y1, sx, sy, w, h, odx, ody, pal, wt, acc, grey)


@njit(cache=True, nogil=True)
def _accumulate_delta(xs, ys, old, new, ranges, stride, x0, y1, sx, sy, w, h, odx, ody, pal, acc, grey):
    """Bring sums that ``_accumulate`` made with colour indices ``old`` up to date with ``new``:
    each drawn point whose index changed takes its stamp out of its old sum and adds it to its
    new one; ``old`` becomes ``new``. A brush step changes a few percent of the points, so this
    costs one sequential compare over the visible points instead of a full redraw. Returns the
    number of points changed."""
    wt = np.uint32(stride)
    out = np.uint32(np.uint32(0xFFFFFFFF) - wt + np.uint32(1))  # -wt modulo 2**32
    changed = 0
    for r in range(ranges.shape[0]):
        for i in range(ranges[r, 0], ranges[r, 1], stride):
            co = old[i]
            cn = new[i]
            if co == cn:
                continue
            old[i] = cn
            changed += 1
            _stamp(xs[i], ys[i], co, x0, y1, sx, sy, w, h, odx, ody, pal, out, acc, grey)
            _stamp(xs[i], ys[i], cn, x0, y1, sx, sy, w, h, odx, ody, pal, wt, acc, grey)
    return changed


@njit(cache=True, nogil=True)
def _count_points(xs, ys, x0, y1, sx, sy, w, h, odx, ody, out):
    nofs = odx.shape[0]
    for i in range(xs.shape[0]):
        fx = (xs[i] - x0) * sx
        fy = (y1 - ys[i]) * sy
        if fx < -8.0 or fy < -8.0 or fx >= w + 8.0 or fy >= h + 8.0:
            continue
        px = int(math.floor(fx))
        py = int(math.floor(fy))
        for k in range(nofs):
            qx = px + odx[k]
            qy = py + ody[k]
            if qx < 0 or qy < 0 or qx >= w or qy >= h:
                continue
            out[qy * w + qx] += 1


@njit(cache=True, nogil=True)
def _max_count(acc):
    m = np.uint32(0)
    for p in range(acc.shape[0]):
        if acc[p, 0] > m:
            m = acc[p, 0]
    return m


@njit(cache=True, nogil=True)
def _compose(acc, grey, alpha_lut, grey_alpha_lut, grey_rgb, sel_acc, halo, has_sel, keep, out):
    """Premultiplied ARGB32: selected (opaque) > halo (dark) > points over filtered-out grey.
    Leaves sel_acc and halo all zero, and acc and grey too unless ``keep`` (their sums are
    kept for ``_accumulate_delta``), so the buffers can be reused unzeroed."""
    la = alpha_lut.shape[0] - 1
    lg = grey_alpha_lut.shape[0] - 1
    for p in range(acc.shape[0]):
        if has_sel:
            ns = sel_acc[p, 0]
            hl = halo[p]
            if ns > 0 or hl > 0:
                halo[p] = 0  # the buffers are reused: leave them zeroed
                if not keep:
                    acc[p, 0] = 0
                    acc[p, 1] = 0
                    acc[p, 2] = 0
                    acc[p, 3] = 0
                    grey[p] = 0
            if ns > 0:
                r = sel_acc[p, 1] // ns
                g = sel_acc[p, 2] // ns
                b = sel_acc[p, 3] // ns
                sel_acc[p, 0] = 0
                sel_acc[p, 1] = 0
                sel_acc[p, 2] = 0
                sel_acc[p, 3] = 0
                out[p] = np.uint32(0xFF000000) | (r << 16) | (g << 8) | b
                continue
            if hl > 0:
                out[p] = np.uint32(0xF0101010)
                continue
        n = acc[p, 0]
        ng = grey[p]
        if n == 0 and ng == 0:
            out[p] = 0
            continue
        if not keep:
            grey[p] = 0
        af = 0.0
        fr = 0.0
        fg = 0.0
        fb = 0.0
        if n > 0:
            af = alpha_lut[min(n, la)]
            inv = 1.0 / n
            fr = acc[p, 1] * inv
            fg = acc[p, 2] * inv
            fb = acc[p, 3] * inv
            if not keep:
                acc[p, 0] = 0
                acc[p, 1] = 0
                acc[p, 2] = 0
                acc[p, 3] = 0
        ag = 0.0
        if ng > 0:
            ag = grey_alpha_lut[min(ng, lg)] * (1.0 - af)
        a = af + ag
        r = fr * af + grey_rgb[0] * ag
        g = fg * af + grey_rgb[1] * ag
        b = fb * af + grey_rgb[2] * ag
        out[p] = (
            (np.uint32(a * 255.0 + 0.5) << 24)
            | (np.uint32(r + 0.5) << 16)
            | (np.uint32(g + 0.5) << 8)
            | np.uint32(b + 0.5)
        )


@njit(cache=True, nogil=True)
def _nearest(xs, ys, cidx, ranges, qx, qy, sx, sy, r2max):
    """Nearest drawn point (in device pixels: dx*sx, dy*sy) in the ranges; -1 if none within."""
    best = -1
    bd = r2max
    for r in range(ranges.shape[0]):
        for i in range(ranges[r, 0], ranges[r, 1]):
            if cidx[i] == 65535:
                continue
            dx = (xs[i] - qx) * sx
            dy = (ys[i] - qy) * sy
            d = dx * dx + dy * dy
            if d <= bd:
                if d < bd or best < 0 or i < best:
                    bd = d
                    best = i
    return best


@njit(cache=True, nogil=True)
def _in_rect(xs, ys, ranges, x0, x1, y0, y1, out):
    k = 0
    for r in range(ranges.shape[0]):
        for i in range(ranges[r, 0], ranges[r, 1]):
            if xs[i] >= x0 and xs[i] <= x1 and ys[i] >= y0 and ys[i] <= y1:
                out[k] = i
                k += 1
    return k


@njit(cache=True, nogil=True)
def _in_polygon(xs, ys, ranges, px, py, out):
    """Even-odd rule (crossing number) for each point of the ranges against polygon (px, py)."""
    m = px.shape[0]
    xmin = px.min()
    xmax = px.max()
    ymin = py.min()
    ymax = py.max()
    k = 0
    for r in range(ranges.shape[0]):
        for i in range(ranges[r, 0], ranges[r, 1]):
            x = xs[i]
            y = ys[i]
            if x < xmin or x > xmax or y < ymin or y > ymax:
                continue
            inside = False
            j = m - 1
            for e in range(m):
                yi = py[e]
                yj = py[j]
                if (yi > y) != (yj > y):
                    xc = px[e] + (y - yi) * (px[j] - px[e]) / (yj - yi)
                    if x < xc:
                        inside = not inside
                j = e
            if inside:
                out[k] = i
                k += 1
    return k


# ------------------------------------------------------------------------------- helpers
def disc_offsets(size: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel offsets of a filled disc of diameter ``size`` device pixels (at least one pixel)."""
    s = max(1, int(round(size)))
    if s <= 2:
        pts = [(dx, dy) for dy in range(s) for dx in range(s)]
    else:
        c = (s - 1) / 2.0
        rr = (s / 2.0) ** 2 + 0.25
        pts = [(dx, dy) for dy in range(s) for dx in range(s) if (dx - c) ** 2 + (dy - c) ** 2 <= rr]
    off = -(s // 2) if s > 2 else 0
    dx = np.array([p[0] + off for p in pts], np.int32)
    dy = np.array([p[1] + off for p in pts], np.int32)
    return dx, dy


def alpha_lut(opacity: float, n: int = 256) -> np.ndarray:
    """Opacity of ``k`` stacked points of opacity ``opacity``: 1 - (1 - opacity) ** k."""
    k = np.arange(n, dtype=np.float64)
    return (1.0 - (1.0 - float(np.clip(opacity, 0.0, 1.0))) ** k).astype(np.float64)


def density_lut(n_max: int, floor: float = 0.4, cap: int = 1 << 16) -> np.ndarray:
    """Log-count opacity for density shading: floor + (1 - floor) * log1p(k) / log1p(n_max)."""
    n_max = int(max(1, min(n_max, cap - 1)))
    k = np.arange(n_max + 1, dtype=np.float64)
    a = floor + (1.0 - floor) * np.log1p(k) / np.log1p(n_max)
    a[0] = 0.0
    return a


@dataclass(frozen=True)
class Viewport:
    """Data rectangle ``[x0, x1] x [y0, y1]`` shown on ``width`` x ``height`` device pixels
    (row 0 at the top, i.e. at ``y1``)."""

    x0: float
    x1: float
    y0: float
    y1: float
    width: int
    height: int

    @property
    def sx(self) -> float:
        return self.width / max(self.x1 - self.x0, 1e-30)

    @property
    def sy(self) -> float:
        return self.height / max(self.y1 - self.y0, 1e-30)

    def to_pixels(self, x, y):
        """Data -> device pixel coordinates (float), the same mapping the kernels use."""
        return (np.asarray(x) - self.x0) * self.sx, (self.y1 - np.asarray(y)) * self.sy


@dataclass
class RenderStyle:
    palette: np.ndarray  # (P, 3) uint32 RGB 0..255
    point_size: float = 2.0
    opacity: float = 0.6
    mode: str = "auto"  # "auto" | "points" | "density"
    grey_rgb: tuple = (200, 200, 200)
    grey_opacity: float = 0.25


@dataclass
class RenderStats:
    visible: int = 0
    stride: int = 1
    mode: str = "points"
    ms: float = 0.0


class PointIndex:
    """N points in 2-D, counting-sorted into a grid of cells.

    ``x``, ``y`` are float32 in *sorted* order; ``perm[i]`` is the original index of sorted
    point ``i``; ``inv[j]`` the sorted position of original point ``j``.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, grid: int | None = None) -> None:
        x = np.ascontiguousarray(x, dtype=np.float32)
        y = np.ascontiguousarray(y, dtype=np.float32)
        if x.shape != y.shape or x.ndim != 1:
            raise ValueError("x and y must be 1-D arrays of the same length")
        n = x.shape[0]
        self.n = n
        finite = np.isfinite(x) & np.isfinite(y)
        self.n_missing = int(n - finite.sum())  # not placed yet: never drawn, picked or selected
        if n and self.n_missing:
            xf, yf = x[finite], y[finite]
        else:
            xf, yf = x, y
        if len(xf):
            self.xmin, self.xmax = float(xf.min()), float(xf.max())
            self.ymin, self.ymax = float(yf.min()), float(yf.max())
        else:
            self.xmin = self.ymin = 0.0
            self.xmax = self.ymax = 1.0
        if self.xmax <= self.xmin:
            self.xmax = self.xmin + 1.0
        if self.ymax <= self.ymin:
            self.ymax = self.ymin + 1.0
        g = grid or int(np.clip(np.sqrt(max(n, 1) / 32.0), 8, 1024))
        self.g = g
        self._cw = (self.xmax - self.xmin) / g
        self._ch = (self.ymax - self.ymin) / g
        cell = _cell_of(x, y, np.float32(self.xmin), np.float32(self.ymin),
                        np.float32(1.0 / self._cw), np.float32(1.0 / self._ch), g)
        self.perm, self.start = _counting_sort(cell, g * g + 1)
        self.inv = np.empty(n, np.int64)
        self.inv[self.perm] = np.arange(n, dtype=np.int64)
        self.x = x[self.perm]
        self.y = y[self.perm]

    # -- ranges of the cells that overlap a data rectangle
    def ranges(self, x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
        g = self.g
        cx0 = int(np.clip(np.floor((x0 - self.xmin) / self._cw), 0, g - 1))
        cx1 = int(np.clip(np.floor((x1 - self.xmin) / self._cw), 0, g - 1))
        cy0 = int(np.clip(np.floor((y0 - self.ymin) / self._ch), 0, g - 1))
        cy1 = int(np.clip(np.floor((y1 - self.ymin) / self._ch), 0, g - 1))
        if x1 < self.xmin or x0 > self.xmax or y1 < self.ymin or y0 > self.ymax:
            return np.zeros((0, 2), np.int64)
        if cx0 == 0 and cx1 == g - 1:  # full rows: one contiguous range
            return np.array([[self.start[cy0 * g], self.start[(cy1 + 1) * g]]], np.int64)
        rows = np.arange(cy0, cy1 + 1)
        a = self.start[rows * g + cx0]
        b = self.start[rows * g + cx1 + 1]
        r = np.stack([a, b], axis=1)
        return r[r[:, 1] > r[:, 0]]

    def count(self, ranges: np.ndarray) -> int:
        return int((ranges[:, 1] - ranges[:, 0]).sum()) if len(ranges) else 0

    # -- rendering
    def render(
        self,
        vp: Viewport,
        cidx: np.ndarray,
        style: RenderStyle,
        selected: np.ndarray | None = None,
        budget: int | None = None,
        stride: int | None = None,
        buffers: dict | None = None,
    ) -> tuple[np.ndarray, RenderStats]:
        """ARGB32 premultiplied image (height, width) uint32 of the points in ``vp``.

        cidx: (N,) uint16 colour indices in sorted order. selected: sorted positions of the
        selected points (drawn on top with a halo), or None. budget: most point-stamps to
        draw (level of detail: every k-th point with weight k beyond it); stride forces k.
        buffers: a dict kept by the caller to reuse the accumulation buffers between frames
        (allocating ~30 MB of fresh pages per frame costs ~10 ms in page faults); one dict
        per thread.
        """
        import time

        t0 = time.perf_counter()
        w, h = int(vp.width), int(vp.height)
        pad_x = (style.point_size + 2) / vp.sx
        pad_y = (style.point_size + 2) / vp.sy
        rng = self.ranges(vp.x0 - pad_x, vp.x1 + pad_x, vp.y0 - pad_y, vp.y1 + pad_y)
        nvis = self.count(rng)
        odx, ody = disc_offsets(style.point_size)
        if stride is None:
            stride = 1
            if budget is not None and nvis * len(odx) > budget:
                stride = int(math.ceil(nvis * len(odx) / budget))
        stride = max(1, int(stride))
        if buffers is None:
            buffers = {}

        def buf(name, shape):
            a = buffers.get(name)
            if a is None or a.shape != shape:
                a = buffers[name] = np.zeros(shape, np.uint32)
            return a

        acc = buf("acc", (w * h, 4))
        grey = buf("grey", (w * h,))
        pal = np.ascontiguousarray(style.palette, dtype=np.uint32)
        args = (np.float32(vp.x0), np.float32(vp.y1), np.float32(vp.sx), np.float32(vp.sy), w, h)
        # The same view drawn again with other colour indices (a brush step, a legend toggle):
        # the sums of the last frame are kept and only the points that changed are redrawn.
        # While the view moves, every frame is drawn from zero and the sums are not kept.
        key = (vp, stride, odx.tobytes(), ody.tobytes(), pal.tobytes(), cidx.shape)
        last = buffers.get("sums")
        same_view = last is not None and last["index"]() is self and last["key"] == key
        if same_view and last["cidx"] is not None:
            _accumulate_delta(self.x, self.y, last["cidx"], cidx, rng, stride, *args, odx, ody, pal, acc, grey)
            kept = last["cidx"]
        else:
            if last is not None and last["cidx"] is not None:  # kept sums of another view
                acc.fill(0)
                grey.fill(0)
            if nvis:
                _accumulate(self.x, self.y, cidx, rng, stride, *args, odx, ody, pal, acc, grey)
            kept = cidx.copy() if same_view else None
        buffers["sums"] = {"index": weakref.ref(self), "key": key, "cidx": kept}
        mode = style.mode
        if mode == "auto":
            mode = "density" if nvis * len(odx) > 0.5 * w * h else "points"
        if mode == "density":
            lut = density_lut(int(_max_count(acc)))
        else:
            lut = alpha_lut(style.opacity)
        glut = alpha_lut(style.grey_opacity)
        has_sel = selected is not None and len(selected) > 0
        if has_sel:
            selected = np.asarray(selected, np.int64)
            sc = cidx[selected]
            keep = sc != SKIP
            pos = selected[keep]
            sx_ = self.x[pos]
            sy_ = self.y[pos]
            # a selected point that is filtered out is still drawn, in the grey colour
            spal = np.vstack([pal, np.asarray(style.grey_rgb, np.uint32)[None, :]])
            sc = np.where(sc[keep] == GREY, np.uint16(len(pal)), sc[keep]).astype(np.uint16)
            srng = np.array([[0, len(pos)]], np.int64)
            sel_acc = buf("sel_acc", (w * h, 4))
            halo = buf("halo", (w * h,))
            inner = max(style.point_size, 3.0)
            sdx, sdy = disc_offsets(inner)
            _accumulate(sx_, sy_, sc, srng, 1, *args, sdx, sdy, spal, sel_acc, halo)
            hdx, hdy = disc_offsets(inner + 2)
            _count_points(sx_, sy_, *args, hdx, hdy, halo)
        else:
            sel_acc = np.zeros((1, 4), np.uint32)
            halo = np.zeros(1, np.uint32)
        out = np.empty(w * h, np.uint32)
        _compose(acc, grey, lut, glut, np.asarray(style.grey_rgb, np.float64), sel_acc, halo,
                 has_sel, kept is not None, out.reshape(-1))
        stats = RenderStats(nvis, stride, mode, (time.perf_counter() - t0) * 1e3)
        return out.reshape(h, w), stats

    # -- queries (all return ORIGINAL indices)
    def nearest(self, qx: float, qy: float, sx: float, sy: float, radius_px: float,
                cidx: np.ndarray | None = None) -> int | None:
        """Original index of the point nearest (qx, qy), distance measured in device pixels
        (``sx``, ``sy`` pixels per data unit), if one lies within ``radius_px``; else None.
        Points whose colour index (sorted order) is SKIP are ignored."""
        if cidx is None:
            cidx = np.zeros(self.n, np.uint16)
        if self.n == 0:
            return None
        rx, ry = radius_px / sx, radius_px / sy
        rng = self.ranges(qx - rx, qx + rx, qy - ry, qy + ry)
        if not len(rng):
            return None
        i = _nearest(self.x, self.y, cidx, rng, np.float32(qx), np.float32(qy), np.float32(sx),
                     np.float32(sy), np.float32(radius_px * radius_px))
        return None if i < 0 else int(self.perm[i])

    def in_rect(self, x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
        x0, x1 = min(x0, x1), max(x0, x1)
        y0, y1 = min(y0, y1), max(y0, y1)
        rng = self.ranges(x0, x1, y0, y1)
        buf = np.empty(self.count(rng), np.int64)
        k = _in_rect(self.x, self.y, rng, np.float32(x0), np.float32(x1), np.float32(y0),
                     np.float32(y1), buf) if len(rng) else 0
        return np.sort(self.perm[buf[:k]])

    def in_polygon(self, px: np.ndarray, py: np.ndarray) -> np.ndarray:
        px = np.ascontiguousarray(px, np.float64)
        py = np.ascontiguousarray(py, np.float64)
        if len(px) < 3:
            return np.zeros(0, np.int64)
        rng = self.ranges(px.min(), px.max(), py.min(), py.max())
        buf = np.empty(self.count(rng), np.int64)
        k = _in_polygon(self.x, self.y, rng, px, py, buf) if len(rng) else 0
        return np.sort(self.perm[buf[:k]])


@njit(cache=True, nogil=True)
def sorted_colours(perm, codes, has_codes, keep, has_keep, out):  # pragma: no cover (numba)
    """``out[j]``: the colour index of point ``perm[j]``: its code (0 without codes), or GREY
    where ``keep`` (the filter) is False. One pass; the map's greying at 1M points."""
    for j in range(perm.shape[0]):
        i = perm[j]
        c = codes[i] if has_codes else np.uint16(0)
        if has_keep and not keep[i]:
            c = GREY
        out[j] = c


@njit(cache=True, nogil=True)
def regrey(inv, codes, has_codes, old_keep, new_keep, out):  # pragma: no cover (numba)
    """Update ``out`` (what ``sorted_colours`` made with filter ``old_keep``) to filter
    ``new_keep``: only the points whose filter value changed are written."""
    for i in range(inv.shape[0]):
        k = new_keep[i]
        if k != old_keep[i]:
            if k:
                out[inv[i]] = codes[i] if has_codes else np.uint16(0)
            else:
                out[inv[i]] = GREY


def warm_up() -> None:
    """Compile (or load from numba's disk cache) every kernel on a tiny input."""
    rng = np.random.default_rng(0)
    idx = PointIndex(rng.random(64, dtype=np.float32), rng.random(64, dtype=np.float32))
    style = RenderStyle(palette=np.array([[255, 0, 0], [0, 0, 255]], np.uint32), point_size=3)
    cidx = np.zeros(64, np.uint16)
    cidx[::3] = GREY
    idx.render(Viewport(0, 1, 0, 1, 16, 16), cidx, style, selected=np.arange(4))
    sorted_colours(idx.perm, cidx, True, cidx > 0, True, np.empty(64, np.uint16))
    regrey(idx.inv, cidx, True, cidx > 0, cidx > 1, np.empty(64, np.uint16))
    idx.nearest(0.5, 0.5, 16.0, 16.0, 4.0)
    idx.in_rect(0.1, 0.6, 0.1, 0.6)
    idx.in_polygon(np.array([0.1, 0.9, 0.5]), np.array([0.1, 0.1, 0.9]))
