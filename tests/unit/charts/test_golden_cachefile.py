"""The CacheFile chart's main scenarios, pinned as golden spy() traces
(tests/stepped.py).

Stepped on the test's thread with a SimClock and a seeded rng: a blocked
write's retry is an alarm that fires inside ``clock.advance``.  The lock
"another process" holds is a second flock of the same file, which blocks
the chart's ``LOCK_NB`` try as another process's would.  The long traces
are built from the pieces below, each one access as the drawing has it.
"""
from __future__ import annotations

import logging
import random

import pytest

from computepods.bus import messages as m
from computepods.charts.cachefile import CacheAnswer, CacheFileChart, ReadCache, WriteCache
from computepods.clock import SimClock
from computepods.federation.cachefile import CacheFile, CacheLock
from stepped import NO_TRACE, settle, start_own, state_of

WAIT_S = 3.0              # how long a write waits for the lock here
STARTED = ["START", "SEARCH_FOR_SUPER_SIGNAL:file_access_waiting",
           "ENTRY_SIGNAL:file_access_waiting", "INIT_SIGNAL:file_access_waiting",
           "<- Queued:(0) Deferred:(0)"]


def queued(n: int) -> str:
    return f"<- Queued:({n}) Deferred:(0)"


def asked(kind: str, waiting: int, first: bool) -> list[str]:
    """A request taken in; the first one asks for an access."""
    return [f"{kind}:file_access_waiting", *(["POST_FIFO:CACHE_ACCESS"] if first else []),
            f"{kind}:file_access_waiting:HOOK", queued(waiting)]


def access(into: str, then_more: bool) -> list[str]:
    """One access: into file_read or file_write and out again; with more
    asked, CACHE_DONE asks for the next."""
    return ["CACHE_ACCESS:file_access_waiting", f"SEARCH_FOR_SUPER_SIGNAL:{into}",
            "SEARCH_FOR_SUPER_SIGNAL:file_access_waiting", "SEARCH_FOR_SUPER_SIGNAL:file_accessed",
            "ENTRY_SIGNAL:file_accessed", f"ENTRY_SIGNAL:{into}", "POST_FIFO:CACHE_DONE",
            f"INIT_SIGNAL:{into}", queued(1),
            f"CACHE_DONE:{into}", "CACHE_DONE:file_accessed",
            *(["POST_FIFO:CACHE_ACCESS"] if then_more else []),
            f"EXIT_SIGNAL:{into}", "SEARCH_FOR_SUPER_SIGNAL:file_access_waiting",
            "SEARCH_FOR_SUPER_SIGNAL:file_accessed", "EXIT_SIGNAL:file_accessed",
            "INIT_SIGNAL:file_access_waiting", queued(1 if then_more else 0)]


BLOCKED = ["CACHE_ACCESS:file_access_waiting", "CACHE_ACCESS:file_access_waiting:HOOK", queued(0)]


class Cached:
    """A CacheFileChart on a real file, stepped, and the answers it gave."""

    def __init__(self, path):
        self.path, self.clock, self.answers = path, SimClock(), []
        self.chart = CacheFileChart(path, clock=self.clock, rng=random.Random(1), wait_s=WAIT_S,
                                    **NO_TRACE)
        assert start_own(self.chart) == STARTED

    def write(self, entries: dict, token) -> None:
        self.chart.post(m.CACHE_FILE_WRITE, WriteCache(entries, self._heard, token=token))

    def read(self, token) -> None:
        self.chart.post(m.CACHE_FILE_READ, ReadCache(self._heard, token=token))

    def _heard(self, signal: str, answer: CacheAnswer) -> None:
        self.answers.append((signal, answer.token, answer.data, bool(answer.error)))

    def retry(self) -> list[str]:
        self.clock.advance(self.chart.delays[-1])
        return settle(self.chart)


@pytest.fixture
def cached(tmp_path):
    c = Cached(tmp_path / "pods.json")
    yield c
    c.chart.stop()


def test_a_write_then_a_read_are_served_in_turn_and_answered_in_order(cached):
    cached.write({"a": 1}, token=1)
    cached.read(token=2)
    assert settle(cached.chart) == [
        *asked("CACHE_FILE_WRITE", 2, first=True),
        *asked("CACHE_FILE_READ", 1, first=False),     # an access is asked for already
        *access("file_write", then_more=True),
        *access("file_read", then_more=False),
    ]
    assert cached.answers == [("CACHE_WRITTEN", 1, {"a": 1}, False),
                              ("CACHE_READ", 2, {"a": 1}, False)]
    assert isinstance(lock := CacheFile(cached.path).try_acquire(), CacheLock)  # let go
    lock.release()


def test_a_blocked_write_is_retried_on_the_clock_until_the_lock_is_free(cached, tmp_path):
    holder = CacheFile(cached.path).try_acquire()
    cached.write({"b": 2}, token=3)
    assert settle(cached.chart) == [*asked("CACHE_FILE_WRITE", 1, first=True), *BLOCKED]
    assert settle(cached.chart) == [] and len(cached.chart.delays) == 1   # it waits on the clock
    assert cached.retry() == BLOCKED                   # still held: a longer delay
    assert len(cached.chart.delays) == 2 and cached.answers == []
    holder.release()
    assert cached.retry() == access("file_write", then_more=False)
    assert cached.answers == [("CACHE_WRITTEN", 3, {"b": 2}, False)]


def test_a_write_held_off_past_its_wait_is_answered_with_an_error_and_the_next_goes_on(
        cached, caplog):
    holder = CacheFile(cached.path).try_acquire()
    since = cached.clock.monotonic()                   # blocked from its first try
    cached.write({"c": 3}, token=4)
    cached.read(token=5)
    settle(cached.chart)
    with caplog.at_level(logging.CRITICAL, "computepods.cachefile"):
        for _ in range(50):                            # the delays grow to 5 s at most
            if cached.clock.monotonic() + cached.chart.delays[-1] - since >= WAIT_S:
                break
            assert cached.retry() == BLOCKED
        assert cached.retry() == [                     # given up: answered, the read goes on
            "CACHE_ACCESS:file_access_waiting", "POST_FIFO:CACHE_ACCESS",
            "CACHE_ACCESS:file_access_waiting:HOOK", queued(1),
            *access("file_read", then_more=False)]
    holder.release()
    assert cached.answers == [("CACHE_WRITTEN", 4, None, True), ("CACHE_READ", 5, None, False)]
    assert state_of(cached.chart) == "file_access_waiting"
