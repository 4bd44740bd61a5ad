"""The build registry: builds folded from their numbered events, replays, bounds."""
from __future__ import annotations

import pytest

from computepods.errors import NotFound
from computepods.api.registry import BuildRegistry

PLAN = {"t": "plan", "steps": 3, "targets": ["out/x"], "progress": [0, 3, 0]}


def test_a_build_summary_follows_its_events():
    reg = BuildRegistry()
    reg.take("b1", 0, [{"t": "queued", "targets": []}])
    assert reg.get("b1").summary()["state"] == "queued"
    reg.take("b1", 1, [PLAN, {"t": "start", "step": "a", "progress": [0, 3, 1]},
                       {"t": "start", "step": "b", "progress": [0, 3, 2]}])
    s = reg.get("b1").summary()
    assert (s["state"], s["running"], s["steps_total"], s["targets"]) == (
        "running", ["a", "b"], 3, ["out/x"])
    reg.take("b1", 4, [{"t": "ok", "step": "a", "progress": [1, 3, 1]},
                       {"t": "fail", "step": "b", "exit_code": 2, "stderr_tail": "oops",
                        "progress": [2, 3, 0]}])
    s = reg.get("b1").summary()
    assert (s["running"], s["failed"], s["steps_done"]) == ([], ["b"], 2)
    assert reg.last_failure("b")["stderr_tail"] == "oops"
    reg.take("b1", 6, [{"t": "done", "ok": False, "code": 1}])
    s = reg.get("b1").summary()
    assert (s["state"], s["ok"], s["code"]) == ("failed", False, 1) and s["finished"]
    assert reg.running_steps() == set()


def test_done_states_cancelled_and_errors():
    reg = BuildRegistry()
    reg.take("c", 0, [{"t": "queued", "targets": ["x"]},
                      {"t": "done", "ok": False, "code": 130, "cancelled": True}])
    reg.take("e", 0, [{"t": "done", "ok": False, "code": 2, "error": "no rule builds 'x'"}])
    reg.take("o", 0, [PLAN, {"t": "done", "ok": True, "code": 0}])
    assert [(s["id"], s["state"]) for s in reg.summaries()] == [
        ("o", "done"), ("e", "failed"), ("c", "cancelled")]
    assert reg.get("e").error == "no rule builds 'x'"
    assert reg.get("o").steps_done == 3


def test_events_heard_twice_count_once_and_a_late_start_is_numbered():
    reg = BuildRegistry()
    events = [{"t": "queued", "targets": []}, PLAN, {"t": "start", "step": "a"}]
    reg.take("b", 0, events[:2])
    reg.take("b", 0, events[:2])                 # a duplicate message
    reg.take("b", 1, events[1:])                 # overlapping: only its new tail counts
    assert reg.get("b").events == events
    reg.take("late", 5, [{"t": "ok", "step": "a"}])      # heard from its sixth event on
    page = reg.replay("late")
    assert (page["first"], page["next"], page["complete"]) == (5, 6, True)


def test_replay_pages_and_unknown_builds():
    reg = BuildRegistry()
    reg.take("b", 0, [{"t": "start", "step": f"s{i}"} for i in range(10)])
    first = reg.replay("b", 0, limit=4)
    assert (first["first"], first["next"], first["complete"]) == (0, 4, False)
    rest = reg.replay("b", first["next"], limit=100)
    assert [e["step"] for e in rest["events"]] == [f"s{i}" for i in range(4, 10)]
    assert rest["complete"] and reg.replay("b", 10)["events"] == []
    with pytest.raises(NotFound, match="no build 'zz'"):
        reg.replay("zz")


def test_it_is_bounded():
    reg = BuildRegistry(max_builds=5, keep_events=2)
    for i in range(8):
        reg.take(f"b{i}", 0, [PLAN, {"t": "start", "step": "a"}, {"t": "done", "ok": True}])
    assert [s["id"] for s in reg.summaries()] == ["b7", "b6", "b5", "b4", "b3"]
    assert len(reg.get("b7").events) == 3 and len(reg.get("b6").events) == 3
    old = reg.replay("b4")
    assert old["first"] == 2 and [e["t"] for e in old["events"]] == ["done"]


def test_event_fields_of_the_wrong_type_are_taken_as_absent_not_a_crash():
    # The bus checks build.events' shape, not its events' fields (the Desk's
    # seeded sequences, tests/chaos/test_chart_sequences.py, sent these).
    reg = BuildRegistry()
    reg.take("b1", 0, [{"t": "queued", "targets": 5}, {"t": "plan", "steps": "x"},
                       {"t": "start", "step": ["a"]}, {"t": "fail", "step": {"b": 1}}])
    s = reg.get("b1").summary()
    assert (s["targets"], s["steps_total"], s["running"], s["state"]) == ([], 0, [], "running")
    reg.take("b1", 4, [{"t": "done", "ok": "yes", "code": "x", "ran": "many"}])
    s = reg.get("b1").summary()
    assert (s["state"], s["ok"], s["code"], s["counts"]["ran"]) == ("done", True, 0, 0)
