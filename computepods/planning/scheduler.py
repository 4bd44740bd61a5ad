"""Which step runs next, and whether it needs to run at all.

The :class:`Scheduler` is the MajorDomo's bookkeeping, kept free of threads
and I/O beyond stat/hash so it can be tested on its own.  A step becomes
*ready* when every step producing one of its inputs has finished; only then
is it judged, with the input hashes as they are now — so a rebuilt output
whose hash did not change leaves its dependants up to date (early cutoff).

A step is stale (docs/architecture.md §4) when it has no record, its last run failed,
its rule or expanded command changed, an output is missing or was edited by
hand, or an input's hash differs from the one recorded when it last ran.
"""
from __future__ import annotations

import enum
import functools
import hashlib
import json
from collections import deque
from dataclasses import dataclass, field, fields
from typing import Callable

from computepods.planning.graph import BuildGraph, Component
from computepods.state.hashing import FileRecord, StatCache
from computepods.planning.resolve import Step
from computepods.state.db import StepRecord

UNKNOWN = "?"     # the hash of an output a dry run assumes would change
JUDGE_BATCH = 64  # stale steps next_jobs returns at most (more wait in `ready`)


class State(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"           # ran, and succeeded
    SKIPPED = "skipped"     # up to date
    FAILED = "failed"
    BLOCKED = "blocked"     # an input's producer failed


@dataclass
class StepFailure:
    """What a user needs to see about a failed step (a record, not an error)."""
    step_id: str
    command: str
    exit_code: int | None        # None when killed by a signal or timed out
    reason: str                  # "exit 2", "timed out after 600 s", ...
    stdout_tail: str
    stderr_tail: str


@dataclass
class Job:
    """A stale step to run, with what it was judged against."""
    step: Step
    attempt: int
    reason: str
    command: str                          # the display command, recorded
    rule_fp: str
    inputs: dict[str, str | None]         # hashes it is run against
    copied: dict[str, str] = field(default_factory=dict)   # own outputs given to it, pre-run


_fingerprints: dict[int, tuple[object, str]] = {}   # id(rule) -> (rule, fingerprint)
_MAX_FINGERPRINTS = 4096


def rule_fingerprint(step: Step) -> str:
    """Identifies the rule's definition, so editing a rule reruns its steps.

    Looked up by the rule object's identity first: 10,000 steps share a few
    rules, and hashing a frozen Rule hashes every field (a rule of 10,000
    inputs) on each call."""
    rule = step.rule
    hit = _fingerprints.get(id(rule))
    if hit is not None and hit[0] is rule:
        return hit[1]
    if len(_fingerprints) >= _MAX_FINGERPRINTS:
        _fingerprints.clear()
    fp = _fingerprints[id(rule)] = (rule, _fingerprint(rule))
    return fp[1]


@functools.lru_cache(maxsize=4096)
def _fingerprint(rule) -> str:
    # A shallow dict gives the same JSON as asdict(), which deep-copies a
    # rule's every input pattern first.
    d = {f.name: getattr(rule, f.name) for f in fields(rule) if f.name != "index"}
    blob = json.dumps(d, sort_keys=True, default=list).encode()
    return f"{rule.name}#{hashlib.sha256(blob).hexdigest()[:12]}"


def short(h: str | None) -> str:
    return "missing" if h is None else ("unknown" if h == UNKNOWN else h[:12])


def why_stale(step: Step, command: str | Callable[[], str], rule_fp: str,
              record: StepRecord | None, inputs: dict[str, str | None],
              outputs: dict[str, str | None]) -> str | None:
    """The reason `step` must run, or None when it is up to date.

    `command` may be a callable, which is then not called: rendering 10,000
    commands was a third of a cold no-op, and an unchanged rule fingerprint
    (which covers the command template) already implies an unchanged command
    for the same step.
    """
    if record is None:
        return "never built"
    if record.status != "ok":
        return f"its last run failed ({record.reason})" if record.reason else "its last run failed"
    if record.rule != rule_fp:
        return f"rule {step.rule.name!r} changed"
    # With the rule unchanged, the same step (same id, so the same stem) has
    # the same command; a caller that passes a callable skips rendering it.
    if not callable(command) and record.command != command:
        return "its command changed"
    for path in step.outputs:
        now = outputs.get(path)
        if now is None:
            return f"output {path} is missing"
        if now != record.outputs.get(path):
            return f"output {path} was changed outside the build"
    for path, now in inputs.items():
        if path not in record.inputs:
            return f"input {path} is new"
        if record.inputs[path] != now:
            return f"input {path} changed ({short(record.inputs[path])} -> {short(now)})"
    for path in record.inputs:
        if path not in inputs:
            return f"input {path} is no longer an input"
    return None


@dataclass
class Counts:
    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    blocked: int = 0
    running: int = 0

    @property
    def finished(self) -> int:
        return self.done + self.skipped + self.failed + self.blocked


@dataclass
class CycleRun:
    """A cyclic group being run to a fixpoint, pass after pass."""
    comp: Component
    order: list[str]                     # in-pass order (back edges dropped)
    before_in_pass: dict[str, set[str]]  # step -> group steps that go earlier in a pass
    circulating: list[str]               # written by one of its steps, read by one
    max_passes: int
    pass_no: int = 0
    before: dict[str, str | None] = field(default_factory=dict)    # hashes at pass start
    history: list[dict[str, str | None]] = field(default_factory=list)   # after each pass
    phase: dict[str, str] = field(default_factory=dict)   # step -> waiting/running/done
    ran: set[str] = field(default_factory=set)             # steps that ran in any pass

    @property
    def label(self) -> str:
        return "{" + ", ".join(self.circulating) + "}"

    def progress(self) -> str:
        return f"pass {self.pass_no}/{self.max_passes} of {self.label}"


class Scheduler:
    """Readiness, staleness and the outcome of every step of one build.

    The units are the graph's strongly connected components in topological
    order.  An acyclic step runs when it is stale.  A cyclic group runs pass
    after pass — in each pass every step that is stale, in dependency order —
    until a pass changes none of its circulating files (docs/architecture.md §4).
    """

    def __init__(self, graph: BuildGraph, records: dict[str, StepRecord], cache: StatCache,
                 *, keep_going: bool = False, dry_run: bool = False):
        self.graph = graph
        self.plan = graph.plan
        self.records = records
        self.cache = cache
        self.keep_going = keep_going
        self.dry_run = dry_run
        self.state: dict[str, State] = {sid: State.WAITING for sid in self.plan.steps}
        comps = graph.components
        self.comp_pending = {c.index: len(graph.component_deps(c)) for c in comps}
        self.comp_dependants: dict[int, set[int]] = {c.index: set() for c in comps}
        for c in comps:
            for d in graph.component_deps(c):
                self.comp_dependants[d].add(c.index)
        self.ready: deque[int] = deque(c.index for c in comps if self.comp_pending[c.index] == 0)
        self.cycles: dict[int, CycleRun] = {}
        self.attempts: dict[str, int] = {}
        self.hashes: dict[str, str | None] = {}      # produced files: hash after this build
        self.reasons: dict[str, str] = {}            # why each step ran (last time)
        self.failures: dict[str, StepFailure] = {}
        self.blocked_by: dict[str, str] = {}
        self.cycle_notes: list[dict] = []            # pass/fixpoint/oscillation news
        self.extra_records: list[StepRecord] = []    # group records to persist
        self.drop_records: list[str] = []
        self.stopping = False
        self.counts = Counts(total=len(self.plan.steps))

    # -- hashes ----------------------------------------------------------------
    def digest(self, path: str) -> str | None:
        if path in self.hashes:
            return self.hashes[path]
        return self.cache.digest(path)

    def input_digest(self, step: Step, path: str) -> str | None:
        if self.hashes.get(path, 0) == UNKNOWN:
            return UNKNOWN
        return input_digest(step, path, self.digest, self.cache.root)

    def inputs_of(self, step: Step) -> dict[str, str | None]:
        return {p: self.input_digest(step, p)
                for p in input_paths(step, self.records.get(step.id))}

    # -- the flow --------------------------------------------------------------
    def next_jobs(self, limit: int = JUDGE_BATCH) -> list[Job]:
        """Judge what can be judged now: up-to-date steps finish at once
        (releasing their dependants), stale ones come back as jobs — at most
        about ``limit`` of them: the first steps are sent while the rest wait
        to be judged (1,000 ready steps took 70 ms to judge before the first
        could start), and the caller asks again as results come in."""
        jobs: list[Job] = []
        while self.ready and not self.stopping and len(jobs) < limit:
            comp = self.graph.components[self.ready.popleft()]
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
        step = self.plan.steps[sid]
        inputs = self.inputs_of(step)
        command = step.display()
        fp = rule_fingerprint(step)
        outputs = {p: self.cache.digest(p) if p not in self.hashes else self.hashes[p]
                   for p in step.outputs}
        reason = why_stale(step, command, fp, self.records.get(sid), inputs, outputs)
        if reason is None:
            self.hashes.update(outputs)
            return None
        if self.state[sid] is not State.RUNNING:
            self.state[sid] = State.RUNNING
            self.counts.running += 1
        if run is not None:
            reason = f"{run.progress()}: {reason}"
        self.reasons[sid] = reason
        # Each run of a step is a new attempt: chefs deduplicate by (step,
        # attempt), so pass 2 of a cycle must not look like a resend of pass 1.
        self.attempts[sid] = self.attempts.get(sid, 0) + 1
        return Job(step, self.attempts[sid], reason, command, fp, inputs)

    def complete(self, sid: str, outputs: dict[str, str], record: StepRecord | None = None) -> list[Job]:
        """A job succeeded with these output hashes (UNKNOWN in a dry run);
        returns the jobs of its cyclic group that can run next, if any."""
        if self.state[sid] is not State.RUNNING:
            return []                      # a duplicate result: already counted
        self.hashes.update(outputs)
        if record is not None:
            self.records[sid] = record     # the next pass judges against this run
        comp = self.graph.component_of[sid]
        run = self.cycles.get(comp)
        if run is None:
            self.counts.running -= 1
            self._finish_step(sid, State.DONE)
            self._release(comp)
            return []
        run.phase[sid] = "done"
        run.ran.add(sid)
        return self._advance_cycle(run)

    def fail(self, sid: str, failure: StepFailure) -> None:
        if self.state[sid] is not State.RUNNING:
            return
        comp = self.graph.component_of[sid]
        self.counts.running -= 1
        self.state[sid] = State.FAILED
        self.counts.failed += 1
        self.failures[sid] = failure
        run = self.cycles.pop(comp, None)
        if run is not None:                # the whole group fails with it
            for other in run.order:
                if self.state[other] is State.RUNNING:
                    self.counts.running -= 1
                if self.state[other] in (State.RUNNING, State.WAITING):
                    self.state[other] = State.BLOCKED
                    self.counts.blocked += 1
                    self.blocked_by[other] = sid
        self._block_dependants(comp, sid)
        if not self.keep_going:
            self.stopping = True

    # -- cyclic groups ---------------------------------------------------------
    def _produced(self, comp: Component) -> set[str]:
        """Files the group writes: declared outputs, and those its steps were
        seen to write (a .toc, through .fls) — known better after each pass."""
        out = set()
        for sid in comp.steps:
            out.update(self.plan.steps[sid].outputs)
            record = self.records.get(sid)
            if record and record.status == "ok":
                out.update(record.outputs)
        return out

    def _circulating(self, comp: Component) -> list[str]:
        """Written by one of the group's steps and read by one; a step that
        reads its own output (TeX's .aux, through .fls) circulates it.  A PDF
        or a log leaves the group and does not count."""
        read = {p for s in comp.steps for p in self.inputs_of(self.plan.steps[s])}
        return sorted(self._produced(comp) & read)

    def _start_cycle(self, comp: Component) -> list[Job]:
        order, earlier = self._pass_order(comp)
        max_passes = max(self.plan.steps[s].rule.max_passes for s in comp.steps)
        run = CycleRun(comp, order, earlier, self._circulating(comp), max_passes)
        remembered = self._remembered_failure(run)
        if remembered:
            self.cycle_notes.append({"t": "cycle_failed", "cycle": run.label, "pass": 0,
                                     "reason": remembered})
            for sid in comp.steps:
                self.state[sid] = State.RUNNING
                self.counts.running += 1
            failure = StepFailure(order[0], self.plan.steps[order[0]].display(), None,
                                  remembered, "", "")
            self.fail(order[0], failure)
            return []
        self.cycles[comp.index] = run
        return self._new_pass(run)

    def _pass_order(self, comp: Component) -> tuple[list[str], dict[str, set[str]]]:
        """Depth-first from the group's first step along its edges; the
        reverse post-order drops the back edges, giving each pass an order."""
        inside = set(comp.steps)
        seen: set[str] = set()
        post: list[str] = []
        for start in comp.steps:
            if start in seen:
                continue
            stack = [(start, iter(sorted(self.graph.dependants[start] & inside)))]
            seen.add(start)
            while stack:
                node, children = stack[-1]
                for child in children:
                    if child not in seen:
                        seen.add(child)
                        stack.append((child, iter(sorted(self.graph.dependants[child] & inside))))
                        break
                else:
                    stack.pop()
                    post.append(node)
        order = post[::-1]
        position = {sid: i for i, sid in enumerate(order)}
        earlier = {sid: {p for p in self.graph.deps[sid] & inside if position[p] < position[sid]}
                   for sid in order}
        return order, earlier

    def _new_pass(self, run: CycleRun) -> list[Job]:
        run.pass_no += 1
        run.before = {p: self.digest(p) for p in self._produced(run.comp)}
        run.phase = {sid: "waiting" for sid in run.order}
        self.cycle_notes.append({"t": "pass", "cycle": run.label, "pass": run.pass_no,
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
        after = {p: self.digest(p) for p in self._produced(run.comp)}
        changed = [p for p in run.circulating if after[p] != run.before.get(p)]
        if not changed:
            self._cycle_converged(run)
            return []
        now = {p: after[p] for p in run.circulating}
        earlier = [i + 1 for i, h in enumerate(run.history[:-1])
                   if {p: h.get(p) for p in run.circulating} == now]
        run.history.append(after)
        if earlier:
            msg = (f"cyclic group {run.label} oscillates: pass {run.pass_no} repeats the "
                   f"state after pass {earlier[0]}; these files flip: {', '.join(changed)}")
            self._cycle_failed(run, msg, oscillation=True)
            return []
        if run.pass_no >= run.max_passes:
            msg = (f"cyclic group {run.label} did not converge in {run.max_passes} passes; "
                   f"still changing: {', '.join(changed)}")
            self._cycle_failed(run, msg)
            return []
        return self._new_pass(run)

    def _cycle_converged(self, run: CycleRun) -> None:
        del self.cycles[run.comp.index]
        self.cycle_notes.append({"t": "fixpoint", "cycle": run.label, "pass": run.pass_no})
        for sid in run.order:
            if self.state[sid] is State.RUNNING:
                self.counts.running -= 1
            self._finish_step(sid, State.DONE if sid in run.ran else State.SKIPPED)
        self.drop_records.append(group_record_id(run.comp))
        self._release(run.comp.index)

    def _cycle_failed(self, run: CycleRun, msg: str, oscillation: bool = False) -> None:
        self.cycle_notes.append({"t": "cycle_failed", "cycle": run.label, "pass": run.pass_no,
                                 "reason": msg})
        self.extra_records.append(StepRecord(
            step_id=group_record_id(run.comp), rule="cycle", command=run.label,
            inputs=self._external_inputs(run), outputs={}, status="failed", reason=msg))
        first = run.order[0]
        for sid in run.order:
            if self.state[sid] is not State.RUNNING:
                self.state[sid] = State.RUNNING
                self.counts.running += 1
        self.fail(first, StepFailure(first, self.plan.steps[first].display(), None,
                                     msg, "", ""))

    def _external_inputs(self, run: CycleRun) -> dict[str, str | None]:
        produced = {p for s in run.order for p in self.plan.steps[s].outputs}
        out: dict[str, str | None] = {}
        for sid in run.order:
            for p, h in self.inputs_of(self.plan.steps[sid]).items():
                if p not in produced:
                    out[p] = h
        return out

    def _remembered_failure(self, run: CycleRun) -> str | None:
        """A group that failed to converge fails again, without running,
        until one of its inputs from outside the group changes."""
        record = self.records.get(group_record_id(run.comp))
        if record is None or record.status != "failed":
            return None
        if record.inputs != self._external_inputs(run):
            return None
        return (f"{record.reason} (remembered from an earlier build; change one of its "
                "inputs to try again)")

    # -- bookkeeping -----------------------------------------------------------
    def _finish_step(self, sid: str, state: State) -> None:
        self.state[sid] = state
        if state is State.SKIPPED:
            self.counts.skipped += 1
        elif state is State.DONE:
            self.counts.done += 1

    def _release(self, comp: int) -> None:
        for dep in sorted(self.comp_dependants[comp]):
            self.comp_pending[dep] -= 1
            if self.comp_pending[dep] == 0:
                self.ready.append(dep)

    def _block_dependants(self, comp: int, cause: str) -> None:
        todo = deque([comp])
        seen = {comp}
        while todo:
            for dep in self.comp_dependants[todo.popleft()]:
                if dep in seen:
                    continue
                seen.add(dep)
                todo.append(dep)
                for sid in self.graph.components[dep].steps:
                    if self.state[sid] is State.WAITING:
                        self.state[sid] = State.BLOCKED
                        self.counts.blocked += 1
                        self.blocked_by[sid] = cause

    @property
    def finished(self) -> bool:
        """Nothing running and nothing more will be started."""
        if self.counts.running:
            return False
        return self.stopping or not self.ready

    @property
    def ok(self) -> bool:
        return not self.failures and not self.stopping and all(
            s in (State.DONE, State.SKIPPED) for s in self.state.values())

    def not_run(self) -> list[str]:
        return [sid for sid, s in self.state.items() if s is State.WAITING]

    def record(self, job: Job, outputs: dict[str, str], duration_s: float, finished_ns: int,
               discovered: list[str] | None = None) -> StepRecord:
        inputs = record_inputs(job.inputs, job.copied, discovered or (),
                               {*outputs, *job.step.outputs},
                               lambda p: self.input_digest(job.step, p))
        return StepRecord(step_id=job.step.id, rule=job.rule_fp, command=job.command,
                          inputs=inputs, outputs=dict(outputs), discovered=list(discovered or ()),
                          status="ok", exit_code=0, reason=job.reason, duration_s=duration_s,
                          finished_ns=finished_ns)

    def own_outputs_to_copy(self, job: Job) -> dict[str, str]:
        """A TeX step reads what it wrote last time (.aux, .toc, .lof) without
        saying so beforehand: give it every output of its that exists, as
        running it in place would (the .fls then tells which it read)."""
        if job.step.rule.discover != "fls":
            return {p: h for p in job.step.outputs
                    if (h := job.inputs.get(p)) is not None}
        record = self.records.get(job.step.id)
        known = [*job.step.outputs, *(record.outputs if record else ())]
        return {p: h for p in dict.fromkeys(known) if (h := self.digest(p)) is not None}

    def failed_record(self, job: Job, failure: StepFailure, finished_ns: int) -> StepRecord:
        return StepRecord(step_id=job.step.id, rule=job.rule_fp, command=job.command,
                          inputs=dict(job.inputs), outputs={}, status="failed",
                          exit_code=failure.exit_code, reason=failure.reason,
                          finished_ns=finished_ns)

    def updated_files(self) -> list[FileRecord]:
        return self.cache.updated()


def input_paths(step: Step, record: StepRecord | None) -> list[str]:
    """Declared inputs, then those earlier runs discovered (depfile, .fls)."""
    paths = list(step.inputs)
    if record:
        paths += [p for p in record.discovered if p not in paths]
    return paths


def input_digest(step: Step, path: str, digest, root) -> str | None:
    """The hash a step is judged by: of the part it reads, if its rule says
    so (bibtex reads only the citation lines of an .aux)."""
    part = part_of(step, path)
    if part is None:
        return digest(path)
    from computepods.planning.parts import part_digest
    return part_digest(root / path, part)


def stale_on_disk(step: Step, record: StepRecord | None, digest, root) -> str | None:
    """:func:`why_stale` with the files as they are on disk standing in for
    what producers would report (the cold no-op check, explain).  The
    command is not rendered: the rule fingerprint already vouches for it."""
    inputs = {p: input_digest(step, p, digest, root) for p in input_paths(step, record)}
    outputs = {p: digest(p) for p in step.outputs}
    return why_stale(step, step.display, rule_fingerprint(step), record, inputs, outputs)


def record_inputs(judged: dict[str, str | None], copied: dict[str, str],
                  discovered, produced, digest) -> dict[str, str | None]:
    """A run's input hashes: those it was judged by, plus what it was found
    to read — its own output as it was given to it before the run (absent on
    a first pass), anything else as it is now."""
    inputs = dict(judged)
    for path in discovered:
        if path not in inputs:
            inputs[path] = copied.get(path) if path in produced else digest(path)
    return inputs


def group_record_id(comp: Component) -> str:
    return f"cycle:{sorted(comp.steps)[0]}"


def part_of(step: Step, path: str) -> str | None:
    parts = step.rule.parts
    if not parts:
        return None
    from computepods.planning.parts import part_for
    return part_for(parts, step.rule.inputs, step.inputs, path)
