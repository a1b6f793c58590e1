"""The jobs panel says what waits: running jobs on top, then the queued ones in the order they
will start (priority first) marked "queued", then finished ones, newest first; and the pool
starts the queued job of highest priority first."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("PySide6")


def test_running_on_top_then_queued_by_priority(qtbot):
    from explorer.gui.jobs_panel import JobsPanel
    from explorer.gui.workers import JobRunner
    from explorer.core.jobs import Progress

    runner = JobRunner(max_threads=1)
    panel = JobsPanel(runner)
    qtbot.addWidget(panel)
    gate = threading.Event()
    started = []

    def blocker():
        started.append("blocker")
        yield Progress(0, 1, "holding the only worker")
        gate.wait(20)
        return None

    def quick(name):
        def job():
            started.append(name)
            yield Progress(1, 1, name)
        return job

    runner.submit("blocker", blocker)
    qtbot.waitUntil(lambda: started == ["blocker"], timeout=5000)
    runner.submit("low", quick("low"), priority=1)
    runner.submit("high", quick("high"), priority=9)
    runner.submit("mid", quick("mid"), priority=5)
    panel._tick()
    rows = panel.job_rows()
    assert [r.handle.name for r in rows] == ["blocker", "high", "mid", "low"]
    assert [r.bar.format() for r in rows[1:]] == ["queued"] * 3
    gate.set()
    qtbot.waitUntil(lambda: len(started) == 4, timeout=10000)
    assert started == ["blocker", "high", "mid", "low"]
    runner.wait(5000)
    qtbot.waitUntil(lambda: all(r.handle.state == "finished" for r in panel.job_rows()), timeout=5000)
    panel._tick()
    # finished: newest submission first
    assert [r.handle.name for r in panel.job_rows()] == ["mid", "high", "low", "blocker"]
    assert [r.bar.format() for r in panel.job_rows()] == ["done"] * 4


def test_a_stop_that_keeps_the_result_reads_stopped_not_cancelled(qtbot):
    """A job submitted with a stop note (a fine-tune keeps its weights) ends "stopped (note)"
    when cancelled, and its owner can change the note later; a plain job still ends
    "cancelled"."""
    from explorer.gui.jobs_panel import JobsPanel
    from explorer.gui.workers import JobRunner
    from explorer.core.jobs import Progress

    runner = JobRunner(max_threads=2)
    panel = JobsPanel(runner)
    qtbot.addWidget(panel)

    def endless():
        i = 0
        while True:
            i += 1
            yield Progress(i, None, "working")
            threading.Event().wait(0.01)

    keeps = runner.submit("fine-tune", endless, stop_note="weights kept")
    plain = runner.submit("embed", endless)
    qtbot.waitUntil(lambda: keeps.last_progress is not None and plain.last_progress is not None, timeout=5000)
    rows = {r.handle.name: r for r in panel.job_rows()}
    assert rows["fine-tune"].cancel.text() == "Stop" and rows["embed"].cancel.text() == "Cancel"
    for r in rows.values():
        r.cancel.click()
    qtbot.waitUntil(lambda: keeps.state == "stopped" and plain.state == "cancelled", timeout=5000)
    assert rows["fine-tune"].bar.format() == "stopped (weights kept)"
    assert rows["embed"].bar.format() == "cancelled"
    keeps.stop_note = "weights saved"
    panel._tick()
    assert rows["fine-tune"].bar.format() == "stopped (weights saved)"
    assert not runner.active()


def test_heavy_jobs_take_turns_by_priority_while_light_ones_run_beside(qtbot):
    # the compute lane: one heavy job at a time (a map, an embedding, a diagnosis each keep
    # every core busy), the waiting ones by priority; a light job does not wait for them; a
    # queued heavy job cancelled ends at once and never runs
    from explorer.core.jobs import Progress
    from explorer.gui.workers import JobRunner

    runner = JobRunner(max_threads=2)
    gate, lock = threading.Event(), threading.Lock()
    log, running, most = [], [0], [0]

    def heavy(name, hold=False):
        def job():
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
                log.append(name)
            yield Progress(0, 1, name)
            if hold:
                gate.wait(20)
            with lock:
                running[0] -= 1
        return job

    def light():
        yield Progress(1, 1, "light")
        return "done"

    a = runner.submit("A", heavy("A", hold=True), heavy=True, priority=1)
    qtbot.waitUntil(lambda: log == ["A"], timeout=5000)
    b = runner.submit("B", heavy("B"), heavy=True, priority=5)
    c = runner.submit("C", heavy("C"), heavy=True, priority=9)
    d = runner.submit("D", heavy("D"), heavy=True, priority=7)
    got = []
    runner.submit("L", light, got.append)
    qtbot.waitUntil(lambda: got == ["done"], timeout=5000)  # beside A, which holds the lane
    assert log == ["A"] and [j.state for j in (b, c, d)] == ["queued"] * 3
    d.cancel()
    qtbot.waitUntil(lambda: d.state == "cancelled", timeout=2000)  # before A ends
    assert a.state == "running"
    gate.set()
    qtbot.waitUntil(lambda: b.state == c.state == "finished", timeout=10000)
    runner.wait(5000)
    assert log == ["A", "C", "B"] and most[0] == 1
