"""The base of every computepods chart: a miros ActiveObject that loses nothing.

miros gives each active object a queue of ``QUEUE_SIZE`` (500) events that
silently overwrites its oldest event when full.  A build of 10,000 steps
posts more than that in one burst, so :class:`Chart` swaps in an
:class:`EventQueue` that holds up to :data:`DEFAULT_CAPACITY` events and then
applies back-pressure: a poster on another thread blocks until there is room,
and raises :class:`~computepods.errors.ChartQueueFull` (naming the chart)
if there is still none after ``POST_TIMEOUT_S``.  A chart posting to itself
never blocks (it would wait on itself); neither do miros' own ``post_lifo``
meta-events, nor the stop event.

A chart is started with :meth:`Chart.start` (``start_at`` first, then the
subscriptions, as miros' ``trace()`` requires) and stopped with
:meth:`Chart.stop`, which joins its thread.  ``live_trace``/``live_spy``
turn on miros' instrumentation for a chart, printing through ``trace_sink``;
``CP_TRACE=majordomo,chef`` turns on ``live_trace`` for the charts of those
kinds only (a chart's name up to its ``:``; ``all``: every chart), in any
process, embedded or not; ``CP_SPY`` likewise turns on ``live_spy`` (every
event each state handled), docs/debugging.md.

Charts publish to each other (RECORD, RECORDED) on a :class:`Fabric`, one
for each pod, never on miros' ActiveFabric: that one is a process-wide
singleton, and stopping it ends every chart in the process (its stop flag,
``FiberThreadEvent``, is a singleton too, read by every chart's thread), so
two pods could not live in one process.  A Chart never starts it.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
from collections import deque
from typing import Callable, Iterable

from miros import ActiveObject, Event, signals

from computepods.clock import Clock, Ticker
from computepods.errors import ChartQueueFull

log = logging.getLogger("computepods.charts")

DEFAULT_CAPACITY = 1_000_000      # events queued per chart before back-pressure
POST_TIMEOUT_S = 60.0             # seconds a poster waits for room before giving up
STOP_TIMEOUT_S = 10.0             # seconds stop() waits for the chart's thread
DEFAULT_PRIORITY = 1000           # miros' default publish priority (1 is highest)


class EventQueue:
    """A bounded, blocking stand-in for miros' LockingDeque.

    It offers the interface ActiveObject and HsmWithQueues use (append,
    appendleft, popleft, pop, wait, get, task_done, clear, len, ``deque``).
    """

    def __init__(self, owner: "Chart", capacity: int = DEFAULT_CAPACITY):
        self.deque: deque = deque()
        self.capacity = capacity
        self._owner = owner
        lock = threading.Lock()
        self._not_empty = threading.Condition(lock)
        self._not_full = threading.Condition(lock)

    # -- producers -------------------------------------------------------------
    def append(self, item) -> None:
        with self._not_full:
            if len(self.deque) >= self.capacity and not self._exempt(item):
                if not self._not_full.wait_for(lambda: len(self.deque) < self.capacity,
                                               POST_TIMEOUT_S):
                    raise ChartQueueFull(
                        f"chart {self._owner.name!r}: event "
                        f"{getattr(item, 'signal_name', item)} could not be queued: "
                        f"{len(self.deque)} events waiting for {POST_TIMEOUT_S:.0f} s")
            self.deque.append(item)
            self._not_empty.notify()

    def appendleft(self, item) -> None:
        # miros posts its SUBSCRIBE/PUBLISH meta-events with post_lifo during
        # start-up: they must never block, and they are few.
        with self._not_empty:
            self.deque.appendleft(item)
            self._not_empty.notify()

    def _exempt(self, item) -> bool:
        if threading.current_thread() is self._owner.thread:
            return True                     # a chart posting to itself
        return getattr(item, "signal", None) == signals.STOP_ACTIVE_OBJECT_SIGNAL

    # -- the consumer (the chart's own thread) ---------------------------------
    def wait(self, block: bool = True, timeout: float | None = None):
        with self._not_empty:
            if not self.deque and block:
                self._not_empty.wait_for(lambda: len(self.deque) > 0, timeout)
        return "ready"

    get = wait

    def popleft(self):
        with self._not_full:
            item = self.deque.popleft()
            self._not_full.notify()
            return item

    def pop(self):
        with self._not_full:
            item = self.deque.pop()
            self._not_full.notify()
            return item

    def task_done(self) -> None:
        pass

    def clear(self) -> None:
        with self._not_full:
            self.deque.clear()
            self._not_full.notify_all()

    def qsize(self) -> int:
        return len(self.deque)

    def __len__(self) -> int:
        return len(self.deque)

    def len(self) -> int:
        return len(self.deque)


class Fabric:
    """Publish/subscribe between the charts of one pod.

    It offers what miros' ActiveObject asks of its fabric (subscribe,
    publish, is_alive, start).  Delivery is synchronous, into each
    subscriber's queue in subscription order, so events of one publisher
    arrive in the order published and a full queue applies its
    back-pressure to the publisher.  There is no queue between, so a
    publish priority has nothing to reorder and is ignored.
    """

    def __init__(self) -> None:
        self._subs: dict[str, list[tuple[object, bool]]] = {}    # name -> (queue, lifo)
        self._lock = threading.Lock()

    def subscribe(self, queue, event_or_signal, queue_type: str | None = None) -> str:
        name = _signal_name(event_or_signal)
        lifo = queue_type == "lifo"
        with self._lock:
            subs = self._subs.setdefault(name, [])
            if not any(q is queue and l == lifo for q, l in subs):
                subs.append((queue, lifo))
        return name

    def subscribed(self, event_or_signal, queue_type: str = "fifo") -> bool:
        with self._lock:
            return bool(self._subs.get(_signal_name(event_or_signal)))

    def unsubscribe(self, queue) -> None:
        with self._lock:
            for name, subs in self._subs.items():
                self._subs[name] = [(q, lifo) for q, lifo in subs if q is not queue]

    def publish(self, event, priority=None) -> None:
        with self._lock:
            subs = list(self._subs.get(event.signal_name, ()))
        for queue, lifo in subs:
            if lifo:
                queue.appendleft(event)
            else:
                queue.append(event)

    # miros' ActiveObject starts its fabric if it is not alive; this one has no thread.
    def is_alive(self) -> bool:
        return True

    def start(self) -> None:
        pass


def _signal_name(event_or_signal) -> str:
    if isinstance(event_or_signal, int):
        return signals.name_for_signal(event_or_signal)
    return event_or_signal.signal_name


def _stderr_line(line: str) -> None:
    print(line.replace("\n", ""), file=sys.stderr, flush=True)


TRACE_ENV = "CP_TRACE"      # chart kinds to trace, comma-separated ("all": every chart)
SPY_ENV = "CP_SPY"          # chart kinds whose every event handled is printed (live_spy)


def traced(name: str, env: str = TRACE_ENV) -> bool:
    """Whether ``CP_TRACE`` (or ``env``) asks for the chart named ``name``
    (its kind: the name up to its first ``:``, ``chef`` of ``chef:host-4242-0``)."""
    wanted = {w.strip().lower() for w in os.environ.get(env, "").split(",")}
    return "all" in wanted or name.split(":", 1)[0].lower() in wanted - {""}


class Chart(ActiveObject):
    """An active object that never drops an event and stops cleanly.

    Subclasses define their states as ``@spy_on`` functions, name the initial
    one in ``initial_state`` and the fabric signals they want in
    ``subscriptions``.
    """

    initial_state: Callable = None          # set by subclasses
    subscriptions: tuple[str, ...] = ()     # fabric signals to subscribe to

    def __init__(self, name: str, *, live_trace: bool = False, live_spy: bool = False,
                 trace_sink: Callable[[str], None] = _stderr_line,
                 capacity: int = DEFAULT_CAPACITY, fabric: Fabric | None = None):
        # Instrumentation costs; it is on only when someone watches.
        super().__init__(name)
        self.fabric = fabric if fabric is not None else Fabric()
        # ActiveObject passes `instrumented` to HsmWithQueues' `maxlen`
        # parameter, so it is always on; set it here, where it takes.
        live_trace = live_trace or traced(name)
        live_spy = live_spy or traced(name, SPY_ENV)
        self.instrumented = bool(live_trace or live_spy)
        self.queue = self.locking_deque = EventQueue(self, capacity)
        self.defer_queue = deque()           # miros' is bounded at 500 and overwrites
        self.live_trace = live_trace
        self.live_spy = live_spy
        self.crashes: list[Exception] = []
        self._tickers: list[Ticker] = []
        if live_trace:
            self.register_live_trace_callback(trace_sink)
        if live_spy:
            self.register_live_spy_callback(trace_sink)

    # -- life cycle ------------------------------------------------------------
    def start(self) -> "Chart":
        if self.initial_state is None:
            raise TypeError(f"{type(self).__name__} has no initial_state")
        self.start_at(type(self).initial_state)
        for sig in self.subscriptions:
            self.subscribe(Event(signal=getattr(signals, sig)))
        return self

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop the chart's thread and wait for it; unsubscribe from the fabric."""
        for ticker in self._tickers:
            ticker.close()
        if self.thread is None:
            return
        # miros' loop runs until the stop event reaches the head of the
        # queue: what was posted before stop() is still handled.
        self.queue.append(Event(signal=signals.STOP_ACTIVE_OBJECT_SIGNAL))
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout)
            if self.thread.is_alive():
                raise RuntimeError(f"chart {self.name!r} did not stop within {timeout} s")
        for e in list(self.posted_events_queue):
            self.cancel_events(e)
        self.fabric.unsubscribe(self.queue)

    def run_event(self, task_event, fabric_task_event, queue) -> None:
        """The chart's thread (miros' loop, without its process-wide stop flag:
        a chart stops on its own stop event only)."""
        while task_event.is_set():
            queue.wait()
            if len(self.queue) >= 1:
                if self.queue.deque[0].signal != signals.STOP_ACTIVE_OBJECT_SIGNAL:
                    self.next_rtc()
                else:
                    task_event.clear()

    # -- a handler that raises ------------------------------------------------------
    def next_rtc(self):
        """Run one event to completion; a handler's exception is logged with
        its traceback and handed to :meth:`on_crash` instead of killing the
        chart's thread (which would leave everyone waiting on it)."""
        try:
            return super().next_rtc()
        except Exception as exc:
            log.exception("chart %s: a handler failed", self.name)
            self.crashes.append(exc)
            try:
                self.on_crash(exc)
            except Exception:
                log.exception("chart %s: on_crash failed too", self.name)
            return True

    def on_crash(self, exc: Exception) -> None:
        """Override to turn a bug into a reported failure (the MajorDomo fails
        the build it was running)."""

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    # -- the fabric ------------------------------------------------------------
    # miros' _subscribe/_publish are wrapped by spy decorators that call
    # through only when the chart is instrumented: an uninstrumented chart
    # would silently neither subscribe nor publish.  These call the fabric
    # directly and keep the spy line when someone is watching.  miros'
    # subscribe() also skips a signal that any other chart subscribed to.
    def subscribe(self, event_or_signal, queue_type=None) -> None:
        self._subscribe(event_or_signal, queue_type or "fifo")

    def _subscribe(self, event_or_signal, queue_type):
        if self.instrumented:
            name = getattr(event_or_signal, "signal_name", event_or_signal)
            self.scribble(f"SUBSCRIBING TO:({name}, TYPE:{queue_type})")
        self.fabric.subscribe(self.queue, event_or_signal, queue_type)

    def publish(self, event, priority=None) -> None:
        self._publish(event, priority)

    def _publish(self, event, priority=None):
        priority = DEFAULT_PRIORITY if priority is None else priority
        if self.instrumented:
            self.rtc.spy.append(f"PUBLISH:({event.signal_name}, PRIORITY:{priority})")
        self.fabric.publish(event, priority)

    # -- posting helpers -------------------------------------------------------
    def events_waiting(self) -> int:
        """Events queued behind the one being handled (a guard for batching:
        with none, work that would wait for company can be done now)."""
        return len(self.queue)

    def post(self, signal: str, payload=None) -> None:
        """Post an event to this chart (thread-safe; blocks if the chart is swamped)."""
        self.post_fifo(Event(signal=getattr(signals, signal), payload=payload))

    def emit(self, signal: str, payload=None) -> None:
        """Publish an event on this chart's fabric to the charts subscribed to it."""
        self.publish(Event(signal=getattr(signals, signal), payload=payload))

    def every(self, clock: Clock, period_s: float, signal: str) -> Ticker:
        """A :class:`~computepods.clock.Ticker` that posts `signal` to this
        chart every `period_s` seconds of `clock` while started (miros'
        periodic events run on real time only); :meth:`stop` closes it."""
        ticker = Ticker(clock, period_s, lambda: self.post(signal), f"{self.name}:{signal}")
        self._tickers.append(ticker)
        return ticker


def stop_all(charts: Iterable[Chart]) -> None:
    """Stop charts in reverse start order, collecting the first error."""
    first: Exception | None = None
    for chart in reversed(list(charts)):
        try:
            chart.stop()
        except Exception as exc:   # keep stopping the others
            first = first or exc
    if first:
        raise first
