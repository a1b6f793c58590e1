"""Every metric in the registry shows up where its entry says (the Qt-free places here; the
diagnostics panel and the comparison table in tests/gui/test_metric_registry_gui.py)."""

import json

import numpy as np

from explorer.cli import main
from explorer.metrics import registry


def test_every_diagnose_metric_is_in_diagnose_json(tmp_path, capsys):
    r = np.random.default_rng(0)
    y = r.integers(0, 3, 500)
    Z = (r.standard_normal((500, 16)) + 3 * np.eye(3, 16)[y]).astype(np.float32)
    np.save(tmp_path / "z.npy", Z)
    np.save(tmp_path / "y.npy", y)
    assert main(["diagnose", "--vectors", str(tmp_path / "z.npy"), "--labels", str(tmp_path / "y.npy"),
                 "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    # alignment needs two views of each item; everything else is computed from one set of vectors
    missing = [k for k in registry.keys("diagnose") if k not in out and k != "alignment"]
    assert missing == []
    assert "alignment" in registry.keys("diagnose")


def test_every_compare_metric_is_in_compare_json(tmp_path, capsys):
    r = np.random.default_rng(1)
    A = r.standard_normal((300, 8)).astype(np.float32)
    np.save(tmp_path / "a.npy", A)
    np.save(tmp_path / "b.npy", (A + 0.1 * r.standard_normal(A.shape)).astype(np.float32))
    assert main(["compare", "--vectors", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--json",
                 "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [k for k in registry.keys("compare") if k not in out] == []


def test_every_timeline_metric_has_a_series_function():
    for key in registry.keys("timeline"):
        assert callable(registry.series_function(key))


def test_entries_are_complete_and_unique():
    seen = set()
    for m in registry.METRICS:
        assert m.key not in seen
        seen.add(m.key)
        assert m.label and m.explanation.endswith(".") and "{" in m.fmt
        assert set(m.shown) <= {"diagnose", "panel", "timeline", "compare", "compare_diag"}


def test_format_value():
    assert registry.format_value("knn_accuracy", 0.1234) == "12.3%"
    assert registry.format_value("dims_99", 87.0) == "87"
    assert registry.format_value("rankme", None) == "–"
