"""The Chef chart: takes steps from the bus, runs them in its slots, reports.

::

    chef_serving                 answers chefs.query, heartbeats its status
    ├── chef_idle                nothing queued or running
    └── chef_busy                steps in its slots or queue

A run message (``<ns>.chef.<name>.run``, a request) carries a batch of steps
(read by :mod:`computepods.chef.intake`); the chef answers at once with what
it accepted, queues them for its worker pool (a step sent ahead is held
until what it follows lands: :mod:`computepods.chef.ahead`), and reports
each step's start and end on ``<ns>.steps.results``, in batches: finished
steps wait in a list (``RESULTS_EVERY_S`` at most, so its MajorDomo knows
its queue), and one STEP_DONE tells the chart to take all of them and send
what must go as one message, in that same step.
A step's start note is held ``STARTED_HOLD_S``: a step that ends sooner
reports its start with its result (one message, not two, on the critical
path of a chain of short steps), and one still running then shows as
running (STEP_STARTED: held start notes are due).
Its status goes out on each heartbeat, when it turns idle, and with results
at most every ``STATUS_MIN_S``.  Run requests are idempotent, keyed by build,
step id and attempt: a repeat of a queued or running step is only
acknowledged, a repeat of a finished one gets its result again.

A run whose ``origin`` is another pod (federation) is built in that pod's
tree of the chef's workspace (:mod:`computepods.federation.remotesteps`); a
chef with no workspace refuses it, and a chef pod with no project of its
own refuses a run with no origin.  Its status carries the fingerprints of
its tools and the typical seconds a step holds a slot, for placement by cost.
"""
from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from miros import return_status, spy_on

from computepods.bus import messages as m
from computepods.bus import chefwire
from computepods.bus.protocol import Bus
from computepods.chef.ahead import Ahead, Decided
from computepods.chef.intake import read_run
from computepods.chef.step import StepJob, failed_item
from computepods.chef.lease import Lease
from computepods.chef.pool import WorkerPool
from computepods.chef.tools import ChefTools, packs_announcement
from computepods.charts.base import Chart
from computepods.clock import Clock, SystemClock

if TYPE_CHECKING:
    from computepods.federation.remotesteps import Keep
    from computepods.federation.workspace import Fetch, Workspace

log = logging.getLogger("computepods.chef")

HEARTBEAT_S = 5.0          # seconds between status messages when nothing changes
LEASE_FACTOR = 3           # a MajorDomo gives up on a chef silent for 3 heartbeats
MAX_REMEMBERED = 100_000   # finished results kept for repeated run requests
MAX_NOTES = 32             # notes gathered before a results message goes anyway
STATUS_MIN_S = 0.5         # seconds between status messages while results flow
LOW_WATER_PER_SLOT = 6     # queued steps per slot below which results go at once
AHEAD_LOW_WATER_PER_SLOT = 3   # the same while it holds a chain sent ahead (running_low)
LONG_STEP_S = 0.5          # seconds: a step that ran this long reports at once
RESULTS_EVERY_S = 0.25     # seconds a finished step's result waits at most (about) to go
TYPICAL_WEIGHT = 0.2       # of the newest step in typical_s, an exponential moving mean
STARTED_HOLD_S = 0.05      # seconds a start note waits to ride with the step's result

# Why a chef refuses a step of a run (in the run's answer, `rejected`).
ONLY_OWN_TREE = "this chef serves only its own tree"    # origin elsewhere, no workspace
NO_PROJECT_TREE = "no project tree here"                # no origin, and a chef pod


@spy_on
def chef_serving(chef: "Chef", e):
    sig = e.signal_name
    if sig == "ENTRY_SIGNAL":
        chef.heartbeat.start()
        chef.publish_status()
        return return_status.HANDLED
    if sig == "EXIT_SIGNAL":
        chef.heartbeat.stop()
        return return_status.HANDLED
    if sig == "INIT_SIGNAL":
        return chef.trans(chef_idle)
    if sig in (m.CHEFS_QUERY, m.TICK):
        chef.publish_status()
        return return_status.HANDLED
    if sig == m.CHEFS_CANCEL:
        chef.cancel(chefwire.ChefsCancel.from_dict(e.payload.data).build)
        return return_status.HANDLED
    if sig == m.CHEF_RUN:
        chef.accept(e.payload)
        return chef.trans(chef_busy) if chef.in_flight else return_status.HANDLED
    if sig == m.STEP_STARTED:
        chef.starts_due()
        return return_status.HANDLED
    if sig == m.REPLY:
        chef.unacked.pop(e.payload.token, None)
        return return_status.HANDLED
    if sig == m.REQUEST_FAILED:
        chef.results_lost(e.payload)
        return return_status.HANDLED
    chef.temp.fun = chef.top
    return return_status.SUPER


