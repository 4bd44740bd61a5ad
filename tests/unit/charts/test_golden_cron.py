"""The Cron chart's main scenarios, pinned as golden spy() traces (tests/stepped.py).

The chart is stepped on the test's thread with a SimClock whose wall time
the test sets; its alarm fires inside ``clock.advance`` and posts the TICK
that the next ``settle`` handles.  The loopback bus answers a build request
nobody hears at once (NATS' no-responders), so a refused fire is in the
same trace as the tick that fired it.
"""
from __future__ import annotations

import logging
import queue
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from computepods.bus import messages as m
from computepods.bus.loopback import LoopbackBus
from computepods.charts.cron import Cron
from computepods.clock import SimClock
from computepods.project.model import Schedule
from stepped import NO_TRACE, settle, start_own, state_of

UTC = ZoneInfo("UTC")
HOURLY = [Schedule("0 * * * *", ("all",))]
QUEUED = "<- Queued:(0) Deferred:(0)"
STARTED = ["START", "SEARCH_FOR_SUPER_SIGNAL:cron_running", "ENTRY_SIGNAL:cron_running",
           "INIT_SIGNAL:cron_running", "SEARCH_FOR_SUPER_SIGNAL:cron_waiting",
           "ENTRY_SIGNAL:cron_waiting", "INIT_SIGNAL:cron_waiting", QUEUED]
# A review with nothing due: back to waiting, the alarm set again.
REVIEWED = ["TICK:cron_waiting", "TICK:cron_running", "EXIT_SIGNAL:cron_waiting",
            "SEARCH_FOR_SUPER_SIGNAL:cron_waiting", "ENTRY_SIGNAL:cron_waiting",
            "INIT_SIGNAL:cron_waiting", QUEUED]


def at(*fields: int) -> float:
    return datetime(*fields, tzinfo=UTC).timestamp()


class Timed:
    """A Cron on a loopback bus, stepped, with what it asked and reported."""

    def __init__(self, root, wall: float, *, answering: bool = True):
        self.bus, self.clock = LoopbackBus(), SimClock(wall=wall)
        self.requests: "queue.Queue[m.Message]" = queue.Queue()
        self.events: "queue.Queue[m.Message]" = queue.Queue()
        if answering:                       # a MajorDomo hears build requests
            self.bus.listen(m.BUILD_REQUEST, self.requests)
        self.bus.listen(m.CRON_EVENTS, self.events)
        self.cron = Cron(self.bus, root, HOURLY, clock=self.clock, tz=UTC, **NO_TRACE)
        assert start_own(self.cron) == STARTED

    def reported(self) -> list[dict]:
        out = []
        while not self.events.empty():
            out.append(self.events.get_nowait().data)
        return out

    def stop(self) -> None:
        self.cron.stop()
        self.bus.stop()


@pytest.fixture
def timed(tmp_path):
    made = []

    def make(wall: float, **kw) -> Timed:
        made.append(Timed(tmp_path, wall, **kw))
        return made[-1]
    yield make
    for t in made:
        t.stop()


def test_an_hourly_schedule_fires_at_the_hour_and_reports_the_build_it_started(timed):
    t = timed(at(2026, 1, 1, 0, 59))
    assert settle(t.cron) == REVIEWED            # the start's review: nothing due yet
    t.clock.advance(59.99)
    assert settle(t.cron) == []
    t.clock.advance(0.01)
    assert settle(t.cron) == [
        "TICK:cron_waiting", "TICK:cron_running", "EXIT_SIGNAL:cron_waiting",
        "SEARCH_FOR_SUPER_SIGNAL:cron_firing", "ENTRY_SIGNAL:cron_firing",
        "INIT_SIGNAL:cron_firing", QUEUED]
    assert state_of(t.cron) == "cron_firing"
    t.bus.respond(t.requests.get_nowait(), {"build": "b1"})
    assert settle(t.cron) == [
        "REPLY:cron_firing", "SEARCH_FOR_SUPER_SIGNAL:cron_waiting",
        "SEARCH_FOR_SUPER_SIGNAL:cron_firing", "EXIT_SIGNAL:cron_firing",
        "ENTRY_SIGNAL:cron_waiting", "INIT_SIGNAL:cron_waiting", QUEUED]
    [fired] = t.reported()
    assert (fired["t"], fired["build"], fired["at"]) == ("fired", "b1", "2026-01-01T01:00:00+00:00")


def test_a_fire_nobody_answers_is_reported_failed_in_the_same_tick(timed, caplog):
    t = timed(at(2026, 1, 1, 0, 59), answering=False)
    settle(t.cron)
    with caplog.at_level(logging.CRITICAL, "computepods.cron"):
        t.clock.advance(60.0)
        assert settle(t.cron) == [
            "TICK:cron_waiting", "TICK:cron_running", "POST_FIFO:REQUEST_FAILED",
            "EXIT_SIGNAL:cron_waiting", "SEARCH_FOR_SUPER_SIGNAL:cron_firing",
            "ENTRY_SIGNAL:cron_firing", "INIT_SIGNAL:cron_firing", "<- Queued:(1) Deferred:(0)",
            "REQUEST_FAILED:cron_firing", "SEARCH_FOR_SUPER_SIGNAL:cron_waiting",
            "SEARCH_FOR_SUPER_SIGNAL:cron_firing", "EXIT_SIGNAL:cron_firing",
            "ENTRY_SIGNAL:cron_waiting", "INIT_SIGNAL:cron_waiting", QUEUED]
    [failed] = t.reported()
    assert failed["t"] == "failed" and "NoRespondersError" in failed["error"]


def test_runs_that_fell_while_the_pod_was_down_are_reported_once_not_built(timed, caplog):
    first = timed(at(2026, 1, 1, 1, 30))
    settle(first.cron)                           # its review leaves the high-water mark
    first.stop()
    with caplog.at_level(logging.CRITICAL, "computepods.cron"):
        again = timed(at(2026, 1, 1, 4, 30))
        assert settle(again.cron) == REVIEWED    # missed runs: reported, none fired
    assert again.requests.empty()
    [missed] = again.reported()
    assert (missed["t"], missed["count"], missed["first"], missed["last"]) == (
        "missed", 3, "2026-01-01T02:00:00+00:00", "2026-01-01T04:00:00+00:00")
    assert state_of(again.cron) == "cron_waiting"
