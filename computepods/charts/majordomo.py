"""The MajorDomo chart: the build coordinator.

::

    md_ready                     tracks chefs (chefs.status); queues requests
    ├── md_idle                  no build: a build.request starts one
    └── md_building              results in, records out, events published
        ├── md_dispatching       ready steps go to the least-loaded chef
        ├── md_draining          a step failed (no --keep-going): only waits
        │                        for the steps already running
        └── md_finishing         nothing left to run: waits for the last
                                 records to be on disk, then reports done

Work happens in plain modules: :mod:`computepods.planning.plan` judges the plan,
:class:`computepods.planning.scheduler.Scheduler` keeps the books.  Dispatch keeps up
to ``WINDOW_PER_SLOT`` steps outstanding per chef slot, several per run
message, so a slot never idles for a round trip (docs/architecture.md §10).  A step is
marked done only when the Store says its record is on disk.
"""
from __future__ import annotations

import itertools
import logging
import secrets
import time
from collections import deque
from pathlib import Path

from miros import return_status, spy_on

from computepods.bus import messages as m
from computepods.errors import ComputePodsError
from computepods.watch.freshness import Freshness, request_key
from computepods.coordinator.run import DEFAULT_LEASE_S, WINDOW_PER_SLOT, ActiveBuild, ChefInfo
from computepods.state.hashing import FileRecord
from computepods.chef.step import rule_to_dict, step_to_message
from computepods.planning.request import HandedPlans, plan_request
from computepods.planning.scheduler import UNKNOWN, Job, State, StepFailure, input_paths
from computepods.charts.base import Chart
from computepods.charts.store import Record

log = logging.getLogger("computepods.majordomo")

MAX_BATCH = 32             # steps per run message
CHEF_WAIT_S = 10.0         # seconds a build waits for a first chef before failing
EVENTS_MAX = 256           # events per build.events message


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
        md.cancel_build(e.payload)
        return md.advance() if md.build else return_status.HANDLED
    if sig == m.FS_CHANGED:
        md.heard_change(e.payload.data)
        return return_status.HANDLED
    md.temp.fun = md.top
    return return_status.SUPER


@spy_on
def md_idle(md: "MajorDomo", e):
    sig = e.signal_name
    if sig == "ENTRY_SIGNAL":
        if md.queue_follow_up() or md.requests:
            md.post(m.BUILD_START)
        return return_status.HANDLED
    if sig == m.BUILD_REQUEST:
        md.enqueue_request(e.payload)
        md.post(m.BUILD_START)
        return return_status.HANDLED
    if sig == m.FS_CHANGED:
        md.heard_change(e.payload.data)
        if md.queue_follow_up():
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
    if sig == m.STEP_RESULTS:
        md.take_results(e.payload)
        return md.advance()
    if sig == m.RECORDED:
        if md.recorded(e.payload):
            return md.trans(md_idle)
        return md.advance()
    if sig == m.REPLY:
        md.run_acknowledged(e.payload)
        return md.advance()
    if sig == m.REQUEST_FAILED:
        md.run_lost(e.payload)
        return md.advance()
    if sig == m.FLUSH:
        md.flush_events()
        return return_status.HANDLED
    if sig == m.TICK:
        md.check_chefs()
        return md.advance()
    if sig == m.ADVANCE:
        return md.advance()
    md.temp.fun = md_ready
    return return_status.SUPER


@spy_on
def md_dispatching(md: "MajorDomo", e):
    sig = e.signal_name
    if sig == "ENTRY_SIGNAL":
        md.post(m.ADVANCE)          # no transition from an entry action
        return return_status.HANDLED
    if sig == m.CHEF_STATUS:
        md.chef_seen(e.payload.data)
        return md.advance()
    md.temp.fun = md_building
    return return_status.SUPER


@spy_on
def md_draining(md: "MajorDomo", e):
    md.temp.fun = md_building
    return return_status.SUPER


