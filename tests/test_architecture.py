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


def _module_name(path: Path) -> str:
    parts = ("explorer",) + path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _edges(path: Path, known: set):
    """The explorer modules ``path`` imports, anywhere in it (function-level imports included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                     for a in node.names]
        for n in names:
            if n in known:
                yield n


def import_cycles(graph: dict) -> list:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    """No two modules import each other, directly or round a circle (lazy imports count: they
    are the same dependency, deferred)."""
    paths = list(ROOT.rglob("*.py"))
    known = {_module_name(p) for p in paths}
    graph = {_module_name(p): set(_edges(p, known)) - {_module_name(p)} for p in paths}
    assert import_cycles(graph) == []


def test_cycle_finder_finds_a_circle():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
