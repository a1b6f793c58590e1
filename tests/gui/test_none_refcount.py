"""Guard for TRAPS.md #1: PySide6 6.12.0 on Python 3.11 drops a reference to None in every
Python override of a void C++ virtual (paintEvent, QPainter.setPen...), and the process aborts
after some thousands of repaints. Repaint a widget thousands of times and check that the
reference count of None does not fall."""

import sys

import pytest

pytest.importorskip("PySide6")
from PySide6 import QtGui, QtWidgets  # noqa: E402


class Painted(QtWidgets.QWidget):
    def paintEvent(self, event):  # noqa: N802 (Qt name)
        p = QtGui.QPainter(self)
        p.setPen(QtGui.QColor("red"))
        p.drawLine(0, 0, 10, 10)
        p.end()


def test_repaints_do_not_leak_none_references(qtbot):
    w = Painted()
    qtbot.addWidget(w)
    w.resize(200, 100)
    w.show()
    for _ in range(50):
        w.repaint()
    before = sys.getrefcount(None)
    for _ in range(3000):
        w.repaint()
    after = sys.getrefcount(None)
    if sys.version_info >= (3, 12):
        return  # None is immortal; nothing to lose
    assert after >= before - 100, f"None lost {before - after} references over 3000 repaints"
