"""The Herald's main scenarios, pinned as golden spy() traces (tests/stepped.py).

Stepped on the test's thread with a SimClock: its hello ticker is an alarm
that fires inside ``clock.advance``.  The Herald routes pods.hello to
itself, so each hello it says comes back to it (POST_FIFO:PODS_HELLO, then
a PODS_HELLO it ignores: its own).  The scouts it starts are real charts
on their threads; the test waits for what a scout posts back, then steps.
"""
from __future__ import annotations

import logging
import queue

import pytest

from computepods.bus import messages as m
from computepods.bus.loopback import LoopbackBus
from computepods.charts.herald import Herald
from computepods.clock import SimClock
from computepods.federation.hello import HELLO_EVERY_S
from computepods.federation.search import Search, Want
from helpers import wait_for
from podhellos import hello_of
from stepped import NO_TRACE, settle, start_own, state_of

SILENT_PERIODS = 3          # a pod silent for more than three of its hello periods is let go


def queued(n: int) -> str:
    return f"<- Queued:({n}) Deferred:(0)"


STARTED = ["START", "SEARCH_FOR_SUPER_SIGNAL:herald_on", "ENTRY_SIGNAL:herald_on",
           "INIT_SIGNAL:herald_on", "SEARCH_FOR_SUPER_SIGNAL:herald_alone",
           "ENTRY_SIGNAL:herald_alone", "INIT_SIGNAL:herald_alone", queued(0)]


def own_hello_back(state: str) -> list[str]:
    return [f"PODS_HELLO:{state}", f"PODS_HELLO:{state}:HOOK", queued(0)]


def said_hello(state: str) -> list[str]:
    """A TICK: our hello said (it comes back to us, and is ignored)."""
    return [f"TICK:{state}", "POST_FIFO:PODS_HELLO", f"TICK:{state}:HOOK", queued(1),
            *own_hello_back(state)]


class Heralded:
    """A Herald on a loopback bus, stepped, and the hellos said on it."""

    def __init__(self):
        self.clock = SimClock()
        self.bus = LoopbackBus(clock=self.clock)
        self.hellos: "queue.Queue[m.Message]" = queue.Queue()
        self.bus.listen(m.PODS_HELLO, self.hellos)
        self.changes: list[tuple[str, bool]] = []
        self.searches: list = []
        self.herald = Herald(self.bus, lambda: hello_of("a", role="majordomo"), clock=self.clock,
                             on_pod=lambda pod, hello: self.changes.append((pod, hello is not None)),
                             probe=lambda endpoint: None, on_search=self.searches.append,
                             **NO_TRACE)
        assert start_own(self.herald) == STARTED

    def said(self) -> list[str]:
        out = []
        while not self.hellos.empty():
            out.append(self.hellos.get_nowait().data["pod"])
        return out

    def stop(self) -> None:
        self.herald.stop()
        self.bus.stop()


@pytest.fixture
def heralded():
    h = Heralded()
    yield h
    h.stop()


def test_it_says_hello_at_start_and_every_period(heralded):
    h = heralded
    assert settle(h.herald) == said_hello("herald_alone")
    assert h.said() == ["a"]
    h.clock.advance(HELLO_EVERY_S)
    assert settle(h.herald) == said_hello("herald_alone")
    assert h.said() == ["a"] and state_of(h.herald) == "herald_alone"


def test_a_pods_hello_federates_it_and_its_silence_lets_it_go(heralded, caplog):
    h = heralded
    settle(h.herald)
    with caplog.at_level(logging.CRITICAL, "computepods.federation"):
        h.bus.publish(m.PODS_HELLO, hello_of("b").to_dict())
        assert settle(h.herald) == [             # a new pod: greeted with our hello at once
            "PODS_HELLO:herald_alone", "POST_FIFO:PODS_HELLO",
            "SEARCH_FOR_SUPER_SIGNAL:herald_federated", "SEARCH_FOR_SUPER_SIGNAL:herald_alone",
            "EXIT_SIGNAL:herald_alone", "ENTRY_SIGNAL:herald_federated",
            "INIT_SIGNAL:herald_federated", queued(1), *own_hello_back("herald_federated")]
        assert h.changes == [("b", True)]
        for _ in range(SILENT_PERIODS):          # b says nothing more: live for 3 periods
            h.clock.advance(HELLO_EVERY_S)
            assert settle(h.herald) == said_hello("herald_federated")
        h.clock.advance(HELLO_EVERY_S)
        assert settle(h.herald) == [
            "TICK:herald_federated", "POST_FIFO:PODS_HELLO",
            "SEARCH_FOR_SUPER_SIGNAL:herald_alone", "SEARCH_FOR_SUPER_SIGNAL:herald_federated",
            "EXIT_SIGNAL:herald_federated", "ENTRY_SIGNAL:herald_alone",
            "INIT_SIGNAL:herald_alone", queued(1), *own_hello_back("herald_alone")]
    assert h.changes == [("b", True), ("b", False)]


def test_a_hello_the_bus_passes_but_the_herald_cannot_read_is_refused(heralded, caplog):
    h = heralded
    settle(h.herald)
    with caplog.at_level(logging.CRITICAL, "computepods.federation"):
        h.bus.publish(m.PODS_HELLO, {**hello_of("b").to_dict(), "role": "emperor"})
        assert settle(h.herald) == own_hello_back("herald_alone")    # handled, stays alone
    assert h.changes == [] and not h.herald.roster.is_live("b")


def test_a_discover_that_fits_is_answered_with_our_hello(heralded):
    h = heralded
    settle(h.herald)
    answer = []
    h.bus.request(m.PODS_DISCOVER, {"search": "s", "want": {"role": "majordomo"}},
                  chart=type("Sink", (), {"post": lambda self, sig, r: answer.append(r)})(),
                  token="t")
    assert settle(h.herald) == ["PODS_DISCOVER:herald_alone", "PODS_DISCOVER:herald_on",
                                "PODS_DISCOVER:herald_on:HOOK", queued(0)]
    assert [r.data["pod"] for r in answer] == ["a"]


def test_a_search_starts_a_scout_whose_answer_comes_back_to_the_herald(heralded, caplog):
    h = heralded
    settle(h.herald)
    h.herald.post(m.SEARCH, Search("cc", Want(tool="cc")))
    assert settle(h.herald) == ["SEARCH:herald_alone", "SEARCH:herald_on",
                                "SEARCH:herald_on:HOOK", queued(0)]
    scout = h.herald.scouts["cc"]
    wait_for(lambda: scout.gather_token and h.herald.events_waiting(),
             what="the scout's discover to reach the herald")
    assert settle(h.herald) == ["PODS_DISCOVER:herald_alone", "PODS_DISCOVER:herald_on",
                                "PODS_DISCOVER:herald_on:HOOK", queued(0)]   # ours: no cc
    with caplog.at_level(logging.CRITICAL, "computepods.federation"):
        h.clock.advance(1.0)                     # the discover's window closes
        wait_for(h.herald.events_waiting, what="the scout's answer")
        assert settle(h.herald) == ["SCOUT_NOT_FOUND:herald_alone", "SCOUT_NOT_FOUND:herald_on",
                                    "SCOUT_NOT_FOUND:herald_on:HOOK", queued(0)]
    assert [a.search for a in h.searches] == ["cc"]
