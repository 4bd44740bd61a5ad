"""Which step runs next, and whether it needs to run at all.

The :class:`Scheduler` is the MajorDomo's bookkeeping, kept free of threads
and I/O beyond stat/hash so it can be tested on its own.  A step becomes
*ready* when every step producing one of its inputs has finished; only then
is it judged, with the input hashes as they are now — so a rebuilt output
whose hash did not change leaves its dependants up to date (early cutoff).

A step is stale (design.md §4) when it has no record, its last run failed,
its rule or expanded command changed, an output is missing or was edited by
hand, or an input's hash differs from the one recorded when it last ran.
"""
from __future__ import annotations

import enum
import functools
import hashlib
import json
from collections import deque
from dataclasses import asdict, dataclass, field

from .errors import StepFailure
from .graph import BuildGraph
from .hashing import FileRecord, StatCache
from .rules import Step
from .state import StepRecord

UNKNOWN = "?"     # the hash of an output a dry run assumes would change


class State(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"           # ran, and succeeded
    SKIPPED = "skipped"     # up to date
    FAILED = "failed"
    BLOCKED = "blocked"     # an input's producer failed


@dataclass
class Job:
    """A stale step to run, with what it was judged against."""
    step: Step
    attempt: int
    reason: str
    command: str                          # the display command, recorded
    rule_fp: str
    inputs: dict[str, str | None]         # hashes it is run against


def rule_fingerprint(step: Step) -> str:
    """Identifies the rule's definition, so editing a rule reruns its steps."""
    return _fingerprint(step.rule)


@functools.lru_cache(maxsize=4096)
def _fingerprint(rule) -> str:
    d = asdict(rule)
    d.pop("index", None)
    blob = json.dumps(d, sort_keys=True, default=list).encode()
    return f"{rule.name}#{hashlib.sha256(blob).hexdigest()[:12]}"


def short(h: str | None) -> str:
    return "missing" if h is None else ("unknown" if h == UNKNOWN else h[:12])


def why_stale(step: Step, command: str, rule_fp: str, record: StepRecord | None,
              inputs: dict[str, str | None], outputs: dict[str, str | None]) -> str | None:
    """The reason `step` must run, or None when it is up to date."""
    if record is None:
        return "never built"
    if record.status != "ok":
        return f"its last run failed ({record.reason})" if record.reason else "its last run failed"
    if record.rule != rule_fp:
        return f"rule {step.rule.name!r} changed"
    if record.command != command:
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


class Scheduler:
    """Readiness, staleness and the outcome of every step of one build."""

    def __init__(self, graph: BuildGraph, records: dict[str, StepRecord], cache: StatCache,
                 *, keep_going: bool = False, dry_run: bool = False):
        self.graph = graph
        self.plan = graph.plan
        self.records = records
        self.cache = cache
        self.keep_going = keep_going
        self.dry_run = dry_run
        self.state: dict[str, State] = {sid: State.WAITING for sid in self.plan.steps}
        self.pending = {sid: len(graph.deps[sid]) for sid in self.plan.steps}
        self.ready: deque[str] = deque(sid for sid, n in self.pending.items() if n == 0)
        self.hashes: dict[str, str | None] = {}      # produced files: hash after this build
        self.reasons: dict[str, str] = {}            # why each step ran
        self.failures: dict[str, StepFailure] = {}
        self.blocked_by: dict[str, str] = {}
        self.stopping = False
        self.counts = Counts(total=len(self.plan.steps))
        for comp in graph.components:
            if comp.cyclic:
                # The fixpoint engine handles these; until then refuse loudly.
                from .errors import ComputePodsError
                raise ComputePodsError(f"cyclic group {comp.label()} cannot be built yet")

    # -- hashes ----------------------------------------------------------------
    def digest(self, path: str) -> str | None:
        if path in self.hashes:
            return self.hashes[path]
        return self.cache.digest(path)

    # -- the flow --------------------------------------------------------------
    def next_jobs(self) -> list[Job]:
        """Judge every ready step: up-to-date ones finish at once (releasing
        their dependants), stale ones come back as jobs to run."""
        jobs: list[Job] = []
        while self.ready and not self.stopping:
            sid = self.ready.popleft()
            step = self.plan.steps[sid]
            inputs = {p: self.digest(p) for p in step.inputs}
            command = step.command().display
            fp = rule_fingerprint(step)
            outputs = {p: self.cache.digest(p) for p in step.outputs}
            reason = why_stale(step, command, fp, self.records.get(sid), inputs, outputs)
            if reason is None:
                self.state[sid] = State.SKIPPED
                self.counts.skipped += 1
                self.hashes.update(outputs)
                self._release(sid)
                continue
            self.state[sid] = State.RUNNING
            self.counts.running += 1
            self.reasons[sid] = reason
            jobs.append(Job(step, 1, reason, command, fp, inputs))
        return jobs

    def complete(self, sid: str, outputs: dict[str, str]) -> None:
        """A job succeeded with these output hashes (UNKNOWN in a dry run)."""
        if self.state[sid] is not State.RUNNING:
            return                      # a duplicate result: already counted
        self.state[sid] = State.DONE
        self.counts.running -= 1
        self.counts.done += 1
        self.hashes.update(outputs)
        self._release(sid)

    def fail(self, sid: str, failure: StepFailure) -> None:
        if self.state[sid] is not State.RUNNING:
            return
        self.state[sid] = State.FAILED
        self.counts.running -= 1
        self.counts.failed += 1
        self.failures[sid] = failure
        self._block_dependants(sid)
        if not self.keep_going:
            self.stopping = True

    def _release(self, sid: str) -> None:
        for dep in sorted(self.graph.dependants[sid], key=self._order):
            self.pending[dep] -= 1
            if self.pending[dep] == 0 and self.state[dep] is State.WAITING:
                self.ready.append(dep)

    def _block_dependants(self, sid: str) -> None:
        todo = deque([sid])
        while todo:
            for dep in self.graph.dependants[todo.popleft()]:
                if self.state[dep] is State.WAITING:
                    self.state[dep] = State.BLOCKED
                    self.counts.blocked += 1
                    self.blocked_by[dep] = sid
                    todo.append(dep)

    def _order(self, sid: str) -> int:
        return self.graph.component_of[sid]

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

    def record(self, job: Job, outputs: dict[str, str], duration_s: float,
               finished_ns: int) -> StepRecord:
        return StepRecord(step_id=job.step.id, rule=job.rule_fp, command=job.command,
                          inputs=dict(job.inputs), outputs=dict(outputs), status="ok",
                          exit_code=0, duration_s=duration_s, finished_ns=finished_ns)

    def failed_record(self, job: Job, failure: StepFailure, finished_ns: int) -> StepRecord:
        return StepRecord(step_id=job.step.id, rule=job.rule_fp, command=job.command,
                          inputs=dict(job.inputs), outputs={}, status="failed",
                          exit_code=failure.exit_code, reason=failure.reason,
                          finished_ns=finished_ns)

    def updated_files(self) -> list[FileRecord]:
        return self.cache.updated()
