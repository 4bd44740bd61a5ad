"""An in-process :class:`~computepods.bus.protocol.Bus`, for unit tests of charts.

It keeps what the charts rely on in the NatsBridge: subjects under a
namespace, NATS wildcards (``*`` one token, ``>`` the rest), JSON encoding
and schema validation on the way in (a malformed message is answered,
reported on ``<ns>.errors`` and dropped), and request/reply through a
private inbox subject, the first answer winning.  A request nobody listens
to fails at once, as NATS' no-responders does; one that is heard but never
answered stays unanswered (the bridge's retries are not modelled).  A
gather keeps the answers to its inbox until ``max_replies`` or until its
window closes on the bus's clock (a SimClock in tests: the test advances it).

Delivery is synchronous, on the sender's thread: a chart's ``post`` is
thread-safe, so this is what the bridge's loop thread does, without it.
Integration tests still use the real nats-server.
"""
from __future__ import annotations

import itertools
import time
import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from computepods.bus import messages as m
from computepods.bus import payloads
from computepods.bus.gather import Collector, check_window, gather_token
from computepods.bus.protocol import Postable
from computepods.clock import Clock, SystemClock
from computepods.errors import BusError, MalformedMessage

SYNC_TIMEOUT_S = 10.0          # seconds request_sync waits for an answer
INBOX_PREFIX = "_INBOX.loopback."


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS' rule: ``*`` matches one token, a final ``>`` one or more."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return i == len(want) - 1 and len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)


@dataclass
class _Subscription:
    pattern: str
    signal: str | None
    deliver: Callable[[m.Message], None]
    owner: Any = None


@dataclass
class _Pending:
    chart: Postable | None
    token: Any
    subject: str
    answer: "queue.Queue[m.Reply] | None" = None


