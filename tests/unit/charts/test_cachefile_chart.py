"""The CacheFile chart: reads never wait, a blocked write is retried on the
clock after growing random delays, and every request is answered once."""
from __future__ import annotations

import queue
import random
import re

import pytest
from miros import return_status, signals, spy_on

from computepods.bus import messages as m
from computepods.charts.base import Chart, Fabric
from computepods.charts.cachefile import CacheAnswer, CacheFileChart, ReadCache, WriteCache
from computepods.clock import SimClock
from computepods.federation import backoff as retry
from computepods.federation.cachefile import CacheFile, CacheLock
from helpers import wait_for


@spy_on
def asking(chart, e):
    if e.signal in (signals.CACHE_READ, signals.CACHE_WRITTEN):
        chart.heard.put((e.signal_name, e.payload))
        return return_status.HANDLED
    chart.temp.fun = chart.top
    return return_status.SUPER


class Asker(Chart):
    """A chart that asks the cache and hears its answers (posted, or on the fabric)."""
    initial_state = asking
    subscriptions = (m.CACHE_READ, m.CACHE_WRITTEN)

    def __init__(self, **kw):
        super().__init__("asker", **kw)
        self.heard: queue.Queue = queue.Queue()

    def next(self) -> tuple[str, CacheAnswer]:
        return self.heard.get(timeout=5)


@pytest.fixture
def charts(tmp_path):
    started = []

    def start(chart: Chart) -> Chart:
        started.append(chart.start())
        return chart

    yield start
    for chart in reversed(started):
        chart.stop()


def trace_lines(chart: Chart) -> list[str]:
    """The chart's trace without its time stamps and name (read from miros'
    trace(): its live_trace printer is one process-wide thread that another
    test may have ended)."""
    return [re.sub(r"^\[[^\]]*\] \[[^\]]*\] ", "", line)
            for line in chart.trace().strip().splitlines()]


def test_a_write_then_a_read_are_answered_in_order(tmp_path, charts):
    clock = SimClock()
    asker = charts(Asker())
    chart = charts(CacheFileChart(tmp_path / "pods.json", clock=clock, rng=random.Random(1),
                                  live_trace=True, trace_sink=lambda line: None))
    chart.post(m.CACHE_FILE_WRITE, WriteCache({"a": {"pod": "a"}}, asker, token=1))
    chart.post(m.CACHE_FILE_READ, ReadCache(asker, token=2))
    assert asker.next() == (m.CACHE_WRITTEN, CacheAnswer({"a": {"pod": "a"}}, 1))
    assert asker.next() == (m.CACHE_READ, CacheAnswer({"a": {"pod": "a"}}, 2))
    wait_for(lambda: len(trace_lines(chart)) >= 5, what="the chart's trace")
    assert trace_lines(chart) == [
        "e->start_at() top->file_access_waiting",
        "e->CACHE_ACCESS() file_access_waiting->file_write",
        "e->CACHE_DONE() file_write->file_access_waiting",
        "e->CACHE_ACCESS() file_access_waiting->file_read",
        "e->CACHE_DONE() file_read->file_access_waiting",
    ]
    lock = CacheFile(tmp_path / "pods.json").try_acquire()            # the chart let go
    assert isinstance(lock, CacheLock)
    lock.release()


def test_a_blocked_write_waits_on_the_clock_with_growing_delays(tmp_path, charts):
    clock = SimClock()
    asker = charts(Asker())
    chart = charts(CacheFileChart(tmp_path / "pods.json", clock=clock, rng=random.Random(5)))
    holder = CacheFile(tmp_path / "pods.json").try_acquire()      # another process, in effect
    chart.post(m.CACHE_FILE_WRITE, WriteCache({"a": 1}, asker))
    for tries in range(1, 9):
        wait_for(lambda: len(chart.delays) == tries, what=f"blocked try {tries}")
        assert clock.next_deadline() == pytest.approx(clock.monotonic() + chart.delays[-1])
        clock.advance(chart.delays[-1])
    wait_for(lambda: len(chart.delays) == 9, what="blocked try 9")
    assert asker.heard.empty()                         # no answer while it is blocked
    ceilings = [min(retry.RETRY_FIRST_S * 2 ** i, retry.RETRY_MAX_S) for i in range(9)]
    assert all(retry.RETRY_MIN_S <= d <= c for d, c in zip(chart.delays, ceilings))
    assert ceilings[-2:] == [5.0, 5.0]
    holder.release()
    clock.advance(chart.delays[-1])
    assert asker.next() == (m.CACHE_WRITTEN, CacheAnswer({"a": 1}))
    assert chart.backoff.ceiling_s == retry.RETRY_FIRST_S        # the next block starts short


def test_a_read_is_not_kept_waiting_by_a_writer_elsewhere(tmp_path, charts):
    clock = SimClock()
    asker = charts(Asker())
    chart = charts(CacheFileChart(tmp_path / "pods.json", clock=clock))
    CacheFile(tmp_path / "pods.json", clock=clock).write({"a": 1})
    with CacheFile(tmp_path / "pods.json").try_acquire():
        chart.post(m.CACHE_FILE_READ, ReadCache(asker))
        assert asker.next() == (m.CACHE_READ, CacheAnswer({"a": 1}))
    assert chart.delays == []


