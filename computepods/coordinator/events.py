"""A build's events, batched into build.events messages and numbered.

Events gather until the chart's next FLUSH (the first event of a batch
asks for one through ``wake``; ``EVENTS_MAX`` waiting events go at once),
then go as one message; each build's messages carry ``seq``, the
index of their first event among all of the build's, so a listener can
drop a replay.  ``observe`` sees each event as it is noted or published
(the history of builds, :mod:`computepods.coordinator.history`, times them).
"""
from __future__ import annotations

from typing import Callable

EVENTS_MAX = 256           # events per build.events message

Send = Callable[[str, dict], None]        # (build id, payload)
Observe = Callable[[str, dict], None]     # (build id, event)


class EventBatch:
    def __init__(self, send: Send, wake: Callable[[], None] = lambda: None,
                 observe: Observe | None = None):
        self._send = send
        self._wake = wake                       # asks the chart for a FLUSH
        self._observe = observe
        self._events: list[dict] = []
        self._flush_pending = False
        self._sequence: dict[str, int] = {}     # build id -> events published so far

    def note(self, build_id: str, ev: dict) -> None:
        """Add an event; the first since the last flush wakes the chart for
        one.  A full batch goes at once."""
        if self._observe is not None:
            self._observe(build_id, ev)
        self._events.append(ev)
        if len(self._events) >= EVENTS_MAX:
            self.flush(build_id)
        elif not self._flush_pending:
            self._flush_pending = True
            self._wake()

    def flush(self, build_id: str | None) -> None:
        """Send what gathered (dropped when no build is running)."""
        self._flush_pending = False
        if self._events and build_id:
            self._publish(build_id, self._events)
        self._events = []

    def take(self) -> list[dict]:
        """What gathered, unsent (and seen by ``observe`` already)."""
        events, self._events = self._events, []
        return events

    def publish(self, build_id: str, events: list[dict]) -> None:
        """Send events now (not noted before); a "done" event ends the build's numbering."""
        if self._observe is not None:
            for ev in events:
                self._observe(build_id, ev)
        self._publish(build_id, events)

    def _publish(self, build_id: str, events: list[dict]) -> None:
        seq = self._sequence.pop(build_id, 0)
        if events[-1].get("t") != "done":
            self._sequence[build_id] = seq + len(events)
        self._send(build_id, {"build": build_id, "seq": seq, "events": events})
