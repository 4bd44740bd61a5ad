"""A cyclic group run to a fixpoint: its pass order and what each pass saw.

The :class:`~computepods.planning.scheduler.Scheduler` keeps one
:class:`CycleRun` per group it is running (docs/architecture.md §4).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from computepods.planning.graph import BuildGraph, Component


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
