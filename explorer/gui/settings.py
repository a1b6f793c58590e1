"""The application's names, its remembered settings (QSettings) and its toolbar icons: the few
things every part of the GUI shares, in one module that imports no other GUI module."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

ORG, APP = "embedding-explorer", "Embedding Explorer"


def settings() -> QtCore.QSettings:
    return QtCore.QSettings(ORG, APP)


def icon(name: str) -> QtGui.QIcon:
    """A toolbar icon by name (the dark variant under the dark theme); empty if missing."""
    from explorer.resources import assets_dir

    app = QtWidgets.QApplication.instance()
    dark = app is not None and app.property("theme") == "dark"
    base = assets_dir() / "icons" / "toolbar"
    for folder in ((base / "dark", base) if dark else (base,)):
        for ext in (".svg", ".png"):
            p = folder / f"{name}{ext}"
            if p.exists():
                return QtGui.QIcon(str(p))
    return QtGui.QIcon()
