"""The CacheFile chart: the discovery cache file, read and written in turn.

::

    file_access_waiting      CACHE_FILE_READ / CACHE_FILE_WRITE queue a request;
    │                        CACHE_ACCESS takes the first one: a read goes in at
    │                        once, a write when the file's lock is free; else
    │                        CACHE_ACCESS is tried again after a random delay
    │                        that grows up to 5 s (a timer, never a sleep), and
    │                        after LOCK_WAIT_S the write is answered with an error
    └── file_accessed        the access is on; EXIT lets the lock go
        ├── file_read        ENTRY: read, answer CACHE_READ; CACHE_DONE
        └── file_write       ENTRY: merge under the lock, answer CACHE_WRITTEN;
                             CACHE_DONE

The seeds' chart (miros-rabbitmq's CacheFileChart), with its states and its
back-off, on :mod:`computepods.federation.cachefile` instead of a chmod
"lock": writers take an ``flock`` of a side file (``LOCK_NB``, so a blocked
try returns at once and the chart waits on its clock), and replace the file
by rename, so a read needs no lock and never waits.  The file I/O in
file_read and file_write is short (one small JSON file, two fsyncs); only
the wait between tries is long, and it is an alarm.

Requests are served in the order they came, so an asker that writes and
then reads sees its write.  The answer goes to the request's ``asker``: a
chart (posted to it), a callable ``asker(signal, answer)``, or, with none,
the chart's fabric.  Requests published on a fabric reach every CacheFile
chart on it: with more than one (two namespaces), post to the one meant.
"""
from __future__ import annotations

import logging
import random
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Union

from miros import return_status, spy_on

from computepods.bus import messages as m
from computepods.charts.base import STOP_TIMEOUT_S, Chart
from computepods.clock import Alarm, Clock, SystemClock
from computepods.federation.backoff import Backoff
from computepods.federation.cachefile import (LOCK_WAIT_S, POD_EXPIRY_S, CacheFile, CacheLock,
                                              discovery_path)

log = logging.getLogger("computepods.cachefile")

Asker = Union[Chart, Callable[[str, "CacheAnswer"], None], None]


@dataclass(frozen=True)
class ReadCache:
    """Payload of CACHE_FILE_READ."""
    asker: Asker = None
    token: Any = None


@dataclass(frozen=True)
class WriteCache:
    """Payload of CACHE_FILE_WRITE: entries to merge in (a value None
    removes its key), each known for ``expiry_s`` seconds."""
    entries: Mapping[str, Any]
    asker: Asker = None
    token: Any = None
    expiry_s: float = POD_EXPIRY_S


@dataclass(frozen=True)
class CacheAnswer:
    """Payload of CACHE_READ and CACHE_WRITTEN: the unexpired entries (None:
    no cache file yet), the request's token, and ``error`` if a write failed
    (the disk, the permissions, a lock held too long)."""
    data: dict | None
    token: Any = None
    error: str = ""


@spy_on
def file_access_waiting(chart: "CacheFileChart", e):
    sig = e.signal_name
    if sig in (m.CACHE_FILE_READ, m.CACHE_FILE_WRITE):
        chart.enqueue(e.payload)
        return return_status.HANDLED
    if sig == m.CACHE_ACCESS:
        chart.access_due = False
        if chart.nothing_asked():
            return return_status.HANDLED
        if chart.next_is_read():
            return chart.trans(file_read)
        if chart.lock_taken():
            return chart.trans(file_write)
        if chart.should_give_up():
            chart.give_up()
            return return_status.HANDLED
        chart.retry_later()
        return return_status.HANDLED
    chart.temp.fun = chart.top
    return return_status.SUPER


@spy_on
def file_accessed(chart: "CacheFileChart", e):
    sig = e.signal_name
    if sig == "EXIT_SIGNAL":
        chart.let_go()
        return return_status.HANDLED
    if sig == m.CACHE_ACCESS:
        chart.access_due = False           # one access at a time: CACHE_DONE asks again
        return return_status.HANDLED
    if sig == m.CACHE_DONE:
        chart.ask_next()
        return chart.trans(file_access_waiting)
    chart.temp.fun = file_access_waiting
    return return_status.SUPER


@spy_on
def file_read(chart: "CacheFileChart", e):
    if e.signal_name == "ENTRY_SIGNAL":
        chart.read_now()
        chart.post(m.CACHE_DONE)
        return return_status.HANDLED
    chart.temp.fun = file_accessed
    return return_status.SUPER


@spy_on
def file_write(chart: "CacheFileChart", e):
    if e.signal_name == "ENTRY_SIGNAL":
        chart.write_now()
        chart.post(m.CACHE_DONE)
        return return_status.HANDLED
    chart.temp.fun = file_accessed
    return return_status.SUPER


