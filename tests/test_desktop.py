"""Before Qt starts, a machine that cannot open a window gets one sentence naming the fix
(the missing system library and its package, or the missing display), and exit code 2."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest

from explorer.core.desktop import PACKAGES, missing_libraries, window_problem

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux platform plugins")


def _cli(env_changes: dict, drop=()) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_changes)
    return subprocess.run([sys.executable, "-m", "explorer"], capture_output=True, text=True, env=env, timeout=120)


@linux
def test_reported_libraries_really_cannot_be_loaded():
    for lib in missing_libraries("xcb"):
        with pytest.raises(OSError):
            ctypes.CDLL(lib)


def test_offscreen_needs_nothing_and_no_display_is_said():
    assert window_problem({"QT_QPA_PLATFORM": "offscreen"}) is None
    if sys.platform.startswith("linux"):
        msg = window_problem({})
        assert "DISPLAY" in msg and "\n" not in msg


@linux
def test_cli_without_a_display_exits_2_with_one_line():
    r = _cli({}, drop=("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert "DISPLAY" in r.stderr


@linux
def test_cli_names_the_missing_package():
    missing = missing_libraries("xcb")
    if not missing:
        pytest.skip("this machine has every library Qt's X11 plugin needs")
    r = _cli({"QT_QPA_PLATFORM": "xcb", "DISPLAY": ":99"})
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert missing[0] in r.stderr and PACKAGES.get(missing[0], missing[0]) in r.stderr
