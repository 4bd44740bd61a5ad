"""Scatter-gather on the loopback bus: every answer in a window, as ONE event."""
from __future__ import annotations

import queue

import pytest

from computepods.bus import messages as m
from computepods.bus.gather import Collector, Gathered
from computepods.bus.loopback import LoopbackBus
from computepods.clock import SimClock


class Inbox:
    """A chart stand-in: what was posted to it."""

    def __init__(self):
        self.events: "queue.Queue[tuple[str, object]]" = queue.Queue()

    def post(self, signal, payload=None):
        self.events.put((signal, payload))


class Answerer:
    """Answers each pods.discover with {"pod": name} (or not at all)."""

    def __init__(self, bus, name, answer=True):
        self.bus, self.name, self.answer = bus, name, answer

    def post(self, signal, msg):
        if self.answer is True:
            self.bus.respond(msg, {"pod": self.name})
        elif self.answer:
            self.bus.respond(msg, self.answer)


def test_every_answer_within_the_window_comes_as_one_event():
    clock = SimClock()
    bus = LoopbackBus(clock=clock)
    for name in ("a", "b", "c"):
        bus.route(m.PODS_DISCOVER, Answerer(bus, name))
    bus.route(m.PODS_DISCOVER, Answerer(bus, "mute", answer=False))
    asker = Inbox()
    token = bus.gather(m.PODS_DISCOVER, {"search": "s"}, 1.0, 100, chart=asker)
    assert asker.events.empty() and bus.gathering(token) == 3
    clock.advance(1.0)
    signal, got = asker.events.get_nowait()
    assert signal == m.GATHERED and isinstance(got, Gathered)
    assert got.token == token and got.subject == "cp.pods.discover"
    assert [r["pod"] for r in got.replies] == ["a", "b", "c"] and got.problems == ()
    assert asker.events.empty()
    bus.respond(m.Message("cp.pods.discover", {}, "_INBOX.loopback.1"), {"pod": "late"})
    assert asker.events.empty()                  # a late answer goes nowhere


def test_a_gather_ends_early_at_max_replies():
    clock = SimClock()
    bus = LoopbackBus(clock=clock)
    for name in ("a", "b", "c"):
        bus.route(m.PODS_DISCOVER, Answerer(bus, name))
    asker = Inbox()
    bus.gather(m.PODS_DISCOVER, {"search": "s"}, 5.0, 2, chart=asker)
    signal, got = asker.events.get_nowait()      # no clock moved
    assert [r["pod"] for r in got.replies] == ["a", "b"]
    clock.advance(10.0)
    assert asker.events.empty()


def test_nobody_listening_is_an_empty_gather_when_the_window_closes():
    clock = SimClock()
    bus = LoopbackBus(clock=clock)
    asker = Inbox()
    bus.gather(m.PODS_DISCOVER, {"search": "s"}, 0.5, 10, chart=asker)
    clock.advance(0.4)
    assert asker.events.empty()
    clock.advance(0.1)
    assert asker.events.get_nowait()[1].replies == ()


def test_an_error_answer_is_a_problem_not_a_reply():
    clock = SimClock()
    bus = LoopbackBus(clock=clock)
    bus.route(m.PODS_DISCOVER, Answerer(bus, "a"))
    bus.route(m.PODS_DISCOVER, Answerer(bus, "x", answer={"error": "want.slots is bad"}))
    asker = Inbox()
    bus.gather(m.PODS_DISCOVER, {"search": "s"}, 1.0, 10, chart=asker)
    clock.advance(1.0)
    got = asker.events.get_nowait()[1]
    assert [r["pod"] for r in got.replies] == ["a"]
    assert got.problems == ("cp.pods.discover: want.slots is bad",)


def test_a_malformed_answer_is_counted_and_the_others_kept():
    collector = Collector("t", "cp.pods.discover", 5)
    collector.take(b'{"v":1,"pod":"a"}')
    collector.take(b"not json")
    collector.take(b'{"v":99}')
    got = collector.result()
    assert got.replies == ({"v": 1, "pod": "a"},)
    assert len(got.problems) == 2 and "not JSON" in got.problems[0]


@pytest.mark.parametrize("window_s, max_replies", [(0, 5), (61, 5), (1, 0), (1, 10_001)])
def test_a_gather_out_of_bounds_is_refused(window_s, max_replies):
    with pytest.raises(ValueError):
        LoopbackBus().gather(m.PODS_DISCOVER, {"search": "s"}, window_s, max_replies,
                             chart=Inbox())