class CacheFileChart(Chart):
    """``CacheFileChart(path).start()``, then post CACHE_FILE_READ /
    CACHE_FILE_WRITE to it (or publish them on its fabric).  ``clock``
    times the retries and the expiry (a SimClock in tests); ``rng`` draws
    the delays (seeded in tests); ``wait_s`` is how long a write waits for
    the lock before it is answered with an error."""

    initial_state = file_access_waiting
    subscriptions = (m.CACHE_FILE_READ, m.CACHE_FILE_WRITE)

    def __init__(self, path: Path, *, clock: Clock | None = None,
                 rng: random.Random | None = None, wait_s: float = LOCK_WAIT_S,
                 name: str = "cachefile", **kw):
        super().__init__(name, **kw)
        self.clock = clock or SystemClock()
        self.cache = CacheFile(path, clock=self.clock)
        self.wait_s = wait_s
        self.backoff = Backoff(rng)
        self.access_due = False            # a CACHE_ACCESS is queued or its alarm set
        self.delays: list[float] = []      # each retry's wait, for whoever watches
        self._asked: deque = deque()
        self._lock: CacheLock | None = None
        self._blocked_since: float | None = None
        self._problem = ""                 # why the lock could not even be tried
        self._retry: Alarm | None = None

    @classmethod
    def for_discovery(cls, ns: str, **kw) -> "CacheFileChart":
        """The chart of namespace ``ns``'s discovery cache (entries: pod id -> hello)."""
        return cls(discovery_path(ns), name=f"cachefile:{ns}", **kw)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        if self._retry is not None:
            self._retry.close()
        super().stop(timeout)
        self.let_go()
        if self._asked:
            log.warning("cache %s: %d requests not served: the chart stopped first",
                        self.cache.path, len(self._asked))

    # -- guards -----------------------------------------------------------------
    def nothing_asked(self) -> bool:
        return not self._asked

    def next_is_read(self) -> bool:
        return isinstance(self._asked[0], ReadCache)

    def lock_taken(self) -> bool:
        """Take the file's lock if it is free (never waits)."""
        try:
            got = self.cache.try_acquire()
        except OSError as exc:             # the cache directory cannot be made or written
            self._problem = f"the cache {self.cache.path} cannot be locked: {exc}"
            return False
        if isinstance(got, CacheLock):
            self._lock = got
            return True
        if self._blocked_since is None:
            self._blocked_since = self.clock.monotonic()
            log.info("cache %s is being written by process %s; waiting for it",
                     self.cache.path, got.holder or "?")
        return False

    def should_give_up(self) -> bool:
        """The lock could not be tried, or was held for ``wait_s``."""
        return bool(self._problem) or (
            self.clock.monotonic() - self._blocked_since >= self.wait_s)

    # -- what the states do ------------------------------------------------------
    def enqueue(self, request: ReadCache | WriteCache) -> None:
        self._asked.append(request)
        self.ask_next()

    def ask_next(self) -> None:
        if self._asked and not self.access_due:
            self.access_due = True
            self.post(m.CACHE_ACCESS)

    def retry_later(self) -> None:
        delay = self.backoff.next()
        self.delays.append(delay)
        if self._retry is None:
            self._retry = self.clock.alarm(lambda: self.post(m.CACHE_ACCESS),
                                           name=f"{self.name}:retry")
        self.access_due = True
        self._retry.set(self.clock.monotonic() + delay)

    def give_up(self) -> None:
        request = self._asked.popleft()
        problem = self._problem or (
            f"the cache {self.cache.path} stayed locked for {self.wait_s:g} s "
            f"(its lock: {self.cache.lock_path}); the entries were not written")
        log.error("%s", problem)
        self._unblocked()
        self._answer(request, m.CACHE_WRITTEN, None, problem)
        self.ask_next()

    def read_now(self) -> None:
        request = self._asked.popleft()
        try:
            data = self.cache.read()
        except OSError as exc:             # an I/O error under an open file
            self._answer(request, m.CACHE_READ, None, f"cache {self.cache.path}: {exc}")
            return
        self._answer(request, m.CACHE_READ, data)

    def write_now(self) -> None:
        request = self._asked.popleft()
        self._unblocked()
        try:
            data = self.cache.update(lambda _: request.entries, expiry_s=request.expiry_s,
                                     lock=self._lock)
        except OSError as exc:             # DiskFull / NotWritable name the disk
            log.error("cache %s not written: %s", self.cache.path, exc)
            self._answer(request, m.CACHE_WRITTEN, None, str(exc))
            return
        self._answer(request, m.CACHE_WRITTEN, data)

    def let_go(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # -- the parts ----------------------------------------------------------------
    def _unblocked(self) -> None:
        self._blocked_since = None
        self._problem = ""
        self.backoff.reset()

    def _answer(self, request: ReadCache | WriteCache, signal: str, data: dict | None,
                error: str = "") -> None:
        answer = CacheAnswer(data, request.token, error)
        asker = request.asker
        if asker is None:
            self.emit(signal, answer)
        elif isinstance(asker, Chart):
            asker.post(signal, answer)
        else:
            asker(signal, answer)
