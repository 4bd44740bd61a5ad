"""The Scout chart on the loopback bus and a SimClock: one search, one answer.

Other pods are real Heralds on the same bus (each answers pods.discover with
its hello); probes are plain functions standing in for SFTP.
"""
from __future__ import annotations

import queue
import re
import threading

import pytest

from computepods.bus import messages as m
from computepods.bus.loopback import LoopbackBus
from computepods.charts.herald import Herald
from computepods.charts.scout import Scout
from computepods.clock import SimClock
from computepods.federation.roster import Roster
from computepods.federation.search import ScoutNotFound, Search, Want
from helpers import wait_for
from podhellos import fake_key, hello_of

TIMEOUT_S = 5


class Parent:
    """The chart that started the scouts: what they answered."""

    def __init__(self):
        self.answers: "queue.Queue[tuple[str, object]]" = queue.Queue()

    def post(self, signal, payload=None):
        self.answers.put((signal, payload))

    def next(self):
        return self.answers.get(timeout=TIMEOUT_S)


def let_in(endpoint):
    return None


@pytest.fixture
def world():
    clock = SimClock()
    bus = LoopbackBus(clock=clock)
    charts = []

    def pod(hello):
        charts.append(Herald(bus, lambda: hello, clock=clock, name=f"herald:{hello.pod}").start())
        wait_for(lambda: charts[-1].running, what="the herald to run")
        return charts[-1]

    def scout(*args, **kw):
        charts.append(Scout(bus, *args, clock=clock, **kw).start())
        return charts[-1]

    yield clock, bus, pod, scout
    for chart in reversed(charts):
        chart.stop()


def close_window(clock, bus, scout, answers, window_s=1.0):
    """Wait until the scout's discover holds `answers` answers, then close its window."""
    wait_for(lambda: scout.gather_token and bus.gathering(scout.gather_token) == answers,
             what=f"{answers} answers to the scout's discover")
    clock.advance(window_s)


def trace_lines(chart) -> list[str]:
    """The chart's trace, its time stamps left out."""
    return [re.sub(r"^\[[^\]]*\] ", "", line) for line in chart.trace().strip().splitlines()]


def test_the_live_trace_shows_the_search(world):
    # miros' trace() holds the lines live_trace prints; they are read from it
    # because miros prints through one process-wide writer thread, which any
    # test that stops miros' own ActiveFabric ends (tests/unit/charts/test_base.py).
    clock, bus, pod, scout = world
    pod(hello_of("b", tools={"cc": "sha256:1"}))
    parent = Parent()
    s = scout(parent, let_in, search=Search("cc", Want(tool="cc")), live_trace=True,
              trace_sink=lambda line: None)
    close_window(clock, bus, s, 1)
    signal, found = parent.next()
    assert signal == m.SCOUT_FOUND and [h.pod for h in found.pods] == ["b"]
    wait_for(lambda: len(trace_lines(s)) >= 4, what="four trace lines")
    assert trace_lines(s) == [
        "[scout:cc] e->start_at() top->scout_waiting",
        "[scout:cc] e->SEARCH() scout_waiting->scout_asking",
        "[scout:cc] e->GATHERED() scout_asking->scout_probing",
        "[scout:cc] e->PROBED() scout_probing->scout_found",
    ]


def test_a_re_aimed_scout_traces_its_second_search(world):
    clock, bus, pod, scout = world
    parent = Parent()
    s = scout(parent, let_in, search=Search("late", Want(pod="late")), live_trace=True,
              trace_sink=lambda line: None)
    close_window(clock, bus, s, 0)
    assert parent.next()[0] == m.SCOUT_NOT_FOUND
    pod(hello_of("late"))
    s.post(m.SEARCH, Search("late", Want(pod="late")))
    wait_for(lambda: len(trace_lines(s)) >= 4, what="the second search's trace")
    close_window(clock, bus, s, 1)
    assert parent.next()[0] == m.SCOUT_FOUND
    wait_for(lambda: len(trace_lines(s)) >= 6, what="six trace lines")
    assert trace_lines(s) == [
        "[scout:late] e->start_at() top->scout_waiting",
        "[scout:late] e->SEARCH() scout_waiting->scout_asking",
        "[scout:late] e->GATHERED() scout_asking->scout_not_found",
        "[scout:late] e->SEARCH() scout_not_found->scout_asking",
        "[scout:late] e->GATHERED() scout_asking->scout_probing",
        "[scout:late] e->PROBED() scout_probing->scout_found",
    ]