class LoopbackBus:
    """One namespace of an in-process bus; ``log`` lists what was delivered."""

    def __init__(self, namespace: str = m.DEFAULT_NAMESPACE, name: str = "loopback",
                 clock: Clock | None = None, keep_log: bool = True):
        """``keep_log``: list every message delivered in ``log`` (tests read
        it); a long-lived process embedding a chart on this bus says False."""
        self.ns = namespace
        self.keep_log = keep_log
        self.clock = clock or SystemClock()
        self._gathers: dict[str, tuple[Collector, Postable, object]] = {}  # inbox -> ...
        self.name = name
        self.url = "loopback:"
        self._subs: list[_Subscription] = []
        self._pending: dict[str, _Pending] = {}
        self._inboxes = itertools.count(1)
        self._lock = threading.RLock()
        self.log: list[tuple[str, dict]] = []       # (subject, payload) of every message
        self.stopped = False
        self.offline_since: float | None = None        # a test cuts the bus by setting it

    # -- subjects --------------------------------------------------------------
    def subject(self, signal: str, **params: str) -> str:
        return m.ROUTES[signal].subject(self.ns, **params)

    def _pattern(self, signal: str, params: Mapping[str, str]) -> str:
        route = m.ROUTES[signal]
        return route.subject(self.ns, **params) if params else route.wildcard(self.ns)

    # -- inbound ---------------------------------------------------------------
    def route(self, signal: str, chart: Postable, **params: str) -> None:
        self._add(_Subscription(self._pattern(signal, params), signal,
                                lambda msg: chart.post(signal, msg), chart))

    def listen(self, signal: str, into: "queue.Queue[m.Message]", **params: str) -> None:
        self._add(_Subscription(self._pattern(signal, params), signal, into.put, into))

    def unlisten(self, into: "queue.Queue[m.Message]") -> None:
        with self._lock:
            self._subs = [s for s in self._subs if s.owner is not into]

    def _add(self, sub: _Subscription) -> None:
        with self._lock:
            self._subs.append(sub)

    # -- outbound --------------------------------------------------------------
    def publish(self, signal: str, payload: Mapping[str, Any], **params: str) -> None:
        self._send(self.subject(signal, **params), m.encode(payload))

    def publish_subject(self, subject: str, payload: Mapping[str, Any]) -> None:
        self._send(subject, m.encode(payload))

    def respond(self, msg: m.Message, payload: Mapping[str, Any]) -> None:
        if msg.reply:
            self._send(msg.reply, m.encode(payload))

    def request(self, signal: str, payload: Mapping[str, Any], *, chart: Postable,
                token: Any, **params: str) -> None:
        self._ask(self.subject(signal, **params), m.encode(payload), _Pending(chart, token, ""))

    def request_sync(self, signal: str, payload: Mapping[str, Any], *,
                     timeout: float = SYNC_TIMEOUT_S, **params: Any) -> dict:
        params.pop("attempts", None)
        answer: "queue.Queue[m.Reply]" = queue.Queue()
        self._ask(self.subject(signal, **params), m.encode(payload),
                  _Pending(None, None, "", answer))
        try:
            reply = answer.get(timeout=timeout)
        except queue.Empty:
            raise BusError(f"no answer on {self.subject(signal, **params)} "
                           f"within {timeout:.1f} s") from None
        if reply.error:
            raise BusError(reply.error)
        return reply.data

    def gather(self, signal: str, payload: Mapping[str, Any], window_s: float,
               max_replies: int, *, chart: Postable, **params: str) -> str:
        check_window(window_s, max_replies)
        token, subject = gather_token(self.name), self.subject(signal, **params)
        inbox = f"{INBOX_PREFIX}{next(self._inboxes)}"
        alarm = self.clock.alarm(lambda: self._close_gather(inbox), f"gather:{token}")
        with self._lock:
            self._gathers[inbox] = (Collector(token, subject, max_replies), chart, alarm)
        alarm.set(self.clock.monotonic() + window_s)
        self._send(subject, m.encode(payload), inbox)
        return token

    def gathering(self, token: str) -> int:
        """How many answers the open gather `token` holds (0 once closed)."""
        with self._lock:
            return next((len(c.replies) + len(c.problems) for c, _, _ in self._gathers.values()
                         if c.token == token), 0)

    def _close_gather(self, inbox: str) -> None:
        with self._lock:
            gathering = self._gathers.pop(inbox, None)
        if gathering is not None:
            collector, chart, alarm = gathering
            alarm.close()
            chart.post(m.GATHERED, collector.result())

    def publish_raw(self, subject: str, data: bytes, reply: str = "") -> None:
        """Send bytes as they are (tests send malformed messages with it)."""
        self._send(subject, data, reply)

    def offline_s(self) -> float:
        return 0.0 if self.offline_since is None else time.monotonic() - self.offline_since

    def stop(self) -> None:
        with self._lock:
            self.stopped = True
            self._subs = []
            self._pending = {}
            gathers, self._gathers = list(self._gathers.values()), {}
        for _, _, alarm in gathers:
            alarm.close()

    # -- delivery ----------------------------------------------------------------
    def _ask(self, subject: str, data: bytes, pending: _Pending) -> None:
        inbox = f"{INBOX_PREFIX}{next(self._inboxes)}"
        pending.subject = subject
        with self._lock:
            self._pending[inbox] = pending
        if not self._send(subject, data, inbox):
            self._answer(inbox, None, f"no answer on {subject} (NoRespondersError)")

    def _send(self, subject: str, data: bytes, reply: str = "") -> int:
        """Deliver to every matching subscriber; how many there were."""
        if self.stopped:
            return 0
        if subject.startswith(INBOX_PREFIX):
            self._reply_in(subject, data)
            return 1
        with self._lock:
            subs = [s for s in self._subs if subject_matches(s.pattern, subject)]
        reported = False                 # a malformed message is answered once, as NATS does
        for sub in subs:
            try:
                data_in = m.decode(subject, data, sub.signal)
            except MalformedMessage as exc:
                if not reported:
                    self._report_malformed(exc, reply)
                reported = True
                continue
            if self.keep_log:
                self.log.append((subject, data_in))
            sub.deliver(m.Message(subject, data_in, reply))
        return len(subs)

    def _reply_in(self, inbox: str, data: bytes) -> None:
        with self._lock:                # answers may come from several threads at once
            gathering = self._gathers.get(inbox)
            full = gathering is not None and gathering[0].take(data)
        if gathering is not None:
            if full:
                self._close_gather(inbox)
            return
        with self._lock:
            pending = self._pending.get(inbox)
        if pending is None:                       # answered already: the first one won
            return
        try:
            answer = m.decode(pending.subject, data, m.REPLY)
        except MalformedMessage as exc:
            self._answer(inbox, None, str(exc))
            return
        if "error" in answer:
            self._answer(inbox, answer, f"{pending.subject}: {answer['error']}")
        else:
            self._answer(inbox, answer, "")

    def _answer(self, inbox: str, data: dict | None, error: str) -> None:
        with self._lock:
            pending = self._pending.pop(inbox, None)
        if pending is None:
            return
        reply = m.Reply(pending.token, data, error)
        if pending.answer is not None:
            pending.answer.put(reply)
        else:
            pending.chart.post(m.REQUEST_FAILED if error else m.REPLY, reply)

    def _report_malformed(self, exc: MalformedMessage, reply: str) -> None:
        if reply:
            self._send(reply, m.encode({"error": str(exc)}))
        self._send(self.subject(m.BUS_ERROR),
                   m.encode(payloads.ErrorReport(exc.subject, exc.problem, self.name).to_dict()))
