"""What a first start shows: the four ways in (open a dataset, an encoder, a session, or the
demo) and the recently opened files, which File > Recent lists too (remembered in the settings)."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from explorer.gui.settings import APP, settings

MAX_RECENT = 12


def recent_entries() -> list[tuple[str, str]]:
    """[(kind, path)], most recent first."""
    recent = settings().value("recent", []) or []
    if isinstance(recent, str):
        recent = [recent]
    return [tuple(r.partition("|")[::2]) for r in recent if r]


def remember(path: str, kind: str) -> None:
    s = settings()
    recent = [r for r in (s.value("recent", []) or []) if r and r.split("|", 1)[-1] != path]
    recent.insert(0, f"{kind}|{path}")
    s.setValue("recent", recent[:MAX_RECENT])


class StartPage(QtWidgets.QWidget):
    """``actions``: [(button text, callable)]; ``open_path(path, kind)`` opens a recent entry."""

    open_recent = QtCore.Signal(str, str)  # path, kind

    def __init__(self, actions, parent=None) -> None:
        super().__init__(parent)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addStretch(1)
        title = QtWidgets.QLabel(f"<h1>{APP}</h1><p>See what your embedding space looks like: open a dataset "
                                 "and your own checkpoints, map them, diagnose collapse, compare.</p>"
                                 "<p>Drop files or folders here, or:</p>")
        title.setAlignment(QtCore.Qt.AlignCenter)
        title.setWordWrap(True)
        lay.addWidget(title)
        grid = QtWidgets.QGridLayout()  # 2 x 2: fits a narrow window
        for i, (text, slot) in enumerate(actions):
            b = QtWidgets.QPushButton(text)
            b.setMinimumWidth(140)
            b.clicked.connect(slot)
            grid.addWidget(b, i // 2, i % 2)
        lay.addLayout(self._centred(grid))
        self.recent_list = QtWidgets.QListWidget()
        self.recent_list.setMaximumWidth(700)
        self.recent_list.setMaximumHeight(200)
        self.recent_list.itemActivated.connect(
            lambda it: self.open_recent.emit(*it.data(QtCore.Qt.UserRole)))
        box = QtWidgets.QVBoxLayout()
        box.addWidget(QtWidgets.QLabel("Recent"))
        box.addWidget(self.recent_list)
        lay.addLayout(self._centred(box))
        lay.addStretch(2)

    @staticmethod
    def _centred(inner) -> QtWidgets.QHBoxLayout:
        row = QtWidgets.QHBoxLayout()
        row.addStretch(1)
        row.addLayout(inner)
        row.addStretch(1)
        return row

    def refresh(self, menu: QtWidgets.QMenu) -> None:
        """Show the recent files here and in ``menu`` (File > Recent)."""
        menu.clear()
        self.recent_list.clear()
        for kind, path in recent_entries():
            a = menu.addAction(f"{kind}: {path}")
            a.triggered.connect(lambda _=False, p=path, k=kind: self.open_recent.emit(p, k))
            it = QtWidgets.QListWidgetItem(f"{kind}:  {path}")
            it.setData(QtCore.Qt.UserRole, (path, kind))
            self.recent_list.addItem(it)
