"""The FSWatcher chart: inotify on a tree, debounced, published as ``cp.fs.changed``.

::

    fs_chart
    ├── fs_watching          FS_EVENTS: a batch from the reader feeds the debouncer;
    │   │                    TICK (the one alarm): publish the files that settled;
    │   │                    FS_PENDING: answer which files are still settling
    │   ├── fs_live          events are all there
    │   └── fs_rescanning    the kernel's queue overflowed: RESCAN walks the tree
    │                        again and the debouncer reports what differs
    └── fs_stopped           HALT (stop()) or the root went away: the reader, the
                             descriptor and the alarm are closed

The work is in plain modules: :mod:`~computepods.watch.tree` (watches,
scans, what raw events mean), :mod:`~computepods.watch.debounce` (quiet periods on
one deadline heap: when a file is reported, and as what) and
:mod:`~computepods.watch.reader` (the thread that reads the descriptor).

Each report carries the file's ``size`` and ``mtime_ns`` from ``lstat`` at
report time.  The chefs' commits of outputs (renames out of
``.computepods/``) are not news to the pod that recorded them: its
MajorDomo tells its watcher (``COMMITTED`` on the pod's fabric, with the
stat it recorded), and a file that settles with exactly that stat is not
reported.  The rename that commits an output the MajorDomo sent to be
built (``COMMITTING``, with the run message) waits for that word, two
seconds at most, instead of settling at once.  Nor is a file a build
request found gone while the watcher still had it settling (``COMMITTED``
with None: the MajorDomo heard it then), if it settles gone.  A commit
whose echo settles before the MajorDomo's word arrives is reported, and
the MajorDomo drops an ``fs.changed`` whose (size, mtime_ns) equals the
output it recorded, so a build never triggers itself either way.

:meth:`FSWatcher.pending_now` tells another thread, at once, which files
have events not yet reported (a build request judges them afresh instead of
waiting out their quiet period); :meth:`FSWatcher.wait_settled` waits,
bounded, until no file is in its quiet period.
"""
from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path
from typing import Callable, Iterable

from miros import return_status, spy_on

from computepods.bus import messages as m
from computepods.bus import payloads
from computepods.bus.protocol import Bus
from computepods.clock import Clock, SystemClock
from computepods.watch.debounce import ANYTHING, MAX_DELAY_S, QUIET_S, Debouncer, FileStat
from computepods.watch.reader import EventReader
from computepods.watch.tree import GONE, OVERFLOW, InotifyTree
from computepods.charts.base import Chart

PENDING_WAIT_S = 2.0       # pending_now waits at most this long for the chart's answer

log = logging.getLogger("computepods.watcher")


@spy_on
def fs_chart(fs: "FSWatcher", e):
    if e.signal_name == "INIT_SIGNAL":
        return fs.trans(fs_watching)
    fs.temp.fun = fs.top
    return return_status.SUPER


@spy_on
def fs_watching(fs: "FSWatcher", e):
    sig = e.signal_name
    if sig == "ENTRY_SIGNAL":
        fs.reader.start()
        return return_status.HANDLED
    if sig == "INIT_SIGNAL":
        return fs.trans(fs_live)
    if sig == m.FS_EVENTS:
        outcome = fs.take(e.payload)
        if outcome == GONE:
            fs.root_gone()
            return fs.trans(fs_stopped)
        if outcome == OVERFLOW:
            return fs.trans(fs_rescanning)
        return return_status.HANDLED
    if sig == m.TICK:
        fs.publish_due()
        return return_status.HANDLED
    if sig == m.FS_PENDING:
        e.payload.put(fs.pending_paths())
        return return_status.HANDLED
    if sig == m.COMMITTED:
        fs.expect(e.payload)
        return return_status.HANDLED
    if sig == m.COMMITTING:
        fs.committing(e.payload)
        return return_status.HANDLED
    if sig == m.HALT:
        return fs.trans(fs_stopped)
    fs.temp.fun = fs_chart
    return return_status.SUPER


@spy_on
def fs_live(fs: "FSWatcher", e):
    fs.temp.fun = fs_watching
    return return_status.SUPER