def test_requests_behind_a_blocked_write_are_served_after_it_in_order(tmp_path, charts):
    clock = SimClock()
    asker = charts(Asker())
    chart = charts(CacheFileChart(tmp_path / "pods.json", clock=clock, rng=random.Random(2)))
    holder = CacheFile(tmp_path / "pods.json").try_acquire()
    chart.post(m.CACHE_FILE_WRITE, WriteCache({"a": 1}, asker, token="w1"))
    wait_for(lambda: chart.delays, what="the first blocked try")
    chart.post(m.CACHE_FILE_READ, ReadCache(asker, token="r"))
    chart.post(m.CACHE_FILE_WRITE, WriteCache({"b": 2}, asker, token="w2"))
    holder.release()
    clock.advance(chart.delays[-1])
    answers = [asker.next() for _ in range(3)]
    assert [(s, a.token, a.data) for s, a in answers] == [
        (m.CACHE_WRITTEN, "w1", {"a": 1}), (m.CACHE_READ, "r", {"a": 1}),
        (m.CACHE_WRITTEN, "w2", {"a": 1, "b": 2})]
    assert len(chart.delays) == 1


def test_a_write_held_off_past_the_wait_is_answered_with_an_error(tmp_path, charts):
    clock = SimClock()
    asker = charts(Asker())
    chart = charts(CacheFileChart(tmp_path / "pods.json", clock=clock, wait_s=10.0))
    with CacheFile(tmp_path / "pods.json").try_acquire():
        chart.post(m.CACHE_FILE_WRITE, WriteCache({"a": 1}, asker, token=7))
        chart.post(m.CACHE_FILE_READ, ReadCache(asker, token=8))
        for _ in range(100):
            if not asker.heard.empty():
                break
            wait_for(lambda: clock.next_deadline() or not asker.heard.empty(),
                     what="the retry alarm or the answer")
            if clock.next_deadline():
                clock.advance(chart.delays[-1])
        signal, answer = asker.next()
        assert signal == m.CACHE_WRITTEN and answer.token == 7 and answer.data is None
        assert "stayed locked for 10 s" in answer.error and str(chart.cache.path) in answer.error
        assert sum(chart.delays) >= 10.0
        assert asker.next() == (m.CACHE_READ, CacheAnswer(None, 8))     # the next goes on


def test_entries_expire_on_the_charts_clock(tmp_path, charts):
    clock = SimClock()
    asker = charts(Asker())
    chart = charts(CacheFileChart(tmp_path / "pods.json", clock=clock))
    chart.post(m.CACHE_FILE_WRITE, WriteCache({"a": 1}, asker, expiry_s=30))
    asker.next()
    clock.advance(31)
    chart.post(m.CACHE_FILE_WRITE, WriteCache({"b": 2}, asker))
    assert asker.next()[1].data == {"b": 2}


def test_an_unwritable_cache_directory_is_an_answer_not_a_crash(tmp_path, charts):
    asker = charts(Asker())
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    chart = charts(CacheFileChart(blocker / "pods.json", clock=SimClock()))
    chart.post(m.CACHE_FILE_WRITE, WriteCache({"a": 1}, asker))
    signal, answer = asker.next()
    assert signal == m.CACHE_WRITTEN and answer.data is None
    assert "cannot be locked" in answer.error and str(blocker) in answer.error
    assert chart.crashes == []


def test_without_an_asker_the_answer_goes_on_the_fabric_and_a_callback_works(tmp_path, charts):
    fabric, got = Fabric(), queue.Queue()
    asker = charts(Asker(fabric=fabric))
    chart = charts(CacheFileChart(tmp_path / "pods.json", clock=SimClock(), fabric=fabric))
    asker.emit(m.CACHE_FILE_WRITE, WriteCache({"a": 1}, token="t"))   # published, not posted
    assert asker.next() == (m.CACHE_WRITTEN, CacheAnswer({"a": 1}, "t"))
    chart.post(m.CACHE_FILE_READ, ReadCache(lambda s, a: got.put((s, a))))
    assert got.get(timeout=5) == (m.CACHE_READ, CacheAnswer({"a": 1}))


def test_for_discovery_uses_the_namespaces_file(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    chart = CacheFileChart.for_discovery("mine")
    assert chart.cache.path == tmp_path / "computepods" / "pods-mine.json"
    assert chart.name == "cachefile:mine"


def test_on_the_system_clock_a_blocked_write_goes_through_once_the_lock_is_free(tmp_path,
                                                                                charts):
    asker = charts(Asker())
    chart = charts(CacheFileChart(tmp_path / "pods.json", rng=random.Random(4)))
    holder = CacheFile(tmp_path / "pods.json").try_acquire()
    chart.post(m.CACHE_FILE_WRITE, WriteCache({"a": 1}, asker))
    wait_for(lambda: chart.delays, what="a blocked try")
    holder.release()
    assert asker.next() == (m.CACHE_WRITTEN, CacheAnswer({"a": 1}))
    assert CacheFile(tmp_path / "pods.json").read() == {"a": 1}
