"""The Cron chart: ``[[schedule]]`` entries start builds in a running pod.

::

    cron_running         TICK (the alarm rang, or the chart started): review the
    │                    timetable at that wall time; report missed runs, ask for
    │                    a build of each due one; set the alarm to the next fire
    ├── cron_waiting     no request outstanding: only the alarm is pending
    └── cron_firing      build requests outstanding; each REPLY or REQUEST_FAILED
                         is reported on cp.cron.events; none left: cron_waiting

:mod:`computepods.cron.timetable` does the arithmetic.  One alarm serves every
schedule: it is set to the earliest next fire time, but never further than
``recheck_s`` ahead, so that a wall clock that jumps (suspend and resume, a
clock set by hand) is noticed within that time: each review starts from
``clock.time()`` and a high-water mark of wall time, so no run fires twice
and none is replayed.  Runs that fell while the pod was down are reported
once (a warning and a ``missed`` event) at start, and not built.

Cron expressions are in the pod's local time.  A fire is a ``build.request``
for the schedule's targets, as a client would send it (``client: "cron"``);
the MajorDomo queues it behind a running build, or joins a running build of
the same targets.
"""
from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import Sequence

from miros import return_status, spy_on

from computepods.bus import messages as m
from computepods.clock import SystemClock
from computepods.paths import STATE_DIR
from computepods.project.model import Schedule
from computepods.cron.timetable import (CRON_FILE, Due, Missed, Timetable, iso, load_checked,
                         save_checked)
from computepods.charts.base import STOP_TIMEOUT_S, Chart

log = logging.getLogger("computepods.cron")

RECHECK_S = 60.0        # seconds between reviews at most: how soon a clock jump is seen


@dataclass(frozen=True)
class Tick:
    """The alarm rang (or the chart started) at wall time ``now``."""
    now: float
    starting: bool = False


@spy_on
def cron_running(cron: "Cron", e):
    sig = e.signal_name
    if sig == "INIT_SIGNAL":
        return cron.trans(cron_waiting)
    if sig == m.TICK:
        cron.review(e.payload)
        return cron.trans(cron_firing) if cron.outstanding else cron.trans(cron_waiting)
    cron.temp.fun = cron.top
    return return_status.SUPER


@spy_on
def cron_waiting(cron: "Cron", e):
    cron.temp.fun = cron_running
    return return_status.SUPER


@spy_on
def cron_firing(cron: "Cron", e):
    sig = e.signal_name
    if sig == m.REPLY:
        cron.answered(e.payload)
        return return_status.HANDLED if cron.outstanding else cron.trans(cron_waiting)
    if sig == m.REQUEST_FAILED:
        cron.refused(e.payload)
        return return_status.HANDLED if cron.outstanding else cron.trans(cron_waiting)
    cron.temp.fun = cron_running
    return return_status.SUPER


class Cron(Chart):
    """Start with ``Cron(bridge, root, project.schedules).start()``; ``stop()``
    closes its alarm and its thread."""

    initial_state = cron_running

    def __init__(self, bridge, root: Path, schedules: Sequence[Schedule], *,
                 clock=None, tz: tzinfo | None = None, recheck_s: float = RECHECK_S, **kw):
        super().__init__("cron", **kw)
        self.bridge = bridge
        self.root = Path(root)
        self.clock = clock or SystemClock()
        self.timetable = Timetable(schedules, tz)
        self.path = self.root / STATE_DIR / CRON_FILE
        self.recheck_s = recheck_s
        self.checked: dict[str, float] = {}
        self.outstanding: dict[int, Due] = {}      # request token -> the run it fires
        self.alarm = None
        self._tokens = itertools.count(1)

    # -- life cycle ------------------------------------------------------------
    def start(self) -> "Cron":
        self.alarm = self.clock.alarm(self._ring, name="cron")
        super().start()
        self.post(m.TICK, Tick(self.clock.time(), starting=True))
        return self

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        if self.alarm is not None:
            self.alarm.close()
        super().stop(timeout)

    def _ring(self) -> None:               # on the alarm's thread
        self.post(m.TICK, Tick(self.clock.time()))

    # -- what the states call --------------------------------------------------
    def review(self, tick: Tick) -> None:
        if tick.starting:
            self.checked = load_checked(self.path)
        review = self.timetable.review(self.checked, tick.now, starting=tick.starting)
        self.checked = review.checked
        try:
            # Written before the builds are asked for: a crash in between
            # loses a run (reported by nobody but this log) rather than
            # running it twice — cron's own at-most-once.
            save_checked(self.path, self.checked)
        except OSError as exc:
            log.error("cannot write %s (%s): runs missed while the pod is down "
                      "may go unreported", self.path, exc)
        for missed in review.missed:
            self.report_missed(missed)
        for due in review.due:
            self.fire(due)
        self.set_alarm(review.next_at)

    def set_alarm(self, next_at: float | None) -> None:
        if next_at is None:                # no schedule will ever fire again
            self.alarm.cancel()
            return
        wait = min(max(next_at - self.clock.time(), 0.0), self.recheck_s)
        self.alarm.set(self.clock.monotonic() + wait)

    def fire(self, due: Due) -> None:
        token = next(self._tokens)
        self.outstanding[token] = due
        log.info("schedule %r: building %s", due.schedule.cron, " ".join(due.schedule.targets))
        self.bridge.request(m.BUILD_REQUEST, {"targets": list(due.schedule.targets),
                                              "cwd": str(self.root), "client": "cron"},
                            chart=self, token=token)

    def answered(self, reply: m.Reply) -> None:
        due = self.outstanding.pop(reply.token, None)
        if due is None:
            return
        build = (reply.data or {}).get("build")
        if not isinstance(build, str):
            self.report_failed(due, f"the answer to the build request named no build: {reply.data}")
            return
        self.bridge.publish(m.CRON_EVENTS, {**self._about(due.schedule), "t": "fired",
                                            "at": iso(due.at, self.timetable.tz), "build": build})

    def refused(self, reply: m.Reply) -> None:
        due = self.outstanding.pop(reply.token, None)
        if due is not None:
            self.report_failed(due, reply.error)

    def report_failed(self, due: Due, error: str) -> None:
        log.error("schedule %r: the build of %s could not be started: %s",
                  due.schedule.cron, " ".join(due.schedule.targets), error)
        self.bridge.publish(m.CRON_EVENTS, {**self._about(due.schedule), "t": "failed",
                                            "at": iso(due.at, self.timetable.tz),
                                            "error": error})

    def report_missed(self, missed: Missed) -> None:
        tz = self.timetable.tz
        first, last = iso(missed.first, tz), iso(missed.last, tz)
        count = f"{missed.count}{'+' if missed.more else ''}"
        log.warning("schedule %r (%s): %s run%s missed while the pod was down or asleep "
                    "(%s%s); not replayed", missed.schedule.cron,
                    " ".join(missed.schedule.targets), count,
                    "" if count == "1" else "s", first, "" if first == last else f" to {last}")
        self.bridge.publish(m.CRON_EVENTS, {**self._about(missed.schedule), "t": "missed",
                                            "count": missed.count, "more": missed.more,
                                            "first": first, "last": last})

    @staticmethod
    def _about(schedule: Schedule) -> dict:
        return {"cron": schedule.cron, "targets": list(schedule.targets)}
