"""What a pod knows of its recent builds, from their events alone.

The MajorDomo publishes each build's events on ``<ns>.build.<id>.events``,
numbered (``seq`` is the index of a message's first event).  A
:class:`BuildRegistry` folds them into a summary per build (state, steps
done/total, what runs, what failed) and keeps the events themselves, so a
late listener (an SSE stream of the REST app) can be replayed what it missed
and then go live.  It is plain bookkeeping, fed by the Desk chart.

Bounded: the ``MAX_BUILDS`` most recent builds are remembered, and the
events of the ``KEEP_EVENTS`` most recent ones; an older build's replay is
its ``done`` event alone.  Older builds, and those of earlier pods, are in
the Store's history (:mod:`computepods.state.history`):
:func:`entry_summary` gives one the same shape.
"""
from __future__ import annotations

import datetime
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from computepods.api.outcomes import StepOutcomes
from computepods.errors import NotFound
from computepods.state.history import BuildEntry

MAX_BUILDS = 100          # builds remembered, newest first
KEEP_EVENTS = 10          # builds whose every event is kept for a replay
REPLAY_PAGE = 2000        # events in one answer to a replay query

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
INTERRUPTED = "interrupted"     # in the history: its pod stopped while it ran
FINISHED = (DONE, FAILED, CANCELLED, INTERRUPTED)
COUNTS = ("ran", "up_to_date", "failed", "not_run", "cancelled")


def iso(epoch_s: float | None) -> str | None:
    if epoch_s is None:
        return None
    return datetime.datetime.fromtimestamp(epoch_s, datetime.timezone.utc).isoformat(
        timespec="milliseconds")


def _whole(value, default: int) -> int:
    """A count or an exit code from an event, or `default` if it is none."""
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError, OverflowError):
        return default


def _names(value, default: list[str]) -> list[str]:
    """An event's targets, or `default` if it names none."""
    return [str(x) for x in value] if isinstance(value, list) and value else default


@dataclass
class BuildView:
    """One build as its events tell it."""
    id: str
    targets: list[str] = field(default_factory=list)
    started_by: str = "bus"
    state: str = QUEUED
    ok: bool | None = None
    code: int | None = None
    steps_total: int = 0
    steps_done: int = 0
    running: dict[str, None] = field(default_factory=dict)     # ordered set
    failed: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    finished: float | None = None
    error: str | None = None
    events: list[dict] = field(default_factory=list)
    first: int = 0                        # seq of events[0] (older ones were let go)
    failures: dict[str, dict] = field(default_factory=dict)    # step -> its fail event
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    outcomes: StepOutcomes = field(default_factory=StepOutcomes)   # how each step fared

    @property
    def next_seq(self) -> int:
        return self.first + len(self.events)

    def summary(self) -> dict:
        return {"id": self.id, "targets": list(self.targets), "started_by": self.started_by,
                "state": self.state, "ok": self.ok, "code": self.code,
                "steps_total": self.steps_total, "steps_done": self.steps_done,
                "running": list(self.running), "failed": list(self.failed),
                "counts": dict(self.counts), "started": iso(self.started),
                "finished": iso(self.finished), "duration_s": None if self.finished is None
                else round(self.finished - self.started, 3), "error": self.error}

    def take(self, seq: int | None, events: list) -> None:
        """Fold one message's events in; a message seen before (seq below
        what is known) only contributes its new tail."""
        if seq is not None and seq < self.next_seq:
            events = events[self.next_seq - seq:]
        elif seq is not None and seq > self.next_seq and not self.events:
            self.first = seq                  # its start was published before we listened
        for ev in events:
            if isinstance(ev, dict):
                self.events.append(ev)
                self.fold(ev)

    def fold(self, ev: dict) -> None:
        # The bus checks a build.events message's shape, not its events'
        # fields: a field of the wrong type is taken as absent, never a crash.
        t, step = ev.get("t"), ev.get("step")
        if not isinstance(step, str):
            step = None
        self.outcomes.fold(ev)
        progress = ev.get("progress")
        if isinstance(progress, list) and len(progress) == 3:
            self.steps_done, self.steps_total = progress[0], progress[1]
        if isinstance(ev.get("by"), str):
            self.started_by = ev["by"]
        if t == "queued":
            self.targets = _names(ev.get("targets"), [])
        elif t == "plan":
            self.state = RUNNING
            self.steps_total = _whole(ev.get("steps"), 0)
            self.targets = _names(ev.get("targets"), self.targets)
        elif t == "start":
            self.state = RUNNING
            if step is not None:
                self.running[step] = None
        elif t in ("ok", "ran", "cancelled"):
            self.running.pop(step, None)
            self.counts["cancelled" if t == "cancelled" else "ran"] += 1
        elif t == "fail":
            self.running.pop(step, None)
            if step not in self.failures:
                self.failed.append(step)
                self.counts["failed"] += 1
            self.failures[step] = ev
        elif t == "done":
            self.finish(ev)

    def finish(self, ev: dict) -> None:
        self.ok = bool(ev.get("ok"))
        self.code = _whole(ev.get("code"), 0 if self.ok else 1)
        self.error = ev.get("error")
        self.state = CANCELLED if ev.get("cancelled") else DONE if self.ok else FAILED
        self.finished = time.time()
        if "ran" in ev:              # a plan that failed counts nothing
            self.counts = done_counts(ev)
        self.running.clear()
        if self.ok and self.steps_total:
            self.steps_done = self.steps_total

    def forget_events(self) -> None:
        """Keep only the done event (the end of any replay)."""
        if self.events and self.events[-1].get("t") == "done":
            self.first += len(self.events) - 1
            self.events = self.events[-1:]
            self.outcomes.clear()


