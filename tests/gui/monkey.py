"""A seeded random walk of user actions through the real main window, checking the app's
invariants after every step. Used by ``tests/gui/test_monkey.py`` (a short walk in CI) and
``benchmarks/bench_monkey.py`` (an afternoon's worth of actions).

Invariants after each action (once the jobs it started have finished):
- no error reached the message bar unless the action was meant to fail (pytest-qt also fails
  the test on any exception raised in the Qt event loop);
- the map shows exactly the open dataset's points (or none while nothing is computed);
- the inspector shows an item of the current dataset (or nothing);
- the shared selection has exactly one listener per open map and one per open view.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from PySide6 import QtCore, QtWidgets


@dataclass
class Walk:
    window: object
    folder: Path
    seed: int = 0
    log: list = field(default_factory=list)
    skip: tuple = ()  # action names left out of the walk

    def __post_init__(self) -> None:
        import sys

        self.rng = random.Random(self.seed)
        self._make_data()
        self.uncaught: list = []
        previous = sys.excepthook

        def hook(kind, value, tb):  # an exception in a Qt slot lands here, not in the walk
            self.uncaught.append(f"{kind.__name__}: {value}")
            previous(kind, value, tb)

        sys.excepthook = hook
        self._previous_hook = previous

    def close(self) -> None:
        import sys

        sys.excepthook = self._previous_hook

    # -- data ------------------------------------------------------------------------------
    def _make_data(self) -> None:
        from explorer.core.resources import sample_data_dir

        r = np.random.default_rng(self.seed)
        f = self.folder
        np.save(f / "vectors.npy", r.normal(size=(300, 16)).astype(np.float32))
        y = r.integers(0, 5, 250)
        np.savez(f / "labelled.npz", vectors=(r.normal(size=(250, 8)) + y[:, None]).astype(np.float32), labels=y)
        (f / "broken.pt").write_bytes(b"not a checkpoint")
        sample = sample_data_dir()
        self.digits = sample / "digits"
        self.checkpoints = [p for p in sorted((sample / "checkpoints").glob("*.pt"))]
        self.datasets = [f / "vectors.npy", f / "labelled.npz"] + ([self.digits] if self.digits.is_dir() else [])
        self.run_dir = sample / "checkpoints" / "run"
        self.n_finetuned = 0

    # -- actions ---------------------------------------------------------------------------
    def actions(self):
        return [a for a in self._actions() if a.__name__ not in self.skip]

    def _actions(self):
        return [self.open_dataset, self.open_dataset, self.open_encoder, self.switch_model, self.switch_method,
                self.colour, self.select, self.focus, self.search, self.open_compare, self.close_tab,
                self.save_and_reopen, self.cancel_all, self.open_broken, self.open_timeline, self.finetune,
                self.remove_model]

    def open_dataset(self) -> bool:
        self.window.open_dataset(str(self.rng.choice(self.datasets)))
        return True

    def open_encoder(self) -> bool:
        if not self.checkpoints:
            return True
        self.window.open_encoder(str(self.rng.choice(self.checkpoints)))
        return True

    def open_broken(self) -> bool:
        self.window.open_path(str(self.folder / "broken.pt"))
        return False  # meant to fail: an error message is expected

    def switch_model(self) -> bool:
        ids = list(self.window.session.models)
        if ids:
            self.window.model_combo.setCurrentText(self.rng.choice(ids))
        return True

    def switch_method(self) -> bool:
        self.window.method_combo.setCurrentText(self.rng.choice(["pca", "pca", "umap"]) if self.umap else "pca")
        return True

    umap = False

    def colour(self) -> bool:
        c = self.window.color_combo
        if c.count():
            c.setCurrentIndex(self.rng.randrange(c.count()))
        return True

    def select(self) -> bool:
        ds = self.window.session.dataset
        if ds is not None:
            k = self.rng.randint(0, min(50, len(ds)))
            self.window.selection.select(sorted(self.rng.sample(range(len(ds)), k)), source=None)
        return True

    def focus(self) -> bool:
        ds = self.window.session.dataset
        if ds is not None:
            self.window.selection.set_focus(self.rng.randrange(len(ds)), source=None)
        return True

    def search(self) -> bool:
        self.window.search.setText(self.rng.choice(["", "1", "label=2", "id~1", "nosuch=3", "7"]))
        return True

    def open_compare(self) -> bool:
        w = self.window
        ready = [mid for mid, m in w.session.models.items() if m.vectors is not None and m.layouts]
        if len(ready) >= 2:
            w.compare_models(self.rng.sample(ready, 2))
        return True

    def open_timeline(self) -> bool:
        """The sample run's checkpoints on a small probe set (they take the digit images)."""
        w = self.window
        ds = w.session.dataset
        if ds is None or ds.kind != "image" or not self.run_dir.is_dir():
            return True
        w.open_timeline(str(self.run_dir), probe_size=60)
        return True

    def finetune(self) -> bool:
        """A short linear probe on the current encoder: a live panel tab, then a new model."""
        from explorer.finetune import FinetuneParams
        from explorer.gui.views.finetune_panel import start_finetune

        w = self.window
        ds = w.session.dataset
        if ds is None or ds.labels is None or w.session.current is None or w.session.model().encoder is None:
            return True
        self.n_finetuned += 1
        out = self.folder / f"finetuned_{self.n_finetuned}.pt"
        fits = w.session.model().vectors is not None  # it embedded these items, so it takes them
        w.guarded(lambda: start_finetune(w, None, FinetuneParams(objective="linear", probe_max_iter=20), out))
        return fits  # an encoder that cannot take the items: one sentence expected, no traceback

    def remove_model(self) -> bool:
        w = self.window
        ids = list(w.session.models)
        if ids:
            w.remove_model(self.rng.choice(ids))
        return True

    def close_tab(self) -> bool:
        w = self.window
        if w.center_tabs.count() > 1:
            w._close_tab(self.rng.randrange(1, w.center_tabs.count()))
        return True

    def save_and_reopen(self) -> bool:
        w = self.window
        if w.session.dataset is None:
            return True
        path = self.folder / "walk.eesession"
        w.save_session(str(path))
        w.open_session(str(path))
        return True

    def cancel_all(self) -> bool:
        self.window.runner.cancel_all()
        return True

    # -- the walk --------------------------------------------------------------------------
    def step(self) -> None:
        w = self.window
        action = self.rng.choice(self.actions())
        w.message.hide()
        expect_ok = action()
        self.log.append(action.__name__)
        assert w.wait_until_idle(300), f"jobs still running after {action.__name__}"
        QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.DeferredDelete)
        QtWidgets.QApplication.processEvents()
        self.check(expect_ok, action.__name__)

    def check(self, expect_ok: bool, name: str) -> None:
        w = self.window
        where = f"after {name} (step {len(self.log)}: {' > '.join(self.log[-6:])})"
        assert not self.uncaught, f"uncaught exception {where}: {self.uncaught[0]}"
        if expect_ok and w.message.isVisible() and w.message.level == "error":
            text = w.message.text()
            # a cancel-all may stop a job half-way; that is reported, not an error of the app
            assert "ancel" in text, f"error {where}: {text}"
        ds = w.session.dataset
        coords = w.mapview._coords
        if ds is not None and coords is not None and len(coords):
            assert len(coords) == len(ds), f"map shows {len(coords)} points of {len(ds)} {where}"
        idx = w.inspector.index
        if idx is not None:
            assert ds is not None and 0 <= idx < len(ds), f"inspector shows #{idx} {where}"
        views = [w.tab_view(i) for i in range(1, w.center_tabs.count())]
        maps = 1 + sum(len(getattr(v, "panes", [])) for v in views)
        links = sum(1 for v in views if hasattr(v, "panes"))
        sel = w.selection
        # the window, the Charts dock and each map
        assert len(sel.changed) == 2 + maps, f"{len(sel.changed)} selection listeners for {maps} maps {where}"
        assert len(sel.focus_changed) == 1 + maps + links, f"{len(sel.focus_changed)} focus listeners {where}"

    def run(self, steps: int) -> list:
        try:
            for _ in range(steps):
                self.step()
        finally:
            self.close()
        return self.log
