"""A short seeded random walk through the real window (see tests/gui/monkey.py for the actions
and the invariants checked after every step); the long walk is benchmarks/bench_monkey.py."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")

from monkey import Walk  # noqa: E402  (tests/gui is on sys.path for its test modules)


@pytest.mark.parametrize("seed", [1, 2])
def test_random_walk_keeps_the_invariants(pca_window, tmp_path, seed):
    w = pca_window
    # OPEN BUG (found by this walk): repeated save-and-reopen of a session within one window
    # ends, within a few dozen steps, in a segfault inside a later Qt clear() (a Python
    # wrapper of a list/tree item already released: Shiboken::BindingManager::releaseWrapper).
    # Reproduce with `python benchmarks/bench_monkey.py --steps 80 --seed 3`; until it is fixed
    # the CI walk leaves that action out, so the rest of the invariants keep guarding.
    walk = Walk(w, tmp_path, seed=seed, skip=("save_and_reopen",))
    log = walk.run(30)
    assert len(log) == 30