def done_counts(ev: dict) -> dict[str, int]:
    """What became of a build's steps, from its done event."""
    return {"ran": _whole(ev.get("ran"), 0), "up_to_date": _whole(ev.get("skipped"), 0),
            "failed": _whole(ev.get("failed"), 0),
            "not_run": _whole(ev.get("blocked"), 0) + _whole(ev.get("not_run"), 0),
            "cancelled": _whole(ev.get("cancelled_steps"), 0)}


def entry_summary(e: BuildEntry) -> dict:
    """A build of the Store's history in the shape of :meth:`BuildView.summary`."""
    counts = {k: getattr(e, k) for k in COUNTS}
    return {"id": e.id, "targets": list(e.targets), "started_by": e.started_by,
            "state": e.state, "ok": e.state == DONE if e.finished else None, "code": e.code,
            "steps_total": e.steps, "steps_done": e.steps - e.not_run if e.finished else 0,
            "running": [], "failed": list(e.failed_steps), "counts": counts,
            "started": iso(e.started_ns / 1e9),
            "finished": iso(e.ended_ns / 1e9) if e.ended_ns is not None else None,
            "duration_s": e.duration_s, "error": e.error}


class BuildRegistry:
    """The recent builds of a pod, newest last in insertion order."""

    def __init__(self, max_builds: int = MAX_BUILDS, keep_events: int = KEEP_EVENTS):
        self.builds: OrderedDict[str, BuildView] = OrderedDict()
        self.max_builds = max_builds
        self.keep_events = keep_events

    def take(self, build_id: str, seq: int | None, events: list) -> BuildView:
        view = self.builds.get(build_id)
        if view is None:
            view = self.builds[build_id] = BuildView(build_id)
            self._trim()
        view.take(seq, events)
        return view

    def _trim(self) -> None:
        while len(self.builds) > self.max_builds:
            self.builds.popitem(last=False)
        for i, view in enumerate(reversed(self.builds.values())):
            if i >= self.keep_events and view.state in FINISHED and len(view.events) > 1:
                view.forget_events()

    def get(self, build_id: str) -> BuildView:
        view = self.builds.get(build_id)
        if view is None:
            raise NotFound(f"no build {build_id!r} among this pod's "
                           f"{len(self.builds)} recent builds")
        return view

    def summaries(self) -> list[dict]:
        """Newest first."""
        return [v.summary() for v in reversed(self.builds.values())]

    def replay(self, build_id: str, after: int = 0, limit: int = REPLAY_PAGE) -> dict:
        """Events numbered ``after`` and on (at most ``limit``): ``first`` is
        the seq of the first one given (later than ``after`` when older
        events were let go), ``next`` the seq to ask for next."""
        view = self.get(build_id)
        start = max(after, view.first)
        chunk = view.events[start - view.first:start - view.first + max(1, limit)]
        return {"build": build_id, "first": start, "next": start + len(chunk),
                "events": chunk, "state": view.state,
                "complete": start + len(chunk) >= view.next_seq}

    def latest(self) -> BuildView | None:
        """The newest build that has started (planned, running or over)."""
        for view in reversed(self.builds.values()):
            if view.state != QUEUED:
                return view
        return None

    def running_steps(self) -> set[str]:
        return {s for v in self.builds.values() if v.state == RUNNING for s in v.running}

    def last_failure(self, step: str) -> dict | None:
        """The fail event of a step in the most recent build that had one."""
        for view in reversed(self.builds.values()):
            if step in view.failures:
                return view.failures[step]
        return None
