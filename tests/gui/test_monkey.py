"""A short seeded random walk through the real window (see tests/gui/monkey.py for the actions
and the invariants checked after every step); the long walk is benchmarks/bench_monkey.py."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")

from monkey import Walk  # noqa: E402  (tests/gui is on sys.path for its test modules)


@pytest.mark.parametrize("seed", [1, 2])
def test_random_walk_keeps_the_invariants(qtbot, tmp_path, seed):
    from explorer.gui.app import make_app
    from explorer.gui.mainwindow import MainWindow

    make_app()
    w = MainWindow(workspace=str(tmp_path / "ws.h5"))
    qtbot.addWidget(w)
    w.method_combo.setCurrentText("pca")
    w.projection.method = "pca"
    w.show()
    walk = Walk(w, tmp_path, seed=seed)
    log = walk.run(30)
    assert len(log) == 30
    w.runner.cancel_all()
    w.runner.wait(10000)
