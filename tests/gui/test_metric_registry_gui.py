"""Every metric in the registry shows up where its entry says: the diagnostics panel (a row with
its label and its value), the comparison tables (a column each) and the timeline (a curve each).
The Qt-free places (diagnose --json, compare --json, the timeline's rows) are checked in
tests/metrics/test_registry.py."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyqtgraph")

from PySide6 import QtWidgets  # noqa: E402

from explorer.core.jobs import drain  # noqa: E402
from explorer.metrics import registry  # noqa: E402


def _texts(widget) -> str:
    return "\n".join(lb.text() for lb in widget.findChildren(QtWidgets.QLabel))


def test_every_panel_metric_has_a_row_with_its_value(qtbot):
    from explorer.gui.views.diagnostics_panel import DiagnosticsPanel
    from explorer.metrics.diagnose import DiagnoseParams, diagnose

    r = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 100)
    Z = (r.standard_normal((300, 16)) + 3 * np.eye(3, 16)[y]).astype(np.float32)
    m = drain(diagnose(Z, y, DiagnoseParams(device="cpu")))
    p = DiagnosticsPanel()
    qtbot.addWidget(p)
    p.show_metrics("model", m)
    text = _texts(p)
    for metric in registry.shown_in("panel"):
        assert metric.label in text, metric.key
        assert registry.format_value(metric.key, m[metric.key]) in text, metric.key


def test_every_compare_metric_is_a_column_and_every_timeline_metric_a_curve(qtbot):
    from explorer.gui.views.compare_view import DIAG_KEYS, TABLE_KEYS, CompareView
    from explorer.gui.views.timeline_view import TimelineView
    from explorer.gui.workers import JobRunner
    from explorer.app.timeline import TimelineResult

    assert [k for k, _ in TABLE_KEYS] == list(registry.keys("compare"))
    assert [k for k, _ in DIAG_KEYS] == list(registry.keys("compare_diag"))
    runner = JobRunner()
    v = CompareView(runner)
    qtbot.addWidget(v)
    headers = [v.sim_table.horizontalHeaderItem(c).text().replace("\n", " ") for c in range(v.sim_table.columnCount())]
    assert headers == [m.column for m in registry.shown_in("compare")]
    keys = registry.keys("timeline")
    T, P = 3, 40
    rng = np.random.default_rng(1)
    res = TimelineResult(paths=[f"/r/{i}.pt" for i in range(T)], names=[f"{i}.pt" for i in range(T)],
                         steps=np.arange(T), axis="step", step_sources=["file name"] * T,
                         probe_indices=np.arange(P), labels=None, label_names=None, vectors=None,
                         layouts=[rng.normal(size=(P, 2)).astype(np.float32) for _ in range(T)],
                         metrics=[{k: float(i) for k in keys} for i in range(T)])
    tv = TimelineView()
    qtbot.addWidget(tv)
    tv.set_result(res)
    assert set(tv._plots) == set(keys)
