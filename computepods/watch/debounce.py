"""Debounce: report a file when it *stops* changing (docs/architecture.md §1).

This module is the FSWatcher's judgement, with no threads and no clock of
its own: the watcher tells it what inotify saw (``changed``, ``closed``,
``removed``, ``moved``, ``rescanned``) with the time, asks for
:meth:`Debouncer.next_deadline`, and at that time calls :meth:`Debouncer.due`
for the :class:`Report` s to publish.  One heap holds every file's deadline,
so 10,000 files in their quiet period cost one timer, not 10,000.

The rules:

* **Quiet period.** Every event on a file moves its deadline to
  ``quiet_s`` after that event.  At the deadline the file is settled.
  A file a writer still holds open (created or written, not yet
  close-written) is not settled by a pause shorter than ``max_delay_s``: a
  writer on a loaded machine can stall between its open and its close, and
  the half written file is not a change worth reporting.  It waits for its
  close, or for a whole ``max_delay_s`` window without an event (a
  database held open, idle: then it has stopped changing).
* **Close-write.** ``IN_CLOSE_WRITE`` (or a rename onto the path) on a path
  that existed when it was last reported or scanned ends its quiet period at
  once (``close_grace_s`` later: 0, the end of the batch), unless it is
  renamed away or deleted first.  On a *new* path it does not: a temporary
  that is closed and then renamed away or deleted is exactly a new path, and
  it must never be reported however slowly its writer gets to the rename.
* **Growing.** A file whose events never stop for ``quiet_s``, or that a
  writer holds open and writes on, is not reported while that goes on: its
  windows of ``max_delay_s`` pass, and it is reported once, when its writer
  closes it or a window passes without an event.  A slow writer (a file
  written in chunks a second apart, held open) is one change, never a
  series of partial ones.  Only files matching a ``stream`` pattern are
  reported while they grow, as ``growing``, every ``quiet_s``, with the
  byte range appended since their last report (``range: [start, end]``).
  A tool that sets a file's mtime after closing it (``tar -x``) gives a
  second report.
* **Only real changes.** A settled file is reported only if its stat
  ``(size, mtime_ns, inode)`` differs from what was last reported or
  scanned.  A temporary that appears and vanishes, or is renamed away,
  within its quiet period is never reported: at its deadline it does not
  exist and never did as far as anyone was told.  No content is hashed here
  (hashes are computed only where the stat changed, by whoever needs them):
  a rewrite with equal content has a new mtime and *is* reported.
* **Moves.** A rename of a reported file is one ``moved`` report on the new
  path (with ``moved_from``) when the old path is still gone at the new
  path's deadline; otherwise each path is judged on its own (vim renames the
  original to ``file~``, writes ``file`` anew and deletes ``file~``: one
  ``modified`` for ``file``, nothing for ``file~``).
"""
from __future__ import annotations

import heapq
import itertools
import os
import stat as stat_mod
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from computepods.project.patterns import PathPatterns

ANYTHING = "*"            # a file list meaning: events were lost, anything may have changed
QUIET_S = 0.05            # seconds without an event before a file counts as settled
MAX_DELAY_S = 1.0         # seconds of a held-open file's window (no event in one: settled)
CLOSE_GRACE_S = 0.0       # seconds after a close-write before a known file is settled
HOLD_S = 2.0              # seconds an output being built waits at most for the pod's word
EXPECTED_MAX = 100_000    # own commits awaited at once; past this the oldest are forgotten

CREATED, MODIFIED, DELETED, MOVED, GROWING = "created", "modified", "deleted", "moved", "growing"
KINDS = (CREATED, MODIFIED, DELETED, MOVED, GROWING)


@dataclass(frozen=True)
class FileStat:
    """What decides whether a file changed: no hashes (see the module doc)."""
    size: int
    mtime_ns: int
    ino: int


