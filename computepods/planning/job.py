"""A step as the Scheduler hands it out, and how it ended.

Plain records shared by the :class:`~computepods.planning.scheduler.Scheduler`
and the MajorDomo's :class:`~computepods.coordinator.buildrun.BuildRun`.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

from computepods.planning.resolve import Step


class State(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"           # ran, and succeeded
    SKIPPED = "skipped"     # up to date
    FAILED = "failed"
    BLOCKED = "blocked"     # an input's producer failed
    CANCELLED = "cancelled"     # a cancel killed it while it ran


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


@dataclass
class Counts:
    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    blocked: int = 0
    running: int = 0
    cancelled: int = 0

    @property
    def finished(self) -> int:
        return self.done + self.skipped + self.failed + self.blocked + self.cancelled
