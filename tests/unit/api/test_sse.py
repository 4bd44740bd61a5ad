"""The SSE stream of a build: replay, then live, each event once, to done."""
from __future__ import annotations

import json

from computepods.bus import messages as m
from computepods.api.podbus import EventHub
from computepods.api.sse import EventStream


class Desk:
    """Replays from a list of events the 'pod' has heard so far."""

    def __init__(self, events):
        self.events = events
        self.asked: list[int] = []

    def query(self, what, id, after=0, **kw):
        assert what == "events"
        self.asked.append(after)
        chunk = self.events[after:after + 2]              # pages of two
        return {"build": id, "first": after, "next": after + len(chunk), "events": chunk,
                "complete": after + len(chunk) >= len(self.events), "state": "running"}


def live(seq, *events):
    return m.Message("cp.build.b.events", {"build": "b", "seq": seq, "events": list(events)})


def frames(stream) -> list[tuple[int, str]]:
    out = []
    for chunk in stream:
        text = chunk.decode()
        if text.startswith("id: "):
            lines = text.split("\n")
            out.append((int(lines[0][4:]), lines[1][7:]))
    return out


EVENTS = [{"t": "queued"}, {"t": "plan"}, {"t": "start", "step": "a"}, {"t": "ok", "step": "a"},
          {"t": "done", "ok": True}]


def test_replay_then_live_with_duplicates_dropped():
    desk = Desk(EVENTS[:3])
    hub = EventHub()
    follower = hub.follow("b")
    follower.queue.put(live(2, EVENTS[2], EVENTS[3]))        # overlaps the replay
    follower.queue.put(live(4, EVENTS[4]))
    stream = EventStream(desk, follower, desk.query("events", "b", 0))
    assert frames(stream) == [(0, "queued"), (1, "plan"), (2, "start"), (3, "ok"), (4, "done")]
    assert len(hub) == 0


def test_batches_send_what_came_together_as_one_frame_each_event_once():
    desk = Desk(EVENTS[:3])
    hub = EventHub()
    follower = hub.follow("b")
    follower.queue.put(live(2, EVENTS[2], EVENTS[3]))        # overlaps the replay
    follower.queue.put(live(4, EVENTS[4]))
    stream = EventStream(desk, follower, desk.query("events", "b", 0), batch=True)
    sent = [chunk.decode().split("\n") for chunk in stream if chunk.startswith(b"id: ")]
    assert [(lines[0], lines[1]) for lines in sent] == [
        ("id: 1", "event: batch"), ("id: 2", "event: batch"), ("id: 3", "event: batch"),
        ("id: 4", "event: batch")]
    assert [json.loads(lines[2][6:]) for lines in sent] == [
        EVENTS[0:2], EVENTS[2:3], EVENTS[3:4], EVENTS[4:5]]


def test_a_gap_is_filled_from_the_desk():
    desk = Desk(EVENTS[:1])
    hub = EventHub()
    follower = hub.follow("b")
    first = desk.query("events", "b", 0)
    desk.events = EVENTS                    # the desk heard more after it answered
    follower.queue.put(live(4, EVENTS[4]))  # but this stream missed seq 1..3
    assert frames(EventStream(desk, follower, first)) == [
        (0, "queued"), (1, "plan"), (2, "start"), (3, "ok"), (4, "done")]


def test_keepalive_and_the_end_of_a_stopping_worker():
    desk = Desk(EVENTS[:2])
    hub = EventHub()
    follower = hub.follow("b")
    stream = EventStream(desk, follower, desk.query("events", "b", 0), keepalive_s=0.01)
    chunks = iter(stream)
    assert next(chunks).startswith(b"retry: ")
    assert [next(chunks)[:5] for _ in range(2)] == [b"id: 0", b"id: 1"]
    assert next(chunks) == b": ping\n\n"
    hub.close()
    assert list(chunks) == []


def test_stream_slots_refuse_past_their_limit_and_come_back():
    from computepods.api.sse import StreamSlots
    slots = StreamSlots(2)
    assert slots.take() and slots.take() and not slots.take()
    slots.give_back()
    assert slots.take() and slots.open == 2
