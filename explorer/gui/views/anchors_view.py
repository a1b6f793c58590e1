"""Relative representations (Moschella et al., ICLR 2023): every model's vectors as cosine
similarities to the same K anchor items, so models of different widths compare directly.

    view = AnchorsView(runner)
    view.start(["healthy", "collapsed"], [Z1, Z2], anchor_indices, "100 items at random, …")
    view.set_result(res)   # explorer.app.anchors.relative_compare_job's result

The table gives every pair's similarity measures on the relative representations (linear,
debiased and RBF CKA, mutual k-NN, Procrustes, SVCCA, k-NN Jaccard); the anchors are starred on
every open map (:mod:`explorer.gui.views.anchor_overlay`).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from PySide6 import QtCore, QtWidgets

from explorer.gui.views.analysis_plots import JobView, fill_table, fmt, plain_table
from explorer.metrics import registry as _registry

TABLE_KEYS = tuple((m.key, m.column) for m in _registry.shown_in("compare"))


class AnchorsView(JobView):
    select_anchors = QtCore.Signal(object)  # the anchor indices, to select on the maps
    result_ready = QtCore.Signal(object)

    def __init__(self, runner=None, parent=None) -> None:
        super().__init__(runner, parent)
        self.result: Optional[dict] = None
        self.anchors = np.zeros(0, np.int64)
        self.on_release = None  # called when the tab closes (the window clears the marks)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(8, 8, 8, 8)
        self.title = QtWidgets.QLabel("")
        self.title.setWordWrap(True)
        lay.addWidget(self.title)
        lay.addWidget(self.status)
        self.table = plain_table()
        self.table.setMinimumHeight(120)
        self.table.setWordWrap(True)
        lay.addWidget(self.table)
        bar = QtWidgets.QHBoxLayout()
        self.select_button = QtWidgets.QPushButton("Select the anchors")
        self.select_button.setToolTip("Select the anchor items on the maps and in the gallery")
        self.select_button.clicked.connect(lambda: self.select_anchors.emit(self.anchors.copy()))
        bar.addWidget(self.select_button)
        bar.addStretch(1)
        lay.addLayout(bar)
        note = QtWidgets.QLabel(
            "Each model's items are re-described by their cosine similarity to the same anchors, so two "
            "models of different widths, or a rotated copy, land in one space: values near 1 mean the "
            "models see the items alike relative to the anchors. The anchors are the gold stars ★ on every map.")
        note.setWordWrap(True)
        note.setStyleSheet("color: #555")
        lay.addWidget(note)
        lay.addStretch(1)

    def start(self, names, vectors, anchors, how: str = "", dataset_name: str = "") -> None:
        from explorer.app.anchors import relative_compare_job

        self.anchors = np.asarray(anchors, np.int64)
        self.title.setText(f"<b>Relative representations</b> of {', '.join(names)}"
                           + (f" on {dataset_name}" if dataset_name else "")
                           + f": {len(self.anchors):,} anchors, {how or 'chosen by you'}.")
        names, vectors = list(names), list(vectors)
        self.run("Compare on anchors: " + " vs ".join(names),
                 lambda: relative_compare_job(names, vectors, self.anchors), self.set_result,
                 exclusive=f"anchors:{id(self)}")

    def set_result(self, res: dict) -> None:
        self.result = res
        # one row per measure, one column per pair: narrow enough for a small window
        headers = ["on the anchors"] + [f"{r['a']}\nvs\n{r['b']}" for r in res["pairs"]]
        rows = [[title] + [fmt(r.get(k)) for r in res["pairs"]] for k, title in TABLE_KEYS]
        fill_table(self.table, headers, rows)
        hh = self.table.horizontalHeader()
        for c in range(1, len(headers)):  # the pairs share the width; the measures' names fit
            hh.setSectionResizeMode(c, QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.table.setFixedHeight(self.table.verticalHeader().length() + hh.sizeHint().height() + 6)
        self.result_ready.emit(res)

    def release(self) -> None:
        super().release()
        if self.on_release is not None:
            self.on_release()
            self.on_release = None
