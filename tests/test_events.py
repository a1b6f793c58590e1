"""The Qt-free signal: listeners called in order, one failing listener does not stop the
others (its error still surfaces), bound methods held weakly."""

from __future__ import annotations

import gc

import pytest

from explorer.core.events import Signal


def test_a_failing_listener_does_not_stop_the_others():
    sig, seen = Signal(), []

    def bad(x):
        seen.append(("bad", x))
        raise RuntimeError("listener broke")

    sig.connect(lambda x: seen.append(("a", x)))
    sig.connect(bad)
    sig.connect(lambda x: seen.append(("c", x)))
    with pytest.raises(RuntimeError, match="listener broke"):
        sig.emit(1)
    assert seen == [("a", 1), ("bad", 1), ("c", 1)]


def test_bound_methods_are_held_weakly_and_disconnect_works():
    class View:
        def __init__(self):
            self.got = []

        def on(self, x):
            self.got.append(x)

    sig = Signal()
    v, w = View(), View()
    sig.connect(v.on)
    sig.connect(w.on)
    assert len(sig) == 2
    sig.disconnect(w.on)
    sig.emit(3)
    assert v.got == [3] and w.got == []
    del v
    gc.collect()
    assert len(sig) == 0
    with sig.blocked():
        sig.emit(4)
    assert w.got == []
