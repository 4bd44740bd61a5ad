"""The Herald chart on the loopback bus and a SimClock: hellos out, hellos in."""
from __future__ import annotations

import logging
import queue

import pytest

from computepods.bus import messages as m
from computepods.bus.loopback import LoopbackBus
from computepods.charts.herald import Herald
from computepods.clock import SimClock
from computepods.federation.hello import PodHello
from computepods.federation.search import ScoutFound, ScoutNotFound, Search, Want
from helpers import wait_for
from podhellos import fake_key, hello_of

TIMEOUT_S = 5


@pytest.fixture
def pod():
    clock = SimClock()
    bus = LoopbackBus(clock=clock)
    changes: "queue.Queue[tuple[str, PodHello | None]]" = queue.Queue()
    searches: "queue.Queue[ScoutFound | ScoutNotFound]" = queue.Queue()
    hellos: "queue.Queue[m.Message]" = queue.Queue()
    bus.listen(m.PODS_HELLO, hellos)
    herald = Herald(bus, lambda: hello_of("a", role="majordomo", tools={"cc": "sha256:1"}),
                    clock=clock, on_pod=lambda pod, hello: changes.put((pod, hello)),
                    probe=lambda endpoint: None, on_search=searches.put).start()
    wait_for(clock.next_deadline, what="the herald's ticker to be set")
    yield clock, bus, herald, changes, hellos, searches
    herald.stop()


def caught_up(bus):
    """Once the herald answers a discover, it has handled what came before."""
    bus.request_sync(m.PODS_DISCOVER, {"search": "sync"})


def test_it_says_hello_at_start_and_every_three_seconds(pod):
    clock, bus, herald, changes, hellos, _ = pod
    assert PodHello.from_dict(hellos.get(timeout=TIMEOUT_S).data).pod == "a"
    clock.advance(2.9)
    assert hellos.empty()
    clock.advance(0.1)
    assert hellos.get(timeout=TIMEOUT_S).data["pod"] == "a"
    clock.advance(6.0)
    assert [hellos.get(timeout=TIMEOUT_S).data["pod"] for _ in range(2)] == ["a", "a"]


def test_a_chef_pods_hello_is_heard_and_its_going_noticed(pod):
    clock, bus, herald, changes, hellos, _ = pod
    assert herald.state_name == "herald_alone"
    bus.publish(m.PODS_HELLO, hello_of("b", role="chef").to_dict())
    pod_id, hello = changes.get(timeout=TIMEOUT_S)
    assert (pod_id, hello.role) == ("b", "chef")
    wait_for(lambda: herald.state_name == "herald_federated", what="the herald to federate")
    assert herald.roster.endpoint("b").port == 2222
    bus.publish(m.PODS_HELLO, hello_of("b", role="chef").to_dict())   # again: nothing new
    caught_up(bus)
    clock.advance(9.0)                 # three of its hello periods, then the next tick
    assert changes.empty()
    clock.advance(3.0)
    assert changes.get(timeout=TIMEOUT_S) == ("b", None)
    wait_for(lambda: herald.state_name == "herald_alone", what="the herald to be alone")


def test_its_own_hello_is_not_a_pod_it_heard(pod):
    clock, bus, herald, changes, hellos, _ = pod
    bus.publish(m.PODS_HELLO, hello_of("a", role="majordomo").to_dict())
    bus.publish(m.PODS_HELLO, hello_of("b").to_dict())
    assert changes.get(timeout=TIMEOUT_S)[0] == "b"
    assert [h.pod for h in herald.roster.pods()] == ["b"]


def test_a_changed_host_key_is_refused_and_the_old_one_kept(pod, caplog):
    clock, bus, herald, changes, hellos, _ = pod
    bus.publish(m.PODS_HELLO, hello_of("b", host_key=fake_key("first")).to_dict())
    changes.get(timeout=TIMEOUT_S)
    with caplog.at_level(logging.WARNING, "computepods.federation"):
        bus.publish(m.PODS_HELLO, hello_of("b", host_key=fake_key("second")).to_dict())
        wait_for(lambda: herald.roster.refused == 1, what="the second hello to be refused")
    assert herald.roster.endpoint("b").host_key == fake_key("first")
    assert any("'b'" in line and "pinned" in line for line in caplog.messages)


