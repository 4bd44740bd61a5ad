"""The FSWatcher's debounce, pinned as golden spy() traces (tests/stepped.py).

The chart is stepped on the test's thread with a SimClock; its files are
real and inotify is real.  Each change the test makes after the chart
starts is one syscall, so one inotify event, so one FS_EVENTS batch from
the reader thread: the test waits for that batch to be queued (never for
time) and then steps it, so each trace is the same on every run.  (A
change made before the chart starts would be read while it enters its
states, and the reader's post would land in the middle of that trace.)
"""
from __future__ import annotations

import os
import queue

import pytest

from computepods.bus import messages as m
from computepods.bus.loopback import LoopbackBus
from computepods.charts.watcher import FSWatcher
from computepods.clock import SimClock
from helpers import wait_for
from stepped import NO_TRACE, settle, start_stepped, state_of

QUIET_S = 0.5              # the debounce's quiet period here, in SimClock seconds
MAX_DELAY_S = 5.0          # how long a file held open may stay quiet before it counts
QUEUED = "<- Queued:(0) Deferred:(0)"
STARTED = ["START", "SEARCH_FOR_SUPER_SIGNAL:fs_chart", "ENTRY_SIGNAL:fs_chart",
           "INIT_SIGNAL:fs_chart", "SEARCH_FOR_SUPER_SIGNAL:fs_watching",
           "ENTRY_SIGNAL:fs_watching", "INIT_SIGNAL:fs_watching",
           "SEARCH_FOR_SUPER_SIGNAL:fs_live", "ENTRY_SIGNAL:fs_live", "INIT_SIGNAL:fs_live", QUEUED]
A_BATCH = ["FS_EVENTS:fs_live", "FS_EVENTS:fs_watching", "FS_EVENTS:fs_watching:HOOK", QUEUED]
A_TICK = ["TICK:fs_live", "TICK:fs_watching", "TICK:fs_watching:HOOK", QUEUED]


class Watched:
    """An FSWatcher on a real directory, stepped, publishing on a loopback bus."""

    def __init__(self, root):
        self.root, self.clock, self.bus = root, SimClock(), LoopbackBus(name="test")
        self.heard: "queue.Queue[m.Message]" = queue.Queue()
        self.bus.listen(m.FS_CHANGED, self.heard)
        self.fs = FSWatcher(self.bus, root, pod="p", quiet_s=QUIET_S, max_delay_s=MAX_DELAY_S,
                            clock=self.clock, **NO_TRACE)

    def start(self) -> list[str]:
        return start_stepped(self.fs)

    def batch(self) -> list[str]:
        """Step the next batch the reader thread reads, once it is queued."""
        wait_for(lambda: self.fs.events_waiting() >= 1, what="a batch of inotify events")
        return settle(self.fs)

    def after(self, seconds: float) -> list[str]:
        self.clock.advance(seconds)
        return settle(self.fs)

    def reports(self, count: int) -> list[tuple[str, str]]:
        """The (path, kind) of every cp.fs.changed, once `count` were sent."""
        assert self.fs.published == count
        got = [self.heard.get(timeout=5).data for _ in range(count)]
        return [(d["path"], d["kind"]) for d in got]

    def stop(self) -> None:
        self.fs.post(m.HALT)
        settle(self.fs)
        self.fs.stop()
        self.bus.stop()


@pytest.fixture
def watched(tmp_path):
    made = []

    def make() -> Watched:
        made.append(Watched(tmp_path))
        return made[-1]
    yield make
    for w in made:
        w.stop()


def test_a_new_file_is_reported_once_its_quiet_period_ends(watched, tmp_path):
    w = watched()
    assert w.start() == STARTED
    fd = os.open(tmp_path / "a.txt", os.O_WRONLY | os.O_CREAT)
    assert w.batch() == A_BATCH                   # created
    os.write(fd, b"x")
    assert w.batch() == A_BATCH                   # modified
    os.close(fd)
    assert w.batch() == A_BATCH                   # closed
    assert w.after(QUIET_S - 0.01) == []          # the alarm is not due: nothing happens
    assert w.after(0.01) == A_TICK
    assert w.reports(1) == [("a.txt", "created")]
    assert w.after(10 * QUIET_S) == []            # once, and the alarm is not set again


def test_a_file_held_open_is_one_change_reported_after_its_writer_closes_it(watched, tmp_path):
    w = watched()
    assert w.start() == STARTED
    fd = os.open(tmp_path / "log.txt", os.O_WRONLY | os.O_CREAT)
    try:
        assert w.batch() == A_BATCH                   # created
        os.write(fd, b"first chunk\n")
        assert w.batch() == A_BATCH                   # modified, still open
        assert w.after(QUIET_S) == []                 # a pause is not the end: no tick
        os.write(fd, b"second chunk\n")
        assert w.batch() == A_BATCH
        assert w.after(QUIET_S) == []
    finally:
        os.close(fd)
    assert w.batch() == A_BATCH                       # closed: a new path waits its quiet
    assert w.fs.published == 0
    assert w.after(QUIET_S) == A_TICK
    assert w.reports(1) == [("log.txt", "created")]


def test_an_existing_file_rewritten_is_reported_as_its_writer_closes_it(watched, tmp_path):
    (tmp_path / "doc.txt").write_text("old\n")        # scanned when the chart is made
    w = watched()
    assert w.start() == STARTED
    fd = os.open(tmp_path / "doc.txt", os.O_WRONLY | os.O_TRUNC)   # truncated: one event
    try:
        assert w.batch() == A_BATCH
        os.write(fd, b"new\n")
        assert w.batch() == A_BATCH
    finally:
        os.close(fd)
    # A close-write on a path it knew ends its quiet period at once: the
    # chart ticks itself, behind the batch, without the clock.
    assert w.batch() == ["FS_EVENTS:fs_live", "FS_EVENTS:fs_watching", "POST_FIFO:TICK",
                         "FS_EVENTS:fs_watching:HOOK", "<- Queued:(1) Deferred:(0)", *A_TICK]
    assert w.reports(1) == [("doc.txt", "modified")]


def test_a_temporary_written_and_removed_in_its_quiet_period_is_never_reported(watched, tmp_path):
    w = watched()
    assert w.start() == STARTED
    fd = os.open(tmp_path / "4913", os.O_WRONLY | os.O_CREAT)          # vim's probe
    assert w.batch() == A_BATCH                   # created
    os.close(fd)
    assert w.batch() == A_BATCH                   # closed: a new path still waits
    (tmp_path / "4913").unlink()
    assert w.batch() == A_BATCH                   # deleted
    assert w.after(QUIET_S) == A_TICK             # its deadline: it never existed
    assert w.fs.published == 0 and w.fs.pending_paths() == []


def test_a_halt_stops_watching_and_what_comes_after_is_ignored(watched, tmp_path):
    w = watched()
    assert w.start() == STARTED
    w.fs.post(m.HALT)
    assert settle(w.fs) == [
        "HALT:fs_live", "HALT:fs_watching", "EXIT_SIGNAL:fs_live",
        "SEARCH_FOR_SUPER_SIGNAL:fs_stopped", "SEARCH_FOR_SUPER_SIGNAL:fs_watching",
        "EXIT_SIGNAL:fs_watching", "ENTRY_SIGNAL:fs_stopped", "INIT_SIGNAL:fs_stopped", QUEUED]
    assert state_of(w.fs) == "fs_stopped"
    w.fs.post(m.TICK)
    assert settle(w.fs) == ["TICK:fs_stopped", "TICK:fs_stopped:HOOK", QUEUED]