def test_a_pod_that_announces_but_does_not_answer_discover_is_not_found(world):
    clock, bus, pod, scout = world
    ours = pod(hello_of("a", role="majordomo"))
    bus.publish(m.PODS_HELLO, hello_of("mute").to_dict())     # it says hello, nothing more
    wait_for(lambda: ours.roster.is_live("mute"), what="our herald to hear the mute pod")
    parent = Parent()
    s = scout(parent, let_in, search=Search("mute", Want(pod="mute")), own="a")
    close_window(clock, bus, s, 0)
    signal, answer = parent.next()
    assert signal == m.SCOUT_NOT_FOUND and isinstance(answer, ScoutNotFound)
    assert answer.search == "mute"
    assert answer.reason == "no pod answered pods.discover within 1 s (looking for pod mute)"


def test_a_re_aimed_search_finds_a_pod_that_came_up_later(world):
    clock, bus, pod, scout = world
    parent = Parent()
    s = scout(parent, let_in, search=Search("late", Want(pod="late")))
    close_window(clock, bus, s, 0)
    assert parent.next()[0] == m.SCOUT_NOT_FOUND
    pod(hello_of("late"))
    first = s.gather_token
    s.post(m.SEARCH, Search("late", Want(pod="late")))
    wait_for(lambda: s.gather_token != first, what="the scout to ask again")
    close_window(clock, bus, s, 1)
    signal, found = parent.next()
    assert signal == m.SCOUT_FOUND and [h.pod for h in found.pods] == ["late"]


def test_two_searches_run_in_parallel_and_each_answers_its_own(world):
    clock, bus, pod, scout = world
    pod(hello_of("b", tools={"cc": "sha256:1"}))
    pod(hello_of("c", role="majordomo", tools={"tex": "sha256:2"}))
    cc_parent, chef_parent = Parent(), Parent()
    gate = threading.Event()

    def slow_probe(endpoint):              # both rounds are probing at once
        assert gate.wait(TIMEOUT_S)
        return None
    cc = scout(cc_parent, slow_probe, search=Search("cc", Want(tool="cc")))
    chefs = scout(chef_parent, slow_probe, search=Search("chefs", Want(role="majordomo")))
    wait_for(lambda: all(x.gather_token and bus.gathering(x.gather_token) == 1
                         for x in (cc, chefs)), what="both discovers to be answered")
    clock.advance(1.0)
    wait_for(lambda: cc.problems == {} and cc.fit and chefs.fit, what="both to probe")
    gate.set()
    assert [h.pod for h in cc_parent.next()[1].pods] == ["b"]
    assert [h.pod for h in chef_parent.next()[1].pods] == ["c"]


def test_a_pod_whose_endpoint_refuses_our_key_is_not_found(world):
    clock, bus, pod, scout = world
    pod(hello_of("b", port=4022))
    parent = Parent()
    s = scout(parent, lambda endpoint: "refused our client key",
              search=Search("any", Want(role="chef")))
    close_window(clock, bus, s, 1)
    signal, answer = parent.next()
    assert signal == m.SCOUT_NOT_FOUND
    assert answer.reason == ("1 pod answered, none is a chef pod: b: its SFTP endpoint "
                             "127.0.0.1:4022 refused our client key")


def test_a_pod_answering_with_another_host_key_than_pinned_is_not_found(world):
    clock, bus, pod, scout = world
    roster = Roster()
    roster.heard(hello_of("b", host_key=fake_key("the real one")), now=0.0)
    pod(hello_of("b", host_key=fake_key("an impostor's")))
    probed = []
    parent = Parent()
    s = scout(parent, lambda e: probed.append(e), search=Search("b", Want(pod="b")),
              refusal=roster.refusal)
    close_window(clock, bus, s, 1)
    signal, answer = parent.next()
    assert signal == m.SCOUT_NOT_FOUND and "pinned" in answer.reason and "'b'" in answer.reason
    assert probed == []                     # an impostor is not even probed


def test_probes_that_hang_end_the_search_at_their_deadline(world):
    clock, bus, pod, scout = world
    pod(hello_of("b"))
    gate = threading.Event()
    parent = Parent()
    s = scout(parent, lambda e: gate.wait(TIMEOUT_S) and None, search=Search("b"),
              probe_timeout_s=5.0)
    close_window(clock, bus, s, 1)
    wait_for(lambda: s.fit, what="the probe to start")
    clock.advance(5.0)
    signal, answer = parent.next()
    gate.set()
    assert signal == m.SCOUT_NOT_FOUND and "did not answer our probe within 5 s" in answer.reason
