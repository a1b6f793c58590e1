"""Python's cyclic garbage collector runs on whichever thread happens to allocate when a
threshold is crossed, and in this app that is mostly a worker thread (measured: about 60% of
the collections during a random walk through the window). A cycle that holds Qt wrappers
(a closed view, a replaced session) then gets freed on a worker thread; shiboken keeps a
dangling pointer to the freed wrapper and a later ``clear()`` on the GUI thread segfaults in
``BindingManager::releaseWrapper``.

So while anything that runs jobs is alive (:func:`hold`), automatic collection is off and the
GUI thread collects on a timer, with Python's own thresholds (pyqtgraph's GarbageCollector
pattern). Reference counting frees everything else at once, as before."""

from __future__ import annotations

import gc
from typing import Optional

from PySide6 import QtCore

_INTERVAL_MS = 250
_holders: set[int] = set()
_timer: Optional[QtCore.QTimer] = None
_was_enabled = True


def collect_due() -> int:
    """Collect the generations whose thresholds are crossed (what the automatic collector would
    have done by now); returns the number of unreachable objects found."""
    t0, t1, t2 = gc.get_threshold()
    c0, c1, c2 = gc.get_count()
    if c0 <= t0:
        return 0
    gen = 2 if (c1 > t1 and c2 > t2) else 1 if c1 > t1 else 0
    return gc.collect(gen)


def hold(owner: QtCore.QObject) -> None:
    """Keep collection on the GUI thread for as long as ``owner`` lives."""
    global _timer, _was_enabled
    key = id(owner)
    if key in _holders:
        return
    if not _holders:
        _was_enabled = gc.isenabled()
        gc.disable()
        if _timer is None:
            _timer = QtCore.QTimer(QtCore.QCoreApplication.instance())
            _timer.setInterval(_INTERVAL_MS)
            _timer.timeout.connect(collect_due)
        _timer.start()
    _holders.add(key)
    owner.destroyed.connect(lambda *_a, key=key: release(key))


def release(key: int) -> None:
    _holders.discard(key)
    if not _holders:
        if _timer is not None:
            _timer.stop()
        gc.collect()
        if _was_enabled:
            gc.enable()


def active() -> bool:
    return bool(_holders)
