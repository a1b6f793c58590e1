"""Small pieces the analysis views share: a plain pyqtgraph plot style, a read-only table and a
job-owning base widget whose ``release()`` cancels its jobs (closing the tab)."""

from __future__ import annotations

from typing import Optional, Sequence

import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from explorer.gui.subscriptions import Subscriptions

COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")


def styled_plot(layout: pg.GraphicsLayoutWidget, row: int, col: int, title: str,
                left_width: int = 52) -> pg.PlotItem:
    """A plot in ``layout`` with the app's quiet style (grey axes, light grid, no menu)."""
    p = layout.addPlot(row=row, col=col)
    p.setTitle(title, size="9pt", color="#303030")
    p.showGrid(x=True, y=True, alpha=0.15)
    p.setMenuEnabled(False)
    p.hideButtons()
    for ax in ("left", "bottom"):
        p.getAxis(ax).setPen(pg.mkPen("#606060"))
        p.getAxis(ax).setTextPen(pg.mkPen("#404040"))
    p.getAxis("left").setWidth(left_width)
    return p


def fill_table(table: QtWidgets.QTableWidget, headers: Sequence[str], rows: Sequence[Sequence[str]],
               tips: Optional[Sequence[Sequence[str]]] = None) -> None:
    """Replace ``table``'s contents with ``rows`` of strings (read-only cells, numbers right-aligned)."""
    table.clear()
    table.setColumnCount(len(headers))
    table.setRowCount(len(rows))
    table.setHorizontalHeaderLabels(list(headers))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            it = QtWidgets.QTableWidgetItem(str(text))
            it.setFlags(it.flags() & ~QtCore.Qt.ItemFlag.ItemIsEditable)
            if c > 0:
                it.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
            if tips is not None:
                it.setToolTip(tips[r][c])
            table.setItem(r, c, it)
    table.resizeColumnsToContents()


def plain_table() -> QtWidgets.QTableWidget:
    t = QtWidgets.QTableWidget(0, 0)
    t.verticalHeader().setVisible(False)
    t.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
    t.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
    t.setAlternatingRowColors(True)
    t.horizontalHeader().setStretchLastSection(True)
    return t


def plots_over_table(min_plot_height: int, plot_size: int, min_height: int):
    """A vertical splitter of a white pyqtgraph layout (the plots) over a plain table -> (splitter,
    graphics, table). It has no height of its own in the tab's scroll area: it takes what is left,
    down to ``min_height``."""
    split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
    graphics = pg.GraphicsLayoutWidget()
    graphics.setBackground("w")
    graphics.ci.layout.setContentsMargins(4, 0, 4, 2)
    graphics.setMinimumHeight(min_plot_height)
    split.addWidget(graphics)
    table = plain_table()
    table.setMinimumHeight(60)
    split.addWidget(table)
    split.setStretchFactor(0, 4)
    split.setStretchFactor(1, 1)
    split.setSizes([plot_size, 90])
    split.setSizePolicy(QtWidgets.QSizePolicy.Policy.Preferred, QtWidgets.QSizePolicy.Policy.Ignored)
    split.setMinimumHeight(min_height)
    return split, graphics, table


def fmt(v, spec: str = "{:.3f}") -> str:
    return "–" if v is None or v != v else spec.format(v)


class JobView(QtWidgets.QWidget):
    """A tab that runs its computation as jobs it owns: ``run(name, factory, done)`` submits
    through the window's :class:`~explorer.gui.workers.JobRunner` with this view as the owner,
    so :meth:`release` (the tab closing) or the widget's destruction cancels the job and its
    result is never delivered. The status line says what runs and what failed."""

    failed = QtCore.Signal(str)

    def __init__(self, runner=None, parent=None) -> None:
        super().__init__(parent)
        if runner is None:
            from explorer.gui.workers import JobRunner

            runner = JobRunner(self)
        self.runner = runner
        self._subs = Subscriptions(self)
        self.handle = None
        self.status = QtWidgets.QLabel("")
        self.status.setWordWrap(True)
        self.status.setStyleSheet("color: #555")

    def run(self, name: str, factory, done, exclusive: Optional[str] = None):
        self.status.setText(f"{name}…")
        self.handle = self.runner.submit(name, factory, self._deliver(done), self._failed,
                                         exclusive=exclusive, owner=self)
        return self.handle

    def _deliver(self, done):
        def ok(result):
            self.status.setText("")
            done(result)
        return ok

    def _failed(self, message: str, _details: str = "") -> None:
        self.status.setText(message)
        self.failed.emit(message)

    def release(self) -> None:
        """The tab is closing: cancel the jobs, drop the subscriptions."""
        self.runner.release_owner(self)
        self._subs.release()
