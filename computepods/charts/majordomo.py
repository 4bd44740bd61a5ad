"""The MajorDomo chart: the build coordinator.

::

    md_ready                     tracks chefs (chefs.status); queues requests
    ├── md_idle                  no build: a build.request starts one
    └── md_building              a build runs: results in, records out
        ├── md_dispatching       ready steps go to the chef they cost least on
        ├── md_draining          a step failed (no --keep-going) or a cancel:
        │                        waits only for the steps already running
        └── md_finishing         waits for the last records to be on disk
                                 (or a full disk: the Store keeps them), done

The states decide, through named guards; plain classes in :mod:`computepods.coordinator`
do the work.  A step is sent only once the records it reads are on disk (gate.py).
"""
from __future__ import annotations

import logging
from pathlib import Path

from miros import return_status, spy_on

from computepods.bus import chefwire, messages as m
from computepods.charts.base import Chart
from computepods.charts.store import Record
from computepods.clock import SystemClock
from computepods.coordinator.buildrun import BuildRun
from computepods.coordinator.taken import Taken
from computepods.coordinator.chefs import ChefDirectory, ChefInfo
from computepods.coordinator.events import EventBatch
from computepods.coordinator import history
from computepods.coordinator.dispatch import Dispatcher
from computepods.coordinator.files import own_records
from computepods.coordinator.requests import RequestQueue
from computepods.coordinator.planner import Planner
from computepods.planning.request import HandedPlans
from computepods.errors import ComputePodsError
from computepods.federation.federation import Federation
from computepods.federation.landing import Landing

log = logging.getLogger("computepods.majordomo")

CHEF_WAIT_S = 10.0         # seconds a build waits for a first chef before failing
TICK_S = 1.0               # seconds between lease checks while a build runs


@spy_on
def md_ready(md: "MajorDomo", e):
    sig = e.signal_name
    if sig == "INIT_SIGNAL":
        return md.trans(md_idle)
    if sig == m.CHEF_STATUS:
        md.chef_seen(e.payload.data)
        return return_status.HANDLED
    if sig == m.BUILD_REQUEST:
        md.enqueue_request(e.payload)
        return return_status.HANDLED
    if sig == m.BUILD_CANCEL:
        md.cancel_request(e.payload)
        return return_status.HANDLED
    if sig == m.FS_CHANGED:
        md.planner.heard(e.payload.data)
        return return_status.HANDLED
    if sig == m.STEP_RESULTS:       # late, of a build that is over: answered, ignored
        md.take_results(e.payload)
        return return_status.HANDLED
    md.temp.fun = md.top
    return return_status.SUPER


@spy_on
def md_idle(md: "MajorDomo", e):
    sig = e.signal_name
    if sig == "ENTRY_SIGNAL":
        if md.requests.follow_up(md.build is not None) or len(md.requests):
            md.post(m.BUILD_START)
        return return_status.HANDLED
    if sig == m.BUILD_REQUEST:
        md.enqueue_request(e.payload)
        md.post(m.BUILD_START)
        return return_status.HANDLED
    if sig in (m.FS_CHANGED, m.BURST_OVER):       # a change; a burst of them may be over
        if sig == m.FS_CHANGED:
            md.planner.heard(e.payload.data)
        if md.requests.follow_up(md.build is not None):
            md.post(m.BUILD_START)
        return return_status.HANDLED
    if sig == m.BUILD_START:
        if md.start_next_build():
            return md.trans(md_dispatching)
        return return_status.HANDLED
    md.temp.fun = md_ready
    return return_status.SUPER


@spy_on
def md_building(md: "MajorDomo", e):
    sig = e.signal_name
    if sig == m.FLUSH:
        md.flush_events()
        return return_status.HANDLED
    if sig == m.RECORD_FAILED:      # the Store keeps the records and tries again: say why we wait
        md.build.note({"t": "store_retry", "problem": e.payload.problem,
                       "retry_s": e.payload.retry_s, "error": e.payload.error})
        if md.records_stuck(e.payload):            # a full disk: no client waits for space
            md.finish(unrecorded=e.payload.error)
            return md.trans(md_idle)
        return return_status.HANDLED
    md.temp.fun = md_ready
    return return_status.SUPER