def lstat_file(path: str | os.PathLike) -> FileStat | None:
    """The stat of a file or symlink; None if it is absent or a directory."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat_mod.S_ISDIR(st.st_mode):
        return None
    return FileStat(st.st_size, st.st_mtime_ns, st.st_ino)


@dataclass(frozen=True)
class Report:
    """One ``cp.fs.changed`` to send (docs/architecture.md §5)."""
    path: str
    kind: str
    size: int | None = None
    mtime_ns: int | None = None
    moved_from: str | None = None
    range: tuple[int, int] | None = None


@dataclass
class _Pending:
    """A file in its quiet period."""
    first: float                     # first event of this window
    last: float                      # latest event
    deadline: float
    queued: float                    # the earliest deadline this path has in the heap
    closed: float | None = None      # when a close-write (or rename onto it) came last
    moved_from: str | None = None    # a reported path renamed onto this one
    moved_to: str | None = None      # where this path was renamed to
    writing: bool = False            # created or written since its last close-write
    wrote: bool = False              # written in this quiet period (IN_MODIFY, IN_CREATE)
    events: int = 0                  # events since `first`
    stream: bool = False             # matches a `stream` pattern
    since: float = 0.0               # first event of the whole busy spell (windows and all)


class Debouncer:
    """Per-file quiet periods on one deadline heap; see the module doc."""

    def __init__(self, stat: Callable[[str], FileStat | None], *,
                 quiet_s: float = QUIET_S, max_delay_s: float = MAX_DELAY_S,
                 close_grace_s: float = CLOSE_GRACE_S,
                 stream: PathPatterns | Iterable[str] = ()):
        if quiet_s < 0 or max_delay_s < quiet_s:
            raise ValueError(f"need 0 <= quiet_s ({quiet_s}) <= max_delay_s ({max_delay_s})")
        self.stat = stat
        self.quiet_s = quiet_s
        self.max_delay_s = max_delay_s
        self.close_grace_s = close_grace_s
        self.stream = stream if isinstance(stream, PathPatterns) else PathPatterns(stream)
        self.known: dict[str, FileStat] = {}      # as last reported or scanned
        self.expected: dict[str, FileStat | None] = {}   # what the pod knows, not yet settled
        self.coming: dict[str, None] = {}         # outputs sent to be built, word not yet in
        self.own = 0                              # own commits settled and not reported
        self.pending: dict[str, _Pending] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()

    def expect(self, commits: Mapping[str, FileStat | None], now: float | None = None) -> None:
        """Files the pod itself just committed, with their stat as it recorded
        them: when one settles with exactly that stat (size, mtime_ns, inode)
        it is not reported, since the pod already knows it.  Any other stat is
        reported as usual, so a write after the commit is never missed.
        None: the pod knows the file gone; it is not reported if it settles gone.
        One held for this word (:meth:`committing`) settles at ``now``."""
        expected = self.expected
        for path, st in commits.items():
            expected.pop(path, None)
            expected[path] = st
            if path not in self.coming:
                continue
            del self.coming[path]                        # held for this word: settles now
            if now is not None and (p := self.pending.get(path)) and p.deadline > now:
                p.deadline = now
                self._queue(path, p, now)
        _trim(expected)

    def committing(self, paths: Iterable[str]) -> None:
        """Outputs the pod sent chefs to build: the rename that commits one
        waits for the pod's word (:meth:`expect`), ``HOLD_S`` at most,
        instead of settling at once, so that its echo is no news.  (A chain
        sent ahead commits before the pod takes its results: each rewritten
        output of a layered edit came back as a cp.fs.changed.)"""
        for path in paths:
            self.coming.pop(path, None)
            self.coming[path] = None
        _trim(self.coming)

    # -- what inotify saw ------------------------------------------------------------
    def scanned(self, found: Mapping[str, FileStat]) -> None:
        """The first scan: what exists now is known, and not reported."""
        self.known.update(found)

    def changed(self, path: str, now: float, writing: bool = False) -> None:
        """Created, written or its metadata changed: (re)start the quiet period.
        ``writing``: a writer has it open (IN_CREATE of a file, IN_MODIFY)."""
        p = self._touch(path, now)
        p.closed = None
        p.writing = p.writing or writing
        p.wrote = p.wrote or writing
        if p.moved_to is not None:          # recreated after a rename away: a new file
            self._unlink_move(path, p)
        self._schedule(path, p)

    def closed(self, path: str, now: float) -> None:
        """IN_CLOSE_WRITE: a writer is done with it."""
        p = self._touch(path, now)
        p.closed = now
        p.writing = False
        self._schedule(path, p)

    def removed(self, path: str, now: float) -> None:
        """Deleted, or renamed away (a rename pair then calls :meth:`moved`)."""
        p = self._touch(path, now)
        p.closed = None
        p.writing = False
        if p.moved_from is not None:        # what was renamed here left again
            p.moved_from = None
        self._schedule(path, p)

    def moved(self, src: str | None, dst: str, now: float) -> None:
        """A rename within the tree (``src`` None: it came from outside or an ignored path).

        ``src`` was already :meth:`removed` when its half of the pair arrived.
        """
        p = self._touch(dst, now)
        p.closed = now                      # a rename moves a whole file
        p.writing = False
        if p.moved_to is not None:
            self._unlink_move(dst, p)
        origin = None
        if src is not None and src in self.pending:
            s = self.pending[src]
            # A temporary renamed twice still comes from the reported file.
            origin = src if src in self.known else s.moved_from
            s.moved_from = None
            s.moved_to = dst
        p.moved_from = origin
        self._schedule(dst, p)

    def removed_tree(self, prefix: str, now: float) -> None:
        """A directory was deleted or renamed away: every file below it may be gone."""
        below = prefix + "/"
        for path in [q for q in itertools.chain(self.known, self.pending) if q.startswith(below)]:
            self.removed(path, now)

    def rescanned(self, found: Mapping[str, FileStat], prefix: str, now: float) -> None:
        """A scan of ``prefix`` ("" for the whole tree) after events may have
        been missed (a new directory, a queue overflow): every file whose
        stat differs from the known one gets a quiet period, so what changed
        is reported and nothing else."""
        below = prefix + "/" if prefix else ""
        for path, st in found.items():
            if path in self.pending:
                # Its close-write may be among the lost events: a new quiet
                # period, and a writer still at it says so by its next IN_MODIFY.
                p = self._touch(path, now)
                p.writing = False
                self._schedule(path, p)
            elif self.known.get(path) != st:
                self.changed(path, now)
        for path in [q for q in self.known if q.startswith(below) and q not in found]:
            self.removed(path, now)

    # -- time ------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        """When :meth:`due` next has something to do (monotonic seconds)."""
        heap = self._heap
        while heap:
            deadline, _, path = heap[0]
            p = self.pending.get(path)
            if p is not None and p.queued == deadline:
                return deadline
            heapq.heappop(heap)                     # a stale entry
        return None

    def due(self, now: float) -> list[Report]:
        """Settle every file whose deadline has come; the reports, in deadline order."""
        reports: list[Report] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, path = heapq.heappop(heap)
            p = self.pending.get(path)
            if p is None or p.queued != deadline:
                continue                            # stale
            p.queued = float("inf")                 # out of the heap now
            if p.deadline > now:                    # moved on since it was queued
                self._queue(path, p, p.deadline)
                continue
            target = self.pending.get(p.moved_to) if p.moved_to else None
            if target is not None and target.moved_from == path:
                # Renamed away: the new path decides (a move, or a new file).
                self._queue(path, p, max(target.deadline, now))
                continue
            report = self._settle(path, p, now)
            if report is not None:
                reports.append(report)
        return reports

    @property
    def idle(self) -> bool:
        """No file is in its quiet period."""
        return not self.pending

    def settling(self, now: float) -> bool:
        """A file a build should wait for: in its quiet period, not a stream
        file, and busy for less than ``max_delay_s`` (a log held open and
        written on: waiting for it would be waiting for its writer to end)."""
        return any(not p.stream and now - p.since < self.max_delay_s
                   for p in self.pending.values())

    # -- inside ----------------------------------------------------------------------
    def _touch(self, path: str, now: float) -> _Pending:
        p = self.pending.get(path)
        if p is None:
            p = self.pending[path] = _Pending(first=now, last=now, deadline=now,
                                              queued=float("inf"),
                                              stream=self.stream.matches(path), since=now)
        p.last = now
        p.events += 1
        return p

    def _unlink_move(self, path: str, p: _Pending) -> None:
        target = self.pending.get(p.moved_to)
        if target is not None and target.moved_from == path:
            target.moved_from = None
        p.moved_to = None

    def _deadline(self, path: str, p: _Pending) -> float:
        if path in self.coming and not p.writing:
            return (p.closed if p.closed is not None else p.last) + HOLD_S
        if p.closed is not None and path in self.known:
            return p.closed + self.close_grace_s
        if p.stream:
            return p.first + self.quiet_s
        if p.writing:
            return p.first + self.max_delay_s
        return min(p.last + self.quiet_s, p.first + self.max_delay_s)

    def _schedule(self, path: str, p: _Pending) -> None:
        p.deadline = self._deadline(path, p)
        if p.deadline < p.queued:
            self._queue(path, p, p.deadline)

    def _queue(self, path: str, p: _Pending, deadline: float) -> None:
        p.queued = deadline
        heapq.heappush(self._heap, (deadline, next(self._seq), path))

    def _settle(self, path: str, p: _Pending, now: float) -> Report | None:
        """Judge a file at its deadline: settled, or still being written."""
        self.coming.pop(path, None)              # held once at most: the word came, or not
        cur = self.stat(path)
        old = self.known.get(path)
        active = p.closed is None and p.events > 0 \
            and (p.writing or now < p.last + self.quiet_s)
        if active and cur is not None:
            # Still being written at the end of a window: a new window.  A
            # stream file reports what it has so far; any other waits (a
            # window with no event settles it: a writer idle, the file open).
            p.first, p.events = now, 0
            self._schedule(path, p)
            if not p.stream:
                return None
            p.wrote = False
            return self._report(path, GROWING, old, cur) if cur != old else None
        del self.pending[path]
        if p.moved_to is not None:
            self._unlink_move(path, p)
        if cur is None:
            if old is None:
                return None                         # a temporary: never reported
            del self.known[path]
            if path in self.expected and self.expected.pop(path) is None:
                self.own += 1
                return None                         # the pod heard it gone: it knows
            return Report(path, DELETED)
        if self.expected.pop(path, None) == cur:
            self.known[path] = cur
            self.own += 1
            return None                             # the pod's own commit: it knows
        if p.moved_from is not None and p.moved_from in self.known \
                and self.stat(p.moved_from) is None:
            src = p.moved_from
            del self.known[src]
            self.pending.pop(src, None)
            self.known[path] = cur
            return Report(path, MOVED, cur.size, cur.mtime_ns, moved_from=src)
        if cur == old and not p.wrote:
            return None       # e.g. a chmod back: only a write can change what it holds
        if p.stream:
            return self._report(path, GROWING, old, cur)
        return self._report(path, CREATED if old is None else MODIFIED, old, cur)

    def _report(self, path: str, kind: str, old: FileStat | None, cur: FileStat) -> Report:
        """Record ``cur`` as reported; a growth is an append only on the same inode."""
        self.known[path] = cur
        span = None
        if kind == GROWING:     # only a stream file's
            if old is None:     # its first report says "created": read it all
                kind = CREATED
            elif old.ino == cur.ino and cur.size > old.size:
                span = (old.size, cur.size)
            else:                                   # truncated or replaced: not an append
                kind = MODIFIED
        return Report(path, kind, cur.size, cur.mtime_ns, range=span)


def _trim(book: dict) -> None:
    """At most EXPECTED_MAX entries: a dict keeps insertion order, oldest first."""
    while len(book) > EXPECTED_MAX:
        del book[next(iter(book))]
