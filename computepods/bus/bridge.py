"""The NatsBridge: NATS subject messages in, statechart events out, and back.

It is deliberately thin: it routes (one table, :data:`messages.ROUTES`),
(de)serialises and validates JSON, retries requests, and reconnects; it has
no business logic.  Charts never touch asyncio: the bridge runs its own loop
in one thread, which drains a queue of their work (one wake-up per burst,
not one ``run_coroutine_threadsafe`` per message: ``bench/bridge_rtt.py``).

Inbound, a message becomes ``Event(signal, Message(subject, data, reply))``
posted to every chart routed for that signal.  A malformed message is
answered (if it has a reply subject), reported on ``<ns>.errors``, logged,
and dropped; no chart sees it.  Outbound, :meth:`publish` sends and
forgets; :meth:`request` posts ``REPLY`` (or ``REQUEST_FAILED`` after its
retries) to the asking chart; :meth:`gather` posts one ``GATHERED`` with
every answer heard within its window (:mod:`computepods.bus.gather`).  Core
NATS delivers at most once, so an unanswered request is sent again, the same
payload: handlers are idempotent (keyed by step id and attempt), and a NATS
restart loses no work.

Nobody joins the bus without a password (docs/architecture.md §2,
:mod:`computepods.bus.auth`): the bridge logs in with its
:class:`Credentials`, asks for replies under its role's inbox prefix, and
refuses a server that lets anyone in (no ``auth_required`` in its INFO)
unless told the bus is insecure on purpose; then it says once what that means.
"""
from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from computepods.bus.natsimport import nats

from computepods.bus import messages as m
from computepods.bus import payloads
from computepods.bus.gather import (Collector, check_window, gather_on_nats, gather_token,
                                    request_on_nats)
from computepods.bus.auth import (INSECURE_SAID, INSECURE_VAR, LOGIN_HELP, OPEN_BUS_HELP,
                                  Credentials, insecure_from_env)
from computepods.errors import BusError, MalformedMessage

log = logging.getLogger("computepods.bus")

CONNECT_TIMEOUT_S = 5.0        # seconds to reach the server at start
RECONNECT_WAIT_S = 0.25        # seconds between reconnect attempts (nats-py's default is 2)
REQUEST_TIMEOUT_S = 2.0        # seconds one attempt waits for its answer
REQUEST_ATTEMPTS = 15          # attempts before REQUEST_FAILED (~30 s with the timeout)
STOP_TIMEOUT_S = 5.0           # seconds stop() waits for the loop to close
_warned_insecure: set[str] = set()   # URLs already warned about, once per process


@dataclass
class _Subscription:
    subject: str
    signal: str | None
    deliver: Callable[[m.Message], None]
    sub: Any = None


@dataclass
class BridgeStats:
    published: int = 0
    received: int = 0
    malformed: int = 0
    retries: int = 0
    reconnects: int = 0
    disconnects: int = 0
    errors: deque = field(default_factory=lambda: deque(maxlen=200))   # the latest only


