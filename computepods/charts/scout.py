"""The Scout chart: one search for pods, answered with one event.

::

    scout_on             SEARCH: (re-)aim at what it wants -> scout_asking;
    │                    answers of an earlier search are ignored here
    ├── scout_waiting    started, not aimed yet
    ├── scout_asking     entry: ask pods.discover through the bus's gather();
    │                    GATHERED -> scout_probing if some answering pod fits,
    │                    else scout_not_found
    ├── scout_probing    entry: probe each fitting pod's SFTP endpoint on a worker;
    │                    PROBED -> scout_found | scout_not_found;
    │                    TICK (the probes took too long) -> scout_not_found
    ├── scout_found      entry: SCOUT_FOUND (the pods) to the parent
    └── scout_not_found  entry: SCOUT_NOT_FOUND (why) to the parent

The shape is the seeds' consumer scout's (docs/architecture.md §6): one
scout per search; scouts run in parallel, each on its own thread; another
chart starts and stops them (the Herald holds them by search name); a new
SEARCH re-aims a scout, which then answers again; the answer is one event,
found or not found.  ``live_trace=True`` prints the search as it goes::

    [...] [scout:cc] e->start_at() top->scout_waiting
    [...] [scout:cc] e->SEARCH() scout_waiting->scout_asking
    [...] [scout:cc] e->GATHERED() scout_asking->scout_probing
    [...] [scout:cc] e->PROBED() scout_probing->scout_found

A pod must *answer* the discover to be found: one that announces hellos but
does not answer is not.  Its answer must fit the search, its host key must
be the one the Roster pinned for it (if any), and its SFTP endpoint must
accept our client key while presenting that host key: ``probe(endpoint)``,
run off the chart's thread (:class:`~computepods.federation.search.Prober`),
returns None then, or the problem.  The matching and the wording of the
answer are plain code in :mod:`computepods.federation.search`.
"""
from __future__ import annotations

import itertools
import logging
from typing import Callable

from miros import return_status, spy_on

from computepods.bus import messages as m
from computepods.bus.gather import Gathered
from computepods.bus.protocol import Bus, Postable
from computepods.charts.base import STOP_TIMEOUT_S, Chart
from computepods.clock import Clock, SystemClock
from computepods.federation.hello import PodHello
from computepods.federation.search import (MAX_ANSWERS, PROBE_TIMEOUT_S, Probe, Probed,
                                           Prober, ScoutFound, ScoutNotFound, Search,
                                           candidates, verdict)

log = logging.getLogger("computepods.federation")


@spy_on
def scout_on(scout: "Scout", e):
    sig = e.signal_name
    if sig == "INIT_SIGNAL":
        return scout.trans(scout_waiting)
    if sig == m.SEARCH:
        scout.aim(e.payload)
        return scout.trans(scout_asking)
    if sig in (m.GATHERED, m.PROBED, m.TICK):       # of an earlier search: too late
        return return_status.HANDLED
    scout.temp.fun = scout.top
    return return_status.SUPER


@spy_on
def scout_waiting(scout: "Scout", e):
    scout.temp.fun = scout_on
    return return_status.SUPER


@spy_on
def scout_asking(scout: "Scout", e):
    sig = e.signal_name
    if sig == "ENTRY_SIGNAL":
        scout.ask()
        return return_status.HANDLED
    if sig == m.GATHERED:
        if not scout.is_this_gather(e.payload):
            return return_status.HANDLED
        scout.heard(e.payload)
        return scout.trans(scout_probing) if scout.some_fit() else scout.trans(scout_not_found)
    scout.temp.fun = scout_on
    return return_status.SUPER


@spy_on
def scout_probing(scout: "Scout", e):
    sig = e.signal_name
    if sig == "ENTRY_SIGNAL":
        scout.probe_all()
        return return_status.HANDLED
    if sig == "EXIT_SIGNAL":
        scout.deadline.cancel()
        return return_status.HANDLED
    if sig == m.PROBED:
        if not scout.is_this_round(e.payload.token):
            return return_status.HANDLED
        scout.probed(e.payload)
        return scout.trans(scout_found) if scout.some_let_us_in() \
            else scout.trans(scout_not_found)
    if sig == m.TICK:
        if not scout.is_this_round(e.payload):
            return return_status.HANDLED
        scout.probes_late()
        return scout.trans(scout_not_found)
    scout.temp.fun = scout_on
    return return_status.SUPER


