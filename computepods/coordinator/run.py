"""The MajorDomo's books: what it knows of each chef and of the running build.

Plain records; the chart (:mod:`computepods.charts.majordomo`) decides what
to do with them.
"""
from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from computepods.planning.plan import BuildPlan, make_plan, remove_orphans
from computepods.planning.job import Job, StepFailure
from computepods.planning.staleness import record_inputs
from computepods.state.db import StepRecord

log = logging.getLogger("computepods.majordomo")

WINDOW_PER_SLOT = 16       # steps outstanding per chef slot (queued at the chef)
DEFAULT_LEASE_S = 15.0     # seconds of silence after which a chef is presumed dead


@dataclass
class ChefInfo:
    name: str
    slots: int
    outstanding: set[str] = field(default_factory=set)
    seen: float = 0.0
    lease_s: float = DEFAULT_LEASE_S

    @property
    def space(self) -> int:
        return self.slots * WINDOW_PER_SLOT - len(self.outstanding)


@dataclass
class ActiveBuild:
    id: str
    names: list[str]
    keep_going: bool
    dry_run: bool
    bp: BuildPlan
    started: float
    jobs: dict[str, Job] = field(default_factory=dict)
    to_send: deque = field(default_factory=deque)
    awaiting_record: set[str] = field(default_factory=set)
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    records: dict[str, object] = field(default_factory=dict)   # step -> StepRecord awaiting disk
    final_token: str = ""
    cwd: str = ""
    generation: int = 0                  # of the pod's Freshness when it started

    @property
    def scheduler(self):
        return self.bp.scheduler

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


def plan_request(root: Path, data: dict, *, tidy: Callable[[list, list], None] | None = None,
                 ) -> tuple[BuildPlan, list[str]]:
    """Plan a build.request; with `tidy` (how to forget records), first
    delete the outputs no rule makes any more and plan again without them.
    Returns the plan and the outputs removed."""
    def plan() -> BuildPlan:
        return make_plan(root, data["targets"], Path(data.get("cwd") or root),
                         keep_going=bool(data.get("keep_going")), dry_run=bool(data.get("dry_run")))
    bp = plan()
    if tidy is None or data.get("dry_run"):
        return bp, []
    removed, kept = remove_orphans(root, bp.project, bp.plan, bp.scheduler.records, write=tidy)
    for why in [f"removed {p}; no rule makes it any more" for p in removed] + \
            [f"keeping {why}; no rule makes it any more" for why in kept]:
        log.warning("%s", why)
    return (plan() if removed else bp), removed
