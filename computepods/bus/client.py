"""Asking a MajorDomo for a build over the bus, and following it to the end."""
from __future__ import annotations

import queue
from pathlib import Path
from typing import Callable, Sequence

from computepods.bus import messages as m
from computepods.bus import payloads
from computepods.bus.protocol import Bus
from computepods.errors import EXIT_CANNOT_START, BusError

IDLE_TIMEOUT_S = 3600.0    # a build that says nothing for an hour is presumed lost
BUS_LOST_S = 30.0          # without the server this long (reconnects failing), give up
POLL_S = 1.0               # how often a quiet wait looks at the connection


def request_build(bridge: Bus, names: Sequence[str], cwd: Path, *,
                  keep_going: bool = False, dry_run: bool = False,
                  on_event: Callable[[dict], None] = lambda ev: None,
                  on_wait: Callable[[], None] = lambda: None, plan: str | None = None,
                  dirty: Sequence[str] = ()) -> int:
    """Start (or join) a build, feed its events to `on_event`; the exit code.
    `plan`: the token of a plan handed to the pod in this process; `dirty`:
    files the asker's watcher saw change but had not reported yet.
    `on_wait` is called whenever no event is left to handle, before waiting
    for the next (the progress display flushes what it wrote then)."""
    events: "queue.Queue[m.Message]" = queue.Queue()
    bridge.listen(m.BUILD_EVENTS, events)       # before the request: miss nothing
    try:
        request = payloads.BuildRequest(list(names), str(cwd), keep_going, dry_run, bridge.name,
                                        plan=plan, dirty=list(dirty) or None)
        return _follow(bridge, events, request, on_event, on_wait)
    finally:
        bridge.unlisten(events)                 # a long-lived pod serves many of these


def _next(bridge: Bus, events: "queue.Queue[m.Message]", on_wait: Callable[[], None]) -> m.Message:
    """The next event; raises queue.Empty after IDLE_TIMEOUT_S of silence and
    BusError once the bus has been lost for BUS_LOST_S (never a wait forever
    on a server that is gone: a pod restarts its own at once, §2)."""
    try:
        return events.get_nowait()
    except queue.Empty:
        on_wait()
    for _ in range(int(IDLE_TIMEOUT_S / POLL_S)):
        try:
            return events.get(timeout=POLL_S)
        except queue.Empty:
            offline = bridge.offline_s()
            if offline >= BUS_LOST_S:
                raise BusError(f"lost the NATS server at {getattr(bridge, 'url', '?')}: no "
                               f"connection for {offline:.0f} s; the build's outcome is "
                               "unknown (run cpod build again to finish it)") from None
    raise queue.Empty


def _follow(bridge, events, request: payloads.BuildRequest, on_event, on_wait) -> int:
    reply = payloads.BuildAccepted.from_dict(
        bridge.request_sync(m.BUILD_REQUEST, request.to_dict(), timeout=10.0, attempts=3),
        bridge.subject(m.BUILD_REQUEST))
    build_id = reply.build
    on_event({"t": "accepted", "build": build_id, "joined": bool(reply.joined)})
    while True:
        try:
            msg = _next(bridge, events, on_wait)
        except queue.Empty:
            raise BusError(f"build {build_id}: no news for {IDLE_TIMEOUT_S:.0f} s") from None
        batch = payloads.BuildEvents.from_dict(msg.data, msg.subject)
        if batch.build != build_id:
            continue
        for ev in batch.dicts():
            on_event(ev)
            if ev.get("t") == "done":
                return int(ev.get("code", 0 if ev.get("ok") else 1)) if not ev.get("error") \
                    else int(ev.get("code", EXIT_CANNOT_START))