@spy_on
def fs_rescanning(fs: "FSWatcher", e):
    sig = e.signal_name
    if sig == "ENTRY_SIGNAL":
        fs.set_rescanning(True)
        fs.post(m.RESCAN)              # after the batches already queued
        return return_status.HANDLED
    if sig == m.FS_EVENTS:
        # Another overflow before the rescan: the one rescan covers it.
        if fs.take(e.payload) == GONE:
            fs.root_gone()
            return fs.trans(fs_stopped)
        return return_status.HANDLED
    if sig == m.RESCAN:
        fs.rescan()
        return fs.trans(fs_live)
    if sig == m.FS_PENDING:         # events were lost: anything may have changed
        e.payload.put([ANYTHING])
        return return_status.HANDLED
    if sig == "EXIT_SIGNAL":
        fs.set_rescanning(False)
        return return_status.HANDLED
    fs.temp.fun = fs_watching
    return return_status.SUPER


@spy_on
def fs_stopped(fs: "FSWatcher", e):
    sig = e.signal_name
    if sig == "ENTRY_SIGNAL":
        fs.close_sources()
        return return_status.HANDLED
    if sig == m.FS_EVENTS:
        fs.batch_done()                # read before the stop: nothing to do with it
        return return_status.HANDLED
    if sig in (m.TICK, m.RESCAN, m.HALT):
        return return_status.HANDLED
    if sig == m.FS_PENDING:
        e.payload.put([ANYTHING])
        return return_status.HANDLED
    fs.temp.fun = fs_chart
    return return_status.SUPER


