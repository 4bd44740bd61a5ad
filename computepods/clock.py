"""Clocks and alarms that tests can drive.

A chart that waits for a moment (the FSWatcher's quiet periods, the Cron
chart's next run) asks an :class:`Alarm` to call it back then.  An alarm
holds one deadline at a time: setting it again moves it.  So a debounce
over 10,000 files costs one thread, not a miros timer (a thread) per file
(docs/architecture.md §10).

:class:`SystemClock` runs alarms on one thread per alarm, sleeping on a
condition until the deadline or a new one.  :class:`SimClock` never moves
by itself: a test calls :meth:`SimClock.advance`, which fires every alarm
that fell due, in deadline order, on the test's own thread.

A :class:`Ticker` is an alarm that sets itself again after each ring: the
MajorDomo's lease checks and a chef's heartbeat run on one, so a test moves
them with the SimClock rather than waiting for them.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Callable, Protocol

# The GIL's switch interval in a pod and a chef (Python's default: 5 ms).  A
# slot whose command has ended waits for the GIL before it starts the next
# one.  While another thread decoded a run message or encoded results, both
# slots' processors could stand idle for up to one interval (full build of
# wide 1000, two slots: 1.24-1.48x ninja with 5 ms, 1.18-1.30x with 0.5 ms,
# alternating in one run).
SWITCH_INTERVAL_S = 0.0005


def prompt_switching() -> None:
    """Hand the GIL over within SWITCH_INTERVAL_S (a process-wide setting)."""
    sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))


class Clock(Protocol):
    """What charts ask of time: SystemClock in a pod, SimClock in tests."""

    def monotonic(self) -> float:
        """Seconds for deadlines and durations; never goes back."""

    def time(self) -> float:
        """Wall-clock seconds since the epoch, for the calendar and records."""

    def alarm(self, fire: Callable[[], None], name: str = "alarm") -> "Alarm":
        """An alarm that calls ``fire()`` at the deadline it is set to."""


class SystemClock:
    """Real time: ``monotonic()`` for deadlines, ``time()`` for the calendar."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def alarm(self, fire: Callable[[], None], name: str = "alarm") -> "Alarm":
        return _ThreadAlarm(self, fire, name)


class Alarm:
    """Calls ``fire()`` once at the deadline given to :meth:`set`."""

    def set(self, deadline: float) -> None:        # monotonic seconds
        raise NotImplementedError

    def cancel(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.cancel()


class _ThreadAlarm(Alarm):
    def __init__(self, clock: SystemClock, fire: Callable[[], None], name: str):
        self._clock = clock
        self._fire = fire
        self._deadline: float | None = None
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def set(self, deadline: float) -> None:
        with self._cond:
            self._deadline = deadline
            self._cond.notify()

    def cancel(self) -> None:
        with self._cond:
            self._deadline = None
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._deadline = None
            self._cond.notify()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    if self._deadline is None:
                        self._cond.wait()
                        continue
                    left = self._deadline - self._clock.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                if self._closed:
                    return
                self._deadline = None
            self._fire()


class Ticker:
    """Calls ``fire()`` every ``period_s`` seconds of `clock`, the first time
    one period after :meth:`start`, until :meth:`stop`; :meth:`close` lets
    go of its alarm (and, on the SystemClock, its thread)."""

    def __init__(self, clock: Clock, period_s: float, fire: Callable[[], None],
                 name: str = "ticker"):
        self.period_s = period_s
        self._clock = clock
        self._fire = fire
        self._on = False
        self._lock = threading.Lock()        # so that no ring re-arms it after stop()
        self._alarm = clock.alarm(self._ring, name)

    def start(self) -> None:
        with self._lock:
            self._on = True
            self._alarm.set(self._clock.monotonic() + self.period_s)

    def stop(self) -> None:
        with self._lock:
            self._on = False
            self._alarm.cancel()

    def close(self) -> None:
        self.stop()
        self._alarm.close()

    def _ring(self) -> None:
        with self._lock:
            if not self._on:
                return
            self._alarm.set(self._clock.monotonic() + self.period_s)
        self._fire()


class SimClock:
    """A clock that moves only when told: ``advance(dt)`` fires due alarms."""

    def __init__(self, start: float = 1000.0, wall: float = 1_767_225_600.0):
        self._now = start            # monotonic seconds
        self._wall_offset = wall - start
        self._alarms: list[_SimAlarm] = []
        self._lock = threading.RLock()

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._now + self._wall_offset

    def alarm(self, fire: Callable[[], None], name: str = "alarm") -> "Alarm":
        alarm = _SimAlarm(fire)
        with self._lock:
            self._alarms.append(alarm)
        return alarm

    def advance(self, seconds: float) -> None:
        """Move time forward, firing each alarm at its deadline on the way."""
        with self._lock:
            end = self._now + seconds
            while True:
                due = [a for a in self._alarms if a.deadline is not None and a.deadline <= end]
                if not due:
                    break
                alarm = min(due, key=lambda a: a.deadline)
                self._now = max(self._now, alarm.deadline)
                alarm.deadline = None
                alarm.fire()
            self._now = end

    def next_deadline(self) -> float | None:
        with self._lock:
            pending = [a.deadline for a in self._alarms if a.deadline is not None]
        return min(pending) if pending else None


class _SimAlarm(Alarm):
    def __init__(self, fire: Callable[[], None]):
        self.fire = fire
        self.deadline: float | None = None

    def set(self, deadline: float) -> None:
        self.deadline = deadline

    def cancel(self) -> None:
        self.deadline = None
