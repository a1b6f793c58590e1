"""A view's subscriptions to core signals, dropped together when the view closes.

A Qt widget can be deleted (its tab closed, its pane rebuilt) while its Python wrapper lives
on; a core :class:`~explorer.core.events.Signal` still holding one of its methods would then call
into a deleted C++ object. Each view therefore connects through a :class:`Subscriptions`
owned by it: ``release()`` disconnects everything, and runs by itself when the widget is
destroyed (napari does the same when a layer's controls are removed).
"""

from __future__ import annotations

from typing import Any, Callable

from PySide6 import QtCore


class Subscriptions:
    def __init__(self, owner: QtCore.QObject) -> None:
        self._conns: list[tuple[Any, Callable]] = []
        conns = self._conns

        def on_destroyed(*_a) -> None:  # a closure, not a method: it must outlive the owner
            for sig, fn in conns:
                sig.disconnect(fn)
            conns.clear()

        owner.destroyed.connect(on_destroyed)

    def connect(self, signal, fn: Callable) -> None:
        signal.connect(fn)
        self._conns.append((signal, fn))

    def disconnect_from(self, signal) -> None:
        """Drop every connection to ``signal`` (e.g. when re-binding to another selection)."""
        keep = []
        for sig, fn in self._conns:
            if sig is signal:
                sig.disconnect(fn)
            else:
                keep.append((sig, fn))
        self._conns[:] = keep

    def release(self) -> None:
        for sig, fn in self._conns:
            sig.disconnect(fn)
        self._conns.clear()

    def __len__(self) -> int:
        return len(self._conns)
