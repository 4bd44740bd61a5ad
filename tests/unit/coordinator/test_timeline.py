"""A build's timeline from its events, and its Chrome trace-event JSON."""
from __future__ import annotations

import json

from computepods.coordinator.timeline import Span, Timeline, assign_slots, trace_events


def test_a_step_starts_when_its_start_is_heard_or_earlier_by_its_own_measure():
    tl = Timeline()
    tl.heard({"t": "start", "step": "a", "chef": "c0"}, 1.0)
    tl.heard({"t": "ok", "step": "a", "duration_s": 2.0}, 3.5)     # its start was heard late
    tl.heard({"t": "start", "step": "b", "chef": "c0"}, 1.0)
    tl.heard({"t": "fail", "step": "b", "duration_s": 0.5}, 3.5)   # the result was heard late
    tl.heard({"t": "ran", "step": "c", "chef": "c1", "duration_s": 0.25}, 4.0)
    a, b, c = tl.spans
    assert (a.start_s, a.end_s, a.outcome) == (1.0, 3.0, "ok")
    assert (b.start_s, b.end_s, b.outcome) == (1.0, 1.5, "failed")
    assert (c.chef, c.start_s, c.end_s) == ("c1", 3.75, 4.0)


def test_a_failure_that_never_ran_is_no_span_and_a_lost_chef_ends_its_runs():
    tl = Timeline()
    tl.heard({"t": "fail", "step": "blocked", "reason": "cancelled"}, 1.0)
    tl.heard({"t": "start", "step": "a", "chef": "c0"}, 1.0)
    tl.heard({"t": "chef_lost", "chef": "c0", "steps": ["a"]}, 2.0)
    tl.heard({"t": "start", "step": "a", "chef": "c1"}, 2.5)
    tl.heard({"t": "cancelled", "step": "a", "duration_s": 0.5}, 3.0)
    assert [(s.chef, s.outcome) for s in tl.spans] == [("c0", "lost"), ("c1", "cancelled")]


def test_slots_never_hold_two_runs_at_once():
    spans = [Span("a", "c", 0, 2), Span("b", "c", 0, 1), Span("c", "c", 1, 3),
             Span("d", "c", 2, 3), Span("e", "other", 0, 3)]
    assign_slots(spans)
    assert [s.slot for s in spans] == [0, 1, 1, 0, 0]


def test_the_trace_has_a_lane_per_chef_slot_a_complete_event_per_run_and_pass_marks():
    tl = Timeline()
    tl.heard({"t": "pass", "cycle": "{doc.aux}", "pass": 1, "max": 5}, 0.0)
    tl.heard({"t": "ran", "step": "latex", "chef": "c0", "cycle": "{doc.aux}", "pass": 1,
              "duration_s": 1.0}, 1.0)
    tl.heard({"t": "pass", "cycle": "{doc.aux}", "pass": 2, "max": 5}, 1.0)
    tl.heard({"t": "start", "step": "latex", "chef": "c0", "cycle": "{doc.aux}", "pass": 2}, 1.0)
    tl.heard({"t": "start", "step": "other", "chef": "c0"}, 1.0)
    tl.heard({"t": "ok", "step": "latex", "duration_s": 1.0}, 2.0)
    tl.heard({"t": "ok", "step": "other", "duration_s": 0.5}, 2.0)
    tl.heard({"t": "fixpoint", "cycle": "{doc.aux}", "pass": 2}, 2.0)
    trace = json.loads(json.dumps(trace_events({"id": "b1", "targets": ["doc.pdf"]},
                                               tl.finish(2.5))))
    events = trace["traceEvents"]
    runs = [e for e in events if e["ph"] == "X" and e["cat"].startswith("step")]
    assert [(e["name"], e["ts"], e["dur"], e["tid"]) for e in runs] == [
        ("latex", 0, 1_000_000, 1), ("latex", 1_000_000, 1_000_000, 1),
        ("other", 1_000_000, 500_000, 2)]
    assert [e["args"].get("pass") for e in runs] == [1, 2, None]
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
               if e["ph"] == "M" and e["name"] == "thread_name"}
    assert threads == {(0, 0): "build", (1, 1): "slot 0", (1, 2): "slot 1"}
    marks = [e["name"] for e in events if e["ph"] == "i"]
    assert marks == ["pass 1/5 of {doc.aux}", "pass 2/5 of {doc.aux}",
                     "fixpoint of {doc.aux} after pass 2"]
    [whole] = [e for e in events if e["ph"] == "X" and e["cat"] == "build"]
    assert whole["dur"] == 2_500_000


def test_a_run_takes_the_slot_and_start_its_chef_says_unless_the_clocks_disagree():
    tl = Timeline(origin_ns=10_000_000_000)
    # Both results heard at 3.0 in one batch; the chef says they ran one
    # after the other on its slot 1.
    tl.heard({"t": "ran", "step": "a", "chef": "c", "duration_s": 1.0, "slot": 1,
              "started_ns": 10_500_000_000}, 3.0)
    tl.heard({"t": "ran", "step": "b", "chef": "c", "duration_s": 1.0, "slot": 1,
              "started_ns": 11_500_000_000}, 3.0)
    # A chef whose clock is an hour ahead: its start is not taken.
    tl.heard({"t": "ran", "step": "c", "chef": "far", "duration_s": 0.5, "slot": 0,
              "started_ns": 10_000_000_000 + 3600 * 10**9}, 3.0)
    done = tl.finish(3.0)
    a, b, c = (Span.from_row(r) for r in done["spans"])
    assert (a.slot, a.start_s, a.end_s) == (1, 0.5, 1.5)
    assert (b.slot, b.start_s, b.end_s) == (1, 1.5, 2.5)
    assert (c.slot, c.start_s, c.end_s) == (0, 2.5, 3.0)
