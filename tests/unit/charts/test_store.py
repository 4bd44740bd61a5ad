"""The Store chart: a write that fails is reported and retried, never lost."""
from __future__ import annotations

import logging
import queue

from miros import return_status, signals, spy_on

from computepods.bus import messages as m
from computepods.charts.base import Chart, Fabric
from computepods.charts.store import Record, Store
from computepods.clock import SimClock
from computepods.state.db import StateDB, StepRecord
from helpers import wait_for
from loopbackpod import DiskFull


@spy_on
def hearing(chart, e):
    if e.signal in (signals.RECORDED, signals.RECORD_FAILED):
        chart.heard.put((e.signal_name, e.payload))
        return return_status.HANDLED
    chart.temp.fun = chart.top
    return return_status.SUPER


class MajorDomoEar(Chart):
    """What the MajorDomo hears from the Store."""
    initial_state = hearing
    subscriptions = (m.RECORDED, m.RECORD_FAILED)

    def __init__(self, **kw):
        super().__init__("ear", **kw)
        self.heard: queue.Queue = queue.Queue()

    def next(self):
        return self.heard.get(timeout=5)


def step(n: int) -> StepRecord:
    return StepRecord(f"cc:{n}.o", "cc", f"cc -c {n}.c", inputs={f"{n}.c": "a" * 64},
                      outputs={f"{n}.o": "b" * 64})


def test_a_failed_write_is_reported_and_written_when_the_disk_has_room(tmp_path, caplog):
    path = tmp_path / "state.db"
    clock, db, fabric = SimClock(), DiskFull(path), Fabric()
    ear = MajorDomoEar(fabric=fabric).start()
    store = Store(path, clock=clock, db=db, fabric=fabric).start()
    try:
        with caplog.at_level(logging.ERROR, "computepods.store"):
            store.post(m.RECORD, Record(token="t1", steps=[step(1)]))
            signal, failed = ear.next()
        assert signal == m.RECORD_FAILED and failed.tokens == ["t1"]
        assert "database or disk is full" in failed.problem and str(path) in failed.problem
        assert any("database or disk is full" in r.getMessage() and str(path) in r.getMessage()
                   for r in caplog.records)

        store.post(m.RECORD, Record(token="t2", steps=[step(2)]))   # queued behind the first
        wait_for(lambda: len(store.pending) == 2, what="the second record queued")
        db.full = False
        wait_for(clock.next_deadline, what="the retry alarm")
        clock.advance(failed.retry_s)
        assert ear.next() == (m.RECORDED, ["t1", "t2"])
        with StateDB(path, readonly=True) as reader:
            assert set(reader.steps()) == {"cc:1.o", "cc:2.o"}
        assert store.problem == ""
    finally:
        store.stop()
        ear.stop()


def test_it_keeps_backing_off_while_the_write_keeps_failing(tmp_path):
    path = tmp_path / "state.db"
    clock, fabric = SimClock(), Fabric()
    ear = MajorDomoEar(fabric=fabric).start()
    store = Store(path, clock=clock, db=DiskFull(path), fabric=fabric).start()
    try:
        store.post(m.RECORD, Record(token="t1", steps=[step(1)]))
        waits = []
        for _ in range(3):
            signal, failed = ear.next()
            assert signal == m.RECORD_FAILED and failed.tokens == ["t1"]
            waits.append(failed.retry_s)
            wait_for(clock.next_deadline, what="the retry alarm")
            clock.advance(failed.retry_s)
        assert waits == [1.0, 2.0, 4.0]
        assert len(store.pending) == 1
    finally:
        store.stop()
        ear.stop()
