"""Which step runs next, and whether it needs to run at all.

The :class:`Scheduler` is the MajorDomo's bookkeeping, kept free of threads
and I/O beyond stat/hash so it can be tested on its own.  A step becomes
*ready* when every step producing one of its inputs has finished; only then
is it judged, with the input hashes as they are now — so a rebuilt output
whose hash did not change leaves its dependants up to date (early cutoff).
What makes a step stale is :mod:`computepods.planning.staleness`.
"""
from __future__ import annotations

from collections import deque
from dataclasses import replace
from types import MappingProxyType
from typing import Mapping

from computepods.errors import ComputePodsError
from computepods.planning.cycles import (CycleRun, circulating, external_inputs, own_outputs,
                                         pass_order, produced, remembered_failure)
from computepods.planning.graph import BuildGraph, Component
from computepods.planning.job import Counts, Job, State, StepFailure
from computepods.planning.needs import Needs, unmet
from computepods.state.hashing import FileRecord, StatCache
from computepods.planning.resolve import Step
from computepods.state.db import StepRecord
from computepods.planning.staleness import (UNKNOWN, group_record_id, input_digest, input_paths,
                                            rule_fingerprint, why_stale)

JUDGE_BATCH = 64  # stale steps next_jobs returns at most (more wait in `ready`)


