"""Packaging: the wheel carries assets/ and sample_data/ and finds them wherever it is
installed; one version everywhere; icons, stylesheets and the Linux desktop entry are complete.

The PyInstaller bundle is not built here (minutes, ~1 GB): `make package` builds it and
packaging/smoke_test.sh checks it.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
from PIL import Image

import explorer

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
PACKAGING = ROOT / "packaging"
APP_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
TOOLBAR = ("open", "embed", "map", "diagnose", "compare", "finetune", "export", "lasso", "box",
           "pan", "reset_view", "cancel")


def _sample_data_present() -> bool:
    return any(p.name != "__init__.py" and "__pycache__" not in p.parts
               for p in (ROOT / "sample_data").rglob("*") if p.is_file())


# ------------------------------------------------------------------ wheel install (one build)

@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Build the wheel from a copy of the source tree (so concurrent runs and the checkout's
    build/ folder never interfere), offline: no build isolation, setuptools from this env."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    ignore = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", ".venv*",
                                    ".pytest_cache", "tests", "benchmarks", "out")
    shutil.copytree(ROOT, src, ignore=ignore)
    out = tmp / "dist"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                        "--no-index", "-q", "-w", str(out), str(src)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    wheels = list(out.glob("embedding_explorer-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """``pip install --target``: a fresh location far from the source tree."""
    target = tmp_path_factory.mktemp("site") / "lib"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                        "--target", str(target), str(wheel)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return target


def _run_installed(target: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(target), PYTHONDONTWRITEBYTECODE="1",
               QT_QPA_PLATFORM="offscreen")
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=180)


def test_wheel_contains_assets_and_sample_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for n in APP_SIZES:
        assert f"explorer/assets/icons/app/icon_{n}.png" in names
    for f in ("icon.svg", "icon.png", "icon.ico", "icon.icns", "style_light.qss", "style_dark.qss",
              "__init__.py"):
        assert f"explorer/assets/{f}" in names, f
    for name in TOOLBAR:
        assert f"explorer/assets/icons/toolbar/{name}.svg" in names
        assert f"explorer/assets/icons/toolbar/dark/{name}.svg" in names
    assert "explorer/sample_data/__init__.py" in names
    assert "explorer/cli.py" in names and "explorer/gui/app.py" in names
    # every module of the source tree ships (a package missing from pyproject's list would
    # import in an editable install and fail in the wheel)
    src = Path(__file__).resolve().parent.parent / "explorer"
    missing = [str(p.relative_to(src.parent)) for p in src.rglob("*.py")
               if "__pycache__" not in p.parts and str(p.relative_to(src.parent)) not in names]
    assert missing == [], missing
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert not any(n.startswith(("tests/", "assets/", "sample_data/")) for n in names), \
        "top-level folders leaked into the wheel instead of living under explorer/"
    if not _sample_data_present():
        pytest.skip("sample_data/ holds no data yet (scripts/make_sample_data.py has not run): "
                    "the digits/checkpoints part of the wheel check was not done")
    assert any(n.startswith("explorer/sample_data/digits/") for n in names), \
        sorted(n for n in names if "sample_data" in n)[:20]
    assert any(n.startswith("explorer/sample_data/checkpoints/") for n in names), \
        sorted(n for n in names if "sample_data" in n)[:20]
    # every file of the source tree's sample_data/ is in the wheel
    for p in (ROOT / "sample_data").rglob("*"):
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc":
            rel = p.relative_to(ROOT / "sample_data").as_posix()
            assert f"explorer/sample_data/{rel}" in names, rel


def test_installed_wheel_finds_its_data_from_anywhere(wheel, installed, tmp_path):
    elsewhere = tmp_path / "somewhere_else"
    elsewhere.mkdir()
    code = textwrap.dedent("""
        import json, explorer, explorer.core.resources as r
        print(json.dumps({"file": explorer.__file__, "version": explorer.__version__,
                          "sample": str(r.sample_data_dir()), "assets": str(r.assets_dir()),
                          "sample_exists": r.sample_data_dir().is_dir(),
                          "icon": (r.assets_dir() / "icons" / "app" / "icon_256.png").is_file(),
                          "qss": (r.assets_dir() / "style_dark.qss").is_file()}))
    """)
    r = _run_installed(installed, ["-c", code], cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout.strip().splitlines()[-1])
    target = installed.resolve()
    assert Path(info["file"]).resolve().is_relative_to(target), info  # not the checkout's copy
    assert Path(info["sample"]).resolve().is_relative_to(target), info
    assert Path(info["assets"]).resolve().is_relative_to(target), info
    assert info["sample_exists"] and info["icon"] and info["qss"], info

    meta = zipfile.ZipFile(wheel).read(
        next(n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".dist-info/METADATA"))).decode()
    wheel_version = re.search(r"^Version: (.+)$", meta, re.M).group(1).strip()
    assert info["version"] == wheel_version == explorer.__version__
    assert wheel.name.startswith(f"embedding_explorer-{wheel_version}-")


def test_installed_command_prints_version(installed, tmp_path):
    r = _run_installed(installed, ["-m", "explorer", "--version"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"embedding-explorer {explorer.__version__}"
    # the console script pip wrote for the [project.scripts] entry point
    script = installed / "bin" / ("embedding-explorer.exe" if os.name == "nt" else "embedding-explorer")
    assert script.is_file(), sorted(p.name for p in (installed / "bin").iterdir())
    r2 = subprocess.run([str(script), "--version"], cwd=tmp_path, capture_output=True, text=True,
                        timeout=180, env=dict(os.environ, PYTHONPATH=str(installed)))
    assert r2.returncode == 0, r2.stderr
    assert r2.stdout.strip() == f"embedding-explorer {explorer.__version__}"


def test_version_lives_in_one_place():
    """pyproject takes the version from explorer.__version__; the spec reads the same line."""
    import tomllib

    py = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" in py["project"]["dynamic"] and "version" not in py["project"]
    assert py["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "explorer.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+([.-]?\w+)?", explorer.__version__)
    spec = (PACKAGING / "embedding-explorer.spec").read_text()
    assert "__version__" in spec and not re.search(r'VERSION\s*=\s*["\']\d', spec)
    assert "embedding-explorer" in py["project"]["scripts"]


# ------------------------------------------------------------------ icons and styles

@pytest.mark.parametrize("n", APP_SIZES)
def test_app_icon_png_sizes(n):
    img = Image.open(ASSETS / "icons" / "app" / f"icon_{n}.png")
    assert img.size == (n, n) and img.mode == "RGBA"
    alpha = img.getchannel("A")
    assert alpha.getpixel((0, 0)) <= 8, "corners of the rounded square are transparent"
    assert alpha.getpixel((n // 2, n // 2)) == 255
    a = np.asarray(img)
    opaque = a[a[..., 3] == 255][:, :3]
    assert len(np.unique(opaque, axis=0)) >= 20, "the dots are drawn, not a flat square"
    # the four colours of the design are all there (nearest pixel within a small distance;
    # at 16 px the pink outlier is left out on purpose)
    for rgb in [(94, 162, 245), (245, 166, 82), (96, 200, 140)] + ([(232, 110, 150)] if n >= 48 else []):
        d = np.abs(opaque.astype(int) - np.array(rgb)).sum(axis=1).min()
        assert d <= 30, (n, rgb, d)


def test_ico_and_icns_hold_the_sizes():
    ico = Image.open(ASSETS / "icon.ico")
    assert {(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)} <= set(ico.info["sizes"])
    icns = Image.open(ASSETS / "icon.icns")
    assert icns.size == (1024, 1024)
    svg = ElementTree.parse(ASSETS / "icon.svg").getroot()
    assert svg.get("viewBox") == "0 0 512 512"


def test_toolbar_svgs_are_wellformed_and_render():
    QtGui = pytest.importorskip("PySide6.QtGui")
    QtSvg = pytest.importorskip("PySide6.QtSvg")
    from PySide6.QtWidgets import QApplication

    _app = QApplication.instance() or QApplication([])
    for sub, expected in (("", (0x3C, 0x46, 0x56)), ("dark", (0xD5, 0xDB, 0xE5))):
        for name in TOOLBAR:
            path = ASSETS / "icons" / "toolbar" / sub / f"{name}.svg"
            root = ElementTree.parse(path).getroot()
            assert root.get("viewBox") == "0 0 24 24", path
            renderer = QtSvg.QSvgRenderer(str(path))
            assert renderer.isValid(), path
            img = QtGui.QImage(48, 48, QtGui.QImage.Format_ARGB32)
            img.fill(0)
            p = QtGui.QPainter(img)
            renderer.render(p)
            p.end()
            opaque = [(img.pixelColor(x, y)) for x in range(48) for y in range(48)
                      if img.pixelColor(x, y).alpha() == 255]
            assert 40 < len(opaque) < 48 * 48 * 0.6, (path, len(opaque))  # a glyph, not a blob
            c = opaque[0]
            assert (c.red(), c.green(), c.blue()) == expected, path


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_stylesheet_complete(theme):
    text = (ASSETS / f"style_{theme}.qss").read_text()
    assert "@" not in text, "unfilled template placeholder"
    body = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    assert body.count("{") == body.count("}") > 20
    for url in re.findall(r"url\(assets:([^)]+)\)", body):
        assert (ASSETS / url).is_file(), url
    # the colours of the two themes differ where it matters
    window = re.search(r"QWidget \{[^}]*\n\s*background-color: (#[0-9a-f]{6})", body).group(1)
    lum = sum(int(window[i:i + 2], 16) for i in (1, 3, 5)) / 3
    assert (lum > 200) if theme == "light" else (lum < 60)


def test_icon_script_is_deterministic(tmp_path, monkeypatch):
    """scripts/make_icons.py regenerates the committed SVGs and stylesheets byte for byte."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_icons", ROOT / "scripts" / "make_icons.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.app_icon_svg() == (ASSETS / "icon.svg").read_text()
    for theme in mod.PALETTES:
        assert mod.stylesheet(theme) == (ASSETS / f"style_{theme}.qss").read_text()
    for sub, colour in mod.TOOLBAR_COLOURS.items():
        for name, inner in mod.TOOLBAR.items():
            assert mod.toolbar_svg(inner, colour) == (ASSETS / "icons" / "toolbar" / sub / f"{name}.svg").read_text()
    assert set(mod.TOOLBAR) == set(TOOLBAR)


