"""The Desk's main scenarios, pinned as golden spy() traces (tests/stepped.py).

The Desk has one state: every trace is one handled event, and what the
trace cannot show (the answer) is checked beside it.  Queries come over
the loopback bus as the REST app sends them; the answers come back to a
sink, not to a waiting thread, so the test steps the Desk before reading.
"""
from __future__ import annotations

import pytest

from computepods.bus import messages as m
from computepods.bus.chefwire import ChefStatus
from computepods.bus.loopback import LoopbackBus
from computepods.charts.desk import Desk
from stepped import NO_TRACE, settle, start_own, state_of

QUEUED = "<- Queued:(0) Deferred:(0)"
STARTED = ["START", "SEARCH_FOR_SUPER_SIGNAL:desk_open", "ENTRY_SIGNAL:desk_open",
           "INIT_SIGNAL:desk_open", QUEUED]


def handled(signal: str) -> list[str]:
    return [f"{signal}:desk_open", f"{signal}:desk_open:HOOK", QUEUED]


class Answers:
    """Where the loopback bus posts the answers to the test's queries."""

    def __init__(self):
        self.got: dict[object, m.Reply] = {}

    def post(self, signal: str, reply: m.Reply) -> None:
        self.got[reply.token] = reply


@pytest.fixture
def desk(tmp_path):
    bus = LoopbackBus()
    chefs_asked = []
    bus.listen(m.CHEFS_QUERY, type("Into", (), {"put": staticmethod(chefs_asked.append)})())
    d = Desk(bus, tmp_path, pod="here:1", **NO_TRACE)
    assert start_own(d) == STARTED
    assert len(chefs_asked) == 1             # at start it asks the chefs who they are
    d.answers_in = Answers()
    yield bus, d
    d.stop()
    bus.stop()


def ask(bus, desk, what: str, args: dict | None = None) -> tuple[list[str], dict]:
    bus.request(m.API_QUERY, {"what": what, "args": args or {}}, chart=desk.answers_in,
                token=what)
    lines = settle(desk)
    reply = desk.answers_in.got.pop(what)
    assert not reply.error, reply.error
    return lines, reply.data


def test_a_health_query_is_answered_in_one_step(desk):
    bus, d = desk
    lines, data = ask(bus, d, "health")
    assert lines == handled("API_QUERY")
    assert data["answer"]["ok"] is True and data["answer"]["pod"] == "here:1"


def test_an_unknown_query_is_a_failure_answer_not_a_crash(desk):
    bus, d = desk
    lines, data = ask(bus, d, "bogus")
    assert lines == handled("API_QUERY")
    assert data["failure"]["error"] == "UsageError" and "'bogus'" in data["failure"]["message"]
    assert state_of(d) == "desk_open"


def test_build_events_heard_are_what_a_build_query_then_shows(desk):
    bus, d = desk
    bus.publish(m.BUILD_EVENTS, {"build": "b1", "seq": 0, "events": [
        {"t": "queued", "targets": ["all"]}, {"t": "done", "ok": True, "code": 0}]}, build="b1")
    assert settle(d) == handled("BUILD_EVENTS")
    lines, data = ask(bus, d, "events", {"id": "b1"})
    assert lines == handled("API_QUERY")
    assert [e["t"] for e in data["answer"]["events"]] == ["queued", "done"]


def test_a_chef_status_heard_is_listed_in_the_pods_answer(desk):
    bus, d = desk
    bus.publish(m.CHEF_STATUS, ChefStatus("c0", "local", 2, running=1).to_dict())
    assert settle(d) == handled("CHEF_STATUS")
    _, data = ask(bus, d, "pods")
    [ours] = data["answer"]["pods"]
    assert [c["chef"] for c in ours["chefs"]] == ["c0"] and ours["slots"] == 2
