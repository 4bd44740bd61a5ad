"""The Scout's main scenarios, pinned as golden spy() traces (tests/stepped.py).

Stepped on the test's thread with a SimClock: the discover's window closes
inside ``clock.advance`` (the loopback bus's gather), and its GATHERED is
stepped after.  Other pods are bus listeners that answer pods.discover with
a hello, as a Herald does.  A probe runs on the Scout's worker; it waits
for the test's gate, so its PROBED is posted between two steps, always at
the same place in the trace (a post from another thread, between steps,
leaves no POST_FIFO line: miros writes those in the step that posts).
"""
from __future__ import annotations

import logging
import threading

import pytest

from computepods.bus import messages as m
from computepods.bus.loopback import LoopbackBus
from computepods.charts.scout import Scout
from computepods.clock import SimClock
from computepods.federation.search import Search, Want
from helpers import wait_for
from podhellos import hello_of
from stepped import NO_TRACE, settle, start_own, state_of

WINDOW_S = 1.0            # a search's discover window (Search's default)
PROBE_TIMEOUT_S = 5.0
TIMEOUT_S = 5
QUEUED = "<- Queued:(0) Deferred:(0)"
STARTED = ["START", "SEARCH_FOR_SUPER_SIGNAL:scout_on", "ENTRY_SIGNAL:scout_on",
           "INIT_SIGNAL:scout_on", "SEARCH_FOR_SUPER_SIGNAL:scout_waiting",
           "ENTRY_SIGNAL:scout_waiting", "INIT_SIGNAL:scout_waiting", QUEUED]


def into(state: str, came_from: str, via: str, lead: tuple[str, ...] = ()) -> list[str]:
    """`via` handled in `came_from` (or its parent), then the way into `state`."""
    return [*lead, f"{via}:{came_from}", f"SEARCH_FOR_SUPER_SIGNAL:{state}",
            f"SEARCH_FOR_SUPER_SIGNAL:{came_from}", f"EXIT_SIGNAL:{came_from}",
            f"ENTRY_SIGNAL:{state}", f"INIT_SIGNAL:{state}", QUEUED]


ASKING = ["SEARCH:scout_waiting", "SEARCH:scout_on", "EXIT_SIGNAL:scout_waiting",
          "SEARCH_FOR_SUPER_SIGNAL:scout_asking", "ENTRY_SIGNAL:scout_asking",
          "INIT_SIGNAL:scout_asking", QUEUED]


class Answering:
    """A pod on the bus that answers every pods.discover with its hello."""

    def __init__(self, bus: LoopbackBus, hello):
        self.bus, self.hello = bus, hello

    def put(self, msg: m.Message) -> None:
        self.bus.respond(msg, self.hello.to_dict())


class Parent:
    def __init__(self):
        self.answers: list[tuple[str, object]] = []

    def post(self, signal: str, payload=None) -> None:
        self.answers.append((signal, payload))


class Searching:
    """A Scout on a loopback bus, stepped, with a gated probe."""

    def __init__(self, search: Search, *pods, refuse: str | None = None):
        self.clock = SimClock()
        self.bus = LoopbackBus(clock=self.clock)
        for hello in pods:
            self.bus.listen(m.PODS_DISCOVER, Answering(self.bus, hello))
        self.gate, self.parent, self.probed = threading.Event(), Parent(), []
        self.scout = Scout(self.bus, self.parent, self._probe, search=search, clock=self.clock,
                           probe_timeout_s=PROBE_TIMEOUT_S, **NO_TRACE)
        self.refuse = refuse
        assert start_own(self.scout) == STARTED

    def _probe(self, endpoint):
        self.probed.append(endpoint.pod)
        assert self.gate.wait(TIMEOUT_S)
        return self.refuse

    def window_closes(self) -> list[str]:
        self.clock.advance(WINDOW_S)
        return settle(self.scout)

    def probes_answer(self) -> list[str]:
        wait_for(lambda: self.probed, what="the probe to start")
        self.gate.set()
        wait_for(self.scout.events_waiting, what="the probes' PROBED")
        return settle(self.scout)

    def stop(self) -> None:
        self.gate.set()
        self.scout.stop()
        self.bus.stop()


@pytest.fixture
def searching():
    made = []

    def make(*args, **kw) -> Searching:
        made.append(Searching(*args, **kw))
        return made[-1]
    yield make
    for s in made:
        s.stop()


def test_a_pod_that_fits_and_lets_us_in_is_found(searching, caplog):
    s = searching(Search("cc", Want(tool="cc")), hello_of("b", tools={"cc": "sha256:1"}))
    assert settle(s.scout) == ASKING
    assert s.window_closes() == into("scout_probing", "scout_asking", "GATHERED")
    assert state_of(s.scout) == "scout_probing"
    with caplog.at_level(logging.CRITICAL, "computepods.federation"):
        assert s.probes_answer() == into("scout_found", "scout_probing", "PROBED")
    [(signal, found)] = s.parent.answers
    assert signal == m.SCOUT_FOUND and [h.pod for h in found.pods] == ["b"]


def test_no_answer_in_the_window_is_not_found_without_a_probe(searching, caplog):
    s = searching(Search("late", Want(pod="late")))
    settle(s.scout)
    with caplog.at_level(logging.CRITICAL, "computepods.federation"):
        assert s.window_closes() == into("scout_not_found", "scout_asking", "GATHERED")
    assert s.probed == [] and [sig for sig, _ in s.parent.answers] == [m.SCOUT_NOT_FOUND]


def test_a_pod_whose_endpoint_refuses_us_is_not_found(searching, caplog):
    s = searching(Search("any", Want(role="chef")), hello_of("b"), refuse="refused our key")
    settle(s.scout)
    s.window_closes()
    with caplog.at_level(logging.CRITICAL, "computepods.federation"):
        assert s.probes_answer() == into("scout_not_found", "scout_probing", "PROBED")
    [(signal, answer)] = s.parent.answers
    assert signal == m.SCOUT_NOT_FOUND and "refused our key" in answer.reason


def test_probes_past_their_deadline_end_the_search_and_their_late_answer_is_ignored(
        searching, caplog):
    s = searching(Search("b"), hello_of("b"))
    settle(s.scout)
    s.window_closes()
    wait_for(lambda: s.probed, what="the probe to start")
    with caplog.at_level(logging.CRITICAL, "computepods.federation"):
        s.clock.advance(PROBE_TIMEOUT_S)
        assert settle(s.scout) == into("scout_not_found", "scout_probing", "TICK")
        s.gate.set()
        wait_for(s.scout.events_waiting, what="the late PROBED")
        assert settle(s.scout) == ["PROBED:scout_not_found",
                                   "PROBED:scout_on", "PROBED:scout_on:HOOK", QUEUED]
    assert [sig for sig, _ in s.parent.answers] == [m.SCOUT_NOT_FOUND]


def test_a_new_search_re_aims_a_scout_that_answered(searching, caplog):
    s = searching(Search("late", Want(pod="late")))
    settle(s.scout)
    with caplog.at_level(logging.CRITICAL, "computepods.federation"):
        s.window_closes()
        s.scout.post(m.SEARCH, Search("late", Want(pod="late")))
        assert settle(s.scout) == [              # handled by scout_on, its parent
            "SEARCH:scout_not_found", "SEARCH:scout_on", "EXIT_SIGNAL:scout_not_found",
            "SEARCH_FOR_SUPER_SIGNAL:scout_asking", "ENTRY_SIGNAL:scout_asking",
            "INIT_SIGNAL:scout_asking", QUEUED]
    assert state_of(s.scout) == "scout_asking" and len(s.parent.answers) == 1
