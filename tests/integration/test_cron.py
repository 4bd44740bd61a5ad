"""The Cron chart on a real nats-server and a simulated clock: a schedule fires
one build.request per run; runs missed while the pod was down are reported
once and never built."""
from __future__ import annotations

import json
import logging
import queue
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from computepods.bus import messages as m
from computepods.bus.bridge import NatsBridge
from computepods.charts.cron import Cron
from computepods.clock import SimClock
from computepods.project.model import Schedule
from computepods.cron.timetable import save_checked, schedule_key
from helpers import wait_for

UTC = ZoneInfo("UTC")
HOURLY = Schedule("0 * * * *", ("all",))
NIGHTLY = Schedule("0 3 * * *", ("docs/manual.pdf", "bin/app"))


def at(*fields: int) -> float:
    return datetime(*fields, tzinfo=UTC).timestamp()


class Peer:
    """The other end of the bus: answers build requests as the MajorDomo
    would, and reads cp.cron.events as a user's tool would."""

    def __init__(self, url: str):
        self.bridge = NatsBridge(url, name="peer").start()
        self.requests: queue.Queue = queue.Queue()
        self.events: queue.Queue = queue.Queue()
        self.bridge.listen(m.BUILD_REQUEST, self.requests)
        self.bridge.listen(m.CRON_EVENTS, self.events)

    def answer(self, reply) -> dict:
        """Answer the next build request with ``reply`` (or ``reply(data)``)."""
        msg = self.requests.get(timeout=10)
        self.bridge.respond(msg, reply(msg.data) if callable(reply) else reply)
        return msg.data

    def event(self) -> dict:
        data = dict(self.events.get(timeout=10).data)
        data.pop("v")
        return data


@pytest.fixture
def bus(nats_url):
    cron_bridge = NatsBridge(nats_url, name="cron").start()
    peer = Peer(nats_url)
    yield cron_bridge, peer
    cron_bridge.stop()
    peer.bridge.stop()


@pytest.fixture
def charts():
    started: list[Cron] = []
    yield started
    for chart in started:
        chart.stop()


def run_until(clock: SimClock, wall: float) -> None:
    """Move the simulated clock to wall time ``wall`` alarm by alarm, letting
    the chart review and set its alarm again after each ring."""
    while clock.time() < wall:
        deadline = wait_for(clock.next_deadline, what="the Cron chart to set its alarm")
        clock.advance(max(0.0, min(deadline - clock.monotonic(), wall - clock.time())))
    wait_for(clock.next_deadline, what="the Cron chart to set its alarm")


def test_a_schedule_fires_one_build_request_per_run(tmp_path, bus, charts):
    bridge, peer = bus
    clock = SimClock(wall=at(2026, 1, 1, 0, 30))
    cron = Cron(bridge, tmp_path, [HOURLY, NIGHTLY], clock=clock, tz=UTC).start()
    charts.append(cron)
    for hour in (1, 2):
        run_until(clock, at(2026, 1, 1, hour, 0))
        request = peer.answer({"build": f"b{hour}", "queued": False})
        assert request == {"v": 1, "targets": ["all"], "cwd": str(tmp_path), "client": "cron"}
        # A second request for a run, or one before its time, would have
        # been answered here instead, and its event would name another time.
        assert peer.event() == {"t": "fired", "cron": "0 * * * *", "targets": ["all"],
                                "at": f"2026-01-01T0{hour}:00:00+00:00", "build": f"b{hour}"}
    run_until(clock, at(2026, 1, 1, 3, 0))                        # both fall due at once
    for _ in range(2):
        peer.answer(lambda data: {"build": "+".join(data["targets"])})
    fired = sorted((e["cron"], e["at"], e["build"]) for e in (peer.event(), peer.event()))
    assert fired == [("0 * * * *", "2026-01-01T03:00:00+00:00", "all"),
                     ("0 3 * * *", "2026-01-01T03:00:00+00:00", "docs/manual.pdf+bin/app")]
    wait_for(lambda: not cron.outstanding, what="every request answered")
    assert peer.requests.empty() and peer.events.empty()


def test_a_refused_request_is_logged_and_reported(tmp_path, bus, charts, caplog):
    bridge, peer = bus
    clock = SimClock(wall=at(2026, 1, 1, 0, 59, 30))
    charts.append(Cron(bridge, tmp_path, [HOURLY], clock=clock, tz=UTC).start())
    with caplog.at_level(logging.ERROR, "computepods.cron"):
        run_until(clock, at(2026, 1, 1, 1, 0))
        peer.answer({"error": "unknown target 'all'"})
        event = peer.event()
    assert event["t"] == "failed" and "unknown target 'all'" in event["error"]
    assert event["at"] == "2026-01-01T01:00:00+00:00"
    assert any("unknown target 'all'" in r.getMessage() and "0 * * * *" in r.getMessage()
               for r in caplog.records)


def test_runs_missed_while_down_are_reported_once_and_not_built(tmp_path, bus, charts, caplog):
    bridge, peer = bus
    state = Path(tmp_path) / ".computepods" / "cron.json"
    save_checked(state, {schedule_key(HOURLY): at(2026, 1, 1, 0, 30)})   # the last pod's check
    clock = SimClock(wall=at(2026, 1, 1, 5, 0, 10))
    with caplog.at_level(logging.WARNING, "computepods.cron"):
        first = Cron(bridge, tmp_path, [HOURLY], clock=clock, tz=UTC).start()
        charts.append(first)
        assert peer.event() == {"t": "missed", "cron": "0 * * * *", "targets": ["all"],
                                "count": 5, "more": False, "first": "2026-01-01T01:00:00+00:00",
                                "last": "2026-01-01T05:00:00+00:00"}
    [warning] = [r.getMessage() for r in caplog.records]
    assert "5 runs missed" in warning and "not replayed" in warning
    wait_for(clock.next_deadline, what="the first start's review")
    assert json.loads(state.read_text())["checked"] == {schedule_key(HOURLY): at(2026, 1, 1, 5, 0, 10)}
    first.stop()

    clock.advance(1.0)                      # a restart right after reports nothing
    second = Cron(bridge, tmp_path, [HOURLY], clock=clock, tz=UTC).start()
    charts.append(second)
    run_until(clock, at(2026, 1, 1, 6, 0))
    # The first request and the next event on the bus are the 06:00 run's:
    # no build was asked for the missed runs, and nothing was reported twice.
    peer.answer({"build": "b6"})
    assert peer.event() == {"t": "fired", "cron": "0 * * * *", "targets": ["all"],
                            "at": "2026-01-01T06:00:00+00:00", "build": "b6"}
    wait_for(lambda: not second.outstanding, what="the request answered")
    assert peer.requests.empty() and peer.events.empty()


def test_a_corrupt_state_file_is_a_warning_and_the_schedule_still_fires(tmp_path, bus, charts,
                                                                       caplog):
    bridge, peer = bus
    state = Path(tmp_path) / ".computepods" / "cron.json"
    state.parent.mkdir()
    state.write_text("{half a file")
    clock = SimClock(wall=at(2026, 1, 1, 0, 59))
    with caplog.at_level(logging.WARNING, "computepods.cron"):
        charts.append(Cron(bridge, tmp_path, [HOURLY], clock=clock, tz=UTC).start())
        run_until(clock, at(2026, 1, 1, 1, 0))
    assert any(str(state) in r.getMessage() for r in caplog.records)
    peer.answer({"build": "b1"})
    assert peer.event()["t"] == "fired"
    assert schedule_key(HOURLY) in json.loads(state.read_text())["checked"]
