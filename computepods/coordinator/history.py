"""Each build's entry in the history of builds, folded from its events.

The MajorDomo's :class:`~computepods.coordinator.events.EventBatch` shows a
:class:`BuildHistory` every event as it is noted.  It turns a build's
events into its :class:`~computepods.state.history.BuildEntry` and hands the
entry to the Store twice: when the build is planned (``running``) and when
it is done, with its timeline (:mod:`computepods.coordinator.timeline`).  A
request that ends before it is planned (a planning error, a cancel while
queued, a watching pod's "nothing changed") gets one entry, at its end.  A
dry run is no build: it gets none.

Who started a build comes from its request's ``client``, the name of the
asker's bus connection (:func:`started_by`); the MajorDomo's own events say
it (``by`` in ``queued``, ``plan`` and a planning error's ``done``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from computepods.bus import messages as m
from computepods.charts.store import Record
from computepods.coordinator.timeline import Timeline
from computepods.state.history import (CANCELLED, DONE, FAILED, MAX_FAILED_KEPT, RUNNING,
                                       BuildEntry)

# The start of a bus connection's name -> who asked (cpod@host:pid, rest:pid, watch, cron).
STARTED_BY = {"cpod": "cli", "rest": "rest", "watch": "watcher", "cron": "cron"}
OTHER = "bus"              # any other client of the bus


def started_by(client: object) -> str:
    name = client if isinstance(client, str) else ""
    return STARTED_BY.get(name.replace("@", ":").split(":", 1)[0], OTHER)


def queued_event(data: dict) -> dict:
    return {"t": "queued", "targets": [str(n) for n in data["targets"]],
            "by": started_by(data.get("client"))}


def plan_event(data: dict, bp) -> dict:
    """The first event of a planned build (``bp``: its BuildPlan)."""
    ev = {"t": "plan", "steps": len(bp.plan.steps), "targets": bp.plan.targets,
          "by": started_by(data.get("client"))}
    return {**ev, "dry_run": True} if bp.scheduler.dry_run else ev


def plan_failed_event(data: dict, exc) -> dict:
    """The one event of a build that could not be planned (``exc``: why)."""
    return {"t": "done", "ok": False, "code": exc.exit_code, "error": str(exc),
            "targets": [str(n) for n in data["targets"]], "by": started_by(data.get("client"))}


@dataclass
class _Open:
    """A build between its request and its end."""
    targets: list[str]
    by: str
    started_ns: int
    started_s: float                      # on the clock's monotonic scale
    steps: int = 0
    dry_run: bool = False
    timeline: Timeline = field(default_factory=Timeline)
    failed_steps: list[str] = field(default_factory=list)


class BuildHistory:
    def __init__(self, clock, emit: Callable[[str, Record], None]):
        """``emit``: the MajorDomo's, to give the Store a RECORD."""
        self._clock = clock
        self._emit = emit
        self._open: dict[str, _Open] = {}

    def _record(self, entry: BuildEntry) -> None:
        self._emit(m.RECORD, Record(f"history:{entry.id}", builds=[entry]))

    def heard(self, build_id: str, ev: dict) -> None:
        t = ev.get("t")
        b = self._open.get(build_id)
        if t == "queued" or (b is None and t in ("plan", "done")):
            b = self._open[build_id] = self._new(ev, b)
        if t == "plan":
            b.started_ns, b.started_s = int(self._clock.time() * 1e9), self._clock.monotonic()
            b.timeline.origin_ns = b.started_ns
            b.targets = [str(x) for x in ev.get("targets") or b.targets]
            b.steps, b.by = int(ev.get("steps") or 0), str(ev.get("by") or b.by)
            b.dry_run = bool(ev.get("dry_run"))
            if not b.dry_run and not ev.get("fresh"):     # a fresh one ends at once
                self._record(self._entry(build_id, b))
        elif t == "done":
            del self._open[build_id]
            if not b.dry_run:
                self._record(self._finished(build_id, b, ev))
        elif b is not None:
            b.timeline.heard(ev, self._clock.monotonic() - b.started_s)
            if t == "fail" and len(b.failed_steps) < MAX_FAILED_KEPT:
                b.failed_steps.append(str(ev.get("step")))

    def _new(self, ev: dict, old: _Open | None) -> _Open:
        return _Open([str(x) for x in ev.get("targets") or (old.targets if old else [])],
                     str(ev.get("by") or (old.by if old else OTHER)),
                     int(self._clock.time() * 1e9), self._clock.monotonic())

    def _entry(self, build_id: str, b: _Open) -> BuildEntry:
        return BuildEntry(build_id, list(b.targets), b.by, RUNNING, b.started_ns, steps=b.steps)

    def _finished(self, build_id: str, b: _Open, ev: dict) -> BuildEntry:
        elapsed = self._clock.monotonic() - b.started_s
        state = CANCELLED if ev.get("cancelled") else DONE if ev.get("ok") else FAILED
        entry = self._entry(build_id, b)
        entry.state, entry.ended_ns = state, b.started_ns + int(elapsed * 1e9)
        entry.code, entry.error = ev.get("code"), ev.get("error")
        entry.ran, entry.up_to_date = int(ev.get("ran") or 0), int(ev.get("skipped") or 0)
        entry.failed = int(ev.get("failed") or 0)
        entry.cancelled = int(ev.get("cancelled_steps") or 0)
        entry.not_run = int(ev.get("blocked") or 0) + int(ev.get("not_run") or 0)
        entry.failed_steps = list(b.failed_steps)
        entry.profile = b.timeline.finish(elapsed)
        return entry
