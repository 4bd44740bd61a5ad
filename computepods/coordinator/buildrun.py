"""One running build: results in, records out.

A :class:`BuildRun` holds the jobs the Scheduler released and what became
of them: sent to a chef, waiting for their record to be on disk, failed.
It turns a chef's results into step records and tells the Scheduler at
once what each step made; a job that builds on a record not yet written
waits for it (coordinator/gate.py: persist before proceed).  It never
touches the bus: the MajorDomo chart sends what it returns, and decides
what comes next.
"""
from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import Callable

from computepods.bus.chefwire import RunMessage, StepResult
from computepods.coordinator.ahead import AheadBook
from computepods.coordinator.gate import RecordGate
from computepods.coordinator.taken import Taken, ran_on
from computepods.chef.step import rule_to_dict, step_to_message
from computepods.clock import SystemClock
from computepods.errors import MalformedMessage
from computepods.planning.job import Job, State, StepFailure
from computepods.planning.plan import BuildPlan
from computepods.planning.staleness import UNKNOWN, record_inputs
from computepods.state.db import StepRecord

Note = Callable[[str, dict], None]     # (build id, event): publish one build event
NO_OTHER_CHEF = "; no other chef to run it"


class BuildRun:
    def __init__(self, build_id: str, names: list[str], bp: BuildPlan, note: Note, *,
                 cwd: str, generation: int = 0, clock=None):
        self.id = build_id
        self.names = names
        self.bp = bp
        self.cwd = cwd
        self.generation = generation         # of the pod's Freshness when it started
        self.final_token = f"final:{build_id}"
        self._sink = note
        self._clock = clock or SystemClock()
        self._started = self._clock.monotonic()
        self._jobs: dict[str, Job] = {}
        self._to_send: deque[Job] = deque()
        self._gate = RecordGate()            # jobs waiting for records to be written
        self._cancelled = False
        self._runs = 0                       # tool runs that ended, ok or not
        self._succeeded: set[str] = set()    # steps with a successful run in this build
        self._shown_start: set[str] = set()  # steps whose "start" event went out
        self.ahead = AheadBook()             # steps sent ahead (coordinator/ahead.py)

    def note(self, ev: dict) -> None:
        """Publish a build event, with the progress so far."""
        c = self.scheduler.counts
        ev["progress"] = [c.finished, c.total, c.running]
        self._sink(self.id, ev)

    @property
    def scheduler(self):
        return self.bp.scheduler

    @property
    def dry_run(self) -> bool:
        return self.scheduler.dry_run

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    @property
    def waiting(self) -> int:
        """Jobs released but not yet sent to a chef."""
        return len(self._to_send)

    @property
    def age_s(self) -> float:
        return self._clock.monotonic() - self._started

    @property
    def stopping(self) -> bool:
        return self.scheduler.stopping

    @property
    def drained(self) -> bool:
        """Nothing running or waiting to be sent.  Records may still be on
        their way to disk: the final ones go after them, and the Store
        writes in order, so the final RECORDED says all are written."""
        return self.scheduler.finished and not self._to_send and not len(self._gate)

    # -- jobs out ------------------------------------------------------------------
    def release(self) -> None:
        """Take what the Scheduler can release now."""
        self._queue(self.scheduler.next_jobs())

    def _queue(self, jobs: list[Job]) -> None:
        """Jobs the scheduler released: to be sent, or (dry run) assumed done."""
        s = self.scheduler
        while jobs:
            for job in jobs:
                self._jobs[job.step.id] = job
            self._cycle_news()
            if not s.dry_run:
                self._to_send.extend(self._gate.hold(self.ahead.delegate(jobs)))
                break
            more = []
            for job in jobs:
                self.note({"t": "would", "step": job.step.id, "command": job.command,
                            "reason": job.reason})
                more += s.complete(job.step.id, {p: UNKNOWN for p in job.step.outputs})
            jobs = more + s.next_jobs()
        self._cycle_news()

    def _cycle_news(self) -> None:
        for note in self.scheduler.drain_cycle_notes():
            self.note(dict(note))

    def next_batch(self, n: int) -> list[Job]:
        """The next `n` jobs to send, each with the own outputs it is given."""
        jobs = [self._to_send.popleft() for _ in range(min(n, len(self._to_send)))]
        for j in jobs:
            j.copied = self.scheduler.own_outputs_to_copy(j)
        return jobs

    def take_waiting(self, n: int) -> list[Job]:
        """The first `n` jobs waiting to be sent, out of the queue (placement
        by cost sends each where it costs least; :meth:`put_back` the rest)."""
        return [self._to_send.popleft() for _ in range(min(n, len(self._to_send)))]

    def put_back(self, jobs: list[Job]) -> None:
        """Jobs taken but not sent: first in the queue again, in their order."""
        self._to_send.extendleft(reversed(jobs))

    def job(self, sid: str) -> Job | None:
        return self._jobs.get(sid)

    def record_of(self, sid: str) -> StepRecord | None:
        return self.scheduler.records.get(sid)

    def unfinished(self, steps) -> list[str]:
        """Of these steps (a lost chef's), those still waiting for a result."""
        return sorted(sid for sid in steps if sid in self._jobs
                      and not self._gate.unwritten(sid) and self.scheduler.is_running(sid))

    def resend(self, sid: str) -> None:
        """Send a step again, first, as a new attempt (its chef was lost)."""
        job = self._jobs[sid]
        job.attempt = self.scheduler.reschedule(sid)
        self._to_send.appendleft(job)

    def chef_lost(self, chef: str, steps: list[str], why: str, rescheduled: bool) -> None:
        """A chef is gone: its unfinished steps go again as new attempts, or,
        with no other chef, fail naming it, and so do the steps waiting to
        be sent (waiting longer would only hide why)."""
        self.note({"t": "chef_lost", "chef": chef, "reason": why, "steps": steps,
                    "rescheduled": rescheduled})
        self.ahead.forget_chef(chef)
        for sid in steps:
            if rescheduled:
                self.resend(sid)
            else:
                self.fail(sid, why + NO_OTHER_CHEF)
        if not rescheduled:
            self.fail_waiting(why + NO_OTHER_CHEF)

    def run_message(self, chef: str, jobs: list[Job], files: dict | None = None,
                    origin: str = "", outstanding=None) -> dict:
        """The chef.run payload for these jobs; for a chef on another pod,
        each step's `files` (step id -> path -> sha256) and the pod serving them.
        With ``outstanding`` (the steps one of our own chefs holds), the
        steps that can go ahead with them go too (coordinator/ahead.py)."""
        rules = {j.step.rule.name: rule_to_dict(j.step.rule) for j in jobs}
        steps = [step_to_message(j.step, j.attempt, j.inputs, self.record_of(j.step.id),
                                 j.copied, j.rule_fp) for j in jobs]
        if outstanding is not None and not self._cancelled:
            ahead = self.ahead.offer(self, chef, jobs, outstanding)
            plan = self.bp.graph.plan.steps
            rules.update((st.rule, rule_to_dict(plan[st.id].rule)) for st in ahead)
            steps += ahead
        if files:
            steps = [replace(s, files=dict(files.get(s.id, {}))) for s in steps]
        return RunMessage(self.id, chef, rules, steps, origin).to_dict()

    def outputs_of(self, run: dict) -> list[str]:
        """What the steps of a run message will commit (the pod's watcher waits for it)."""
        plan = self.bp.graph.plan.steps
        return [p for st in run["steps"] if st["id"] in plan for p in plan[st["id"]].outputs]

    def fail_waiting(self, reason: str) -> None:
        """Fail every job not yet sent (no chef to send it to)."""
        for job in self._unsent():
            self.fail(job.step.id, reason)

    # -- results in ------------------------------------------------------------------
    def is_current(self, item: dict) -> bool:
        """A result for a step of this build that is still running, of its
        latest attempt (not late, a duplicate or an older attempt)."""
        sid = item.get("id")
        return (sid in self._jobs and self.scheduler.is_running(sid)
                and not self._gate.unwritten(sid)
                and item.get("attempt") == self._jobs[sid].attempt)

    def take(self, chef: str, results: list) -> Taken:
        """A chef's results: events noted, records built, failures told."""
        taken = Taken()
        # A step that started and finished within this one message gets one
        # "ran" event instead of "start" and "ok": half the events to follow.
        finishing = {(i.get("id"), i.get("attempt")) for i in results
                     if isinstance(i, dict) and i.get("event") == "finished"}
        started_here: set[str] = set()
        made: list[tuple[str, dict[str, str], StepRecord]] = []
        for item in results:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                continue
            if not self.is_current(item):
                self.ahead.heard(chef, item)          # a step sent ahead, not released yet
                continue
            sid = item["id"]
            job = self._jobs[sid]
            if item.get("event") == "unrun" or (item.get("event") == "finished"
                                                and not self.ahead.read_as_judged(job, item)):
                self._unrun(sid, taken)
                continue
            start = {"t": "start", "step": sid, "command": job.command, "reason": job.reason,
                     "chef": chef, **self.scheduler.pass_of(sid)}
            if item.get("event") == "started":
                if (sid, item.get("attempt")) in finishing:
                    started_here.add(sid)
                else:
                    self.note(start)
                    self._shown_start.add(sid)
                continue
            taken.settled.append(sid)
            self.ahead.notes.pop(sid, None)
            self._runs += 1
            try:
                result = StepResult.from_dict(item)
            except MalformedMessage as exc:
                result = StepResult(sid, job.attempt, False, job.command,
                                    reason=f"its result was malformed: {exc}")
            if result.ok:
                self._succeeded.add(sid)
                outputs = {p: o.sha256 for p, o in result.outputs.items()}
                record = self.record(job, outputs, result.duration_s, self._clock_ns(),
                                     result.discovered)
                self._gate.taken(sid, outputs)
                made.append((sid, outputs, record))
                taken.records.append(record)
                taken.outputs.update(result.outputs)
                taken.discovered += result.discovered
                # "ran" also when its start note was lost: the client shows one or the other
                if sid in started_here or sid not in self._shown_start:
                    self.note({**start, "t": "ran", "duration_s": item.get("duration_s"),
                               **ran_on(result)})
                else:
                    self.note({"t": "ok", "step": sid, "duration_s": item.get("duration_s"),
                               **ran_on(result)})
            elif self._cancelled and (not result.command or result.exit_code is None):
                self._withdraw(sid, start if sid in started_here else None, result)
            else:
                if sid in started_here:
                    self.note(start)
                failure = StepFailure(sid, result.command or job.command, result.exit_code,
                                      result.reason, result.stdout_tail, result.stderr_tail)
                taken.records.append(self.failed_record(job, failure, self._clock_ns()))
                self.fail(sid, failure.reason, failure, result.duration_s, ran_on(result))
        for sid, outputs, record in made:       # its dependants are judged now
            self._queue(self.scheduler.complete(sid, outputs, record))
        extra, taken.drops = self.scheduler.drain_records()
        taken.records += extra
        self._drop_if_stopping()
        return taken

    def _unrun(self, sid: str, taken: Taken) -> None:
        """A step its chef held did not run there: it goes as any step (not
        at all once the build stops: a cancel, or a failure without -k)."""
        taken.settled.append(sid)
        self.ahead.notes.pop(sid, None)
        if self._cancelled or self.scheduler.stopping:
            self.scheduler.withdraw(sid, ran=False)
        else:
            self._to_send.extend(self._gate.hold([self._jobs[sid]]))

    def _clock_ns(self) -> int:
        return int(self._clock.time() * 1e9)

    def _withdraw(self, sid: str, start: dict | None, result: StepResult) -> None:
        """After a cancel: a step the chef dropped unstarted is not run; one it
        killed is cancelled.  Neither is a failure, nor recorded as one (its
        last record stands: it was stale, and stays so)."""
        self.scheduler.withdraw(sid, ran=bool(result.command))
        if result.command:
            if start:
                self.note(start)
            self.note({"t": "cancelled", "step": sid, "duration_s": result.duration_s,
                       **ran_on(result)})
        else:
            self._runs -= 1                  # counted as it came: no tool ran

    def fail(self, sid: str | None, reason: str, failure: StepFailure | None = None,
             duration_s: float | None = None, where: dict | None = None) -> bool:
        """The step failed (after ``duration_s`` of running, if it ran, on the
        slot and from the time ``where`` says); False when it is not one of
        this build's jobs."""
        if sid not in self._jobs:
            return False
        failure = failure or StepFailure(sid, self._jobs[sid].command, None, reason, "", "")
        self.scheduler.fail(sid, failure)
        self._cycle_news()
        ev = {"t": "fail", "step": sid, "command": failure.command,
              "exit_code": failure.exit_code, "reason": failure.reason,
              "stdout_tail": failure.stdout_tail, "stderr_tail": failure.stderr_tail}
        self.note(ev if duration_s is None else {**ev, "duration_s": duration_s, **(where or {})})
        return True

    def fail_runs(self, failures: list[tuple[str | None, str, str | None]], settled) -> None:
        """Runs refused or lost: (step, why, its chef); ``settled(chef, step)``."""
        for sid, reason, chef in failures:
            if self.is_job(sid):
                settled(chef, sid)
                self.fail(sid, reason)

    def is_job(self, sid: str | None) -> bool:
        return sid in self._jobs

    def recorded(self, tokens: list) -> None:
        """The Store wrote these records: the jobs waiting for them may go."""
        for token in tokens:
            for sid in token if isinstance(token, list) else ():
                self._to_send.extend(self._gate.written(sid))
        self._drop_if_stopping()

    def _drop_if_stopping(self) -> None:
        """After a failure without -k, what was not sent is not run (it stays
        stale); a cancel drops it at once (:meth:`cancel`)."""
        if self.scheduler.stopping and (self._to_send or len(self._gate)):
            for job in self._unsent():
                self.scheduler.withdraw(job.step.id, ran=False)

    def _unsent(self) -> list[Job]:
        """Every job released and not sent, out of the queue and the gate."""
        jobs = [*self._to_send, *self._gate.drop()]
        self._to_send.clear()
        return jobs

    def record_token(self, records: list[StepRecord]) -> list[str]:
        """What the Store answers when these are written: the steps it completes."""
        return [r.step_id for r in records if r.status == "ok" and r.step_id in self._jobs]

    def cancel(self) -> bool:
        """Start nothing more: what was not sent is not run; False if already cancelled."""
        if self._cancelled:
            return False
        self._cancelled = True
        unsent = self._unsent()
        self.note({"t": "cancel", "dropped": len(unsent)})
        for job in unsent:
            self.scheduler.withdraw(job.step.id, ran=False)
        self.scheduler.stop()
        return True

    # -- records out -----------------------------------------------------------------
    def record(self, job: Job, outputs: dict[str, str], duration_s: float, finished_ns: int,
               discovered: list[str] | None = None) -> StepRecord:
        s = self.scheduler
        inputs = record_inputs(job.inputs, job.copied, discovered or (),
                               {*outputs, *job.step.outputs},
                               lambda p: s.input_digest(job.step, p))
        return StepRecord(step_id=job.step.id, rule=job.rule_fp, command=job.command,
                          inputs=inputs, outputs=dict(outputs), discovered=list(discovered or ()),
                          status="ok", exit_code=0, reason=job.reason, duration_s=duration_s,
                          finished_ns=finished_ns)

    def failed_record(self, job: Job, failure: StepFailure, finished_ns: int) -> StepRecord:
        return StepRecord(step_id=job.step.id, rule=job.rule_fp, command=job.command,
                          inputs=dict(job.inputs), outputs={}, status="failed",
                          exit_code=failure.exit_code, reason=failure.reason,
                          finished_ns=finished_ns)

    def summary(self, unrecorded: str = "") -> dict:
        """The build's done event; ``unrecorded``: why its last records are not
        on disk yet (a full disk: exit 2, the pod's Store keeps them)."""
        s, c = self.scheduler, self.scheduler.counts
        extra = ({"error": f"{unrecorded}; the pod keeps these records and writes them once"
                           " it can (until then their steps count as not built)"}
                 if unrecorded else {"cancelled": True} if self._cancelled else {})
        if s.dry_run:
            extra = {**extra, "dry_run": True}      # "ran" then counts what would run
        # A cyclic group that gives up fails its first step and blocks the
        # rest: those that ran in one of its passes still count as ran.
        ran_in_failed_group = sum(1 for sid in self._succeeded
                                  if s.state_of(sid) is State.BLOCKED)
        return {"t": "done", "ok": s.ok and not extra.keys() - {"dry_run"},
                "code": 2 if unrecorded else 130 if self._cancelled else 0 if s.ok else 1,
                **extra, "ran": c.done + ran_in_failed_group, "runs": self._runs,
                "skipped": c.skipped, "failed": c.failed, "cancelled_steps": c.cancelled,
                "blocked": c.blocked - ran_in_failed_group, "not_run": len(s.not_run()),
                "duration_s": round(self.age_s, 3)}