@spy_on
def md_dispatching(md: "MajorDomo", e):
    sig = e.signal_name
    if sig == "ENTRY_SIGNAL":
        md.post(m.ADVANCE)          # no transition from an entry action
        return return_status.HANDLED
    if sig in (m.STEP_RESULTS, m.RECORDED, m.REPLY, m.REQUEST_FAILED, m.TICK, m.CHEF_STATUS,
               m.ADVANCE, m.LANDED, m.LANDING_FAILED):
        md.hear(e)
        if md.build_stopping():
            return md.trans(md_finishing) if md.build_drained() else md.trans(md_draining)
        md.dispatch_ready()
        if md.build_drained():
            return md.trans(md_finishing)
        return return_status.HANDLED
    if sig == m.BUILD_CANCEL:
        if md.is_running_build(e.payload):
            md.cancel_running(e.payload)
            return md.trans(md_draining)
    md.temp.fun = md_building
    return return_status.SUPER


@spy_on
def md_draining(md: "MajorDomo", e):
    sig = e.signal_name
    if sig == "ENTRY_SIGNAL":
        md.post(m.ADVANCE)          # it may have nothing left to wait for
        return return_status.HANDLED
    if sig in (m.STEP_RESULTS, m.RECORDED, m.REPLY, m.REQUEST_FAILED, m.TICK, m.CHEF_STATUS,
               m.ADVANCE, m.LANDED, m.LANDING_FAILED):
        md.hear(e)
        if md.build_drained():
            return md.trans(md_finishing)
        return return_status.HANDLED
    if sig == m.BUILD_CANCEL:
        if md.is_running_build(e.payload):
            md.cancel_running(e.payload)
            return return_status.HANDLED
    md.temp.fun = md_building
    return return_status.SUPER


@spy_on
def md_finishing(md: "MajorDomo", e):
    sig = e.signal_name
    if sig == "ENTRY_SIGNAL":
        md.write_final_records()
        return return_status.HANDLED
    if sig == m.RECORDED:
        if md.final_recorded(e.payload):
            md.finish()
            return md.trans(md_idle)
        return return_status.HANDLED
    if sig in (m.STEP_RESULTS, m.REPLY, m.REQUEST_FAILED, m.TICK, m.CHEF_STATUS, m.LANDED,
               m.LANDING_FAILED):
        md.hear(e)                  # late results are answered, and ignored
        return return_status.HANDLED
    if sig == m.BUILD_CANCEL:
        if md.is_running_build(e.payload):
            md.bridge.respond(e.payload, {"build": e.payload.data["build"], "state": "finishing"})
            return return_status.HANDLED
    md.temp.fun = md_building
    return return_status.SUPER


