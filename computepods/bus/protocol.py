"""The Bus: what charts and clients need from the message bus.

:class:`~computepods.bus.bridge.NatsBridge` is the real one (NATS, across
processes and machines); :class:`~computepods.bus.loopback.LoopbackBus` is a
small in-process one with the same semantics, for unit tests of charts.
Signals and their subjects are named in :mod:`computepods.bus.messages`.
"""
from __future__ import annotations

import queue
from typing import Any, Mapping, Protocol, runtime_checkable

from computepods.bus import messages as m


class Postable(Protocol):
    """What the bus delivers to: a chart (anything with ``post``)."""

    def post(self, signal: str, payload: Any = None) -> None: ...


@runtime_checkable
class Bus(Protocol):
    """Subject ↔ signal routing under one namespace (``ns``).

    Inbound, a validated message of a routed signal becomes
    ``chart.post(signal, Message)``; outbound calls never block the caller
    (except :meth:`request_sync`, for plain code such as the CLI).
    """

    ns: str
    name: str

    def subject(self, signal: str, **params: str) -> str:
        """The subject of `signal` in this namespace (``chef="c1"`` fills a field)."""

    def route(self, signal: str, chart: Postable, **params: str) -> None:
        """Deliver messages of `signal` to `chart`; without params, per-entity
        fields are wildcards."""

    def listen(self, signal: str, into: "queue.Queue[m.Message]", **params: str) -> None:
        """Deliver messages of `signal` to a plain queue."""

    def unlisten(self, into: "queue.Queue[m.Message]") -> None:
        """Stop delivering to a queue given to :meth:`listen`."""

    def publish(self, signal: str, payload: Mapping[str, Any], **params: str) -> None:
        """Send and forget."""

    def publish_subject(self, subject: str, payload: Mapping[str, Any]) -> None:
        """Send to a subject already worked out (a reply inbox, another namespace)."""

    def respond(self, msg: m.Message, payload: Mapping[str, Any]) -> None:
        """Answer a request message (nothing for a plain publish)."""

    def request(self, signal: str, payload: Mapping[str, Any], *, chart: Postable,
                token: Any, **params: str) -> None:
        """Send a request; post REPLY or REQUEST_FAILED (payload :class:`Reply`) to `chart`."""

    def gather(self, signal: str, payload: Mapping[str, Any], window_s: float,
               max_replies: int, *, chart: Postable, **params: str) -> str:
        """Publish once and collect answers for `window_s` seconds (or until
        `max_replies`); post ONE ``GATHERED`` (a :class:`~computepods.bus.gather.Gathered`
        with that token) to `chart`.  Returns the token."""

    def request_sync(self, signal: str, payload: Mapping[str, Any], **kw: Any) -> dict:
        """Send a request and wait for its answer; raises BusError."""

    def offline_s(self) -> float:
        """Seconds since the bus was lost and not yet regained (0 while connected)."""

    def stop(self) -> None:
        """Flush what is queued and let go of the bus."""
