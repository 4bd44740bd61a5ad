"""A build's critical path: the longest chain of dependent runs, by duration.

The runs are a finished build's timeline (:mod:`computepods.coordinator.timeline`),
the dependencies the build graph's (step -> the steps whose outputs it
reads).  A run B can follow a run A when B's step reads what A's step
makes, or is A's own step again (the next pass of a cyclic group, a step
run again after its chef was lost), and A ended before B started.  The
path is the chain whose runs' durations add up to most: what no number of
chef slots would make shorter.  A cyclic group's passes are each a run, so
its path goes through every pass it needed.

"Ended before it started" holds for every true dependency whatever the
bus's delays: a span's times are never earlier than the run's own (see
timeline.py), and a dependant is dispatched only once its producer's result
was heard, so only rounding can put them out of order (``SLACK_S``).
Plain: no I/O.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Protocol, Sequence

SLACK_S = 1e-3          # seconds: rounding of the stored times (6 decimals) and float error


class Run(Protocol):
    """What a run needs here: a timeline's Span has it."""
    step: str
    start_s: float
    end_s: float


@dataclass
class CriticalPath:
    runs: list[int] = field(default_factory=list)     # indexes into the spans, first run first
    steps: list[str] = field(default_factory=list)    # their steps (a step twice: two passes)
    duration_s: float = 0.0                           # the runs' durations added up

    def to_dict(self) -> dict:
        return {"runs": self.runs, "steps": self.steps, "duration_s": round(self.duration_s, 6)}


def critical_path(spans: Sequence[Run], deps: Mapping[str, Iterable[str]]) -> CriticalPath:
    """The longest chain of ``spans`` by duration (see the module docstring);
    ``deps``: each step's producers (a step it does not name has none)."""
    order = sorted(range(len(spans)), key=lambda i: (spans[i].start_s, spans[i].end_s))
    runs_of: dict[str, list[int]] = {}
    best: dict[int, float] = {}
    before: dict[int, int | None] = {}
    for b in order:
        span = spans[b]
        came: int | None = None
        longest = 0.0
        for step in (span.step, *deps.get(span.step, ())):
            for a in runs_of.get(step, ()):
                if spans[a].end_s <= span.start_s + SLACK_S and best[a] > longest:
                    came, longest = a, best[a]
        best[b] = longest + max(0.0, span.end_s - span.start_s)
        before[b] = came
        runs_of.setdefault(span.step, []).append(b)
    if not best:
        return CriticalPath()
    last = max(order, key=lambda i: (best[i], -i))
    chain: list[int] = []
    at: int | None = last
    while at is not None:
        chain.append(at)
        at = before[at]
    chain.reverse()
    return CriticalPath(chain, [spans[i].step for i in chain], best[last])