class MajorDomo(Chart):
    """The build coordinator of one pod: plans, places steps, marks them done."""
    initial_state = md_ready
    subscriptions = (m.RECORDED, m.RECORD_FAILED)

    def __init__(self, bridge, root: Path, *, watch_targets: list[str] | None = None,
                 watching: bool = False, clock=None, handed: HandedPlans | None = None,
                 federation: Federation | None = None, **kw):
        """`watch_targets` (``cpod up``): what a settled fs.changed rebuilds ([]: default);
        `watching`: a watcher reports every change; `federation`: other pods' chefs too."""
        super().__init__("majordomo", **kw)
        self.bridge = bridge
        self.root = Path(root)
        self.clock = clock or SystemClock()
        self.chefs = ChefDirectory(self.clock)
        self.requests = RequestQueue(self.root, watch_targets, watching=watching or None,
                                     clock=self.clock, wake=lambda: self.post(m.BURST_OVER))
        self.planner = Planner(self.root, handed=handed, freshness=self.requests.freshness,
                               store=self.store, check=lambda bp: self.dispatcher.check_tools(bp),
                               heard_change=self.requests.heard_change)
        self.build: BuildRun | None = None
        self.events = EventBatch(lambda build_id, payload: self.bridge.publish(
            m.BUILD_EVENTS, payload, build=build_id), lambda: self.post(m.FLUSH),
            history.BuildHistory(self.clock, self.emit).heard)    # the Store keeps each build
        self.dispatcher = Dispatcher(self.root, self.chefs, federation)
        self.landing = Landing(self.root, federation.fetch, self.post) if federation else None
        self.ticker = self.every(self.clock, TICK_S, m.TICK)     # lease checks while building

    def start(self) -> "MajorDomo":
        super().start()
        self.bridge.route(m.BUILD_REQUEST, self)
        self.bridge.route(m.CHEF_STATUS, self)
        self.bridge.route(m.STEP_RESULTS, self)
        self.bridge.route(m.BUILD_CANCEL, self)
        if self.requests.freshness:
            self.bridge.route(m.FS_CHANGED, self)
        self.bridge.publish(m.CHEFS_QUERY, {})
        return self

    # -- guards -----------------------------------------------------------------
    def build_stopping(self) -> bool:      # nothing more starts: a failure (no -k), a cancel
        return self.build is not None and self.build.stopping

    def build_drained(self) -> bool:       # nothing running or to be sent (BuildRun.drained)
        return self.build is not None and self.build.drained

    def final_recorded(self, tokens: list) -> bool:      # the Store wrote the last records
        return self.build is not None and self.build.final_token in tokens

    def records_stuck(self, failed) -> bool:     # a full disk or a refused write
        return failed.lasting and self.build is not None

    def is_running_build(self, msg: m.Message) -> bool:
        return self.build is not None and self.build.id == msg.data["build"]

    def hear(self, e) -> None:
        """Results, records on disk, runs answered or lost, lease checks, chef status."""
        take = {m.STEP_RESULTS: self.take_results,      # LANDED: a remote one, in our tree
                m.LANDED: lambda a: self.build and self.build.is_current(a.item) and self._ship(
                    self._take(a.chef, [a.item], a.pod)),
                m.LANDING_FAILED: lambda f: self.dispatcher.landing_failed(self.build, f),
                m.RECORDED: lambda tokens: self.build and self.build.recorded(tokens),
                m.REPLY: lambda r: self.build and self.build.fail_runs(     # refused
                    self.dispatcher.refused(r, self.build), self.chefs.settled),
                m.REQUEST_FAILED: lambda r: self.build and self.build.fail_runs(  # lost
                    self.dispatcher.unanswered(r), self.chefs.settled),
                m.TICK: lambda _: self.check_chefs(),
                m.CHEF_STATUS: lambda msg: self.chef_seen(msg.data)}.get(e.signal_name)
        if take:
            take(e.payload)

    # -- requests ----------------------------------------------------------------
    def enqueue_request(self, msg: m.Message) -> None:
        if gone := self.planner.dirty(msg.data):      # files still changing: not fresh
            self.emit(m.COMMITTED, dict.fromkeys(gone))  # heard gone: no news when they settle
        b = self.build
        intake = self.requests.add(msg, (b.id, b.names) if b else None)
        if intake.joined:
            self.bridge.respond(msg, {"build": intake.build_id, "joined": True})
            return
        self.events.publish(intake.build_id, [queued := history.queued_event(msg.data)])
        fresh = intake.fresh_steps is not None     # nothing changed since it last succeeded
        self.bridge.respond(msg, {"build": intake.build_id, "queued": not fresh and b is not None})
        if fresh:
            self.events.publish(intake.build_id, intake.fresh_events(queued["targets"]))

    def start_next_build(self) -> bool:
        """Plan the next queued request; False when it could not start."""
        for build_id, msg in iter(self.requests.pop, None):
            data = msg.data
            try:
                bp = self.planner.plan(data)
            except ComputePodsError as exc:
                self.requests.plan_failed()         # a watching pod listens for the fix
                self.events.publish(build_id, [history.plan_failed_event(data, exc)])
                continue
            generation = self.requests.build_started(self.planner.uses(bp), bp.scheduler.records,
                                                     bp.plan.basis)
            self.build = BuildRun(build_id, list(data["targets"]), bp, self.events.note,
                                  cwd=str(data.get("cwd") or self.root), generation=generation,
                                  clock=self.clock)
            self.build.note(history.plan_event(data, bp))
            self.ticker.start()
            if not len(self.chefs):
                self.bridge.publish(m.CHEFS_QUERY, {})
            return True
        return False

    def store(self, record: Record) -> None:     # the Store writes it; a hot pod keeps it too
        self.planner.recorded(record)
        self.emit(m.RECORD, record)

    # -- chefs -------------------------------------------------------------------
    def chef_seen(self, data: dict) -> None:
        if lost := self.chefs.heard(chefwire.ChefStatus.from_dict(data)):   # a goodbye
            self.chef_lost(*lost)

    def check_chefs(self) -> None:
        for info, why in self.chefs.expire():
            self.chef_lost(info, why)
        if (b := self.build) and b.waiting and (why := self.chefs.absent(b.age_s, CHEF_WAIT_S)):
            b.fail_waiting(why)

    def chef_lost(self, info: ChefInfo, why: str) -> None:
        """A chef gone (lease, goodbye): its steps move, as new attempts, or fail naming it."""
        b = self.build
        steps = b.unfinished(info.outstanding) if b else []
        (log.warning if steps else log.info)("%s; %d steps unfinished", why, len(steps))
        if b is not None:
            b.chef_lost(info.name, steps, why, rescheduled=bool(len(self.chefs)))

    # -- dispatch and results ----------------------------------------------------
    def dispatch_ready(self) -> None:
        chain = Taken()              # a chain run ahead, taken link by link, shipped as one
        for _ in range(len(self.build.bp.plan.steps) + 1):
            for chef, payload, token in self.dispatcher.ready(self.build):
                self.bridge.request(m.CHEF_RUN, payload, chart=self, token=token, chef=chef)
                self.emit(m.COMMITTING, self.build.outputs_of(payload))   # to the watcher
            if not (due := self.build.ahead.due()):      # heard before they were released
                break
            chain.add(*(self._take(chef, results) for chef, results in due))
        self._ship(chain)

    def take_results(self, msg: m.Message) -> None:
        self.bridge.respond(msg, {"ok": True})
        if (b := self.build) is None:
            return                    # late: the build it belongs to is over
        chef, results = msg.data["chef"], msg.data["results"]
        if self.landing is not None and (pod := self.dispatcher.remote_pod(chef)):
            results = self.landing.divert(b, chef, pod, results, self.chefs.settled)
        self._ship(self._take(chef, results))

    def _take(self, chef: str, results: list, pod: str | None = None) -> Taken:
        taken = (b := self.build).take(chef, results)
        self.dispatcher.took(b, chef, pod, taken)
        for sid in taken.settled:
            self.chefs.settled(chef, sid)
        return taken

    def _ship(self, taken: Taken) -> None:       # its records to the Store, commits to the watcher
        files = own_records(self.root, taken.outputs)
        if self.requests.recorded_outputs(files, taken.discovered):
            self.emit(m.COMMITTED, {f.path: (f.size, f.mtime_ns, f.ino) for f in files})
        if taken.anything:
            self.store(Record(token=self.build.record_token(taken.records), steps=taken.records,
                              files=files, drop_steps=taken.drops))

    # -- the end of a build --------------------------------------------------------
    def write_final_records(self) -> None:
        extra, drops = self.build.scheduler.drain_records()
        self.store(Record(token=self.build.final_token, steps=extra, drop_steps=drops,
                          files=self.build.scheduler.updated_files()))

    def finish(self, unrecorded: str = "") -> None:
        b = self.build
        self.ticker.stop()
        if unrecorded and b.cancel():          # its chefs stop what they still run
            self.bridge.publish(m.CHEFS_CANCEL, chefwire.ChefsCancel(b.id).to_dict())
        b.note(b.summary(unrecorded))
        self.flush_events()
        key = None if b.dry_run else self.requests.key({"targets": b.names, "cwd": b.cwd})
        self.requests.build_finished(key, b.generation, b.scheduler.ok, len(b.bp.plan.steps))
        self.planner.finished(b.scheduler)
        self.build = None

    def flush_events(self) -> None:
        self.events.flush(self.build.id if self.build else None)

    # -- cancelling -----------------------------------------------------------------
    def cancel_request(self, msg: m.Message) -> None:
        """A queued build is dropped (done, 130); the running build's states answer for it."""
        bid = msg.data["build"]
        if cancelled := self.requests.cancel(bid):
            self.events.publish(bid, [{"t": "done", "ok": False, "code": 130, "cancelled": True}])
        self.bridge.respond(msg, {"build": bid, "state": "cancelled" if cancelled else "unknown"})

    def cancel_running(self, msg: m.Message) -> None:
        """Nothing more starts; chefs drop held steps and kill running ones; done, 130."""
        if self.build.cancel():
            self.bridge.publish(m.CHEFS_CANCEL, chefwire.ChefsCancel(self.build.id).to_dict())
        self.bridge.respond(msg, {"build": self.build.id, "state": "cancelling"})

    def stop(self, *args, **kw) -> None:
        super().stop(*args, **kw)
        self.requests.close()
        if self.landing is not None:
            self.landing.close()       # the landings under way end (their posts unheard)

    def on_crash(self, exc: Exception) -> None:
        """A bug in the coordinator fails its build, with the reason: no client waits."""
        b = self.build
        if b is None:
            return
        self.ticker.stop()
        self.events.note(b.id, {"t": "done", "ok": False, "code": 1, "error": "internal error in "
                                f"the MajorDomo: {type(exc).__name__}: {exc}"})
        self.events.flush(b.id)
        self.requests.build_finished(None, b.generation, False)
        self.planner.finished(None, crashed=True)
        self.build = None
        self.trans(md_idle)
