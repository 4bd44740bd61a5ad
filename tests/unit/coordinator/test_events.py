"""A build's events: batched, numbered, flushed when the chart says."""
from __future__ import annotations

from computepods.coordinator.events import EVENTS_MAX, EventBatch


def test_events_gather_until_flushed_then_go_numbered():
    sent, wakes = [], []
    batch = EventBatch(lambda build, payload: sent.append(payload), lambda: wakes.append(1))
    batch.note("b1", {"t": "plan"})
    batch.note("b1", {"t": "start"})
    assert sent == [] and wakes == [1]          # one flush asked for, not one per event
    batch.flush("b1")
    batch.note("b1", {"t": "ok"})
    batch.flush("b1")
    assert wakes == [1, 1]
    assert [(p["seq"], [e["t"] for e in p["events"]]) for p in sent] == \
        [(0, ["plan", "start"]), (2, ["ok"])]


def test_a_full_batch_goes_at_once():
    sent = []
    batch = EventBatch(lambda build, payload: sent.append(payload))
    for i in range(EVENTS_MAX):
        batch.note("b1", {"t": "ok", "i": i})
    assert len(sent) == 1 and len(sent[0]["events"]) == EVENTS_MAX


def test_done_ends_a_build_numbering_and_no_build_drops_the_batch():
    sent = []
    batch = EventBatch(lambda build, payload: sent.append(payload))
    batch.publish("b1", [{"t": "queued"}])
    batch.publish("b1", [{"t": "done"}])
    batch.publish("b1", [{"t": "queued"}])          # a new build of the same id
    assert [p["seq"] for p in sent] == [0, 1, 0]
    batch.note("b2", {"t": "plan"})
    batch.flush(None)
    assert len(sent) == 3 and batch.take() == []