class NatsBridge:
    """Subject ↔ signal routing over one NATS connection.

    ``insecure``: join a server that asks for no authentication (default:
    the environment's CP_INSECURE_BUS); otherwise :meth:`start` refuses it."""

    def __init__(self, url: str, *, namespace: str = m.DEFAULT_NAMESPACE, name: str = "cpod",
                 credentials: Credentials | None = None, insecure: bool | None = None):
        self.url = url
        self.ns = namespace
        self.name = name
        self.credentials = credentials or Credentials.from_env()
        self.insecure = insecure_from_env() if insecure is None else insecure
        self.stats = BridgeStats()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name=f"bridge:{name}", daemon=True)
        self._nc: nats.NATS | None = None
        self._outbox: deque = deque()
        self._outbox_lock = threading.Lock()
        self._wake_pending = False
        self._subs: list[_Subscription] = []
        self._tasks: set[asyncio.Task] = set()
        self.connected, self._offline_since = threading.Event(), None   # offline: monotonic
        self._closing = False

    # -- life cycle ------------------------------------------------------------
    def start(self, timeout: float = CONNECT_TIMEOUT_S) -> "NatsBridge":
        self._thread.start()
        try:
            self._call(self._connect(timeout), timeout + 1)
        except BaseException:
            self.stop()
            raise
        return self

    def offline_s(self) -> float:
        """How long the bridge has been without its server (0 when connected)."""
        since = self._offline_since
        return 0.0 if since is None else time.monotonic() - since

    def stop(self) -> None:
        """Flush what is queued, close the connection, end the loop thread."""
        if not self._thread.is_alive():
            return
        try:
            self._call(self._close(), STOP_TIMEOUT_S)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(STOP_TIMEOUT_S)

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()
        self._loop.close()

    def _call(self, coro, timeout: float):
        """Run a coroutine on the bridge's loop from another thread and wait."""
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(timeout)
        except TimeoutError:
            fut.cancel()
            raise BusError(f"NATS at {self.url}: no answer within {timeout:.1f} s") from None

    async def _connect(self, timeout: float) -> None:
        try:
            self._nc = await nats.connect(
                servers=[self.url], name=self.name, connect_timeout=timeout,
                allow_reconnect=True, max_reconnect_attempts=-1,
                reconnect_time_wait=RECONNECT_WAIT_S,
                error_cb=self._on_error, disconnected_cb=self._on_disconnect,
                reconnected_cb=self._on_reconnect, **self.credentials.connect_options())
        except _Refused as exc:
            raise BusError(f"NATS at {self.url} refused {self.credentials.who()}: "
                           f"{exc.reason}; {LOGIN_HELP}") from None
        except Exception as exc:   # nats-py raises several unrelated types here
            raise BusError(f"cannot connect to NATS at {self.url}: {exc or type(exc).__name__}") from None
        # nats-py keeps the server's INFO private; auth_required is the one key read.
        if not self._nc._server_info.get("auth_required"):
            if not self.insecure:
                await self._nc.close()
                raise BusError(f"NATS at {self.url} asks for no authentication: "
                               f"{OPEN_BUS_HELP}")
            if self.url not in _warned_insecure and os.environ.get(INSECURE_VAR) != INSECURE_SAID:
                _warned_insecure.add(self.url)
                log.warning("NATS at %s asks for no authentication (--insecure-bus): anyone "
                            "who can reach it can run commands through its chefs", self.url)
        self.connected.set()

    async def _close(self) -> None:
        self._closing = True
        await self._drain_outbox()
        for task in list(self._tasks):
            task.cancel()
        if self._nc is not None and not self._nc.is_closed:
            try:
                await self._nc.flush(timeout=1)
            except Exception as exc:   # closing anyway; say why it was not flushed
                log.debug("flush before close failed: %s", exc)
            await self._nc.close()

    async def _on_error(self, exc: Exception) -> None:
        # nats-py retries a refused login forever when reconnects are on:
        # while the first connect is under way, a refusal ends it.
        if self._nc is None and "authorization violation" in str(exc).lower():
            raise _Refused(str(exc))
        self.stats.errors.append(str(exc))
        log.warning("NATS error: %s", exc)

    async def _on_disconnect(self) -> None:
        self.stats.disconnects += 1
        self.connected.clear()
        self._offline_since = self._offline_since or time.monotonic()
        if self._closing:
            return
        log.warning("disconnected from NATS at %s; reconnecting", self.url)

    async def _on_reconnect(self) -> None:
        self.stats.reconnects += 1
        self.connected.set()
        self._offline_since = None
        log.warning("reconnected to NATS at %s", self.url)

    # -- subjects --------------------------------------------------------------
    def subject(self, signal: str, **params: str) -> str:
        return m.ROUTES[signal].subject(self.ns, **params)

    # -- inbound ---------------------------------------------------------------
    def route(self, signal: str, chart, **params: str) -> None:
        """Deliver messages of `signal` to `chart` as events.

        With params the subject is the specific one (``chef="c1"``), without
        them every per-entity field is a wildcard.
        """
        route = m.ROUTES[signal]
        subject = route.subject(self.ns, **params) if params else route.wildcard(self.ns)
        self._subscribe(_Subscription(subject, signal, lambda msg: chart.post(signal, msg)))

    def listen(self, signal: str, into: "queue.Queue[m.Message]", **params: str) -> None:
        """Deliver messages of `signal` to a plain queue (for non-chart code: the CLI)."""
        route = m.ROUTES[signal]
        subject = route.subject(self.ns, **params) if params else route.wildcard(self.ns)
        self._subscribe(_Subscription(subject, signal, into.put))

    def unlisten(self, into: "queue.Queue[m.Message]") -> None:
        """Stop delivering to a queue given to :meth:`listen`."""
        gone = [s for s in self._subs if getattr(s.deliver, "__self__", None) is into]
        self._subs = [s for s in self._subs if s not in gone]
        for sub in gone:
            if sub.sub is not None and not self._twins(sub):
                self._call(sub.sub.unsubscribe(), CONNECT_TIMEOUT_S)

    def _twins(self, sub: _Subscription) -> list[_Subscription]:
        """The subscriptions of the same subject and signal: one NATS
        subscription serves them all, so that a message is decoded, and a
        malformed one answered and logged, once."""
        return [s for s in self._subs if (s.subject, s.signal) == (sub.subject, sub.signal)]

    def _subscribe(self, sub: _Subscription) -> None:
        twins = self._twins(sub)
        self._subs.append(sub)
        if twins:
            sub.sub = twins[0].sub
        else:
            self._call(self._add_sub(sub), CONNECT_TIMEOUT_S)

    async def _add_sub(self, sub: _Subscription) -> None:
        async def handler(msg) -> None:
            await self._deliver(sub, msg)
        sub.sub = await self._nc.subscribe(sub.subject, cb=handler)
        # Make sure the server has the interest before anyone relies on it.
        await self._nc.flush(timeout=CONNECT_TIMEOUT_S)

    async def _deliver(self, sub: _Subscription, msg) -> None:
        self.stats.received += 1
        try:
            data = m.decode(msg.subject, msg.data, sub.signal)
        except MalformedMessage as exc:
            await self._report_malformed(exc, msg.reply)
            return
        message = m.Message(msg.subject, data, msg.reply or "")
        for twin in self._twins(sub):
            twin.deliver(message)

    async def _report_malformed(self, exc: MalformedMessage, reply: str | None) -> None:
        self.stats.malformed += 1
        log.warning("%s", exc)
        if reply:
            await self._nc.publish(reply, m.encode({"error": str(exc)}))
        await self._nc.publish(self.subject(m.BUS_ERROR), m.encode(
            payloads.ErrorReport(exc.subject, exc.problem, self.name).to_dict()))

    # -- outbound (any thread; never blocks the caller) -------------------------
    def publish(self, signal: str, payload: Mapping[str, Any], **params: str) -> None:
        self._enqueue(("pub", self.subject(signal, **params), m.encode(payload)))

    def publish_subject(self, subject: str, payload: Mapping[str, Any]) -> None:
        self._enqueue(("pub", subject, m.encode(payload)))

    def respond(self, msg: m.Message, payload: Mapping[str, Any]) -> None:
        """Answer a request message (no-op for a plain publish)."""
        if msg.reply:
            self._enqueue(("pub", msg.reply, m.encode(payload)))

    def request(self, signal: str, payload: Mapping[str, Any], *, chart, token: Any,
                timeout: float = REQUEST_TIMEOUT_S, attempts: int = REQUEST_ATTEMPTS,
                **params: str) -> None:
        """Send a request; post REPLY or REQUEST_FAILED (payload Reply) to `chart`."""
        subject, data = self.subject(signal, **params), m.encode(payload)
        self._enqueue(("task", lambda: self._request_for_chart(subject, data, chart, token,
                                                               timeout, attempts)))

    def gather(self, signal: str, payload: Mapping[str, Any], window_s: float,
               max_replies: int, *, chart, **params: str) -> str:
        """Publish once; post ONE ``GATHERED`` (bus/gather.py) with every answer
        heard within `window_s`, or the first `max_replies`, to `chart`; its token."""
        check_window(window_s, max_replies)
        token, data = gather_token(self.name), m.encode(payload)
        collector = Collector(token, self.subject(signal, **params), max_replies)
        self._enqueue(("task", lambda: gather_on_nats(
            self._nc, collector, data, window_s, lambda got: chart.post(m.GATHERED, got))))
        return token

    def request_sync(self, signal: str, payload: Mapping[str, Any], *,
                     timeout: float = REQUEST_TIMEOUT_S, attempts: int = REQUEST_ATTEMPTS,
                     **params: str) -> dict:
        """Blocking request for plain code (the CLI); raises BusError."""
        subject = self.subject(signal, **params)
        reply = self._call(self._request(subject, m.encode(payload), timeout, attempts),
                           timeout * attempts + 5)
        if reply.error:
            raise BusError(reply.error)
        return reply.data

    def _enqueue(self, item: tuple) -> None:
        with self._outbox_lock:
            self._outbox.append(item)
            if self._wake_pending:
                return
            self._wake_pending = True
        self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        self._spawn(self._drain_outbox())

    def _spawn(self, coro) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain_outbox(self) -> None:
        while True:
            with self._outbox_lock:
                if not self._outbox:
                    self._wake_pending = False
                    return
                items = list(self._outbox)
                self._outbox.clear()
            for item in items:
                if item[0] == "pub":
                    try:
                        await self._nc.publish(item[1], item[2])
                    except Exception as exc:     # logged and counted, never silent
                        self._send_error(item[1], item[2], exc)
                        continue
                    self.stats.published += 1
                else:                      # a request or a gather: a task of its own
                    self._spawn(item[1]())

    async def _request_for_chart(self, subject, data, chart, token, timeout, attempts) -> None:
        try:
            reply = await self._request(subject, data, timeout, attempts, token)
        except Exception as exc:      # whatever it was, the chart must hear of it
            reply = m.Reply(token, None, self._send_error(subject, data, exc))
        chart.post(m.REQUEST_FAILED if reply.error else m.REPLY, reply)

    def _send_error(self, subject: str, data: bytes, exc: Exception) -> str:
        if isinstance(exc, nats.errors.MaxPayloadError):
            limit = self._nc.max_payload if self._nc else 0
            problem = (f"a message of {len(data):,} bytes on {subject} is over the NATS "
                       f"server's max_payload of {limit:,} bytes (raise max_payload in the "
                       f"server's configuration)")
        else:
            problem = f"cannot send on {subject}: {type(exc).__name__}: {exc}"
        self.stats.errors.append(problem)
        log.error("%s", problem)
        return problem

    def _request(self, subject: str, data: bytes, timeout: float, attempts: int,
                 token: Any = None):
        return request_on_nats(self._nc, subject, data, timeout, attempts, self.stats, token)

    # -- raw access for tests and tools ------------------------------------------
    def publish_raw(self, subject: str, data: bytes, reply: str = "") -> None:
        """Send bytes as they are (tests use it to send malformed messages)."""
        self.publish_raw_batch([(subject, data, reply)])

    def publish_raw_batch(self, messages: list[tuple[str, bytes, str]]) -> None:
        """Send (subject, bytes, reply) messages as they are, then flush once."""
        async def send():
            for subject, data, reply in messages:
                await self._nc.publish(subject, data, reply=reply)
            await self._nc.flush()
        self._call(send(), CONNECT_TIMEOUT_S + len(messages) * 0.01)

    def request_raw_sync(self, subject: str, data: bytes, *,
                         timeout: float = REQUEST_TIMEOUT_S) -> dict:
        """Ask with bytes as they are, once; the answer, or BusError."""
        reply = self._call(self._request(subject, data, timeout, 1), timeout + 5)
        if reply.error:
            raise BusError(reply.error)
        return reply.data


class _Refused(Exception):
    """The server refused the bridge's login while it first connected."""
    reason = property(lambda self: self.args[0])
