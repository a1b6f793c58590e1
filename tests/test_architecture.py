"""The one wall: only explorer/gui imports Qt. Checked on the source (AST), so it cannot pass
by accident because a module happens not to be imported."""

import ast
from pathlib import Path

import explorer

QT = ("PySide6", "pyqtgraph", "superqt", "shiboken6", "qtpy", "PyQt5", "PyQt6")
ROOT = Path(explorer.__file__).parent


def _imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_qt_only_under_gui():
    """cli.py may import explorer.gui.app (launching the app is its job), never Qt itself."""
    offenders = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] == "gui":
            continue
        for mod in _imports(path):
            if mod.split(".")[0] in QT or (mod.startswith("explorer.gui") and rel.name != "cli.py"):
                offenders.append(f"{rel}: imports {mod}")
    assert not offenders, "Qt imported outside explorer/gui:\n" + "\n".join(offenders)


def test_checker_sees_a_violation(tmp_path):
    """The checker itself must be able to fail."""
    bad = tmp_path / "bad.py"
    bad.write_text("from PySide6 import QtCore\nimport numpy\n")
    assert "PySide6" in list(_imports(bad))


def test_every_package_is_listed_in_pyproject():
    text = (ROOT.parent / "pyproject.toml").read_text()
    for init in ROOT.rglob("__init__.py"):
        pkg = ".".join(("explorer",) + init.parent.relative_to(ROOT).parts)
        assert f'"{pkg}"' in text, f"{pkg} is missing from [tool.setuptools] packages"