@spy_on
def scout_found(scout: "Scout", e):
    if e.signal_name == "ENTRY_SIGNAL":
        scout.answer()
        return return_status.HANDLED
    scout.temp.fun = scout_on
    return return_status.SUPER


@spy_on
def scout_not_found(scout: "Scout", e):
    if e.signal_name == "ENTRY_SIGNAL":
        scout.answer()
        return return_status.HANDLED
    scout.temp.fun = scout_on
    return return_status.SUPER


class Scout(Chart):
    """``Scout(bus, parent, probe, search=Search("cc", Want(tool="cc"))).start()``
    searches at once; ``post(SEARCH, Search(...))`` re-aims it; ``stop()`` ends it.

    ``own``: our pod id (our own answer is not a find); ``refusal``: the
    Roster's check of an answer's host key (``Roster.refusal``)."""

    initial_state = scout_on

    def __init__(self, bridge: Bus, parent: Postable, probe: Probe, *,
                 search: Search | None = None, own: str = "",
                 refusal: Callable[[PodHello], str | None] = lambda hello: None,
                 clock: Clock | None = None,
                 probe_timeout_s: float = PROBE_TIMEOUT_S, **kw):
        name = f"scout:{search.search}" if search else "scout"
        super().__init__(kw.pop("name", name), **kw)
        self.bridge = bridge
        self.parent = parent
        self.own = own
        self.refusal = refusal
        self.clock = clock or SystemClock()
        self.probe_timeout_s = probe_timeout_s
        self.first = search
        self.search: Search | None = None
        self.gather_token = ""
        self.answered = 0
        self.fit: list[PodHello] = []
        self.passed: list[str] = []
        self.problems: dict[str, str | None] = {}
        self._rounds = itertools.count(1)
        self.round = 0
        self.prober = Prober(probe)
        self.deadline = self.clock.alarm(self._late, f"{self.name}:probes")

    # -- life cycle ------------------------------------------------------------
    def start(self) -> "Scout":
        super().start()
        if self.first is not None:
            self.post(m.SEARCH, self.first)
        return self

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        self.deadline.close()
        self.prober.close()
        super().stop(timeout)

    def _late(self) -> None:                 # on the alarm's thread
        self.post(m.TICK, self.round)

    # -- guards ----------------------------------------------------------------
    def is_this_gather(self, gathered: Gathered) -> bool:
        return gathered.token == self.gather_token

    def is_this_round(self, token: int) -> bool:
        return token == self.round

    def some_fit(self) -> bool:
        return bool(self.fit)

    def some_let_us_in(self) -> bool:
        return any(self.problems.get(h.pod, "") is None for h in self.fit)

    # -- what the states call --------------------------------------------------
    def aim(self, search: Search) -> None:
        self.search = search
        self.round = next(self._rounds)         # what an earlier search started is stale now
        self.answered, self.fit, self.passed, self.problems = 0, [], [], {}

    def ask(self) -> None:
        want = self.search.want
        self.gather_token = self.bridge.gather(
            m.PODS_DISCOVER, {"search": self.search.search, "want": want.to_dict()},
            self.search.window_s, MAX_ANSWERS, chart=self)

    def heard(self, gathered: Gathered) -> None:
        answers = list(gathered.replies)
        self.fit, self.passed = candidates(answers, self.search.want, self.own, self.refusal)
        self.answered = sum(1 for a in answers if a.get("pod") != self.own)
        self.passed += list(gathered.problems)

    def probe_all(self) -> None:
        self.deadline.set(self.clock.monotonic() + self.probe_timeout_s)
        self.prober.start(self.round, [h.sftp for h in self.fit],
                          lambda probed: self.post(m.PROBED, probed))

    def probed(self, probed: Probed) -> None:
        self.problems = dict(probed.problems)

    def probes_late(self) -> None:
        self.problems = {h.pod: f"did not answer our probe within {self.probe_timeout_s:g} s"
                         for h in self.fit}

    def answer(self) -> None:
        answer = verdict(self.search, self.answered, self.fit, self.passed, self.problems)
        if isinstance(answer, ScoutFound):
            log.info("search %s: found %s", answer.search, ", ".join(h.pod for h in answer.pods))
            self.parent.post(m.SCOUT_FOUND, answer)
        else:
            log.info("search %s: not found: %s", answer.search, answer.reason)
            self.parent.post(m.SCOUT_NOT_FOUND, answer)


__all__ = ["Scout", "ScoutFound", "ScoutNotFound", "Search"]
