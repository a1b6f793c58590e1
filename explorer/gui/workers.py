"""Run core jobs (generators, see :mod:`explorer.core.jobs`) off the UI thread.

A :class:`JobHandle` lives on the GUI thread; its runnable iterates the job's generator in Qt's
thread pool and reports through queued signals, throttled so a fast job cannot flood the event
loop. Cancel is cooperative: the worker stops iterating between yields and closes the
generator, so the job's ``finally`` blocks clean up. The job itself never touches Qt.
"""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any, Callable, Optional

from PySide6 import QtCore

from explorer.core.errors import Cancelled, ExplorerError
from explorer.gui import gc_thread
from explorer.core.jobs import Progress

PROGRESS_INTERVAL_S = 0.05


class JobHandle(QtCore.QObject):
    """One running job. Signals are delivered on the GUI thread."""

    progress = QtCore.Signal(object)  # Progress
    finished = QtCore.Signal(object)  # the job's return value
    failed = QtCore.Signal(str, str)  # one-line message, technical details
    cancelled = QtCore.Signal()
    done = QtCore.Signal()  # after any of the three above

    def __init__(self, name: str, factory: Callable[[], Any], parent: Optional[QtCore.QObject] = None,
                 stop_note: Optional[str] = None) -> None:
        super().__init__(parent)
        self.name = name
        self._factory = factory
        self._cancel = threading.Event()
        self.started_at: Optional[float] = None
        self.ended_at: Optional[float] = None
        self.last_progress: Optional[Progress] = None
        #: set for a job whose early end keeps what it made (a fine-tune keeps its weights): a
        #: cancel then ends it "stopped", not "cancelled", and the jobs panel shows this note
        #: ("weights kept"); the owner may update it later ("weights saved").
        self.stop_note = stop_note
        self.state = "queued"  # queued | running | finished | failed | cancelled | stopped
        self.progress.connect(self._remember)
        self.finished.connect(lambda _r: self._end("finished"))
        self.failed.connect(lambda _m, _d: self._end("failed"))
        self.cancelled.connect(lambda: self._end("stopped" if self.stop_note else "cancelled"))

    def _remember(self, p: Progress) -> None:
        self.last_progress = p

    def _end(self, state: str) -> None:
        self.state = state
        self.ended_at = time.monotonic()
        self.done.emit()

    def cancel(self) -> None:
        self._cancel.set()
        lane = getattr(self, "_lane", None)
        if lane is not None:
            lane._drop(self)  # still waiting for the compute lane: ends now, never starts

    @property
    def is_cancel_requested(self) -> bool:
        return self._cancel.is_set()

    @property
    def elapsed(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.ended_at or time.monotonic()) - self.started_at

    def remaining(self) -> Optional[float]:
        p = self.last_progress
        if p is None or not p.fraction or self.started_at is None:
            return None
        f = p.fraction
        return self.elapsed * (1 - f) / f if f > 0 else None

    # -- runs in a pool thread --------------------------------------------------------------
    def _run(self) -> None:
        self.started_at = time.monotonic()
        self.state = "running"
        gen = None
        try:
            gen = self._factory()
            last_emit = 0.0
            pending: Optional[Progress] = None
            while True:
                if self._cancel.is_set():
                    gen.close()
                    self.cancelled.emit()
                    return
                try:
                    p = next(gen)
                except StopIteration as stop:
                    if pending is not None:
                        self.progress.emit(pending)
                    self.finished.emit(stop.value)
                    return
                if isinstance(p, Progress):
                    now = time.monotonic()
                    if now - last_emit >= PROGRESS_INTERVAL_S or p.partial is not None:
                        self.progress.emit(p)
                        last_emit, pending = now, None
                    else:
                        pending = p
        except Cancelled:
            self.cancelled.emit()
        except ExplorerError as exc:
            self.failed.emit(str(exc), traceback.format_exc())
        except MemoryError:
            self.failed.emit(f"{self.name}: out of memory.", traceback.format_exc())
        except Exception as exc:  # a bug: still never take the app down
            self.failed.emit(f"{self.name} failed: {type(exc).__name__}: {exc}", traceback.format_exc())


class _Runnable(QtCore.QRunnable):
    def __init__(self, handle: JobHandle, lane: Optional["JobRunner"] = None) -> None:
        super().__init__()
        self.handle = handle
        self.lane = lane
        self.setAutoDelete(True)

    def run(self) -> None:  # noqa: D401 (Qt name)
        try:
            self.handle._run()
        finally:
            if self.lane is not None:
                self.lane._lane_done()


