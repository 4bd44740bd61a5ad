"""A cyclic group run to a fixpoint: its pass order and what each pass saw.

The :class:`~computepods.planning.scheduler.Scheduler` keeps one
:class:`CycleRun` per group it is running (docs/architecture.md §4).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from computepods.planning.graph import BuildGraph, Component
from computepods.planning.job import Job
from computepods.planning.resolve import Plan
from computepods.state.db import StepRecord


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
        """The files going round, once known; until then (a TeX step's first
        pass reads nothing it wrote yet) the group's steps."""
        return "{" + ", ".join(self.circulating or self.comp.steps) + "}"

    def progress(self) -> str:
        return f"pass {self.pass_no}/{self.max_passes} of {self.label}"

    def stuck(self, after: dict[str, str | None], changed: list[str]) -> str | None:
        """After a pass that changed ``changed``, with the produced files'
        hashes ``after``: why the group cannot go on (it oscillates, or its
        passes are used up), or None for another pass."""
        now = {p: after[p] for p in self.circulating}
        earlier = [i + 1 for i, h in enumerate(self.history[:-1])
                   if {p: h.get(p) for p in self.circulating} == now]
        self.history.append(after)
        if earlier:
            return (f"cyclic group {self.label} oscillates: pass {self.pass_no} repeats the "
                    f"state after pass {earlier[0]}; these files flip: {', '.join(changed)}")
        if self.pass_no >= self.max_passes:
            return (f"cyclic group {self.label} did not converge in {self.max_passes} passes; "
                    f"still changing: {', '.join(changed)}")
        return None

    def take(self, graph: BuildGraph, sids: list[str], records: Mapping[str, StepRecord]) -> None:
        """Steps added to the plan while the group runs (planning/needs.py)
        join it, and run in this pass once what they read is made."""
        if not sids:
            return
        graph.grow(self.comp, sids, {s: r.discovered for s in self.comp.steps
                                     if (r := records.get(s)) is not None})
        self.order, self.before_in_pass = pass_order(graph, self.comp)
        self.phase.update(dict.fromkeys(sids, "waiting"))


def pass_order(graph: BuildGraph, comp: Component) -> tuple[list[str], dict[str, set[str]]]:
    """Depth-first from the group's first step along its edges; the reverse
    post-order drops the back edges, giving each pass an order.  Returns the
    order and, for each step, the group's steps that go before it in a pass."""
    inside = set(comp.steps)
    seen: set[str] = set()
    post: list[str] = []
    for start in comp.steps:
        if start in seen:
            continue
        stack = [(start, iter(sorted(graph.dependants[start] & inside)))]
        seen.add(start)
        while stack:
            node, children = stack[-1]
            for child in children:
                if child not in seen:
                    seen.add(child)
                    stack.append((child, iter(sorted(graph.dependants[child] & inside))))
                    break
            else:
                stack.pop()
                post.append(node)
    order = post[::-1]
    position = {sid: i for i, sid in enumerate(order)}
    earlier = {sid: {p for p in graph.deps[sid] & inside if position[p] < position[sid]}
               for sid in order}
    return order, earlier


def external_inputs(run: CycleRun, plan: Plan,
                    inputs_of: Callable[[str], dict[str, str | None]]) -> dict[str, str | None]:
    """The group's inputs from outside it, with their hashes now."""
    produced = {p for s in run.order for p in plan.steps[s].outputs}
    out: dict[str, str | None] = {}
    for sid in run.order:
        for p, h in inputs_of(sid).items():
            if p not in produced:
                out[p] = h
    return out


def remembered_failure(run: CycleRun, record: StepRecord | None,
                       inputs: dict[str, str | None]) -> str | None:
    """A group that failed to converge fails again, without running,
    until one of its inputs from outside the group (``inputs``, now) changes."""
    if record is None or record.status != "failed" or record.inputs != inputs:
        return None
    return (f"{record.reason} (remembered from an earlier build; change one of its "
            "inputs to try again)")


def produced(comp: Component, plan: Plan, records: Mapping[str, StepRecord]) -> set[str]:
    """Files the group writes: declared outputs, and those its steps were
    seen to write (a .toc, through .fls) — known better after each pass."""
    out = set()
    for sid in comp.steps:
        out.update(plan.steps[sid].outputs)
        record = records.get(sid)
        if record and record.status == "ok":
            out.update(record.outputs)
    return out


def circulating(comp: Component, plan: Plan, records: Mapping[str, StepRecord],
                inputs_of: Callable[[str], dict[str, str | None]]) -> list[str]:
    """Written by one of the group's steps and read by one; a step that
    reads its own output (TeX's .aux, through .fls) circulates it.  A PDF
    or a log leaves the group and does not count."""
    read = {p for s in comp.steps for p in inputs_of(s)}
    return sorted(produced(comp, plan, records) & read)


def own_outputs(job: Job, record: StepRecord | None,
                digest: Callable[[str], str | None]) -> dict[str, str]:
    """What a step in a group is given of its own outputs from the last pass
    (Scheduler.own_outputs_to_copy): a TeX step every output of its that
    exists, as running it in place would (the .fls then tells which it read)."""
    if job.step.rule.discover != "fls":
        return {p: h for p in job.step.outputs if (h := job.inputs.get(p)) is not None}
    known = [*job.step.outputs, *(record.outputs if record else ())]
    return {p: h for p in dict.fromkeys(known) if (h := digest(p)) is not None}
