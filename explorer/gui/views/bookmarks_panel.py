"""The Bookmarks dock: the session's saved views in order; double-click (or Go) restores one.

It lists :class:`explorer.app.bookmarks.Bookmarks` and asks the window (through its signals) to
save, restore, rename or delete; it holds no view state itself.
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from explorer.gui.subscriptions import Subscriptions


class BookmarksPanel(QtWidgets.QWidget):
    restore_requested = QtCore.Signal(str)
    add_requested = QtCore.Signal()
    rename_requested = QtCore.Signal(str)
    delete_requested = QtCore.Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.bookmarks = None
        self._subs = Subscriptions(self)
        v = QtWidgets.QVBoxLayout(self)
        v.setContentsMargins(4, 4, 4, 4)
        self.list = QtWidgets.QListWidget()
        self.list.itemDoubleClicked.connect(lambda it: self.restore_requested.emit(it.text()))
        v.addWidget(self.list, 1)
        row = QtWidgets.QHBoxLayout()
        for text, tip, fn in (("Save view…", "Save what the map shows as a bookmark (Ctrl+B)", self.add_requested.emit),
                              ("Go", "Restore the chosen bookmark", lambda: self._with_current(self.restore_requested)),
                              ("Rename…", "Rename the chosen bookmark", lambda: self._with_current(self.rename_requested)),
                              ("Delete", "Delete the chosen bookmark", lambda: self._with_current(self.delete_requested))):
            b = QtWidgets.QPushButton(text)
            b.setToolTip(tip)
            b.clicked.connect(lambda _=False, fn=fn: fn())
            row.addWidget(b)
        v.addLayout(row)
        hint = QtWidgets.QLabel("Ctrl+] and Ctrl+[ step through the bookmarks.")
        hint.setStyleSheet("color: #777")
        v.addWidget(hint)

    def _with_current(self, signal) -> None:
        it = self.list.currentItem()
        if it is not None:
            signal.emit(it.text())

    def bind(self, bookmarks) -> None:
        self._subs.release()
        self.bookmarks = bookmarks
        self._subs.connect(bookmarks.changed, self.refresh)
        self.refresh()

    def release(self) -> None:
        self._subs.release()

    def refresh(self) -> None:
        self.list.clear()
        if self.bookmarks is None:
            return
        for name in self.bookmarks.names:
            self.list.addItem(name)
        if 0 <= self.bookmarks.cursor < self.list.count():
            self.list.setCurrentRow(self.bookmarks.cursor)
