"""A minimal, Qt-free signal: the observable part of the application state.

Views connect callbacks; models emit only on real change. Callbacks run synchronously on the
emitting thread, so state is only ever changed from the GUI thread (jobs return results, the
GUI applies them).
"""

from __future__ import annotations

import weakref
from typing import Any, Callable


class Signal:
    """``sig.connect(fn)``, ``sig.disconnect(fn)``, ``sig.emit(*args)``; bound methods are held weakly."""

    def __init__(self) -> None:
        self._slots: list[Any] = []
        self._blocked = 0

    def connect(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        ref: Any
        if hasattr(fn, "__self__") and hasattr(fn, "__func__"):
            ref = weakref.WeakMethod(fn)
        else:
            ref = lambda fn=fn: fn  # noqa: E731  (strong reference for plain functions)
        self._slots.append(ref)
        return fn

    def disconnect(self, fn: Callable[..., Any]) -> None:
        self._slots = [r for r in self._slots if r() is not None and r() != fn]

    def emit(self, *args: Any) -> None:
        """Call every live listener in connection order. One that raises does not stop the
        others: all run, then the first error is raised again."""
        if self._blocked:
            return
        first: BaseException | None = None
        for ref in list(self._slots):
            fn = ref()
            if fn is None:
                continue
            try:
                fn(*args)
            except Exception as exc:  # noqa: BLE001 - re-raised below, after the others ran
                first = first or exc
        self._slots = [r for r in self._slots if r() is not None]
        if first is not None:
            raise first

    class _Blocker:
        def __init__(self, sig: "Signal") -> None:
            self.sig = sig

        def __enter__(self) -> None:
            self.sig._blocked += 1

        def __exit__(self, *exc: Any) -> None:
            self.sig._blocked -= 1

    def blocked(self) -> "Signal._Blocker":
        """``with sig.blocked(): ...`` suppresses emission (to break feedback loops)."""
        return Signal._Blocker(self)

    def __len__(self) -> int:
        return sum(1 for r in self._slots if r() is not None)
