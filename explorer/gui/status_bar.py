"""The status bar: the compute device (found in a worker: importing torch takes seconds), the
process's peak memory, the number of points and of selected ones, and how many jobs run."""

from __future__ import annotations

from PySide6 import QtWidgets

from explorer.gui.settings import settings


class StatusBar(QtWidgets.QStatusBar):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.device = QtWidgets.QLabel()
        self.points = QtWidgets.QLabel()
        self.selected = QtWidgets.QLabel()
        self.memory = QtWidgets.QLabel()
        for w in (self.device, self.memory, self.points, self.selected):
            self.addPermanentWidget(w)
        self.device.setText(f"Device: {settings().value('device', 'auto')}")
        self.device.setToolTip("Choose the device in File > Settings")

    def show_counts(self, dataset, n_selected: int, n_jobs: int) -> None:
        self.points.setText(f"{len(dataset):,} points" if dataset is not None else "no dataset")
        self.selected.setText(f"{n_selected:,} selected")
        try:
            import resource

            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            self.memory.setText(f"Memory: {rss:,.0f} MB peak")
        except Exception:  # no resource module (Windows): say nothing rather than guess
            self.memory.setText("")
        if n_jobs:
            self.showMessage(f"{n_jobs} job{'s' if n_jobs > 1 else ''} running", 2500)
        else:
            self.clearMessage()

    def probe_device(self, runner) -> None:
        """Name the device (and its free memory), found in a worker after the window is up."""
        dev = str(settings().value("device", "auto"))
        self.device.setText(f"Device: {dev}")

        def job():
            from explorer.core.device import device_info
            from explorer.core.jobs import Progress

            yield Progress(0, 1, "looking for a GPU")
            return device_info(None if dev == "auto" else dev).describe()

        runner.submit("Detect the compute device", job, lambda text: self.device.setText(f"Device: {text}"),
                      lambda msg, _d: self.device.setText(f"Device: {msg}"), exclusive="device")
