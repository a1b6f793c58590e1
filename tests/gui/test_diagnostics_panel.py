"""The diagnostics panel: the wheel scrolls the panel until a plot is clicked, ranges reset for
each model, the spectrum is on log-log axes with tick labels that do not overlap, and every
metric and every apparent contradiction is explained in visible text."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("pyqtgraph")

from PySide6 import QtCore, QtGui, QtWidgets  # noqa: E402

from explorer.gui.views.diagnostics_panel import ROWS, DiagnosticsPanel, log_ticks  # noqa: E402
from explorer.core.jobs import drain  # noqa: E402
from explorer.metrics.diagnose import DiagnoseParams, diagnose  # noqa: E402

PARAMS = DiagnoseParams(device="cpu", pair_points=600)


@pytest.fixture(scope="module")
def models():
    """Diagnostics of a complete collapse whose classes a linear probe still separates (one
    shared unit vector + 1e-5 x class signal), and of healthy Gaussian clusters."""
    rng = np.random.default_rng(0)
    n, d = 600, 32
    y = np.repeat(np.arange(4), n // 4)
    centres = rng.standard_normal((4, d))
    u = rng.standard_normal(d)
    collapsed = (u / np.linalg.norm(u) + 1e-5 * (centres[y] + 0.2 * rng.standard_normal((n, d)))).astype(np.float32)
    healthy = (3 * centres[y] + rng.standard_normal((n, d))).astype(np.float32)
    return {"collapsed": drain(diagnose(collapsed, y, PARAMS)), "healthy": drain(diagnose(healthy, y, PARAMS))}


@pytest.fixture
def panel(qtbot):
    p = DiagnosticsPanel()
    qtbot.addWidget(p)
    p.resize(420, 600)
    p.show()
    qtbot.waitExposed(p)
    return p


def _wheel(widget, dy=-120):
    pos = QtCore.QPointF(widget.width() / 2, widget.height() / 2)
    ev = QtGui.QWheelEvent(pos, widget.mapToGlobal(pos), QtCore.QPoint(0, 0), QtCore.QPoint(0, dy),
                           QtCore.Qt.MouseButton.NoButton, QtCore.Qt.KeyboardModifier.NoModifier,
                           QtCore.Qt.ScrollPhase.NoScrollPhase, False)
    QtWidgets.QApplication.sendEvent(widget, ev)
    QtWidgets.QApplication.processEvents()


def _ranges(plot):
    return np.asarray(plot.getViewBox().viewRange(), dtype=float)


def test_wheel_scrolls_the_panel_until_the_plot_is_clicked(panel, models, qtbot):
    panel.show_metrics("collapsed", models["collapsed"])
    QtWidgets.QApplication.processEvents()
    bar = panel.scroll_area.verticalScrollBar()
    assert bar.maximum() > 0                          # the panel is taller than 600 px: it scrolls
    vp = panel.p_spec.viewport()
    before, scroll0 = _ranges(panel.p_spec), bar.value()
    _wheel(vp)
    assert np.array_equal(_ranges(panel.p_spec), before)     # no zoom
    assert bar.value() > scroll0                              # the panel scrolled down instead
    # a click arms the plot: now the wheel zooms it
    qtbot.mouseClick(vp, QtCore.Qt.MouseButton.LeftButton, pos=vp.rect().center())
    scroll1 = bar.value()
    _wheel(vp)
    zoomed = _ranges(panel.p_spec)
    assert not np.allclose(zoomed, before)
    assert bar.value() == scroll1
    # leaving the plot disarms it again
    QtWidgets.QApplication.sendEvent(vp, QtCore.QEvent(QtCore.QEvent.Type.Leave))
    _wheel(vp)
    assert np.array_equal(_ranges(panel.p_spec), zoomed)
    # a new model resets the zoom (and disarms the plots)
    qtbot.mouseClick(vp, QtCore.Qt.MouseButton.LeftButton, pos=vp.rect().center())
    for _ in range(5):
        _wheel(vp, 600)
    panel.show_metrics("healthy", models["healthy"])
    QtWidgets.QApplication.processEvents()
    lo, hi = _ranges(panel.p_spec)[1]
    spec = np.asarray(models["healthy"]["spectrum"])
    assert lo <= math.log10(spec[spec > 0].min()) and hi >= math.log10(spec.max())
    x0, x1 = _ranges(panel.p_spec)[0]
    assert x0 <= 0 and x1 >= math.log10(spec.size)           # components 1..d all in view
    before = _ranges(panel.p_spec)
    _wheel(vp)
    assert np.array_equal(_ranges(panel.p_spec), before)


@pytest.mark.parametrize("name", ["collapsed", "healthy"])
def test_spectrum_is_log_log_with_readable_ticks(panel, models, name):
    m = models[name]
    panel.show_metrics(name, m)
    QtWidgets.QApplication.processEvents()
    p = panel.p_spec
    assert p.getAxis("bottom").logMode and p.getAxis("left").logMode
    x, y = p.listDataItems()[0].getData()                   # displayed (log10) coordinates
    d = len(m["spectrum"])
    assert np.allclose(x, np.log10(np.arange(1, d + 1)))
    spec = np.asarray(m["spectrum"])
    keep = spec > 1e-12 * spec.max()
    assert np.allclose(y[keep], np.log10(spec[keep]))
    # labelled ticks: at least two per axis, never closer than one label's extent in pixels
    for side, extent in (("left", "height"), ("bottom", "width")):
        ax = p.getAxis(side)
        vr = p.getViewBox().viewRange()[1 if side == "left" else 0]
        size = ax.height() if side == "left" else ax.width()
        levels = ax.tickValues(vr[0], vr[1], size)
        major = [v for v in levels[0][1] if vr[0] <= v <= vr[1]]
        labels = ax.tickStrings(major, 1.0, levels[0][0])
        assert len(major) >= 2, (side, major)
        fm = QtGui.QFontMetrics(ax.style.get("tickFont") or QtGui.QFont())
        px = np.diff(sorted(major)) * size / (vr[1] - vr[0])
        need = max(getattr(fm.boundingRect(s), extent)() for s in labels)
        assert px.min() >= need, (side, labels, px, need)


@pytest.mark.parametrize("lo, hi, n", [(-22.0, -2.1, 8), (0.0, 2.1, 5), (-12.0, -10.9, 6), (-1.0, 0.0, 1), (-300.0, 0.0, 7)])
def test_log_ticks_stay_within_the_label_budget(lo, hi, n):
    major, minor = log_ticks(lo, hi, n)
    assert 1 <= len(major) <= max(n, 2)
    assert all(lo - 1e-9 <= v <= hi + 1e-9 for v in major + minor)
    assert not set(np.round(major, 9)) & set(np.round(minor, 9))
    if hi - lo >= 1 and n >= 2:
        assert len(major) >= 2


def test_every_metric_and_contradiction_is_explained(panel, models):
    m = models["collapsed"]
    panel.show_metrics("collapsed", m)
    QtWidgets.QApplication.processEvents()
    assert m["verdict"]["label"] == "complete collapse" and m["linear_probe_accuracy"] > 0.9
    assert panel.why.isVisible()
    text = panel.why.text()
    assert "linear probe still reaches" in text and f"{100 * m['linear_probe_accuracy']:.1f}%" in text
    shown = 0
    for key, _name, _fmt in ROWS:
        a, b, h = panel.metric_rows[key]
        if key in m and m[key] is not None:
            assert a.isVisible() and b.isVisible() and h.isVisible(), key
            assert b.text().strip() and len(h.text()) > 20, key
            shown += 1
    assert shown >= 12
    knn = panel.metric_rows["knn_accuracy"][1].text()
    assert knn == f"{100 * m['knn_accuracy']:.1f}%"
    # a model with nothing to reconcile hides the box; no model hides the metrics
    panel.show_metrics("nothing", None)
    assert not panel.why.isVisible() and not panel.metrics_box.isVisible()


def test_renders_offscreen_without_clipping_the_explanations(panel, models, tmp_path):
    """The panel renders at the dock's width with every explanation label tall enough for its
    wrapped text (a clipped label would be shorter than its heightForWidth)."""
    for name in ("collapsed", "healthy"):
        panel.show_metrics(name, models[name])
        QtWidgets.QApplication.processEvents()
        img = panel.scroll_area.widget().grab()
        assert not img.isNull() and img.save(str(tmp_path / f"{name}.png"))
        labels = [panel.why, panel.evidence] + [h for *_, h in panel.metric_rows.values()]
        for lab in labels:
            if lab.isVisible() and lab.text():
                assert lab.height() >= lab.heightForWidth(lab.width()) - 1, lab.text()[:40]