# ------------------------------------------------------------------ desktop integration

def test_desktop_entry_parses_with_required_keys():
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str  # keys are case-sensitive
    cp.read(PACKAGING / "embedding-explorer.desktop", encoding="utf-8")
    e = cp["Desktop Entry"]
    assert e["Type"] == "Application"
    assert e["Name"] == "Embedding Explorer" and e["Comment"]
    assert e["Exec"].split()[0] == "embedding-explorer" == e["TryExec"]
    assert e["Icon"] == "embedding-explorer"
    assert e["Terminal"] == "false"
    cats = e["Categories"].rstrip(";").split(";")
    assert "Science" in cats and "DataVisualization" in cats
    if shutil.which("desktop-file-validate"):
        r = subprocess.run(["desktop-file-validate", str(PACKAGING / "embedding-explorer.desktop")],
                           capture_output=True, text=True)
        assert r.returncode == 0 and "error" not in r.stdout, r.stdout + r.stderr


@pytest.mark.skipif(os.name == "nt", reason="the installer is a bash script for Linux desktops")
def test_install_desktop_entry_script(tmp_path):
    prefix = tmp_path / "prefix"
    script = PACKAGING / "install-desktop-entry.sh"
    r = subprocess.run(["bash", str(script), "--prefix", str(prefix), "--exec", "/opt/ee/embedding-explorer"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    for n in APP_SIZES:
        icon = prefix / "share" / "icons" / "hicolor" / f"{n}x{n}" / "apps" / "embedding-explorer.png"
        assert Image.open(icon).size == (n, n)
    assert (prefix / "share/icons/hicolor/scalable/apps/embedding-explorer.svg").is_file()
    desktop = (prefix / "share/applications/embedding-explorer.desktop").read_text()
    assert "\nExec=/opt/ee/embedding-explorer\n" in desktop and "\nIcon=embedding-explorer\n" in desktop
    r = subprocess.run(["bash", str(script), "--prefix", str(prefix), "--uninstall"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert not list(prefix.rglob("embedding-explorer*"))
    r = subprocess.run(["bash", str(script), "--no-such-option"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown option" in r.stderr


def test_pyinstaller_spec_and_launcher_are_consistent():
    """The spec is valid Python, names files that exist, and the launcher defaults to --demo."""
    spec = (PACKAGING / "embedding-explorer.spec").read_text()
    compile(spec, "embedding-explorer.spec", "exec")
    assert '"packaging" / "launcher.py"' in spec and (PACKAGING / "launcher.py").is_file()
    for f in ("icon.ico", "icon.icns", "icon.png"):
        assert f'"{f}"' in spec and (ASSETS / f).is_file()
    for excluded in ("QtWebEngineCore", "Qt3DCore", "QtMultimedia", "QtQuick", "QtQml", "QtPdf"):
        assert f'"{excluded}"' in spec
    assert '"explorer/assets"' in spec and '"explorer/sample_data"' in spec
    launcher = (PACKAGING / "launcher.py").read_text()
    assert 'main(argv or ["--demo"])' in launcher
    smoke = PACKAGING / "smoke_test.sh"
    assert os.access(smoke, os.X_OK) and os.access(PACKAGING / "install-desktop-entry.sh", os.X_OK)
    r = subprocess.run(["bash", "-n", str(smoke)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