@spy_on
def md_finishing(md: "MajorDomo", e):
    if e.signal_name == "ENTRY_SIGNAL":
        md.write_final_records()
        return return_status.HANDLED
    md.temp.fun = md_building
    return return_status.SUPER


class MajorDomo(Chart):
    initial_state = md_ready
    subscriptions = (m.RECORDED,)

    def __init__(self, bridge, root: Path, *, watch_targets: list[str] | None = None,
                 handed: HandedPlans | None = None, **kw):
        """With `watch_targets` (a watching pod: ``cpod up``), fs.changed
        reports keep :class:`Freshness` and each settled change rebuilds
        those targets (an empty list is the project's default)."""
        super().__init__("majordomo", **kw)
        self.bridge = bridge
        self.root = Path(root)
        self.watch_targets = watch_targets
        self.handed = handed                 # plans its pod made for requests to come
        self.freshness = Freshness() if watch_targets is not None else None
        self.chefs: dict[str, ChefInfo] = {}
        self.requests: deque = deque()
        self.build: ActiveBuild | None = None
        self.events: list[dict] = []
        self.events_pending = False
        self._batches = itertools.count(1)
        self._sent: dict[int, tuple[str, list[str]]] = {}     # batch -> (chef, step ids)
        self.ticker = None
        self.phase = None
        self.sequence: dict[str, int] = {}      # build id -> events published so far
        self.cancelled: str | None = None       # the running build's id once cancelled

    def start(self) -> "MajorDomo":
        super().start()
        self.bridge.route(m.BUILD_REQUEST, self)
        self.bridge.route(m.CHEF_STATUS, self)
        self.bridge.route(m.STEP_RESULTS, self)
        self.bridge.route(m.BUILD_CANCEL, self)
        if self.freshness:
            self.bridge.route(m.FS_CHANGED, self)
        self.bridge.publish(m.CHEFS_QUERY, {})
        return self

    # -- requests ----------------------------------------------------------------
    def enqueue_request(self, msg: m.Message) -> None:
        names = [str(n) for n in msg.data["targets"]]
        if self.build and names == self.build.names and not msg.data.get("dry_run"):
            self.bridge.respond(msg, {"build": self.build.id, "joined": True})
            return
        build_id = secrets.token_hex(4)
        self.publish_events(build_id, [{"t": "queued", "targets": names}])
        steps = self.freshness.fresh_steps(self.request_key(msg.data)) \
            if self.freshness and not self.build and not self.requests else None
        if steps is not None:        # nothing changed since it last succeeded
            self.bridge.respond(msg, {"build": build_id, "queued": False})
            self.publish_events(build_id, [
                {"t": "plan", "steps": steps, "targets": names, "fresh": True},
                {"t": "done", "ok": True, "code": 0, "ran": 0, "skipped": steps, "failed": 0,
                 "blocked": 0, "not_run": 0, "duration_s": 0.0, "fresh": True}])
            return
        self.requests.append((build_id, msg))
        self.bridge.respond(msg, {"build": build_id, "queued": self.build is not None})

    def start_next_build(self) -> bool:
        """Plan the next queued request; False when it could not start."""
        while self.requests:
            build_id, msg = self.requests.popleft()
            data = msg.data
            try:
                bp = self.plan_build(data)
            except ComputePodsError as exc:
                self.publish_events(build_id, [{"t": "done", "ok": False, "code": exc.exit_code,
                                                "error": str(exc)}])
                continue
            self.build = ActiveBuild(build_id, list(data["targets"]), bool(data.get("keep_going")),
                                     bool(data.get("dry_run")), bp, time.monotonic(),
                                     cwd=str(data.get("cwd") or self.root))
            if self.freshness:
                steps, records = bp.plan.steps.values(), bp.scheduler.records
                self.build.generation = self.freshness.build_started(
                    (p for step in steps for p in step.outputs),
                    (p for step in steps for p in input_paths(step, records.get(step.id))))
            self.note({"t": "plan", "steps": len(bp.plan.steps), "targets": bp.plan.targets})
            self.ticker = self.post_fifo(self._tick_event(), period=1.0, deferred=True)
            if not self.chefs:
                self.bridge.publish(m.CHEFS_QUERY, {})
            return True
        return False

    def plan_build(self, data: dict):
        # A pod that stays up tidies orphans as `cpod build` does before it starts.
        bp, removed = plan_request(self.root, data, tidy=self.forget if self.freshness else None,
                                   handed=self.handed)
        if removed:
            self.freshness.recorded_outputs(dict.fromkeys(removed))   # their echoes
        return bp

    def forget(self, steps: list[str], files: list[str]) -> None:
        self.emit(m.RECORD, Record(token=None, drop_steps=steps, drop_files=files))

    def _tick_event(self):
        from miros import Event, signals
        return Event(signal=signals.TICK)

    # -- chefs -------------------------------------------------------------------
    def chef_seen(self, data: dict) -> None:
        info = self.chefs.get(data["chef"])
        if data.get("gone"):                 # a goodbye: no need to wait out its lease
            if info is not None:
                self.chef_lost(info, f"chef {info.name} is gone ({data['gone']})")
            return
        if info is None:
            info = self.chefs[data["chef"]] = ChefInfo(data["chef"], max(1, data["slots"]))
        info.slots = max(1, data["slots"])
        info.seen = time.monotonic()
        info.lease_s = float(data.get("lease_s") or DEFAULT_LEASE_S)

    def check_chefs(self) -> None:
        now = time.monotonic()
        for info in [c for c in self.chefs.values() if now - c.seen > c.lease_s]:
            self.chef_lost(info, f"chef {info.name} stopped answering (no status for "
                                 f"{now - info.seen:.1f} s; its lease is {info.lease_s:.1f} s)")
        if (b := self.build) and not self.chefs and now - b.started > CHEF_WAIT_S:
            for job in list(b.to_send):
                self._fail(job.step.id, "no chef answered within "
                                        f"{CHEF_WAIT_S:.0f} s; is a chef running?", None)
            b.to_send.clear()

    def chef_lost(self, info: ChefInfo, why: str) -> None:
        """A chef silent past its lease, or that said goodbye, is gone: its
        unfinished steps go to another chef as new attempts (a late result
        of the old one is ignored), or fail naming it if no chef is left."""
        del self.chefs[info.name]
        b = self.build
        steps = sorted(sid for sid in info.outstanding
                       if b and sid in b.jobs and sid not in b.awaiting_record
                       and b.scheduler.state[sid] is State.RUNNING)
        (log.warning if steps else log.info)("%s; %d steps unfinished", why, len(steps))
        if b is None:
            return
        self.note({"t": "chef_lost", "chef": info.name, "reason": why, "steps": steps,
                   "rescheduled": bool(self.chefs)})
        for sid in steps:
            if self.chefs:
                job = b.jobs[sid]
                b.scheduler.attempts[sid] += 1
                job.attempt = b.scheduler.attempts[sid]
                b.to_send.appendleft(job)
            else:
                self._fail(sid, why + "; no other chef to run it", None)

    # -- dispatch ----------------------------------------------------------------
    def dispatch_ready(self) -> None:
        b = self.build
        if b is None:
            return
        self.queue_jobs(b.scheduler.next_jobs())
        while b.to_send and self.chefs:
            chef = min(self.chefs.values(), key=lambda c: len(c.outstanding) / c.slots)
            n = min(chef.space, MAX_BATCH, len(b.to_send))
            # Refill a chef once half its window is free, so run messages
            # carry several steps; but never hold back the last few steps.
            if n <= 0 or (n < chef.slots * WINDOW_PER_SLOT // 2 and n < len(b.to_send)):
                break
            self._send(chef, [b.to_send.popleft() for _ in range(n)])

    def queue_jobs(self, jobs: list[Job]) -> None:
        """Jobs the scheduler released: to a chef, or (dry run) assumed done."""
        b = self.build
        while jobs:
            for job in jobs:
                b.jobs[job.step.id] = job
            self.cycle_news()
            if not b.dry_run:
                b.to_send.extend(jobs)
                break
            more = []
            for job in jobs:
                self.note({"t": "would", "step": job.step.id, "command": job.command,
                           "reason": job.reason})
                more += b.scheduler.complete(job.step.id, {p: UNKNOWN for p in job.step.outputs})
            jobs = more + b.scheduler.next_jobs()
        self.cycle_news()

    def cycle_news(self) -> None:
        s = self.build.scheduler
        for note in s.cycle_notes:
            self.note(dict(note))
        s.cycle_notes.clear()

    def _send(self, chef: ChefInfo, jobs: list[Job]) -> None:
        batch = next(self._batches)
        rules = {j.step.rule.name: rule_to_dict(j.step.rule) for j in jobs}
        s = self.build.scheduler
        steps = []
        for j in jobs:
            j.copied = s.own_outputs_to_copy(j)
            steps.append(step_to_message(j.step, j.attempt, j.inputs, s.records.get(j.step.id),
                                         j.copied))
        ids = [j.step.id for j in jobs]
        chef.outstanding.update(ids)
        self._sent[batch] = (chef.name, ids)
        self.bridge.request(m.CHEF_RUN, {"build": self.build.id, "chef": chef.name,
                                         "rules": rules, "steps": steps},
                            chart=self, token=("run", batch), chef=chef.name)

    def run_acknowledged(self, reply: m.Reply) -> None:
        if not (isinstance(reply.token, tuple) and reply.token[0] == "run"):
            return
        chef, _ = self._sent.pop(reply.token[1], (None, []))
        for rej in reply.data.get("rejected", []):
            self._fail(rej.get("id"), f"chef {chef} refused it: {rej.get('reason')}", chef)

    def run_lost(self, reply: m.Reply) -> None:
        if not (isinstance(reply.token, tuple) and reply.token[0] == "run"):
            return
        chef, ids = self._sent.pop(reply.token[1], (None, []))
        if chef not in self.chefs:
            return                 # its lease expired: its steps were rescheduled
        for sid in ids:
            self._fail(sid, f"chef {chef} did not answer: {reply.error}", chef)

    # -- results -----------------------------------------------------------------
    def take_results(self, msg: m.Message) -> None:
        self.bridge.respond(msg, {"ok": True})
        b = self.build
        chef = msg.data["chef"]
        records, files = [], []
        # A step that started and finished within this one message gets one
        # "ran" event instead of "start" and "ok": half the events to follow.
        finishing = {(i.get("id"), i.get("attempt")) for i in msg.data["results"]
                     if isinstance(i, dict) and i.get("event") == "finished"}
        started_here: set[str] = set()
        for item in msg.data["results"]:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                continue
            sid = item["id"]
            if b is None or sid not in b.jobs or b.scheduler.state[sid] is not State.RUNNING \
                    or sid in b.awaiting_record or item.get("attempt") != b.jobs[sid].attempt:
                continue                  # late, duplicate, an older attempt, another build
            job = b.jobs[sid]
            if item.get("event") == "started":
                if (sid, item.get("attempt")) in finishing:
                    started_here.add(sid)
                else:
                    self.note({"t": "start", "step": sid, "command": job.command,
                               "reason": job.reason, "chef": chef})
                continue
            self._chef_done(chef, sid)
            if item.get("ok"):
                outputs = {p: v[0] for p, v in item.get("outputs", {}).items()}
                files += [FileRecord(p, v[1], v[2], v[3], v[0], v[4])
                          for p, v in item.get("outputs", {}).items()]
                if self.freshness:
                    self.freshness.recorded_outputs(
                        {p: (v[1], v[2]) for p, v in item.get("outputs", {}).items()},
                        item.get("discovered") or ())
                b.outputs[sid] = outputs
                record = b.scheduler.record(job, outputs, item.get("duration_s", 0.0),
                                            time.time_ns(), item.get("discovered") or [])
                b.records[sid] = record
                records.append(record)
                b.awaiting_record.add(sid)
                if sid in started_here:
                    self.note({"t": "ran", "step": sid, "command": job.command,
                               "reason": job.reason, "chef": chef,
                               "duration_s": item.get("duration_s")})
                else:
                    self.note({"t": "ok", "step": sid, "duration_s": item.get("duration_s")})
            else:
                if sid in started_here:
                    self.note({"t": "start", "step": sid, "command": job.command,
                               "reason": job.reason, "chef": chef})
                failure = StepFailure(sid, item.get("command") or job.command,
                                      item.get("exit_code"), item.get("reason", "failed"),
                                      item.get("stdout_tail", ""), item.get("stderr_tail", ""))
                records.append(b.scheduler.failed_record(job, failure, time.time_ns()))
                self._fail(sid, failure.reason, chef, failure)
        s = b.scheduler if b else None
        if s and (s.extra_records or s.drop_records):
            records += s.extra_records
            drops, s.extra_records, s.drop_records = s.drop_records, [], []
        else:
            drops = []
        if records or files or drops:
            self.emit(m.RECORD, Record(token=[r.step_id for r in records
                                              if r.status == "ok" and r.step_id in b.jobs],
                                       steps=records, files=files, drop_steps=drops))

    def _chef_done(self, chef: str | None, sid: str) -> None:
        info = self.chefs.get(chef) if chef else None
        if info:
            info.outstanding.discard(sid)
        else:
            for c in self.chefs.values():
                c.outstanding.discard(sid)

    def _fail(self, sid: str | None, reason: str, chef: str | None,
              failure: StepFailure | None = None) -> None:
        b = self.build
        if b is None or sid not in b.jobs:
            return
        self._chef_done(chef, sid)
        failure = failure or StepFailure(sid, b.jobs[sid].command, None, reason, "", "")
        b.scheduler.fail(sid, failure)
        self.cycle_news()
        self.note({"t": "fail", "step": sid, "command": failure.command,
                    "exit_code": failure.exit_code, "reason": failure.reason,
                    "stdout_tail": failure.stdout_tail, "stderr_tail": failure.stderr_tail})

    def recorded(self, tokens: list) -> bool:
        """The Store wrote these; True when this was the build's final write."""
        b = self.build
        if b is None:
            return False
        for token in tokens:
            if token == b.final_token:
                self.finish()
                return True
            for sid in token if isinstance(token, list) else ():
                if sid in b.awaiting_record:
                    b.awaiting_record.discard(sid)
                    self.queue_jobs(b.scheduler.complete(sid, b.outputs.pop(sid, {}),
                                                         b.records.pop(sid, None)))
        return False

    def advance(self):
        """After any news: start what can start, then move to the phase the
        build is in now (the states' one shared decision)."""
        b = self.build
        if b is None:
            return self.trans(md_idle)
        if self.phase is md_dispatching and not b.scheduler.stopping:
            self.dispatch_ready()
        if b.scheduler.finished and not b.awaiting_record and not b.to_send:
            target = md_finishing
        elif b.scheduler.stopping:
            target = md_draining
        else:
            target = md_dispatching
        if target is self.phase or self.phase is md_finishing:
            return return_status.HANDLED
        return self.trans(target)

    # -- the end of a build --------------------------------------------------------
    def write_final_records(self) -> None:
        b = self.build
        s = b.scheduler
        b.final_token = f"final:{b.id}"
        self.emit(m.RECORD, Record(token=b.final_token, files=s.updated_files(),
                                   steps=list(s.extra_records), drop_steps=list(s.drop_records)))
        s.extra_records, s.drop_records = [], []

    def finish(self) -> None:
        b = self.build
        s = b.scheduler
        c = s.counts
        self.cancel_event(self.ticker)
        cancelled = {"cancelled": True} if self.cancelled == b.id else {}
        self.note({"t": "done", "ok": s.ok and not cancelled,
                   "code": 130 if cancelled else 0 if s.ok else 1, **cancelled,
                    "ran": c.done, "skipped": c.skipped, "failed": c.failed,
                    "blocked": c.blocked, "not_run": len(s.not_run()),
                    "duration_s": round(time.monotonic() - b.started, 3)})
        self.flush_events()
        if self.freshness:
            self.freshness.build_finished(
                None if b.dry_run else self.request_key({"targets": b.names, "cwd": b.cwd}),
                b.generation, s.ok, len(b.bp.plan.steps))
        self.build = None

    # -- a watching pod ------------------------------------------------------------
    def request_key(self, data: dict):
        return request_key(str(data.get("cwd") or self.root), data["targets"])

    def heard_change(self, data: dict) -> None:
        if self.freshness and data.get("root") == str(self.root):
            self.freshness.heard_report(data)

    def queue_follow_up(self) -> bool:
        """Queue one build of the watch targets if changes arrived that no
        build has seen yet; True when one was queued."""
        if not self.freshness or self.build or not self.freshness.want_follow_up():
            return False
        if any(msg.data.get("client") == "watch" for _, msg in self.requests):
            return False
        self.requests.append((secrets.token_hex(4), m.Message("", {
            "targets": list(self.watch_targets), "cwd": str(self.root), "client": "watch"})))
        return True

    # -- build events --------------------------------------------------------------
    def note(self, ev: dict) -> None:
        b = self.build
        c = b.scheduler.counts if b else None
        if c:
            ev["progress"] = [c.finished, c.total, c.running]
        self.events.append(ev)
        if len(self.events) >= EVENTS_MAX:
            self.flush_events()
        elif not self.events_pending:
            self.events_pending = True
            self.post(m.FLUSH)

    def flush_events(self) -> None:
        self.events_pending = False
        if self.events and self.build:
            self.publish_events(self.build.id, self.events)
        self.events = []

    def publish_events(self, build_id: str, events: list[dict]) -> None:
        seq = self.sequence.pop(build_id, 0)
        if events[-1].get("t") != "done":        # numbered so a listener can dedupe a replay
            self.sequence[build_id] = seq + len(events)
        self.bridge.publish(m.BUILD_EVENTS, {"build": build_id, "seq": seq, "events": events},
                            build=build_id)

    def cancel_build(self, msg: m.Message) -> None:
        """A queued build is dropped; the running one starts nothing more,
        its chefs drop the steps they hold and kill those running, and it
        ends with done, code 130."""
        bid, b, state = msg.data["build"], self.build, "unknown"
        queued = [r for r in self.requests if r[0] == bid]
        if queued:
            self.requests.remove(queued[0])
            self.publish_events(bid, [{"t": "done", "ok": False, "code": 130, "cancelled": True}])
            state = "cancelled"
        elif b and b.id == bid:
            state = "finishing" if self.phase is md_finishing else "cancelling"
            if state == "cancelling" and self.cancelled != bid:
                self.cancelled = bid
                self.note({"t": "cancel", "dropped": len(b.to_send)})
                for job in b.to_send:
                    b.scheduler.fail(job.step.id, StepFailure(job.step.id, job.command, None,
                                                              "cancelled", "", ""))
                b.to_send.clear()
                b.scheduler.stopping = True
                self.bridge.publish(m.CHEFS_CANCEL, {"build": bid})   # and what they hold
        self.bridge.respond(msg, {"build": bid, "state": state})

    def on_crash(self, exc: Exception) -> None:
        """A bug in the coordinator fails the build it runs, with the reason,
        rather than leaving the client waiting."""
        b = self.build
        if b is None:
            return
        self.cancel_event(self.ticker)
        self.publish_events(b.id, self.events + [{
            "t": "done", "ok": False, "code": 1,
            "error": f"internal error in the MajorDomo: {type(exc).__name__}: {exc}"}])
        self.events = []
        if self.freshness:
            self.freshness.build_finished(None, b.generation, False)
        self.build = None
        self.trans(md_idle)

    # -- bookkeeping used by the states -------------------------------------------
    def trans(self, fn):
        self.phase = fn
        return super().trans(fn)
