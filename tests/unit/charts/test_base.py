"""The chart base: no event lost past miros' 500, clean stop, live trace."""
from __future__ import annotations

import threading

import pytest
from miros import Event, return_status, signals, spy_on

from computepods.charts.base import Chart, EventQueue
from computepods.clock import SimClock
from computepods.errors import ChartQueueFull
from computepods.bus import messages

SIGNALS = messages.ALL_SIGNALS      # importing messages registers them with miros


@spy_on
def counting(chart, e):
    if e.signal == signals.TICK:
        chart.seen.append(e.payload)
        if len(chart.seen) == chart.expected:
            chart.done.set()
        return return_status.HANDLED
    chart.temp.fun = chart.top
    return return_status.SUPER


class Counter(Chart):
    initial_state = counting
    subscriptions = ("TICK",)

    def __init__(self, expected: int, **kw):
        super().__init__("counter", **kw)
        self.expected = expected
        self.seen: list[int] = []
        self.done = threading.Event()


def test_100k_posted_events_none_lost_with_back_pressure():
    n = 100_000
    chart = Counter(n, capacity=100).start()     # tiny queue: posters must block, not drop
    try:
        def produce(start):
            for i in range(start, n, 4):
                chart.post("TICK", i)
        producers = [threading.Thread(target=produce, args=(k,)) for k in range(4)]
        for t in producers:
            t.start()
        for t in producers:
            t.join()
        assert chart.done.wait(30), f"only {len(chart.seen)} of {n} events arrived"
        assert sorted(chart.seen) == list(range(n))
    finally:
        chart.stop()
    assert not chart.running


def test_published_events_reach_subscriber_in_order():
    n = 20_000
    chart = Counter(n).start()
    try:
        for i in range(n):
            chart.publish(Event(signal=signals.TICK, payload=i))
        assert chart.done.wait(30), f"only {len(chart.seen)} of {n} events arrived"
        assert chart.seen == list(range(n))
    finally:
        chart.stop()


def test_full_queue_raises_naming_the_chart(monkeypatch):
    monkeypatch.setattr("computepods.charts.base.POST_TIMEOUT_S", 0.05)
    chart = Counter(1)               # never started: nothing consumes
    q = EventQueue(chart, capacity=2)
    q.append(Event(signal=signals.TICK))
    q.append(Event(signal=signals.TICK))
    with pytest.raises(ChartQueueFull, match="counter"):
        q.append(Event(signal=signals.TICK))


def test_stop_drains_what_was_queued_then_joins():
    chart = Counter(5_000).start()
    for i in range(5_000):
        chart.post("TICK", i)
    chart.stop()
    assert len(chart.seen) == 5_000
    assert not chart.running


def test_live_trace_reports_transitions_to_the_sink():
    lines: list[str] = []
    got = threading.Event()

    def sink(line):
        lines.append(line)
        got.set()

    chart = Counter(1, live_trace=True, trace_sink=sink).start()
    try:
        assert got.wait(5)
        assert any("counting" in line for line in lines)
    finally:
        chart.stop()


class Publisher(Chart):
    initial_state = counting

    def __init__(self, **kw):
        super().__init__("publisher", **kw)
        self.seen, self.expected, self.done = [], 0, threading.Event()


def test_charts_hear_only_their_own_fabric_and_outlive_miros_global_one():
    from miros.activeobject import ActiveFabric

    from computepods.charts.base import Fabric
    ours, theirs = Fabric(), Fabric()
    mine, other = Counter(2, fabric=ours).start(), Counter(1, fabric=theirs).start()
    talker = Publisher(fabric=ours).start()
    try:
        talker.emit("TICK", 1)
        stranger = Publisher(fabric=theirs).start()
        stranger.stop()                     # a chart of another pod stops: ours go on
        everyone = ActiveFabric()           # what a pod's stop used to stop for everyone
        everyone.start()
        everyone.stop()
        talker.emit("TICK", 2)
        assert mine.done.wait(5) and mine.seen == [1, 2]
        assert other.seen == [] and other.running
    finally:
        for chart in (talker, mine, other):
            chart.stop()


def test_a_charts_ticker_runs_on_the_clock_it_is_given_and_stops_with_it():
    clock = SimClock(start=0.0)
    chart = Counter(3).start()
    ticker = chart.every(clock, 5.0, "TICK")
    try:
        ticker.start()
        clock.advance(15.0)                     # three periods, at once
        assert chart.done.wait(5.0) and len(chart.seen) == 3
    finally:
        chart.stop()
    assert clock.next_deadline() is None        # stop() closed it
