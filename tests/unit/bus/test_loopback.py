"""The loopback bus keeps the NatsBridge's semantics that charts rely on:
namespaces, NATS wildcards, validation, request/reply."""
from __future__ import annotations

import queue
import threading

import pytest

from computepods.bus import messages as m
from computepods.bus.loopback import LoopbackBus, subject_matches
from computepods.bus.protocol import Bus
from computepods.errors import BusError


class Inbox:
    """A stand-in chart: what was posted to it, in order."""

    def __init__(self):
        self.posted: "queue.Queue[tuple[str, object]]" = queue.Queue()

    def post(self, signal: str, payload=None) -> None:
        self.posted.put((signal, payload))

    def next(self) -> tuple[str, object]:
        return self.posted.get(timeout=5)


def test_the_loopback_and_the_bridge_are_both_a_bus():
    from computepods.bus.bridge import NatsBridge
    assert isinstance(LoopbackBus(), Bus)
    assert isinstance(NatsBridge("nats://127.0.0.1:1"), Bus)


@pytest.mark.parametrize("pattern, subject, matches", [
    ("cp.build.*.events", "cp.build.b1.events", True),
    ("cp.build.*.events", "cp.build.b1.x.events", False),
    ("cp.>", "cp.build.b1.events", True),
    ("cp.>", "cp", False),
    ("cp.chef.c1.run", "cp.chef.c2.run", False),
    ("cp.fs.changed", "other.fs.changed", False),
])
def test_wildcards_match_as_nats_does(pattern, subject, matches):
    assert subject_matches(pattern, subject) is matches


def test_a_routed_signal_arrives_validated_and_only_in_its_namespace():
    bus, other = LoopbackBus("cp"), LoopbackBus("other")
    chart = Inbox()
    bus.route(m.BUILD_EVENTS, chart)                       # every build
    bus.publish(m.BUILD_EVENTS, {"build": "b1", "events": []}, build="b1")
    other.publish(m.BUILD_EVENTS, {"build": "b2", "events": []}, build="b2")
    signal, msg = chart.next()
    assert signal == m.BUILD_EVENTS
    assert msg.subject == "cp.build.b1.events"
    assert msg.data == {"v": 1, "build": "b1", "events": []}
    assert chart.posted.empty()


def test_a_route_with_params_hears_only_its_own_entity():
    bus, chart = LoopbackBus(), Inbox()
    bus.route(m.BUILD_EVENTS, chart, build="b2")
    bus.publish(m.BUILD_EVENTS, {"build": "b1", "events": []}, build="b1")
    bus.publish(m.BUILD_EVENTS, {"build": "b2", "events": []}, build="b2")
    assert chart.next()[1].data["build"] == "b2"
    assert chart.posted.empty()


def test_a_malformed_message_is_answered_reported_and_dropped():
    bus, chart, errors = LoopbackBus(name="t"), Inbox(), queue.Queue()
    bus.route(m.BUILD_CANCEL, chart)
    bus.listen(m.BUS_ERROR, errors)
    bus.publish(m.BUILD_CANCEL, {"no_build": 1})
    report = errors.get(timeout=5).data
    assert report["subject"] == "cp.build.cancel" and "missing field 'build'" in report["problem"]
    assert report["sender"] == "t"
    assert chart.posted.empty()


def test_a_request_is_answered_to_the_asking_chart_with_its_token():
    bus, md, asker = LoopbackBus(), Inbox(), Inbox()
    bus.route(m.BUILD_REQUEST, md)
    bus.request(m.BUILD_REQUEST, {"targets": ["all"]}, chart=asker, token=7)
    _, request = md.next()
    bus.respond(request, {"build": "b1"})
    bus.respond(request, {"build": "late"})                 # the first answer wins
    signal, reply = asker.next()
    assert (signal, reply.token, reply.data["build"], reply.error) == (m.REPLY, 7, "b1", "")
    assert asker.posted.empty()


def test_a_request_nobody_hears_fails_and_an_error_answer_is_a_failure():
    bus, asker = LoopbackBus(), Inbox()
    bus.request(m.BUILD_REQUEST, {"targets": ["all"]}, chart=asker, token=1)
    signal, reply = asker.next()
    assert signal == m.REQUEST_FAILED and "cp.build.request" in reply.error

    bus.route(m.BUILD_REQUEST, responder := Inbox())
    bus.request(m.BUILD_REQUEST, {"targets": ["x"]}, chart=asker, token=2)
    bus.respond(responder.next()[1], {"error": "unknown target 'x'"})
    signal, reply = asker.next()
    assert signal == m.REQUEST_FAILED and reply.token == 2
    assert "unknown target 'x'" in reply.error


def test_request_sync_waits_for_an_answer_from_another_thread():
    bus, requests = LoopbackBus(), queue.Queue()
    bus.listen(m.CHEFS_QUERY, requests)

    def answer():
        bus.respond(requests.get(timeout=5), {"chefs": ["c0"]})
    threading.Thread(target=answer).start()
    assert bus.request_sync(m.CHEFS_QUERY, {}, timeout=5)["chefs"] == ["c0"]
    with pytest.raises(BusError, match="no answer"):
        LoopbackBus().request_sync(m.CHEFS_QUERY, {})


def test_unlisten_stops_delivery_to_that_queue_only():
    bus, first, second = LoopbackBus(), queue.Queue(), queue.Queue()
    bus.listen(m.FS_CHANGED, first)
    bus.listen(m.FS_CHANGED, second)
    bus.unlisten(first)
    bus.publish(m.FS_CHANGED, {"pod": "p", "root": "/r", "path": "a", "kind": "modified"})
    assert first.empty() and second.get(timeout=5).data["path"] == "a"