@spy_on
def chef_idle(chef: "Chef", e):
    if e.signal_name == "ENTRY_SIGNAL":
        chef.publish_status()
        return return_status.HANDLED
    chef.temp.fun = chef_serving
    return return_status.SUPER


@spy_on
def chef_busy(chef: "Chef", e):
    if e.signal_name == m.STEP_DONE:
        chef.take_finished()
        return chef.trans(chef_idle) if not chef.in_flight else return_status.HANDLED
    chef.temp.fun = chef_serving
    return return_status.SUPER


class Chef(Chart):
    """A chef with `slots` worker threads building in the workspace `root`."""

    initial_state = chef_serving

    def __init__(self, name: str, bridge: Bus, root: Path | None, slots: int, *,
                 pod: str = "local", tools: Iterable[str] | None = None, prefetch: bool = False,
                 heartbeat_s: float = HEARTBEAT_S, clock: Clock | None = None,
                 workspace: "Workspace | None" = None, fetch: "Fetch | None" = None,
                 keep: "Keep | None" = None, gate: "threading.Semaphore | None" = None,
                 fingerprints: Callable[[Iterable[str]], dict[str, str]] | None = None, **kw):
        """``root``: the project tree it builds in (None: a chef pod, which
        builds only other pods' steps).  ``workspace`` and ``fetch``: where
        and from what runs of other pods are built (see the module's doc);
        ``keep(path) -> sha`` puts each of their outputs in the served store;
        ``prefetch``: queued steps' files are fetched ahead (a fetch that
        keeps what it pulls); ``gate``: slots shared with the chefs of the
        pod's other namespaces.  ``tools``: what it fingerprints besides every
        pack's tools and the programs its runs start; ``fingerprints`` does
        it (the default: federation.toolprints on this PATH)."""
        super().__init__(f"chef:{name}", **kw)
        self.chef = name
        self.clock = clock or SystemClock()
        self.bridge = bridge
        self.root = Path(root) if root is not None else None
        self.slots = slots
        self.pod = pod
        self.tools = ChefTools(tools or (), fingerprints)
        self.typical_s: float | None = None     # seconds a step holds a slot, start to result
        self.began: dict[tuple[str, str, int], float] = {}   # job key -> when its slot took it
        remote = None
        if workspace is not None:
            from computepods.federation.remotesteps import RemoteSteps, no_fetch
            remote = RemoteSteps(workspace, fetch or no_fetch, keep, prefetch=prefetch)
        self.serves_others = remote is not None
        self.in_flight: set[tuple[str, int]] = set()
        self.results: dict[tuple[str, str, int], chefwire.StepResult] = {}
        self.outbox: list[dict] = []
        self.quiet_notes: deque = deque()       # started notes from workers, not yet sent
        self.flush_pending = False
        self.unacked: dict[int, list[dict]] = {}
        self._tokens = itertools.count(1)
        self.heartbeat_s = heartbeat_s
        self.heartbeat = self.every(self.clock, heartbeat_s, m.TICK)
        self.gone: str | None = None            # why it said goodbye
        self.status_sent = 0.0
        self.results_sent = 0.0                 # monotonic seconds of the last results message
        self.refill_asked = False               # results sent; the next run message not here yet
        self.done: deque = deque()              # (job, item, held_s) from workers, not taken
        self.done_lock = threading.Lock()
        self.done_posted = False
        self.starts_held = False                # the alarm for held start notes is set
        self.starts_alarm = self.clock.alarm(lambda: self.post(m.STEP_STARTED),
                                             name=f"chef:{name}:started")
        self.lease = Lease(LEASE_FACTOR * heartbeat_s, self.clock)
        self.ahead = Ahead()                    # steps sent ahead, held (chef/ahead.py)
        self.pool = WorkerPool(self.root, slots, on_started=self.step_started,
                               on_done=self.step_done, name=name, lease=self.lease,
                               remote=remote, gate=gate)

    def start(self) -> "Chef":
        self.tools.fingerprint_all()
        super().start()
        self.bridge.route(m.CHEF_RUN, self, chef=self.chef)
        self.bridge.route(m.CHEFS_QUERY, self)
        self.bridge.route(m.CHEFS_CANCEL, self)
        self.bridge.publish(m.RULES_ANNOUNCE, packs_announcement(self.chef))
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.publish_status(gone="stopped")   # its MajorDomo need not wait out the lease
        self.pool.cancel_running()
        self.pool.stop()
        self.starts_alarm.close()
        super().stop(timeout)

    # -- work the states trigger -------------------------------------------------
    def refusal(self, origin: str) -> str | None:
        """Guard: why this chef takes no step of a run from ``origin``
        ("": the chef's own tree), or None if it takes them."""
        if origin and origin != self.pod:
            return None if self.serves_others else ONLY_OWN_TREE
        return None if self.root is not None else NO_PROJECT_TREE

    def accept(self, msg: m.Message) -> None:
        self.refill_asked = False
        run = chefwire.RunMessage.from_dict(msg.data)
        if (refused := self.refusal(run.origin)) is not None:
            self.bridge.respond(msg, {"accepted": [], "rejected": [
                {"id": item.get("id") if isinstance(item, dict) else None, "reason": refused}
                for item in run.steps]})
            return
        origin = run.origin if run.origin != self.pod else ""
        intake = read_run(run, origin, self.tools, self.chef)
        if intake.error:
            self.bridge.respond(msg, {"error": intake.error})
            return
        held: list[StepJob] = []
        for job in intake.jobs:
            if job.key in self.results:
                self.outbox_add({"event": "finished", **self.results[job.key].to_dict()})
            elif job.key not in self.in_flight:
                self.in_flight.add(job.key)
                (held.append if job.ahead and not origin else self.pool.submit)(job)
        answer = {"accepted": [job.step.id for job in intake.jobs], "rejected": intake.rejected}
        self.bridge.respond(msg, {**answer, "ahead": [j.step.id for j in held]} if held else answer)
        self.decided(self.ahead.hold(held, self.in_flight.__contains__))
        self.send_due()

    def decided(self, decided: Decided) -> None:
        """Held steps a landing released run; those it unran report it."""
        for job in decided.run:
            self.pool.submit(job)
        if decided.unrun:
            with self.done_lock:
                self.done.extend((job, note, 0.0) for job, note in decided.unrun)
            self.post(m.STEP_DONE)

    def cancel(self, build: str) -> None:
        self.pool.cancel_build(build)
        for job in self.ahead.drop_build(build):     # held: never started
            self.finished(job, failed_item(job.step.id, job.attempt, "cancelled"))
        self.send_due()

    def step_done(self, job: StepJob, item: chefwire.StepResult) -> None:
        """Called by a worker thread.  While the queue is deep, a quick
        success only joins the list: its result would wait for the next
        results message anyway (see :meth:`outbox_add`).  A failure, a long
        step, a short queue or a long list wakes the chart, with one STEP_DONE
        for however many finished before it takes them."""
        self.decided(self.ahead.landed(job.key, item))       # first: a chain goes on at once
        held_s = self.clock.monotonic() - self.began.pop(job.key, self.clock.monotonic())
        urgent = (not item.ok or self.running_low() or item.duration_s >= LONG_STEP_S
                  or self.results_due())
        with self.done_lock:
            self.done.append((job, item, held_s))
            if self.done_posted or (not urgent and len(self.done) < MAX_NOTES):
                return
            self.done_posted = True
        self.post(m.STEP_DONE)

    def take_finished(self) -> None:
        with self.done_lock:
            done, self.done = self.done, deque()
            self.done_posted = False
        for job, item, held_s in done:
            self.finished(job, item, held_s)
        self.send_due()         # now, in this step: the MajorDomo waits on it

    def finished(self, job: StepJob, item: chefwire.StepResult, held_s: float = 0.0) -> None:
        """``held_s``: the seconds it held its slot, setup and keeping included."""
        self.in_flight.discard(job.key)
        if isinstance(item, chefwire.Unrun):         # held, and let go of (chef/ahead.py)
            self.outbox_add({"event": "unrun", "build": job.build, **item.to_dict()})
            return
        if job.ahead and item.command:               # what it read of the steps it followed
            item = replace(item, read={p: job.inputs[p] for p in job.ahead.was})
        if item.command:                     # it ran (not refused, cancelled or unfetched)
            took = max(item.duration_s, held_s)     # what a step queued behind waits
            self.typical_s = (took if self.typical_s is None else
                              TYPICAL_WEIGHT * took + (1 - TYPICAL_WEIGHT) * self.typical_s)
        if len(self.results) >= MAX_REMEMBERED:
            self.results.pop(next(iter(self.results)))
        self.results[job.key] = item
        self.outbox_add({"event": "finished", "build": job.build, **item.to_dict()})

    def step_started(self, job: StepJob) -> None:
        """Called by a worker thread.  The note waits: while the queue is
        deep, for the next results message; else with the step's result if
        that comes within ``STARTED_HOLD_S``, or alone then, so a long step
        shows as running (:meth:`starts_due`)."""
        self.began[job.key] = self.clock.monotonic()
        self.quiet_notes.append({"event": "started", "id": job.step.id, "attempt": job.attempt})
        if self.pool.queued >= self.slots:
            return              # a deep queue: the note rides with the next results
        with self.done_lock:
            if self.starts_held:
                return
            self.starts_held = True
        self.starts_alarm.set(self.clock.monotonic() + STARTED_HOLD_S)

    def starts_due(self) -> None:
        """The held start notes of steps still running go now (those of
        steps that finished went with their results)."""
        with self.done_lock:
            self.starts_held = False
        if self.quiet_notes:
            while self.quiet_notes:
                self.outbox.append(self.quiet_notes.popleft())
            self.flush()

    @staticmethod
    def long(item: dict) -> bool:
        """A step that took a while reports at once: a message is nothing
        beside it, and its dependants (and the progress shown) wait on it."""
        return item.get("duration_s", 0.0) >= LONG_STEP_S

    def running_low(self) -> bool:
        """Few enough steps queued that the MajorDomo must hear now: its
        refill takes a round trip, which the queue must outlast.  Once it has
        heard, more results wait for its next run message, unless a slot is
        about to idle.  Steps held until what they follow lands here are
        work to come: a chain sent ahead needs no refill until its end, and
        its results sent early would take the processors it runs on."""
        queued = self.pool.queued + len(self.ahead)
        if queued < self.slots:
            return True
        low = AHEAD_LOW_WATER_PER_SLOT if self.ahead else LOW_WATER_PER_SLOT
        return not self.refill_asked and queued < self.slots * low

    def results_due(self) -> bool:
        """Guard: results waited long enough (the MajorDomo places by queues)."""
        return self.clock.monotonic() - self.results_sent >= RESULTS_EVERY_S

    def outbox_add(self, item: dict) -> None:
        """Queue a note for the MajorDomo; send at once only when it matters.

        While the queue is deep (:meth:`running_low`), no slot will idle for
        lack of work, so notes wait and leave together (one message for many
        steps); once the queue runs short, a step failed or ran long, or
        enough notes gathered, they go at once, so the MajorDomo refills it in
        time (and stops a failing build early).
        """
        while self.quiet_notes:
            self.outbox.append(self.quiet_notes.popleft())
        self.outbox.append(item)
        if (self.running_low() or len(self.outbox) >= MAX_NOTES or not item.get("ok", True)
                or self.long(item) or self.results_due()):
            self.flush_pending = True

    def send_due(self) -> None:
        """What :meth:`outbox_add` found must go now goes, as one message
        for every note of this step of the chart."""
        if self.flush_pending:
            self.flush()

    def flush(self) -> None:
        self.flush_pending = False
        if not self.outbox:
            return
        token = next(self._tokens)
        batch, self.outbox = chefwire.without_redundant_starts(self.outbox), []
        self.results_sent = self.clock.monotonic()
        if self.pool.queued < self.slots * LOW_WATER_PER_SLOT:
            self.refill_asked = True
        self.unacked[token] = batch
        self.bridge.request(m.STEP_RESULTS, {"chef": self.chef, "results": batch},
                            chart=self, token=token)
        if self.clock.monotonic() - self.status_sent >= STATUS_MIN_S:
            self.publish_status()

    def results_lost(self, reply: m.Reply) -> None:
        batch = self.unacked.pop(reply.token, [])
        # Kept in self.results: a MajorDomo that asks again gets them.
        log.error("chef %s: %d results not delivered: %s", self.chef, len(batch), reply.error)

    def publish_status(self, gone: str | None = None) -> None:
        if self.gone:
            return                  # said goodbye: a later status would bring it back
        self.gone = gone
        self.lease.renew()
        self.status_sent = self.clock.monotonic()
        queued = self.pool.queued
        running = max(0, len(self.in_flight) - queued - len(self.done) - len(self.ahead))
        typical = None if self.typical_s is None else round(self.typical_s, 6)
        self.bridge.publish(m.CHEF_STATUS, chefwire.ChefStatus(
            self.chef, self.pod, self.slots, running, queued,
            sorted(self.tools.fingerprints), self.lease.lease_s, gone, typical,
            self.tools.fingerprints).to_dict())
