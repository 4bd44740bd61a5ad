"""The Store's main scenarios, pinned as golden spy() traces (tests/stepped.py).

Each is the chart's whole reaction to what the test posts, step by step on
the test's thread with a SimClock: a change to what the Store does, or in
what order, changes a trace here, and the diff says how.
"""
from __future__ import annotations

import logging

import pytest
from miros import Event, signals

from computepods.bus import messages as m
from computepods.charts.base import Fabric
from computepods.charts.store import RETRY_FIRST_S, Record, Store
from computepods.clock import SimClock
from computepods.state.db import StateDB, StepRecord
from loopbackpod import DiskFull
from stepped import NO_TRACE, settle, start_stepped, state_of

STARTED = ["START", "SEARCH_FOR_SUPER_SIGNAL:store_open", "ENTRY_SIGNAL:store_open",
           "INIT_SIGNAL:store_open", "<- Queued:(0) Deferred:(0)"]


def step(n: int) -> StepRecord:
    return StepRecord(f"cc:{n}.o", "cc", f"cc -c {n}.c", inputs={f"{n}.c": "a" * 64},
                      outputs={f"{n}.o": "b" * 64})


class Stepped:
    """A Store stepped on the test's thread, and what it told the MajorDomo."""

    def __init__(self, tmp_path, db=StateDB):
        self.path = tmp_path / "state.db"
        self.clock, self.db, fabric = SimClock(), db(self.path), Fabric()
        self.heard: list[Event] = []          # the fabric delivers into anything with append
        for sig in (m.RECORDED, m.RECORD_FAILED):
            fabric.subscribe(self.heard, Event(signal=getattr(signals, sig)))
        self.store = Store(self.path, clock=self.clock, db=self.db, fabric=fabric, **NO_TRACE)
        assert start_stepped(self.store) == STARTED

    def record(self, *tokens: str) -> None:
        for n, token in enumerate(tokens):
            self.store.post(m.RECORD, Record(token=token, steps=[step(n)]))

    def told(self) -> list[tuple[str, object]]:
        heard, self.heard[:] = list(self.heard), []
        return [(e.signal_name, e.payload if e.signal_name == m.RECORDED else e.payload.tokens)
                for e in heard]

    def on_disk(self) -> list[str]:
        with StateDB(self.path, readonly=True) as db:
            return sorted(db.steps())


@pytest.fixture
def stepped(tmp_path):
    made = []

    def make(**kw) -> Stepped:
        made.append(Stepped(tmp_path, **kw))
        return made[-1]
    yield make
    for s in made:
        s.store.stop()


def test_a_record_alone_is_written_at_once(stepped):
    s = stepped()
    s.record("t1")
    assert settle(s.store) == [
        "RECORD:store_open",
        "PUBLISH:(RECORDED, PRIORITY:1000)",
        "RECORD:store_open:HOOK",
        "<- Queued:(0) Deferred:(0)",
    ]
    assert s.told() == [("RECORDED", ["t1"])] and s.store.transactions == 1
    assert s.on_disk() == ["cc:0.o"]


def test_a_burst_of_records_is_one_transaction_after_the_last(stepped):
    s = stepped()
    s.record("t1", "t2", "t3")
    assert settle(s.store) == [
        "RECORD:store_open",                  # others wait behind it: FLUSH goes after them
        "POST_FIFO:FLUSH",
        "RECORD:store_open:HOOK",
        "<- Queued:(3) Deferred:(0)",
        "RECORD:store_open",                  # a FLUSH is pending: only queued
        "RECORD:store_open:HOOK",
        "<- Queued:(2) Deferred:(0)",
        "RECORD:store_open",
        "RECORD:store_open:HOOK",
        "<- Queued:(1) Deferred:(0)",
        "FLUSH:store_open",                   # one write of all three
        "PUBLISH:(RECORDED, PRIORITY:1000)",
        "FLUSH:store_open:HOOK",
        "<- Queued:(0) Deferred:(0)",
    ]
    assert s.told() == [("RECORDED", ["t1", "t2", "t3"])] and s.store.transactions == 1
    assert s.on_disk() == ["cc:0.o", "cc:1.o", "cc:2.o"]


def test_a_full_disk_holds_the_records_and_writes_them_on_the_clocks_retry(stepped, caplog):
    s = stepped(db=DiskFull)
    with caplog.at_level(logging.CRITICAL, "computepods.store"):
        s.record("t1")
        assert settle(s.store) == [
            "RECORD:store_open",
            "PUBLISH:(RECORD_FAILED, PRIORITY:1000)",
            "RECORD:store_open:HOOK",
            "<- Queued:(0) Deferred:(0)",
        ]
        assert s.told() == [("RECORD_FAILED", ["t1"])]
        s.store.post(m.RECORD, Record(token="t2", steps=[step(9)]))
        assert settle(s.store) == [           # retrying: kept for the retry, no write now
            "RECORD:store_open",
            "RECORD:store_open:HOOK",
            "<- Queued:(0) Deferred:(0)",
        ]
        assert s.told() == []
        s.clock.advance(RETRY_FIRST_S - 0.01)
        assert settle(s.store) == []          # not yet
        s.clock.advance(0.01)
        assert settle(s.store) == [           # the retry: still full, both held, backing off
            "FLUSH:store_open",
            "PUBLISH:(RECORD_FAILED, PRIORITY:1000)",
            "FLUSH:store_open:HOOK",
            "<- Queued:(0) Deferred:(0)",
        ]
        assert s.told() == [("RECORD_FAILED", ["t1", "t2"])]
        s.db.full = False
        s.clock.advance(2 * RETRY_FIRST_S)
        assert settle(s.store) == [
            "FLUSH:store_open",
            "PUBLISH:(RECORDED, PRIORITY:1000)",
            "FLUSH:store_open:HOOK",
            "<- Queued:(0) Deferred:(0)",
        ]
    assert s.told() == [("RECORDED", ["t1", "t2"])] and state_of(s.store) == "store_open"
    assert s.on_disk() == ["cc:0.o", "cc:9.o"]
