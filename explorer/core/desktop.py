"""Can this machine open a window? Checked before Qt starts, so a missing system library or a
missing display is one plain sentence naming the fix, not Qt's abort ("Could not load the Qt
platform plugin xcb").

On Linux, Qt's X11 plugin (``libqxcb.so``) links a dozen ``libxcb-*`` libraries and, since Qt
6.5, loads ``libxcb-cursor.so.0`` at run time; a fresh desktop often lacks one of them. This
module reads the plugin's missing links with ``ldd``, tries the run-time ones with ``ctypes``,
and maps each library to its Debian/Ubuntu package. Imports no Qt.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

# library soname -> Debian/Ubuntu package that provides it
PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0", "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1", "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0", "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shape.so.0": "libxcb-shape0", "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xkb.so.1": "libxcb-xkb1", "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-sync.so.1": "libxcb-sync1", "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-render.so.0": "libxcb-render0", "libxcb-util.so.1": "libxcb-util1",
    "libxcb.so.1": "libxcb1", "libX11-xcb.so.1": "libx11-xcb1", "libX11.so.6": "libx11-6",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0", "libxkbcommon.so.0": "libxkbcommon0",
    "libEGL.so.1": "libegl1", "libGL.so.1": "libgl1", "libOpenGL.so.0": "libopengl0",
    "libfontconfig.so.1": "libfontconfig1", "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3", "libglib-2.0.so.0": "libglib2.0-0",
}
RUNTIME_LIBRARIES = ("libxcb-cursor.so.0",)  # dlopen'ed by the plugin, not linked


def _qt_dir() -> Optional[Path]:
    spec = importlib.util.find_spec("PySide6")  # finds the package without importing Qt
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "Qt"


def missing_libraries(plugin: str = "xcb") -> list[str]:
    """System libraries Qt's ``plugin`` platform needs and this machine lacks (Linux only)."""
    qt = _qt_dir()
    if qt is None or not sys.platform.startswith("linux"):
        return []
    files = [qt / "plugins" / "platforms" / f"libq{plugin}.so"]
    if plugin == "xcb":
        files.append(qt / "lib" / "libQt6XcbQpa.so.6")
    missing: list[str] = []
    for f in files:
        if not f.exists():
            continue
        try:
            out = subprocess.run(["ldd", str(f)], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        for line in out.splitlines():
            name, sep, where = line.strip().partition("=>")
            if sep and "not found" in where and name.strip() not in missing:
                missing.append(name.strip())
    if plugin == "xcb":
        for lib in RUNTIME_LIBRARIES:
            if lib in missing:
                continue
            try:
                ctypes.CDLL(lib)
            except OSError:
                missing.append(lib)
    return missing


def window_problem(environ=None) -> Optional[str]:
    """One sentence saying why no window can open here (and the fix), or None."""
    env = os.environ if environ is None else environ
    if not sys.platform.startswith("linux"):
        return None
    platform = (env.get("QT_QPA_PLATFORM") or "").split(":")[0]
    if platform in ("offscreen", "minimal", "vnc", "eglfs", "linuxfb"):
        return None
    if not platform:
        if env.get("WAYLAND_DISPLAY") and not env.get("DISPLAY"):
            platform = "wayland"
        elif not env.get("DISPLAY"):
            return ("There is no display to open the window on (DISPLAY is not set): run it in a desktop "
                    "session, or render offscreen with QT_QPA_PLATFORM=offscreen embedding-explorer "
                    "--demo --screenshot out.png.")
        else:
            platform = "xcb"
    if platform not in ("xcb", "wayland"):
        return None
    missing = missing_libraries(platform)
    if not missing:
        return None
    pkgs = sorted({PACKAGES.get(m, m) for m in missing})
    more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
    return (f"Qt cannot open a window: its {platform} platform plugin needs {missing[0]}{more}, missing on "
            f"this system; install with: sudo apt install {' '.join(pkgs)} (on Fedora: sudo dnf install "
            f"xcb-util-cursor xcb-util-wm xcb-util-keysyms).")
