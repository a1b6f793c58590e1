"""The application's names, its remembered settings (QSettings) and its toolbar icons: the few
things every part of the GUI shares, in one module that imports no other GUI module."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

ORG, APP = "embedding-explorer", "Embedding Explorer"


def settings() -> QtCore.QSettings:
    return QtCore.QSettings(ORG, APP)


def icon(name: str) -> QtGui.QIcon:
    """A toolbar icon by name (the dark variant under the dark theme); empty if missing."""
    from explorer.core.resources import assets_dir

    app = QtWidgets.QApplication.instance()
    dark = app is not None and app.property("theme") == "dark"
    base = assets_dir() / "icons" / "toolbar"
    for folder in ((base / "dark", base) if dark else (base,)):
        for ext in (".svg", ".png"):
            p = folder / f"{name}{ext}"
            if p.exists():
                return QtGui.QIcon(str(p))
    return QtGui.QIcon()


def apply_theme(app, theme: str) -> None:
    from explorer.core.resources import assets_dir

    from PySide6 import QtCore

    QtCore.QDir.setSearchPaths("assets", [str(assets_dir())])
    app.setProperty("theme", theme)
    qss = assets_dir() / f"style_{'dark' if theme == 'dark' else 'light'}.qss"
    app.setStyleSheet(qss.read_text(encoding="utf-8") if qss.exists() else "")
    import pyqtgraph as pg

    pg.setConfigOptions(background="#1a1c20" if theme == "dark" else "w",
                        foreground="#c9d0da" if theme == "dark" else "#3c4656", antialias=False)
