"""The Cron chart on the loopback bus and a SimClock: no nats-server, no sleeps."""
from __future__ import annotations

import queue
from datetime import datetime
from zoneinfo import ZoneInfo

from computepods.bus import messages as m
from computepods.bus.loopback import LoopbackBus
from computepods.charts.cron import Cron
from computepods.clock import SimClock
from computepods.project.model import Schedule
from helpers import wait_for

UTC = ZoneInfo("UTC")


def at(*fields: int) -> float:
    return datetime(*fields, tzinfo=UTC).timestamp()


def test_an_hourly_schedule_asks_for_its_build_and_reports_it_fired(tmp_path):
    bus = LoopbackBus()
    requests, events = queue.Queue(), queue.Queue()
    bus.listen(m.BUILD_REQUEST, requests)
    bus.listen(m.CRON_EVENTS, events)
    clock = SimClock(wall=at(2026, 1, 1, 0, 59))
    cron = Cron(bus, tmp_path, [Schedule("0 * * * *", ("all",))], clock=clock, tz=UTC).start()
    try:
        wait_for(clock.next_deadline, what="the first review to set the alarm")
        assert requests.empty()
        clock.advance(60.0)
        request = requests.get(timeout=5)
        assert request.data == {"v": 1, "targets": ["all"], "cwd": str(tmp_path), "client": "cron"}
        bus.respond(request, {"build": "b1"})
        fired = events.get(timeout=5).data
        assert (fired["t"], fired["build"], fired["at"]) == \
            ("fired", "b1", "2026-01-01T01:00:00+00:00")
    finally:
        cron.stop()
