"""A build's events as server-sent events: the replay, then live, to done.

The stream follows the build's live events first, then asks the pod's Desk
for the events so far (in pages), then goes on with the live ones.  Events
are numbered by the MajorDomo (a message's ``seq`` is its first event's
index), so one that came both ways is sent once, and a gap (a message the
Desk had not yet heard when it answered) is filled by asking again.  Each
event goes out as ``id: <seq>``, ``event: <t>``, ``data: <json>``; a comment
every ``KEEPALIVE_S`` keeps proxies from closing an idle stream; the stream
ends after ``done``.

With ``batch`` (``?batch=1``, what the page asks for), the events that come
together (one bus message, one replay page) go out as one frame,
``event: batch``, ``data: [<event>, ...]``, its ``id`` the last one's seq: a
browser spends some 40 µs dispatching each frame, so 10,000 one-event frames
would hold the page's thread for most of a second.
"""
from __future__ import annotations

import json
import queue
import threading
from typing import Iterator

from computepods.api.podbus import Follower, PodBus

KEEPALIVE_S = 15.0        # seconds between keep-alive comments on an idle stream
GAP_RETRIES = 3           # times the Desk is asked again for events a stream missed
RETRY_MS = 3000           # how long a browser waits before it reconnects


class StreamSlots:
    """How many event streams this process may hold open at once.

    Each open stream holds one of the server's threads for as long as its
    build runs; without a bound, enough followers (or a client opening
    streams it never reads) would leave no thread for anything else.
    Past the bound a stream is refused (503), and the rest of the API
    still answers."""

    def __init__(self, limit: int):
        self.limit = limit
        self.open = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.open >= self.limit:
                return False
            self.open += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self.open -= 1


def frame(seq: int, ev: dict) -> bytes:
    data = json.dumps(ev, separators=(",", ":"))
    return f"id: {seq}\nevent: {ev.get('t', 'message')}\ndata: {data}\n\n".encode()


def batch_frame(last_seq: int, events: list) -> bytes:
    data = json.dumps(events, separators=(",", ":"))
    return f"id: {last_seq}\nevent: batch\ndata: {data}\n\n".encode()


class EventStream:
    """An iterable of SSE frames for one build (a WSGI response body).

    Build it with the first replay page already fetched (so an unknown build
    is a 404 before any byte is sent); closing it (the server does, when
    the client goes) stops following the build.
    """

    def __init__(self, bus: PodBus, follower: Follower, first_page: dict,
                 keepalive_s: float = KEEPALIVE_S, slots: StreamSlots | None = None,
                 batch: bool = False):
        self.bus = bus
        self.batch = batch
        self.slots = slots           # given back once, when the stream ends or is closed
        self.follower = follower
        self.page = first_page
        self.keepalive_s = keepalive_s
        self.next_seq = first_page["first"]
        self.done = False
        self._frames = self._run()

    def __iter__(self) -> Iterator[bytes]:
        return self._frames

    def close(self) -> None:
        self.follower.close()
        self._frames.close()
        self._give_back()

    def _give_back(self) -> None:
        slots, self.slots = self.slots, None
        if slots is not None:
            slots.give_back()

    def _send(self, seq: int, events: list) -> Iterator[bytes]:
        """Frames for events numbered from `seq`, skipping those already sent."""
        fresh = []
        for i, ev in enumerate(events):
            if seq + i < self.next_seq or self.done:
                continue
            self.next_seq = seq + i + 1
            fresh.append((seq + i, ev))
            if isinstance(ev, dict) and ev.get("t") == "done":
                self.done = True
        if self.batch and fresh:
            yield batch_frame(fresh[-1][0], [ev for _, ev in fresh])
        elif fresh:
            yield from (frame(n, ev) for n, ev in fresh)

    def _replay(self, after: int) -> Iterator[bytes]:
        page, self.page = self.page, None
        if page is None:
            page = self.bus.query("events", id=self.follower.build_id, after=after)
        while True:
            yield from self._send(page["first"], page["events"])
            if page["complete"] or self.done or not page["events"]:
                return
            page = self.bus.query("events", id=self.follower.build_id, after=page["next"])

    def _run(self) -> Iterator[bytes]:
        try:
            yield f"retry: {RETRY_MS}\n\n".encode()
            yield from self._replay(self.next_seq)
            while not self.done:
                try:
                    msg = self.follower.get(self.keepalive_s)
                except queue.Empty:
                    yield b": ping\n\n"
                    continue
                if msg is None:                      # the worker stops
                    return
                seq = msg.data.get("seq")
                seq = seq if isinstance(seq, int) else self.next_seq
                for _ in range(GAP_RETRIES):
                    if seq <= self.next_seq:
                        break
                    before = self.next_seq
                    yield from self._replay(self.next_seq)     # the Desk heard them by now
                    if self.next_seq == before:
                        break
                if seq > self.next_seq:                # never heard: say so, go on
                    yield f": {seq - self.next_seq} events were lost\n\n".encode()
                    self.next_seq = seq
                yield from self._send(seq, msg.data.get("events") or [])
        finally:
            self.follower.close()
            self._give_back()
