"""The Herald chart: a pod's voice and ears in the federation.

::

    herald_on            entry: start the ticker (start() posts the first TICK); exit: stop it
    │                    PODS_DISCOVER: answer with our hello (if it fits the want)
    │                    SEARCH: start the scout of that search, or re-aim it
    │                    SCOUT_FOUND, SCOUT_NOT_FOUND: hand the answer to on_search
    │                    (the pods found go to the Roster first)
    │                    SCOUT_STOP: stop the scout of that search
    ├── herald_alone     no other pod is live; PODS_HELLO or SCOUT_FOUND ->
    │                    herald_federated when it made a pod live; TICK: say our hello
    └── herald_federated other pods are live; PODS_HELLO: keep it; TICK: say our
                         hello, let go of silent pods -> herald_alone when none is left

Every ``every_s`` seconds (:data:`~computepods.federation.hello.HELLO_EVERY_S`,
on the chart's :class:`~computepods.clock.Clock`) it publishes the pod's
hello, as ``hello()`` makes it then (load and bytes moved change).  Every
valid hello it hears, ours apart, goes to the :class:`Roster`, which pins
the pod's host key and refuses a changed one; a pod silent for three of its
hello periods is let go.  ``on_pod(pod, hello)`` is called on the Herald's
thread when a pod is first heard (or heard again after it went) and
``on_pod(pod, None)`` when it goes.  The Herald also holds the pod's
scouts (charts/scout.py), one per search, started and stopped here.
"""
from __future__ import annotations

import logging
from typing import Callable

from miros import return_status, spy_on

from computepods.bus import messages as m
from computepods.bus.protocol import Bus
from computepods.charts.base import STOP_TIMEOUT_S, Chart
from computepods.charts.scout import Scout
from computepods.clock import Clock, SystemClock
from computepods.errors import MalformedMessage
from computepods.federation.hello import HELLO_EVERY_S, PodHello
from computepods.federation.roster import Roster
from computepods.federation.search import (Probe, ScoutFound, ScoutNotFound, Search,
                                           Want)

log = logging.getLogger("computepods.federation")

GREET_S = 0.25            # seconds: at most one early hello for pods joining at once
MAX_WARNED = 1000          # malformed hellos remembered, so each is logged once


@spy_on
def herald_on(herald: "Herald", e):
    sig = e.signal_name
    if sig == "ENTRY_SIGNAL":
        herald.ticker.start()        # (our first hello: the TICK start() posts)
        return return_status.HANDLED
    if sig == "EXIT_SIGNAL":
        herald.ticker.stop()
        return return_status.HANDLED
    if sig == "INIT_SIGNAL":
        return herald.trans(herald_alone)
    if sig == m.PODS_DISCOVER:
        herald.answer(e.payload)
        return return_status.HANDLED
    if sig == m.SEARCH:
        herald.scout(e.payload)
        return return_status.HANDLED
    if sig in (m.SCOUT_FOUND, m.SCOUT_NOT_FOUND):
        herald.searched(e.payload)
        return return_status.HANDLED
    if sig == m.SCOUT_STOP:
        herald.stop_scout(e.payload)
        return return_status.HANDLED
    herald.temp.fun = herald.top
    return return_status.SUPER


@spy_on
def herald_alone(herald: "Herald", e):
    sig = e.signal_name
    if sig == m.PODS_HELLO:
        herald.hear(e.payload)
        return herald.trans(herald_federated) if herald.pods_live() else return_status.HANDLED
    if sig == m.TICK:
        herald.announce()
        return return_status.HANDLED
    if sig == m.SCOUT_FOUND:
        herald.searched(e.payload)
        return herald.trans(herald_federated) if herald.pods_live() else return_status.HANDLED
    herald.temp.fun = herald_on
    return return_status.SUPER


@spy_on
def herald_federated(herald: "Herald", e):
    sig = e.signal_name
    if sig == m.PODS_HELLO:
        herald.hear(e.payload)
        return return_status.HANDLED
    if sig == m.TICK:
        herald.announce()
        herald.expire()
        return return_status.HANDLED if herald.pods_live() else herald.trans(herald_alone)
    herald.temp.fun = herald_on
    return return_status.SUPER


