"""When ``[[schedule]]`` entries fire: due runs, missed runs, the next fire.

The Cron chart (:mod:`computepods.charts.cron`) decides; this module does
the arithmetic, on plain numbers, so it is tested with fixed times and no
threads.  Cron expressions are read by croniter (vixie-cron syntax, plus
``@daily`` and friends and an optional sixth field of seconds) and are in the
pod's *local* time: ``0 2 * * *`` is 02:00 where the pod runs, daylight
saving time included (croniter's rule: a time skipped in spring fires at the
first moment after the gap; a time that happens twice in autumn fires twice,
being two distinct instants).

The one rule: a run fires at most once, when the pod is up at its time.
Everything else is *missed*: reported once, never replayed.

* A run whose time passed while the pod was down is missed (the pod keeps,
  per schedule, the wall time up to which it has looked, in
  ``.computepods/cron.json``).
* A run noticed more than :data:`LATE_GRACE_S` after its time (the machine
  slept, the clock jumped forward) is missed; so is every run but the latest
  when several fell due at once.
* A clock set back never fires a run again: the pod's high-water mark of
  wall time only moves forward, and nothing fires before it.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

from computepods.paths import atomic_write

if TYPE_CHECKING:                       # project.py imports this module
    from computepods.project.model import Schedule

log = logging.getLogger("computepods.cron")

CRON_FILE_VERSION = 1
LATE_GRACE_S = 60.0            # seconds after its time a run may still fire
MISSED_COUNT_CAP = 10_000      # missed runs counted one by one, no more (bounded work)


# --- cron expressions ---------------------------------------------------------

def cron_problem(cron: str) -> str | None:
    """Why croniter rejects ``cron`` (its own words), or None if it is good.

    An expression that parses but can never fire (``0 0 30 2 *``) is
    rejected too.
    """
    from croniter import CroniterBadDateError, CroniterError, croniter
    try:
        croniter(cron, datetime.fromtimestamp(0, timezone.utc)).get_next(float)
    except CroniterBadDateError as exc:
        return f"it never fires ({exc})"
    except CroniterError as exc:
        return str(exc) or type(exc).__name__
    return None


def local_zone() -> tzinfo:
    """The pod's local time zone, with its daylight-saving rules when the
    system names them (``$TZ`` or ``/etc/localtime``), else today's offset."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
    name = os.environ.get("TZ", "").lstrip(":")
    try:
        if name:
            return ZoneInfo(name)
        with open("/etc/localtime", "rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError, ZoneInfoNotFoundError):
        return datetime.now().astimezone().tzinfo


def schedule_key(schedule: "Schedule") -> str:
    """What names a schedule in cron.json: its expression and its targets."""
    return f"{schedule.cron} -> {' '.join(schedule.targets)}"


def iso(when: float, tz: tzinfo) -> str:
    """A wall time as ISO 8601 in the pod's zone, to the second."""
    return datetime.fromtimestamp(when, tz).isoformat(timespec="seconds")


class _Times:
    """One schedule's fire times, as wall-clock seconds."""

    def __init__(self, cron: str, tz: tzinfo):
        from croniter import croniter
        self._it = croniter(cron, datetime.fromtimestamp(0, tz))
        self._tz = tz

    def after(self, when: float) -> float | None:
        """The first fire time strictly after ``when``; None if there is none."""
        from croniter import CroniterBadDateError
        try:
            return self._it.get_next(float, start_time=datetime.fromtimestamp(when, self._tz))
        except CroniterBadDateError:      # e.g. a year field that lies in the past
            return None

    def before(self, when: float) -> float | None:
        """The last fire time strictly before ``when``; None if there is none."""
        from croniter import CroniterBadDateError
        try:
            return self._it.get_prev(float, start_time=datetime.fromtimestamp(when, self._tz))
        except CroniterBadDateError:
            return None


# --- the review ----------------------------------------------------------------

@dataclass(frozen=True)
class Due:
    """A run to fire now."""
    schedule: "Schedule"
    at: float                    # its fire time, wall seconds


@dataclass(frozen=True)
class Missed:
    """Runs of one schedule that will not fire: how many, the first and last."""
    schedule: "Schedule"
    count: int                   # at most MISSED_COUNT_CAP ...
    more: bool                   # ... and True when there were more
    first: float
    last: float


@dataclass
class Review:
    due: list[Due] = field(default_factory=list)
    missed: list[Missed] = field(default_factory=list)
    checked: dict[str, float] = field(default_factory=dict)   # the new cron.json
    next_at: float | None = None  # the earliest fire time to wake for, wall seconds


class Timetable:
    """The fire times of a project's schedules."""

    def __init__(self, schedules: Sequence["Schedule"], tz: tzinfo | None = None):
        self.tz = tz or local_zone()
        self.schedules = tuple(schedules)
        self._times = {schedule_key(s): _Times(s.cron, self.tz) for s in self.schedules}

    def review(self, checked: Mapping[str, float], now: float, *,
               starting: bool = False) -> Review:
        """What to do at wall time ``now``, given up to when each schedule was
        looked at (``checked``, from cron.json or the last review).

        ``starting``: the pod has just come up, so every run since the last
        check fell while it was down and is missed, however recent.  A
        schedule with no entry in ``checked`` is new: it starts from ``now``.
        """
        out = Review()
        for s in self.schedules:
            key = schedule_key(s)
            if key in out.checked:             # the same schedule twice: once is enough
                continue
            times = self._times[key]
            since = checked.get(key, now)
            latest = times.before(now + 1e-6)          # the last run at or before now
            if latest is not None and latest > since:
                fire = not starting and now - latest <= LATE_GRACE_S
                if fire:
                    out.due.append(Due(s, latest))
                first = times.after(since)
                last = times.before(latest) if fire else latest
                if first is not None and last is not None and first <= last:
                    count, more = _count(times, first, last)
                    out.missed.append(Missed(s, count, more, first, last))
            high = max(since, now)             # a clock set back fires nothing again
            out.checked[key] = high
            nxt = times.after(high)
            if nxt is not None and (out.next_at is None or nxt < out.next_at):
                out.next_at = nxt
        return out


def _count(times: _Times, first: float, last: float) -> tuple[int, bool]:
    """How many runs from first to last, both included, counting no further
    than MISSED_COUNT_CAP; and whether there were more."""
    count, t = 0, first
    while t is not None and t <= last:
        if count == MISSED_COUNT_CAP:
            return count, True
        count += 1
        t = times.after(t)
    return count, False


# --- cron.json ----------------------------------------------------------------

def load_checked(path: Path) -> dict[str, float]:
    """The per-schedule wall times of the last check; {} when there is no
    file (a first start) or when it cannot be read (said in a warning:
    runs missed before now cannot be reported)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("%s is unreadable (%s); runs missed while the pod was down "
                    "cannot be reported this time", path, exc)
        return {}
    checked = data.get("checked") if isinstance(data, dict) else None
    if not isinstance(checked, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in checked.values()):
        log.warning("%s does not hold a 'checked' table of times; runs missed while "
                    "the pod was down cannot be reported this time", path)
        return {}
    return {str(k): float(v) for k, v in checked.items()}


def save_checked(path: Path, checked: Mapping[str, float]) -> None:
    """Write cron.json so that it is either the old or the new one, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps({"v": CRON_FILE_VERSION, "checked": dict(checked)}, indent=1).encode()
    atomic_write(path, data, durable=True)
