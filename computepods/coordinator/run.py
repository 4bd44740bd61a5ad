"""The MajorDomo's books: what it knows of each chef and of the running build.

Plain records; the chart (:mod:`computepods.charts.majordomo`) decides what
to do with them.
"""
from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

from computepods.planning.plan import BuildPlan
from computepods.planning.scheduler import Job

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