class Herald(Chart):
    """``Herald(bus, hello=lambda: our_hello, roster=roster).start()``.

    ``probe`` is what the scouts probe SFTP endpoints with (transfer's
    ``Puller.probe``); ``on_search(answer)`` gets each scout's ScoutFound
    or ScoutNotFound, on the Herald's thread."""

    initial_state = herald_on

    def __init__(self, bridge: Bus, hello: Callable[[], PodHello], *,
                 roster: Roster | None = None, clock: Clock | None = None,
                 every_s: float = HELLO_EVERY_S,
                 on_pod: Callable[[str, PodHello | None], None] | None = None,
                 probe: Probe | None = None,
                 on_search: Callable[[ScoutFound | ScoutNotFound], None] | None = None, **kw):
        # the scouts it starts are traced as it is
        self._trace = {k: kw[k] for k in ("live_trace", "live_spy", "trace_sink") if k in kw}
        super().__init__(kw.pop("name", "herald"), **kw)
        self.bridge = bridge
        self.hello = hello
        self.pod = hello().pod
        self.roster = roster if roster is not None else Roster()
        self.clock = clock or SystemClock()
        self.on_pod = on_pod or (lambda pod, hello: None)
        self.probe = probe or (lambda endpoint: "no probe was given to the Herald")
        self.on_search = on_search or (lambda answer: None)
        self.scouts: dict[str, Scout] = {}
        self.ticker = self.every(self.clock, every_s, m.TICK)
        self._warned: set[str] = set()
        self._greeted = float("-inf")

    # -- life cycle ------------------------------------------------------------
    def start(self) -> "Herald":
        super().start()
        self.bridge.route(m.PODS_HELLO, self)
        self.bridge.route(m.PODS_DISCOVER, self)
        # Our first hello once we listen: a pod that greets it at once
        # (charts/herald.py: greet) is then heard.
        self.post(m.TICK)
        return self

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        super().stop(timeout)
        for scout in list(self.scouts.values()):
            scout.stop(timeout)
        self.scouts.clear()

    # -- guards ----------------------------------------------------------------
    def pods_live(self) -> bool:
        return self.roster.live_count() > 0

    # -- what the states call --------------------------------------------------
    def announce(self) -> None:
        self.bridge.publish(m.PODS_HELLO, self.hello().to_dict())

    def answer(self, msg: m.Message) -> None:
        try:
            want = Want.from_dict(msg.data.get("want"), msg.subject)
        except MalformedMessage as exc:
            self.bridge.respond(msg, {"error": exc.problem})
            return
        hello = self.hello()
        if want.mismatch(hello) is None:        # only pods that fit answer: less to gather
            self.bridge.respond(msg, hello.to_dict())

    def hear(self, msg: m.Message) -> None:
        try:
            hello = PodHello.from_dict(msg.data, msg.subject)
        except MalformedMessage as exc:
            self._warn_once(exc.problem)
            return
        self.keep(hello)

    def keep(self, hello: PodHello) -> None:
        """Give a valid hello to the Roster; say so when its pod is new."""
        if hello.pod == self.pod:
            return
        new = not self.roster.is_live(hello.pod)
        if self.roster.heard(hello, self.clock.monotonic()) and new:
            log.info("pod %s (%s, %s) joined: %d slots", hello.pod, hello.role, hello.host,
                     hello.slots)
            self.on_pod(hello.pod, hello)
            self.greet()

    def greet(self) -> None:
        """A pod we had not heard may not have heard us (it started after
        our last hello): say ours now rather than up to every_s later, at
        most once per GREET_S however many pods join at once."""
        now = self.clock.monotonic()
        if now - self._greeted >= GREET_S:
            self._greeted = now
            self.announce()

    def expire(self) -> None:
        for pod in self.roster.expire(self.clock.monotonic()):
            log.info("pod %s went silent; let go", pod)
            self.on_pod(pod, None)

    def scout(self, search: Search) -> None:
        scout = self.scouts.get(search.search)
        if scout is not None:
            scout.post(m.SEARCH, search)         # re-aimed: it answers again
            return
        self.scouts[search.search] = Scout(
            self.bridge, self, self.probe, search=search, own=self.pod,
            refusal=self.roster.refusal, clock=self.clock, fabric=self.fabric,
            **self._trace).start()

    def searched(self, answer: ScoutFound | ScoutNotFound) -> None:
        for hello in getattr(answer, "pods", ()):   # found and probed: known at once
            self.keep(hello)
        self.on_search(answer)

    def stop_scout(self, search: str) -> None:
        scout = self.scouts.pop(search, None)
        if scout is not None:
            scout.stop()

    def _warn_once(self, problem: str) -> None:
        if problem not in self._warned and len(self._warned) < MAX_WARNED:
            self._warned.add(problem)
            log.warning("a hello was refused: %s", problem)