def test_a_hello_that_is_not_one_is_dropped_and_logged_once(pod, caplog):
    clock, bus, herald, changes, hellos, _ = pod
    bad = {**hello_of("b").to_dict(), "role": "api"}
    with caplog.at_level(logging.WARNING, "computepods.federation"):
        for _ in range(3):
            bus.publish(m.PODS_HELLO, bad)
        bus.publish(m.PODS_HELLO, hello_of("c").to_dict())
        assert changes.get(timeout=TIMEOUT_S)[0] == "c"
    assert sum("role 'api'" in line for line in caplog.messages) == 1
    assert not herald.roster.is_live("b")


def test_it_answers_discover_with_its_hello_when_it_fits(pod):
    clock, bus, herald, changes, hellos, _ = pod
    answer = bus.request_sync(m.PODS_DISCOVER, {"search": "s", "want": {"tool": "cc"}})
    assert PodHello.from_dict(answer).pod == "a"
    with pytest.raises(Exception, match="want.slots"):
        bus.request_sync(m.PODS_DISCOVER, {"search": "s", "want": {"slots": -1}})


def test_it_keeps_quiet_on_a_discover_it_does_not_fit(pod):
    clock, bus, herald, changes, hellos, _ = pod
    got = queue.Queue()

    class Asker:
        def post(self, signal, payload):
            got.put(payload)
    bus.gather(m.PODS_DISCOVER, {"search": "s", "want": {"tool": "tex"}}, 1.0, 10,
               chart=Asker())
    caught_up(bus)
    clock.advance(1.0)
    assert got.get(timeout=TIMEOUT_S).replies == ()


def test_it_starts_re_aims_and_stops_the_scouts_of_its_searches(pod):
    clock, bus, herald, changes, hellos, searches = pod
    herald.post(m.SEARCH, Search("chef", Want(role="chef")))
    wait_for(lambda: "chef" in herald.scouts and herald.scouts["chef"].gather_token,
             what="the scout to ask")
    clock.advance(1.0)
    assert isinstance(searches.get(timeout=TIMEOUT_S), ScoutNotFound)
    other = Herald(bus, lambda: hello_of("b", role="chef"), clock=clock, name="herald:b").start()
    try:
        wait_for(lambda: other.running, what="pod b's herald")
        scout = herald.scouts["chef"]
        first = scout.gather_token
        herald.post(m.SEARCH, Search("chef", Want(role="chef")))
        wait_for(lambda: scout.gather_token != first and bus.gathering(scout.gather_token),
                 what="the same scout to ask again and hear b")
        clock.advance(1.0)
        found = searches.get(timeout=TIMEOUT_S)
        assert isinstance(found, ScoutFound) and [h.pod for h in found.pods] == ["b"]
        assert herald.scouts["chef"] is scout
        herald.post(m.SCOUT_STOP, "chef")
        wait_for(lambda: "chef" not in herald.scouts and not scout.running,
                 what="the scout to stop")
    finally:
        other.stop()


def test_the_pods_a_scout_found_are_known_at_once(pod):
    clock, bus, herald, changes, hellos, searches = pod

    class Quiet:                         # answers discover; its hellos have not come yet
        def post(self, signal, msg):
            bus.respond(msg, hello_of("quiet").to_dict())
    bus.route(m.PODS_DISCOVER, Quiet())
    herald.post(m.SEARCH, Search("quiet", Want(pod="quiet")))
    wait_for(lambda: "quiet" in herald.scouts and herald.scouts["quiet"].gather_token,
             what="the scout to ask")
    clock.advance(1.0)
    assert isinstance(searches.get(timeout=TIMEOUT_S), ScoutFound)
    assert changes.get(timeout=TIMEOUT_S)[0] == "quiet"
    assert herald.roster.endpoint("quiet").port == 2222
    wait_for(lambda: herald.state_name == "herald_federated", what="the herald to federate")
