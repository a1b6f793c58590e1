"""Long work is a job, and a job is a generator.

A job is a generator function taking a frozen parameter object. It ``yield``s
:class:`Progress` objects (optionally carrying a partial result) and ``return``s its result.
Cancellation is cooperative and free: the runner stops iterating and calls ``gen.close()``,
which raises ``GeneratorExit`` at the job's current ``yield`` so its ``finally`` blocks clean up
(temporary files removed, nothing half-written kept). A job never touches Qt.

The GUI runs jobs in a worker thread (:mod:`explorer.gui.workers`); the CLI runs them with
:func:`run_job`, which draws a tqdm progress bar on stderr.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Generator, Optional

from explorer.core.errors import Cancelled

__all__ = ["Progress", "Job", "CancelToken", "run_job", "drain", "progress"]


@dataclass(frozen=True)
class Progress:
    """One step of a job: ``done`` out of ``total`` (``total=None``: unknown), a short message,
    and optionally a partial result (e.g. the loss so far, a layout being optimised)."""

    done: float
    total: Optional[float] = None
    message: str = ""
    partial: Any = None

    @property
    def fraction(self) -> Optional[float]:
        if not self.total:
            return None
        return max(0.0, min(1.0, self.done / self.total))


Job = Generator[Progress, None, Any]


def progress(done: float, total: Optional[float] = None, message: str = "", partial: Any = None) -> Progress:
    return Progress(done, total, message, partial)


def relay(job: Job, step) -> Job:
    """Run ``job``, yielding what ``step(p)`` (a generator or list) gives for each of its
    progress reports ``p``; returns ``job``'s result; closing this closes ``job``. The one
    loop under :func:`scaled` and :func:`pausable`."""
    try:
        while True:
            try:
                p = next(job)
            except StopIteration as stop:
                return stop.value
            yield from step(p)
    finally:
        job.close()


def scaled(job: Job, lo: float, hi: float, label: Optional[str] = None) -> Job:
    """Run ``job`` as one stage of a bigger job: its progress fraction is mapped into
    [lo, hi] of a total of 1 (so several stages share one bar), its message kept unless
    ``label`` is given. Returns ``job``'s result; closing this closes ``job``."""
    return (yield from relay(job, lambda p: [Progress(lo + (hi - lo) * (p.fraction or 0.0), 1.0,
                                                       label or p.message, p.partial)]))


class PauseGate:
    """A pause switch shared between the thread that shows a job and the job itself (a
    ``threading.Event``: set = run)."""

    def __init__(self) -> None:
        import threading

        self._run = threading.Event()
        self._run.set()

    def pause(self) -> None:
        self._run.clear()

    def resume(self) -> None:
        self._run.set()

    @property
    def paused(self) -> bool:
        return not self._run.is_set()

    def wait(self, timeout: float) -> bool:
        """Block until resumed or ``timeout`` seconds passed; True when running."""
        return self._run.wait(timeout)


def pausable(job: Job, gate: PauseGate, poll_s: float = 0.1) -> Job:
    """Job wrapper: pass ``job``'s progress through and return its result, holding still between
    two of its yields while ``gate`` is paused. While paused it yields a "paused" Progress every
    ``poll_s`` seconds, so the runner can still cancel (close) it; closing closes ``job`` too."""
    last = [Progress(0)]

    def step(p):
        if isinstance(p, Progress):
            last[0] = p
        yield p
        while gate.paused and not gate.wait(poll_s):
            yield Progress(last[0].done, last[0].total, "paused")

    return (yield from relay(job, step))


class CancelToken:
    """Thread-safe cancellation flag, for code that runs between yields for a while (a C loop
    with a callback, say) and wants to stop early. ``check()`` raises :class:`Cancelled`."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled()


def drain(job: Job, on_progress: Optional[Callable[[Progress], None]] = None,
          cancel: Optional[CancelToken] = None) -> Any:
    """Run ``job`` to the end and return its result. ``on_progress`` sees every yield; if
    ``cancel`` is set between yields the job is closed and :class:`Cancelled` raised."""
    try:
        while True:
            if cancel is not None and cancel.cancelled:
                job.close()
                raise Cancelled()
            p = next(job)
            if on_progress is not None and isinstance(p, Progress):
                on_progress(p)
    except StopIteration as stop:
        return stop.value


def run_job(job: Job, desc: str = "", quiet: bool = False) -> Any:
    """Run a job in the terminal with a progress bar on stderr (for the CLI)."""
    if quiet or not sys.stderr:
        return drain(job)
    from tqdm import tqdm

    bar = tqdm(total=None, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True,
               disable=None, unit="")
    last = [time.monotonic()]

    def show(p: Progress) -> None:
        if p.total is not None and bar.total != p.total:
            bar.total = p.total
        bar.n = p.done
        if p.message:
            bar.set_postfix_str(p.message, refresh=False)
        now = time.monotonic()
        if now - last[0] > 0.1:
            bar.refresh()
            last[0] = now

    try:
        return drain(job, show)
    finally:
        bar.close()
