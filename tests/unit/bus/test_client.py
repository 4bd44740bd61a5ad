"""Following a build over the bus: a lost server ends the wait with a clear
error, never a wait of an hour (issue 11: never a hang)."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from computepods.bus import client
from computepods.bus import messages as m
from computepods.bus.loopback import LoopbackBus
from computepods.errors import BusError


class AcceptingMajorDomo:
    """Answers a build request, then says nothing (its server went away)."""

    def __init__(self, bus: LoopbackBus):
        self.bus = bus
        bus.route(m.BUILD_REQUEST, self)

    def post(self, signal: str, msg) -> None:
        self.bus.respond(msg, {"build": "b1", "joined": False})


def test_a_bus_lost_past_its_limit_ends_the_build_naming_the_server(monkeypatch):
    monkeypatch.setattr(client, "BUS_LOST_S", 0.2)
    monkeypatch.setattr(client, "IDLE_TIMEOUT_S", 3.0)     # the old code: "no news" instead
    monkeypatch.setattr(client, "POLL_S", 0.05)
    bus = LoopbackBus()
    AcceptingMajorDomo(bus)
    cut = threading.Timer(0.1, lambda: setattr(bus, "offline_since", time.monotonic()))
    cut.start()
    started = time.monotonic()
    with pytest.raises(BusError, match=r"lost the NATS server at loopback:.*outcome is unknown"):
        client.request_build(bus, ["out/a.txt"], Path("/tmp"))
    cut.join()
    assert time.monotonic() - started < 5, "the wait outlived the lost bus by far"


def test_a_bus_that_comes_back_in_time_goes_on_waiting_for_the_build(monkeypatch):
    monkeypatch.setattr(client, "BUS_LOST_S", 0.5)
    monkeypatch.setattr(client, "POLL_S", 0.05)
    bus = LoopbackBus()
    AcceptingMajorDomo(bus)
    bus.offline_since = time.monotonic()

    def back_then_done():
        bus.offline_since = None
        bus.publish(m.BUILD_EVENTS, {"build": "b1", "events": [
            {"t": "done", "ok": True, "code": 0, "seq": 1}]}, build="b1")
    timer = threading.Timer(0.2, back_then_done)
    timer.start()
    assert client.request_build(bus, ["out/a.txt"], Path("/tmp")) == 0
    timer.join()