class Scheduler:
    """Readiness, staleness and the outcome of every step of one build.

    The units are the graph's strongly connected components in topological
    order.  An acyclic step runs when it is stale.  A cyclic group runs pass
    after pass — in each pass every step that is stale, in dependency order —
    until a pass changes none of its circulating files (docs/architecture.md §4).
    """

    def __init__(self, graph: BuildGraph, records: dict[str, StepRecord], cache: StatCache,
                 *, keep_going: bool = False, dry_run: bool = False, settled: int = 0,
                 needs: Needs | None = None):
        """`settled`: steps left out of `graph`, known up to date (planning/hot.py);
        `needs`: adds the steps a run finds it needs (planning/needs.py)."""
        self._graph = graph
        self._needs = needs
        self._plan = graph.plan
        self._records = records
        self._cache = cache
        self._keep_going = keep_going
        self._dry_run = dry_run
        self._state: dict[str, State] = {sid: State.WAITING for sid in self._plan.steps}
        comps = graph.components
        self._comp_pending = {c.index: len(graph.component_deps(c)) for c in comps}
        self._comp_dependants: dict[int, set[int]] = {c.index: set() for c in comps}
        for c in comps:
            for d in graph.component_deps(c):
                self._comp_dependants[d].add(c.index)
        self._ready: deque[int] = deque(c.index for c in comps if self._comp_pending[c.index] == 0)
        self._cycles: dict[int, CycleRun] = {}
        self._attempts: dict[str, int] = {}
        self._hashes: dict[str, str | None] = {}      # produced files: hash after this build
        self._reasons: dict[str, str] = {}            # why each step ran (last time)
        self._failures: dict[str, StepFailure] = {}
        self._blocked_by: dict[str, str] = {}
        self._cycle_notes: list[dict] = []            # pass/fixpoint/oscillation news
        self._extra_records: list[StepRecord] = []    # group records to persist
        self._drop_records: list[str] = []
        self._stopping = False
        self._counts = Counts(total=len(self._plan.steps) + settled, skipped=settled)

    # -- hashes ----------------------------------------------------------------
    def digest(self, path: str) -> str | None:
        if path in self._hashes:
            return self._hashes[path]
        return self._cache.digest(path)

    def input_digest(self, step: Step, path: str) -> str | None:
        if self._hashes.get(path, 0) == UNKNOWN:
            return UNKNOWN
        return input_digest(step, path, self.digest, self._cache.root)

    def inputs_of(self, step: Step) -> dict[str, str | None]:
        return {p: self.input_digest(step, p)
                for p in input_paths(step, self._records.get(step.id))}

    # -- the flow --------------------------------------------------------------
    def next_jobs(self, limit: int = JUDGE_BATCH) -> list[Job]:
        """Judge what can be judged now: up-to-date steps finish at once
        (releasing their dependants), stale ones come back as jobs, at most
        about ``limit``: judging a thousand ready steps before the first is sent
        delayed it (``bench/run.py wide 1000``); the caller asks again later."""
        jobs: list[Job] = []
        while self._ready and not self._stopping and len(jobs) < limit:
            comp = self._graph.components[self._ready.popleft()]
            if comp.cyclic:
                jobs += self._start_cycle(comp)
                continue
            job = self._judge(comp.steps[0])
            if job is None:
                self._finish_step(comp.steps[0], State.SKIPPED)
                self._release(comp.index)
            else:
                jobs.append(job)
        return jobs

    def _judge(self, sid: str, run: CycleRun | None = None) -> Job | None:
        step = self._plan.steps[sid]
        inputs = self.inputs_of(step)
        command = step.display()
        fp = rule_fingerprint(step)
        outputs = {p: self._cache.digest(p) if p not in self._hashes else self._hashes[p]
                   for p in step.outputs}
        reason = why_stale(step, command, fp, self._records.get(sid), inputs, outputs)
        if reason is None:
            self._hashes.update(outputs)
            return None
        if self._state[sid] is not State.RUNNING:
            self._state[sid] = State.RUNNING
            self._counts.running += 1
        if run is not None:
            reason = f"{run.progress()}: {reason}"
        self._reasons[sid] = reason
        # A new attempt per run: chefs deduplicate by (step, attempt); pass 2 is no resend.
        self._attempts[sid] = self._attempts.get(sid, 0) + 1
        return Job(step, self._attempts[sid], reason, command, fp, inputs)

    def complete(self, sid: str, outputs: dict[str, str], record: StepRecord | None = None) -> list[Job]:
        """A job succeeded with these output hashes (UNKNOWN in a dry run);
        returns the jobs of its cyclic group that can run next, if any."""
        if self._state[sid] is not State.RUNNING:
            return []                      # a duplicate result: already counted
        self._hashes.update(outputs)
        self._cache.superseded(outputs)     # hashed when judged: not the file now
        if record is not None:
            self._records[sid] = record     # the next pass judges against this run
        comp = self._graph.component_of[sid]
        run = self._cycles.get(comp)
        if run is None:
            self._counts.running -= 1
            self._finish_step(sid, State.DONE)
            self._release(comp)
            return []
        run.phase[sid] = "done"
        run.ran.add(sid)
        if self._stopping:        # a failure elsewhere: the group ends where it is
            if "running" not in run.phase.values():
                del self._cycles[comp]
                self._block_group(run, next(iter(self._failures), "the build stopping"))
            return []
        if record and self._needs and not self._take_needs(run, sid):
            return []
        return self._advance_cycle(run)

    def fail(self, sid: str, failure: StepFailure) -> None:
        if self._state[sid] is not State.RUNNING:
            return
        comp = self._graph.component_of[sid]
        self._counts.running -= 1
        self._state[sid] = State.FAILED
        self._counts.failed += 1
        self._failures[sid] = failure
        run = self._cycles.pop(comp, None)
        if run is not None:                # the whole group fails with it
            self._block_group(run, sid)
        self._block_dependants(comp, sid)
        if not self._keep_going:
            self._stopping = True

    def _block_group(self, run: CycleRun, cause: str) -> None:
        for other in run.order:
            self._counts.running -= self._state[other] is State.RUNNING
            if self._state[other] in (State.RUNNING, State.WAITING):
                self._state[other] = State.BLOCKED
                self._counts.blocked += 1
                self._blocked_by[other] = cause

    # -- cyclic groups ---------------------------------------------------------
    def _circulating(self, comp: Component) -> list[str]:
        return circulating(comp, self._plan, self._records,
                           lambda sid: self.inputs_of(self._plan.steps[sid]))

    def _take_needs(self, run: CycleRun, sid: str) -> bool:
        """The steps making what ``sid``'s run found it needs join its group
        and run in this pass (planning/needs.py); False if that failed it."""
        try:
            added = self._needs.take(self._plan, self._records, [sid])
        except ComputePodsError as exc:
            self._cycle_failed(run, f"{sid}: {exc}", remember=False)
            return False
        run.take(self._graph, added, self._records)
        self._state.update(dict.fromkeys(added, State.WAITING))
        self._counts.total += len(added)
        return True

    def _start_cycle(self, comp: Component) -> list[Job]:
        order, earlier = pass_order(self._graph, comp)
        max_passes = max(self._plan.steps[s].rule.max_passes for s in comp.steps)
        run = CycleRun(comp, order, earlier, self._circulating(comp), max_passes)
        remembered = remembered_failure(run, self._records.get(group_record_id(comp)),
                                        self._external_inputs(run))
        if remembered:
            self._cycle_notes.append({"t": "cycle_failed", "cycle": run.label, "pass": 0,
                                     "reason": remembered})
            for sid in comp.steps:
                self._state[sid] = State.RUNNING
                self._counts.running += 1
            failure = StepFailure(order[0], self._plan.steps[order[0]].display(), None,
                                  remembered, "", "")
            self.fail(order[0], failure)
            return []
        self._cycles[comp.index] = run
        return self._new_pass(run)

    def _new_pass(self, run: CycleRun) -> list[Job]:
        run.pass_no += 1
        run.before = {p: self.digest(p) for p in produced(run.comp, self._plan, self._records)}
        run.phase = {sid: "waiting" for sid in run.order}
        self._cycle_notes.append({"t": "pass", "cycle": run.label, "pass": run.pass_no,
                                 "max": run.max_passes})
        return self._advance_cycle(run)

    def _advance_cycle(self, run: CycleRun) -> list[Job]:
        jobs = []
        progressed = True
        while progressed:
            progressed = False
            for sid in run.order:
                if run.phase[sid] != "waiting":
                    continue
                if any(run.phase[p] != "done" for p in run.before_in_pass[sid]):
                    continue
                job = self._judge(sid, run)
                if job is None:
                    run.phase[sid] = "done"
                    progressed = True
                else:
                    run.phase[sid] = "running"
                    jobs.append(job)
        if jobs or any(ph == "running" for ph in run.phase.values()):
            return jobs
        return self._end_pass(run)

    def _end_pass(self, run: CycleRun) -> list[Job]:
        run.circulating = self._circulating(run.comp)      # what this pass discovered
        after = {p: self.digest(p) for p in produced(run.comp, self._plan, self._records)}
        changed = [p for p in run.circulating if after[p] != run.before.get(p)]
        if not changed:
            failed = None if self._dry_run else unmet(self._plan, self._records, run.order,
                                                      self.digest)
            if failed:
                self._extra_records.append(failed)
                self._cycle_failed(run, failed.reason, remember=False)
            else:
                self._cycle_converged(run)
            return []
        stuck = run.stuck(after, changed)
        if stuck:
            self._cycle_failed(run, stuck)
            return []
        return self._new_pass(run)

    def _cycle_converged(self, run: CycleRun) -> None:
        del self._cycles[run.comp.index]
        self._cycle_notes.append({"t": "fixpoint", "cycle": run.label, "pass": run.pass_no})
        for sid in run.order:
            if self._state[sid] is State.RUNNING:
                self._counts.running -= 1
            self._finish_step(sid, State.DONE if sid in run.ran else State.SKIPPED)
        self._drop_records.append(group_record_id(run.comp))
        self._release(run.comp.index)

    def _cycle_failed(self, run: CycleRun, msg: str, remember: bool = True) -> None:
        """The group fails; ``remember``: the next build fails it at once,
        until one of its inputs changes (not when the fix may be a rule)."""
        self._cycle_notes.append({"t": "cycle_failed", "cycle": run.label, "pass": run.pass_no,
                                 "reason": msg})
        if remember:
            self._extra_records.append(StepRecord(
                step_id=group_record_id(run.comp), rule="cycle", command=run.label,
                inputs=self._external_inputs(run), outputs={}, status="failed", reason=msg))
        first = run.order[0]
        for sid in run.order:
            if self._state[sid] is not State.RUNNING:
                self._state[sid] = State.RUNNING
                self._counts.running += 1
        self.fail(first, StepFailure(first, self._plan.steps[first].display(), None,
                                     msg, "", ""))

    def _external_inputs(self, run: CycleRun) -> dict[str, str | None]:
        return external_inputs(run, self._plan, lambda sid: self.inputs_of(self._plan.steps[sid]))

    # -- bookkeeping -----------------------------------------------------------
    def _finish_step(self, sid: str, state: State) -> None:
        self._state[sid] = state
        self._counts.skipped += state is State.SKIPPED
        self._counts.done += state is State.DONE

    def _release(self, comp: int) -> None:
        for dep in sorted(self._comp_dependants[comp]):
            self._comp_pending[dep] -= 1
            if self._comp_pending[dep] == 0:
                self._ready.append(dep)

    def _block_dependants(self, comp: int, cause: str) -> None:
        todo, seen = deque([comp]), {comp}
        while todo:
            for dep in self._comp_dependants[todo.popleft()]:
                if dep in seen:
                    continue
                seen.add(dep)
                todo.append(dep)
                for sid in self._graph.components[dep].steps:
                    if self._state[sid] is State.WAITING:
                        self._state[sid] = State.BLOCKED
                        self._counts.blocked += 1
                        self._blocked_by[sid] = cause

    # -- what the caller may ask and tell ------------------------------------------
    @property
    def finished(self) -> bool:
        """Nothing running and nothing more will be started."""
        return not self._counts.running and (self._stopping or not self._ready)

    @property
    def ok(self) -> bool:
        return not self._failures and not self._stopping and all(
            s in (State.DONE, State.SKIPPED) for s in self._state.values())

    @property
    def stopping(self) -> bool:
        """A step failed (without keep-going), or the build was stopped:
        nothing more starts."""
        return self._stopping

    @property
    def counts(self) -> Counts:
        return replace(self._counts)

    @property
    def records(self) -> Mapping[str, StepRecord]:
        """The step records it judges by (read-only; updated by :meth:`complete`)."""
        return MappingProxyType(self._records)

    @property
    def dry_run(self) -> bool:
        return self._dry_run

    def is_running(self, sid: str) -> bool:
        return self._state.get(sid) is State.RUNNING

    def state_of(self, sid: str) -> State:
        return self._state[sid]

    def not_run(self) -> list[str]:
        return [sid for sid, s in self._state.items() if s is State.WAITING]

    def stop(self) -> None:
        """Start nothing more (a cancel); running steps still report."""
        self._stopping = True

    def withdraw(self, sid: str, ran: bool) -> None:
        """A cancel ends a running step: killed as it ran (``ran``), or never started."""
        if self._state.get(sid) is State.RUNNING:
            self.fail(sid, StepFailure(sid, "", None, "cancelled", "", ""))
            self._counts.failed -= 1
            self._state[sid] = State.CANCELLED if ran else State.WAITING
            self._counts.cancelled += ran

    def pass_of(self, sid: str) -> dict:
        """``{"cycle": label, "pass": n}`` for a step of a cyclic group that runs, else {}."""
        run = self._cycles.get(self._graph.component_of[sid])
        return {"cycle": run.label, "pass": run.pass_no} if run else {}

    def reschedule(self, sid: str) -> int:
        """A running step is sent again (its chef was lost): its new attempt
        number, so a late result of the old attempt is ignored."""
        self._attempts[sid] += 1
        return self._attempts[sid]

    def drain_cycle_notes(self) -> list[dict]:
        """News of cyclic groups (pass, fixpoint, cycle_failed) since last asked."""
        notes, self._cycle_notes = self._cycle_notes, []
        return notes

    def drain_records(self) -> tuple[list[StepRecord], list[str]]:
        """Group records to persist and group record ids to drop, since last asked."""
        records, drops = self._extra_records, self._drop_records
        self._extra_records, self._drop_records = [], []
        return records, drops

    def own_outputs_to_copy(self, job: Job) -> dict[str, str]:
        """A TeX step reads what it wrote last time (.aux, .toc, .lof) without
        saying so beforehand: give it every output of its that exists, as
        running it in place would (the .fls then tells which it read)."""
        return own_outputs(job, self._records.get(job.step.id), self.digest)

    def updated_files(self) -> list[FileRecord]:
        return self._cache.updated()