class JobRunner(QtCore.QObject):
    """Starts jobs and keeps the list the jobs panel shows. ``exclusive`` names a slot: starting
    a job in a slot cancels the one already running there (Orange's pattern), so re-running a
    projection with new settings supersedes the old run.

    ``heavy`` jobs (the pipeline's embeddings, maps and diagnostics: each already keeps every
    core busy) go through one compute lane: at most ``compute_slots`` of them run at once, the
    waiting ones start by priority, then in order of submission, and the pool's other threads
    stay free for light jobs. Two heavy jobs side by side only slow each other down (after
    "embed all", every model's maps and diagnosis used to start together), and the one on
    screen is the one the user waits for."""

    job_added = QtCore.Signal(object)  # JobHandle

    def __init__(self, parent: Optional[QtCore.QObject] = None, max_threads: int = 2,
                 compute_slots: int = 1) -> None:
        super().__init__(parent)
        gc_thread.hold(self)  # no cyclic collection on the pool's threads while jobs can run
        self.pool = QtCore.QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self.compute_slots = max(1, min(int(compute_slots), max_threads))
        self._lane: list[JobHandle] = []  # heavy jobs waiting for the compute lane
        self._lane_busy = 0
        self._lane_lock = threading.Lock()
        self._seq = 0
        self.jobs: list[JobHandle] = []
        self._slots: dict[str, JobHandle] = {}
        self._owners: dict[int, dict] = {}  # id(owner) -> {"alive": bool, "handles": [...]}

    def submit(self, name: str, factory: Callable[[], Any],
               on_result: Optional[Callable[[Any], None]] = None,
               on_error: Optional[Callable[[str, str], None]] = None,
               exclusive: Optional[str] = None, owner: Optional[QtCore.QObject] = None,
               priority: int = 0, stop_note: Optional[str] = None, heavy: bool = False) -> JobHandle:
        """Start ``factory()`` in the pool. With an ``owner`` (a view), the job is cancelled and
        its callbacks are never called once the owner is released (:meth:`release_owner`) or
        destroyed, so a closed tab is never called back. Among queued jobs the higher
        ``priority`` starts first (the map on screen before the others). ``stop_note``: see
        :attr:`JobHandle.stop_note` (a cancel keeps the job's result: it ends "stopped").
        ``heavy``: through the compute lane (see the class)."""
        if exclusive and exclusive in self._slots and self._slots[exclusive].state in ("queued", "running"):
            self._slots[exclusive].cancel()
        handle = JobHandle(name, factory, self, stop_note=stop_note)
        live = self._owner_entry(owner) if owner is not None else None
        for sig, fn in ((handle.finished, on_result), (handle.failed, on_error)):
            if fn is None:
                continue
            if live is None:
                sig.connect(fn)
            else:
                sig.connect(lambda *a, fn=fn, live=live: fn(*a) if live["alive"] else None)
        if live is not None:
            live["handles"].append(handle)
        if exclusive:
            self._slots[exclusive] = handle
        self.jobs.append(handle)
        self.job_added.emit(handle)
        handle.priority = priority
        self._seq += 1
        handle.seq = self._seq
        if heavy:
            handle._lane = self
            with self._lane_lock:
                self._lane.append(handle)
                self._start_heavy()
        else:
            self.pool.start(_Runnable(handle), priority)
        return handle

    # -- the compute lane (also called from pool threads, hence the lock) --------------------
    def _start_heavy(self) -> None:
        while self._lane_busy < self.compute_slots and self._lane:
            h = max(self._lane, key=lambda j: (j.priority, -j.seq))
            self._lane.remove(h)
            h._lane = None
            self._lane_busy += 1
            self.pool.start(_Runnable(h, lane=self), h.priority)

    def _lane_done(self) -> None:
        with self._lane_lock:
            self._lane_busy -= 1
            self._start_heavy()

    def _drop(self, handle: JobHandle) -> None:
        with self._lane_lock:
            if handle not in self._lane:
                return
            self._lane.remove(handle)
            handle._lane = None
        handle.cancelled.emit()

    def _owner_entry(self, owner: QtCore.QObject) -> dict:
        key = id(owner)
        entry = self._owners.get(key)
        if entry is None:
            entry = self._owners[key] = {"alive": True, "handles": []}
            owner.destroyed.connect(lambda *_a, key=key: self._release_key(key))
        return entry

    def release_owner(self, owner: QtCore.QObject) -> None:
        """Cancel ``owner``'s jobs and drop their callbacks (the view is closing)."""
        self._release_key(id(owner))

    def _release_key(self, key: int) -> None:
        entry = self._owners.pop(key, None)
        if entry is None:
            return
        entry["alive"] = False
        for h in entry["handles"]:
            if h.state in ("queued", "running"):
                h.cancel()

    def active(self) -> list[JobHandle]:
        return [j for j in self.jobs if j.state in ("queued", "running")]

    def cancel_all(self) -> None:
        for j in self.active():
            j.cancel()

    def wait(self, timeout_ms: int = 30000) -> bool:
        return self.pool.waitForDone(timeout_ms)
