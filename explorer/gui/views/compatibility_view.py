"""Compatibility of two models (backward-compatible representations, Shen et al., CVPR 2020):
can a new checkpoint's queries be searched against a gallery embedded by the old one, so the
gallery need not be re-indexed?

    view = CompatibilityView(runner)
    view.set_models({"healthy": Z1, "dimcollapsed": Z2}, labels, dataset_name)
    view.compute("healthy", "dimcollapsed")     # a job this view owns

A random 20% of the items are queries, the rest the gallery; the table gives top-1 / top-5
retrieval accuracy by label for old->old, new->new, new->old and old->new, and one sentence says
whether the new model can replace the old one without re-embedding the gallery.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from explorer.gui.views.analysis_plots import JobView, fill_table, plain_table
from explorer.core.jobs import Progress

PAIRS = (("old-vs-old", "old → old", "the old model on its own gallery (today)"),
         ("new-vs-new", "new → new", "the new model, gallery re-embedded"),
         ("new-vs-old", "new → old", "new queries, old gallery: no re-indexing"),
         ("old-vs-new", "old → new", "old queries, new gallery"))


def compatibility_job(Z_old, Z_new, labels, query_fraction: float = 0.2, seed: int = 0):
    from explorer.metrics.representations import compatibility

    yield Progress(0, 1, "retrieval of every query against both galleries")
    res = compatibility(Z_old, Z_new, labels, query_fraction=query_fraction, seed=seed)
    yield Progress(1, 1, "done")
    return res


def verdict(res: dict, old: str, new: str) -> str:
    """One plain sentence: can ``new`` search ``old``'s gallery?"""
    p = res["pairs"]
    no, oo, nn = p["new-vs-old"]["top1"], p["old-vs-old"]["top1"], p["new-vs-new"]["top1"]
    if res["compatible"]:
        return (f"{new} can replace {old} without re-indexing: its queries find the right label first "
                f"{no:.1%} of the time in {old}'s gallery, at least as often as {old} itself ({oo:.1%}).")
    return (f"{new} cannot search {old}'s gallery: its queries find the right label first only {no:.1%} of "
            f"the time there, against {oo:.1%} for {old} itself; re-embed the gallery with {new} "
            f"(then {nn:.1%}).")


class CompatibilityView(JobView):
    result_ready = QtCore.Signal(object)

    def __init__(self, runner=None, parent=None) -> None:
        super().__init__(runner, parent)
        self.models: dict = {}
        self.labels = None
        self.result: Optional[dict] = None
        self.pair: Optional[tuple] = None
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(8, 8, 8, 8)
        self.title = QtWidgets.QLabel("")
        self.title.setWordWrap(True)
        lay.addWidget(self.title)
        bar = QtWidgets.QGridLayout()
        self.old_combo, self.new_combo = QtWidgets.QComboBox(), QtWidgets.QComboBox()
        self.old_combo.setToolTip("The model the gallery was embedded with")
        self.new_combo.setToolTip("The new checkpoint whose queries search that gallery")
        for row, (text, combo) in enumerate((("Old model (its gallery):", self.old_combo),
                                             ("New model (its queries):", self.new_combo))):
            bar.addWidget(QtWidgets.QLabel(text), row, 0)
            combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(16)
            bar.addWidget(combo, row, 1)
        self.run_button = QtWidgets.QPushButton("Compute")
        self.run_button.clicked.connect(lambda: self.compute(self.old_combo.currentText(), self.new_combo.currentText()))
        bar.addWidget(self.run_button, 1, 2)
        bar.setColumnStretch(3, 1)
        lay.addLayout(bar)
        lay.addWidget(self.status)
        self.table = plain_table()
        self.table.setMinimumHeight(160)
        lay.addWidget(self.table)
        self.verdict = QtWidgets.QLabel("")
        self.verdict.setWordWrap(True)
        self.verdict.setStyleSheet("font-size: 11pt; padding: 6px 2px;")
        lay.addWidget(self.verdict)
        note = QtWidgets.QLabel("Top-k accuracy: the share of queries whose k most cosine-similar gallery items "
                                "include one of their label. Compatible (Shen et al., CVPR 2020): new → old "
                                "top-1 at least old → old top-1.")
        note.setWordWrap(True)
        note.setStyleSheet("color: #555")
        lay.addWidget(note)
        lay.addStretch(1)

    def set_models(self, models: dict, labels, dataset_name: str = "") -> None:
        """The models to choose from (name -> (N, D) vectors of the same items) and the labels."""
        self.models, self.labels = dict(models), np.asarray(labels)
        self.title.setText(f"<b>Compatibility</b>: can a new model search an old model's gallery"
                           + (f" of {dataset_name}" if dataset_name else "") + "?")
        for combo in (self.old_combo, self.new_combo):
            with QtCore.QSignalBlocker(combo):
                combo.clear()
                combo.addItems(list(self.models))

    def compute(self, old: str, new: str) -> None:
        if old == new:
            self._failed("Choose two different models: the old one and the new one.")
            return
        self.old_combo.setCurrentText(old)
        self.new_combo.setCurrentText(new)
        self.pair = (old, new)
        self.table.setRowCount(0)
        self.verdict.setText("")
        A, B, y = self.models[old], self.models[new], self.labels
        self.run(f"Compatibility of {new} with {old}", lambda: compatibility_job(A, B, y),
                 lambda res: self.set_result(res, old, new), exclusive=f"compatibility:{id(self)}")

    def set_result(self, res: dict, old: str, new: str) -> None:
        self.result, self.pair = res, (old, new)
        names = {"old": old, "new": new}
        rows, tips = [], []
        for key, label, tip in PAIRS:
            q, g = key.split("-vs-")
            acc = res["pairs"][key]
            rows.append([label, tip, f"{acc['top1']:.1%}", f"{acc['top5']:.1%}"])
            tips.append([f"{names[q]} queries against the gallery embedded by {names[g]}"] * 4)
        fill_table(self.table, ["queries → gallery", "", "top-1", "top-5"], rows, tips)
        hh = self.table.horizontalHeader()
        hh.setStretchLastSection(False)
        hh.setSectionResizeMode(1, QtWidgets.QHeaderView.ResizeMode.Stretch)
        for r in range(len(rows)):
            self.table.item(r, 1).setTextAlignment(QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignVCenter)
            self.table.item(r, 1).setForeground(QtGui.QColor("#555555"))
        self.table.setMaximumHeight(self.table.verticalHeader().length() + self.table.horizontalHeader().height() + 6)
        ok = res["compatible"]
        self.verdict.setText(verdict(res, old, new))
        self.verdict.setStyleSheet("font-size: 11pt; padding: 6px 2px; color: %s;" % ("#2e6b30" if ok else "#a02c2c"))
        self.status.setText(f"{res['n_queries']:,} queries, {res['n_gallery']:,} gallery items.")
        self.result_ready.emit(res)

    def table_values(self) -> dict:
        """The table as shown: {"old-vs-old": (top1, top5), ...} as fractions (from the text)."""
        out = {}
        for r, (key, _l, _t) in enumerate(PAIRS):
            if r < self.table.rowCount():
                out[key] = tuple(float(self.table.item(r, c).text().rstrip("%")) / 100 for c in (2, 3))
        return out