class FSWatcher(Chart):
    """Watches ``root`` and publishes ``cp.fs.changed`` for ``pod``.

    ``ignore`` and ``stream`` are the project's patterns (docs/architecture.md §3);
    ``quiet_s`` and ``max_delay_s`` the debounce's (see
    :mod:`computepods.watch.debounce`); ``clock`` a :class:`~computepods.clock.SystemClock`
    (default) or a ``SimClock`` in tests.  The tree is watched and scanned
    when the chart is made: every change after the constructor returns is
    seen.
    """

    initial_state = fs_chart
    subscriptions = (m.COMMITTED, m.COMMITTING)   # from the MajorDomo on its fabric, if any

    def __init__(self, bridge: Bus, root: Path, *, pod: str, ignore: Iterable[str] = (),
                 stream: Iterable[str] = (), quiet_s: float = QUIET_S,
                 max_delay_s: float = MAX_DELAY_S, clock: Clock | None = None, **kw):
        super().__init__(f"watcher:{pod}", **kw)
        self.bridge = bridge
        self.pod = pod
        self.clock = clock or SystemClock()
        self.tree = InotifyTree(root, ignore)
        self.root = self.tree.root
        try:
            self.debouncer = Debouncer(self.tree.stat, quiet_s=quiet_s,
                                       max_delay_s=max_delay_s, stream=stream)
            self.debouncer.scanned(self.tree.watch_tree(""))
        except Exception:                  # e.g. the watch limit: do not leak the descriptor
            self.tree.close()
            raise
        self.gone = False                  # the watched directory itself went away
        self._on_stopped: list[Callable[[], None]] = []
        self.published = 0                 # cp.fs.changed messages sent
        self.rescans = 0
        self._armed: float | None = None
        self._settle = threading.Condition()
        self._inflight = 0                 # batches read from the descriptor, not yet fed
        self._idle = True
        self._rescanning = False
        self._stopped = False
        self.alarm = self.clock.alarm(lambda: self.post(m.TICK), name=f"{self.name}:alarm")
        self.reader = EventReader(self.tree, self._deliver, self._reading,
                                  name=f"{self.name}:reader")

    # -- what the states call ----------------------------------------------------------
    def take(self, events: list) -> str | None:
        """Feed a batch to the debouncer and set the alarm; OVERFLOW/GONE as apply() says."""
        now = self.clock.monotonic()
        outcome = self.tree.apply(events, self.debouncer, now) if events else None
        self.rearm(now)
        self.batch_done()
        return outcome

    def publish_due(self) -> None:
        now = self.clock.monotonic()
        self._armed = None
        root = str(self.root)
        reports = self.debouncer.due(now)
        # A burst says how much is to come: events the kernel still holds, or
        # read and not yet fed to the debouncer, count as one file at least.
        unread = 1 if reports and (self._inflight or self.tree.unread()) else 0
        left = len(self.debouncer.pending) + len(reports) + unread
        for report in reports:
            left -= 1
            self.bridge.publish(m.FS_CHANGED, payloads.FsChanged(
                self.pod, root, report.path, report.kind, report.moved_from, report.size,
                report.mtime_ns, list(report.range) if report.range else None,
                settling=left).to_dict())
            self.published += 1
        self.rearm(now)
        self._update_settled()

    def expect(self, commits: dict) -> None:
        """``{path: (size, mtime_ns, inode)}``: outputs the pod just recorded;
        ``{path: None}``: files a build request found gone (already heard)."""
        now = self.clock.monotonic()
        self.debouncer.expect({path: FileStat(*st) if st is not None else None
                               for path, st in commits.items()}, now)
        self.rearm(now)                    # an output held for this word settles now

    def committing(self, outputs: list[str]) -> None:
        """Outputs the pod sent chefs to build: their commits wait for COMMITTED."""
        self.debouncer.committing(outputs)

    def rescan(self) -> None:
        self.rescans += 1
        now = self.clock.monotonic()
        log.warning("watcher: events of %s were lost (inotify queue overflow); rescanning",
                    self.root)
        self.tree.rescan(self.debouncer, now)
        self.rearm(now)

    def rearm(self, now: float) -> None:
        """Point the one alarm at the earliest deadline; what is due now is ticked now."""
        deadline = self.debouncer.next_deadline()
        if deadline is None:
            if self._armed is not None:
                self.alarm.cancel()
                self._armed = None
        elif deadline <= now:
            if self._armed != now:
                self.alarm.cancel()
                self._armed = now
                self.post(m.TICK)          # to itself: after the batches already queued
        elif deadline != self._armed:
            self._armed = deadline
            self.alarm.set(deadline)

    def close_sources(self) -> None:
        """Stop the reader, then close the descriptor and the alarm (idempotent)."""
        self.reader.stop()
        self.tree.close()
        self.alarm.close()
        with self._settle:
            if self._stopped:
                return
            self._stopped = True
            self._settle.notify_all()
        for callback in self._on_stopped:
            callback()

    def root_gone(self) -> None:
        self.gone = True
        log.error("watcher: %s went away; stopped watching it", self.root)

    def when_stopped(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the chart's thread) once the chart stops
        watching, by stop() or because the directory went away (``gone``)."""
        self._on_stopped.append(callback)

    # -- settling ----------------------------------------------------------------------
    def _reading(self) -> None:            # reader thread, before each read
        with self._settle:
            self._inflight += 1

    def _deliver(self, events: list) -> None:     # reader thread, after each read
        if events:
            self.post(m.FS_EVENTS, events)
        else:
            self.batch_done()

    def batch_done(self) -> None:
        with self._settle:
            self._inflight -= 1 if self._inflight else 0
            self._idle = not self.debouncer.settling(self.clock.monotonic())
            self._settle.notify_all()

    def set_rescanning(self, on: bool) -> None:
        with self._settle:
            self._rescanning = on
            self._idle = not self.debouncer.settling(self.clock.monotonic())
            self._settle.notify_all()

    def _update_settled(self) -> None:
        with self._settle:
            self._idle = not self.debouncer.settling(self.clock.monotonic())
            self._settle.notify_all()

    def _settled(self) -> bool:
        return self._stopped or (self._idle and not self._inflight and not self._rescanning
                                 and self.tree.unread() == 0)

    def pending_now(self, timeout: float = PENDING_WAIT_S) -> list[str]:
        """The files with events not yet reported as settled, as of now
        (thread-safe): a build asked for now must judge them afresh rather
        than wait out their quiet period.  The events the kernel holds are
        first read and fed to the chart (their files then count); ``["*"]``
        (ANYTHING) when events were lost or the chart does not answer in time."""
        answer: "queue.Queue[list[str]]" = queue.Queue()
        with self._settle:             # every event queued before this call is read and fed
            read = self._settle.wait_for(
                lambda: self._stopped or (not self._inflight and self.tree.unread() == 0),
                timeout)
        if not read or not self.running:
            return [ANYTHING]
        self.post(m.FS_PENDING, answer)   # behind the batches already posted
        try:
            return answer.get(timeout=timeout)
        except queue.Empty:
            return [ANYTHING]

    def pending_paths(self) -> list[str]:
        return sorted(self.debouncer.pending)

    def wait_settled(self, timeout: float) -> bool:
        """Wait until no file is in its quiet period and no event is unread:
        True then, False after ``timeout`` seconds (thread-safe)."""
        with self._settle:
            return self._settle.wait_for(self._settled, timeout)

    # -- life cycle --------------------------------------------------------------------
    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching: the reader thread ends and the descriptor is closed."""
        if self.running:
            self.post(m.HALT)
        super().stop(timeout)
        self.close_sources()
