"""The jobs panel: every running or finished job with a progress bar, elapsed and remaining
time, its last message and a cancel button."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from explorer.gui.workers import JobHandle, JobRunner


def _fmt_s(s) -> str:
    if s is None:
        return "–"
    s = int(round(s))
    return f"{s // 60}:{s % 60:02d}" if s >= 60 else f"{s} s"


class JobRow(QtWidgets.QWidget):
    def __init__(self, handle: JobHandle, parent=None) -> None:
        super().__init__(parent)
        self.handle = handle
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(4, 2, 4, 2)
        self.name = QtWidgets.QLabel(handle.name)
        self.name.setMinimumWidth(180)
        self.bar = QtWidgets.QProgressBar()
        self.bar.setRange(0, 0)
        self.bar.setMaximumHeight(16)
        self.bar.setTextVisible(True)
        self.time = QtWidgets.QLabel("")
        self.time.setMinimumWidth(140)
        self.msg = QtWidgets.QLabel("")
        self.msg.setMinimumWidth(120)
        self.msg.setSizePolicy(QtWidgets.QSizePolicy.Ignored, QtWidgets.QSizePolicy.Preferred)
        self.cancel = QtWidgets.QToolButton()
        if handle.stop_note:
            self.cancel.setText("Stop")
            self.cancel.setToolTip("Stop this job early; what it made so far is kept")
        else:
            self.cancel.setText("Cancel")
            self.cancel.setToolTip("Stop this job; nothing it would have written is kept")
        self.cancel.clicked.connect(handle.cancel)
        for w, s in ((self.name, 0), (self.bar, 2), (self.time, 0), (self.msg, 3), (self.cancel, 0)):
            lay.addWidget(w, s)
        handle.progress.connect(self._on_progress)
        handle.done.connect(self._on_done)

    def _on_progress(self, p) -> None:
        if p.total:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * (p.fraction or 0)))
        if p.message:
            self.msg.setText(p.message)
            self.msg.setToolTip(p.message)
        self.tick()

    def tick(self) -> None:
        h = self.handle
        if h.state == "queued":
            if self.bar.format() != "queued":
                self.bar.setRange(0, 1000)
                self.bar.setValue(0)
                self.bar.setFormat("queued")
                self.time.setText("waiting for a worker")
        elif h.state == "running":
            if self.bar.format() == "queued":
                self.bar.setFormat("%p%")
                self.bar.setRange(0, 0)  # busy until the first progress with a total
            self.time.setText(f"{_fmt_s(h.elapsed)} elapsed, {_fmt_s(h.remaining())} left")
        elif h.state == "stopped" and self.bar.format() != self._ended_text():
            self.bar.setFormat(self._ended_text())  # the owner changed what the stop kept
            self.bar.setToolTip(self._ended_text())

    def _ended_text(self) -> str:
        h = self.handle
        if h.state == "stopped":
            return f"stopped ({h.stop_note})" if h.stop_note else "stopped"
        return {"finished": "done", "failed": "failed", "cancelled": "cancelled"}.get(h.state, "%p%")

    def _on_done(self) -> None:
        h = self.handle
        self.bar.setRange(0, 1000)
        self.bar.setValue(1000)
        self.bar.setFormat(self._ended_text())
        if h.state == "stopped":
            self.bar.setToolTip(self._ended_text())
        if h.state != "finished":
            color = "#b3261e" if h.state == "failed" else "#8a8f98"
            self.bar.setStyleSheet(f"QProgressBar::chunk {{ background: {color}; }}")
        self.time.setText(f"{_fmt_s(h.elapsed)}")
        self.cancel.setEnabled(False)


class JobsPanel(QtWidgets.QWidget):
    """Lists the runner's jobs: running ones on top, then the queued ones in the order they will
    start, then the finished ones, newest first; keeps the last 30."""

    MAX_ROWS = 30

    def __init__(self, runner: JobRunner, parent=None) -> None:
        super().__init__(parent)
        self.runner = runner
        outer = QtWidgets.QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.empty = QtWidgets.QLabel("No jobs yet. Embedding, kNN, maps, diagnostics and fine-tuning run here.")
        self.empty.setEnabled(False)
        outer.addWidget(self.empty)
        self.area = QtWidgets.QScrollArea()
        self.area.setWidgetResizable(True)
        inner = QtWidgets.QWidget()
        self.rows = QtWidgets.QVBoxLayout(inner)
        self.rows.setContentsMargins(0, 0, 0, 0)
        self.rows.addStretch(1)
        self.area.setWidget(inner)
        outer.addWidget(self.area)
        runner.job_added.connect(self.add)
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(500)
        self._timer.timeout.connect(self._tick)
        self._timer.start()

    _ORDER = {"running": 0, "queued": 1}

    def add(self, handle: JobHandle) -> None:
        self.empty.hide()
        row = JobRow(handle)
        self._seq = getattr(self, "_seq", 0) + 1
        row.seq = self._seq
        self.rows.insertWidget(0, row)
        row.tick()
        self._sort()
        while self.rows.count() - 1 > self.MAX_ROWS:
            item = self.rows.takeAt(self.rows.count() - 2)
            if item.widget():
                item.widget().deleteLater()

    def job_rows(self) -> list[JobRow]:
        return [self.rows.itemAt(i).widget() for i in range(self.rows.count())
                if isinstance(self.rows.itemAt(i).widget(), JobRow)]

    def _sort(self) -> None:
        rows = self.job_rows()
        want = sorted(rows, key=lambda r: (self._ORDER.get(r.handle.state, 2),
                                           -getattr(r.handle, "priority", 0) if r.handle.state == "queued" else 0,
                                           r.seq if r.handle.state in self._ORDER else -r.seq))
        if want != rows:
            for i, r in enumerate(want):
                self.rows.insertWidget(i, r)

    def _tick(self) -> None:
        for r in self.job_rows():
            r.tick()
        self._sort()
