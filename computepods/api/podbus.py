"""The REST app's side of the bus: questions to the pod, builds, live events.

One :class:`PodBus` per process holds one NatsBridge, made on first use —
after gunicorn has forked its workers, since a bridge's thread and socket
do not survive a fork.  Live build events come through ONE subscription per
process (``<ns>.build.*.events``), fanned out to the streams that follow a
build, so a hundred SSE clients cost the pod nothing and NATS one delivery
per worker.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
from typing import Any

import computepods.errors as errors
from computepods.bus import messages as m
from computepods.bus import payloads
from computepods.errors import ComputePodsError

log = logging.getLogger("computepods.api")

QUERY_TIMEOUT_S = 20.0       # seconds one query may take (a graph of 10,000 steps)
QUERY_ATTEMPTS = 1           # a lost query is the client's to retry (a 503), not ours
HEALTH_TIMEOUT_S = 2.0       # seconds /healthz waits for the pod
BUILD_TIMEOUT_S = 10.0       # seconds a build request or cancel waits for the MajorDomo


def remote_error(failure: dict) -> ComputePodsError:
    """The pod's ``{"error": <class name>, "message"}`` as that class of
    :mod:`computepods.errors` (ComputePodsError for a name it does not
    know), so the REST app maps it to a status by type."""
    cls = getattr(errors, str(failure.get("error")), None)
    if not (isinstance(cls, type) and issubclass(cls, ComputePodsError)):
        cls = ComputePodsError
    exc = cls.__new__(cls)            # subclasses' __init__ take other arguments
    ComputePodsError.__init__(exc, str(failure.get("message") or failure.get("error")))
    return exc


class Follower:
    """The live events of one build, as bus messages, in a queue; ``None``
    means the process is shutting down."""

    def __init__(self, hub: "EventHub", build_id: str):
        self.hub, self.build_id = hub, build_id
        self.queue: "queue.Queue[m.Message | None]" = queue.Queue()

    def get(self, timeout: float) -> m.Message | None:
        """The next message; raises queue.Empty after `timeout` seconds."""
        return self.queue.get(timeout=timeout)

    def close(self) -> None:
        self.hub.unfollow(self)


class EventHub:
    """Every build's events, from one subscription, to their followers."""

    def __init__(self):
        self._lock = threading.Lock()
        self._followers: dict[str, set[Follower]] = {}
        self.closed = False

    def put(self, msg: m.Message) -> None:
        """Called by the bridge's thread for each message: must not block."""
        with self._lock:
            followers = list(self._followers.get(msg.data.get("build"), ()))
        for f in followers:
            f.queue.put(msg)

    def follow(self, build_id: str) -> Follower:
        f = Follower(self, build_id)
        with self._lock:
            if self.closed:
                f.queue.put(None)
            self._followers.setdefault(build_id, set()).add(f)
        return f

    def unfollow(self, f: Follower) -> None:
        with self._lock:
            group = self._followers.get(f.build_id)
            if group is not None:
                group.discard(f)
                if not group:
                    del self._followers[f.build_id]

    def close(self) -> None:
        """End every stream (the worker is stopping)."""
        with self._lock:
            self.closed = True
            followers = [f for group in self._followers.values() for f in group]
        for f in followers:
            f.queue.put(None)

    def __len__(self) -> int:
        with self._lock:
            return sum(len(g) for g in self._followers.values())


class PodBus:
    """What the REST app needs of the bus; see the module docstring."""

    def __init__(self, nats_url: str, namespace: str = m.DEFAULT_NAMESPACE):
        self.url = nats_url
        self.namespace = namespace
        self._lock = threading.Lock()
        self._bridge = None
        self._pid = 0
        self.hub = EventHub()
        self._hub_listening = False

    def bridge(self):
        with self._lock:
            if self._bridge is None or self._pid != os.getpid():
                from computepods.bus.bridge import NatsBridge       # nats-py: only where it is used
                self._bridge = NatsBridge(self.url, namespace=self.namespace,
                                          name=f"rest:{os.getpid()}").start()
                self._pid = os.getpid()
                self._hub_listening = False
            return self._bridge

    def query(self, what: str, *, timeout: float = QUERY_TIMEOUT_S,
              attempts: int = QUERY_ATTEMPTS, **args: Any) -> dict:
        """Ask the pod's Desk; raises what the pod raised, or BusError."""
        bridge = self.bridge()
        reply = bridge.request_sync(m.API_QUERY, payloads.ApiQuery(what, args).to_dict(),
                                    timeout=timeout, attempts=attempts)
        if "failure" in reply:
            raise remote_error(reply["failure"])
        return reply["answer"]

    def request_build(self, targets: list[str], keep_going: bool) -> dict:
        bridge = self.bridge()
        request = payloads.BuildRequest(targets, keep_going=keep_going, client=bridge.name)
        return bridge.request_sync(m.BUILD_REQUEST, request.to_dict(),
                                   timeout=BUILD_TIMEOUT_S, attempts=2)

    def cancel(self, build_id: str) -> dict:
        bridge = self.bridge()
        return bridge.request_sync(m.BUILD_CANCEL, payloads.BuildCancel(build_id).to_dict(),
                                   timeout=BUILD_TIMEOUT_S, attempts=2)

    def follow(self, build_id: str) -> Follower:
        """Start following a build's live events (before asking for the
        replay, so nothing falls between the two)."""
        bridge = self.bridge()
        with self._lock:
            if not self._hub_listening:
                bridge.listen(m.BUILD_EVENTS, self.hub)     # the hub has put()
                self._hub_listening = True
        return self.hub.follow(build_id)

    def close(self) -> None:
        """End the streams, then the bridge (a worker that stops)."""
        self.hub.close()
        with self._lock:
            bridge, self._bridge = self._bridge, None
        if bridge is not None and self._pid == os.getpid():
            bridge.stop()
