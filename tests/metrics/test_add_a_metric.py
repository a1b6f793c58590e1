"""Adding a metric is one registry entry and one function (README "Architecture"): a metric
registered the way the README shows, before anything reads the registry, appears in
``diagnose --json`` with its value, as a row of the diagnostics panel and as a timeline curve.

It runs in a fresh interpreter so the entry is there before the consumers import the registry,
as it would be after editing ``explorer/metrics/registry.py``; the value is checked against the
participation ratio written here in float64."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from explorer.metrics import registry
    from explorer.metrics.collapse import covariance_eigenvalues
    from explorer.metrics.registry import METRICS, Metric, series

    METRICS.append(Metric("participation_ratio", "Participation ratio", "{:.1f}",
                          "(sum of eigenvalues)^2 / sum of squared eigenvalues.",
                          shown=("diagnose", "panel", "timeline"),
                          reading="Directions that carry the variance; compare with RankMe."))

    @series("participation_ratio")
    def _participation_ratio(Z, Zref, labels, ctx):
        ev = covariance_eigenvalues(Z, ctx.get("device"))
        return float(ev.sum() ** 2 / (ev ** 2).sum())

    from explorer.cli import main
    rc = main(["diagnose", "--vectors", sys.argv[1], "--json", "--quiet", "--device", "cpu"])
    out = {"rc": rc}
    if sys.argv[2] == "gui":
        from PySide6 import QtWidgets
        app = QtWidgets.QApplication([])
        from explorer.core.jobs import drain
        from explorer.gui.views.diagnostics_panel import DiagnosticsPanel
        from explorer.gui.views.timeline_view import LABELS
        from explorer.metrics.diagnose import DiagnoseParams, diagnose
        m = drain(diagnose(np.load(sys.argv[1]), None, DiagnoseParams(device="cpu")))
        p = DiagnosticsPanel()
        p.show_metrics("model", m)
        out["panel"] = "\\n".join(lb.text() for lb in p.findChildren(QtWidgets.QLabel))
        out["timeline_curves"] = sorted(LABELS)
    sys.stderr.write("RESULT " + json.dumps(out) + "\\n")
""")


def _run(tmp_path, Z, gui: bool):
    np.save(tmp_path / "z.npy", Z)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    p = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "z.npy"), "gui" if gui else "cli"],
                       capture_output=True, text=True, env=env, timeout=300)
    result = json.loads([ln for ln in p.stderr.splitlines() if ln.startswith("RESULT ")][-1][7:])
    return json.loads(p.stdout), result


def _participation_ratio(Z) -> float:
    """(sum lambda)^2 / sum lambda^2 of the covariance of the L2-normalised rows, float64."""
    X = Z.astype(np.float64)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    ev = np.linalg.eigvalsh(np.cov(X, rowvar=False))
    return float(ev.sum() ** 2 / (ev ** 2).sum())


def test_a_registered_metric_reaches_diagnose_json_the_panel_and_the_timeline(tmp_path):
    pytest.importorskip("PySide6")  # a CUDA machine may have no Qt
    r = np.random.default_rng(0)
    # 3 strong directions and 13 weak ones: a participation ratio far from both 1 and 16
    Z = (r.standard_normal((400, 16)) * np.r_[np.full(3, 5.0), np.full(13, 0.5)]).astype(np.float32)
    js, res = _run(tmp_path, Z, gui=True)
    assert res["rc"] == 0
    want = _participation_ratio(Z)
    assert js["participation_ratio"] == pytest.approx(want, rel=1e-3)
    assert 2.5 < want < 6
    assert "Participation ratio" in res["panel"]
    assert f"{want:.1f}" in res["panel"]
    assert "participation_ratio" in res["timeline_curves"]
