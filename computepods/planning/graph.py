"""The dependency graph of a plan: which step feeds which, in what order.

A step depends on the steps that produce its inputs (declared, and later
discovered ones).  The graph may have cycles (LaTeX); its strongly connected
components, in topological order, are the units the build runs — an acyclic
step is a component of one.  An acyclic graph is ordered with a plain
topological sort; networkx condenses the graphs that have cycles (and is
imported only then: its import and its condensation are time a build of
many independent steps would wait for; ``bench/run.py wide 1000`` shows it).
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from computepods.planning.resolve import Plan


@dataclass
class Component:
    """A strongly connected component: one step, or a cyclic group."""
    index: int
    steps: tuple[str, ...]
    cyclic: bool

    def label(self) -> str:
        return self.steps[0] if not self.cyclic else "{" + ", ".join(self.steps) + "}"


@dataclass
class BuildGraph:
    plan: Plan
    deps: dict[str, set[str]] = field(default_factory=dict)         # step -> steps it reads from
    dependants: dict[str, set[str]] = field(default_factory=dict)   # step -> steps reading it
    components: list[Component] = field(default_factory=list)       # topological order
    component_of: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_plan(cls, plan: Plan, discovered: dict[str, list[str]] | None = None) -> "BuildGraph":
        """Build from a plan; `discovered` adds inputs found by earlier runs."""
        g = cls(plan)
        for sid, step in plan.steps.items():
            g.deps[sid] = set()
            g.dependants.setdefault(sid, set())
        for sid, step in plan.steps.items():
            if step.rule.discover == "fls":
                # A TeX run reads what it wrote last time (.aux, .toc): it is
                # a cyclic group of one from its very first build.
                g.deps[sid].add(sid)
                g.dependants[sid].add(sid)
            inputs = list(step.inputs) + list((discovered or {}).get(sid, ()))
            for path in inputs:
                producer = plan.producers.get(path)
                if producer is not None and producer in plan.steps:
                    g.deps[sid].add(producer)
                    g.dependants.setdefault(producer, set()).add(sid)
        g._condense()
        return g

    def grow(self, comp: Component, sids: Sequence[str],
             discovered: Mapping[str, Sequence[str]]) -> None:
        """Steps added to the plan while a build runs (planning/needs.py) join
        the cyclic group ``comp`` that found it needs them, with the edges to
        and from its steps: from the producers of what they read, and to the
        group's steps that read what they make.  (Steps outside the group
        that read it too are ordered when the next build plans.)"""
        plan = self.plan
        comp.steps = comp.steps + tuple(sids)
        for sid in sids:
            self.deps.setdefault(sid, set())
            self.dependants.setdefault(sid, set())
            self.component_of[sid] = comp.index
        made = {out: sid for sid in sids for out in plan.steps[sid].outputs}
        for sid in comp.steps:
            for path in (*plan.steps[sid].inputs, *discovered.get(sid, ())):
                producer = plan.producers.get(path)
                if sid in sids and producer in plan.steps and producer in self.deps:
                    self._edge(producer, sid)
                if path in made:
                    self._edge(made[path], sid)

    def _edge(self, producer: str, sid: str) -> None:
        self.deps[sid].add(producer)
        self.dependants[producer].add(sid)

    def _condense(self) -> None:
        order = self._acyclic_order()
        if order is not None:
            for index, sid in enumerate(order):
                self.components.append(Component(index, (sid,), False))
                self.component_of[sid] = index
            return
        self._condense_cycles()

    def _acyclic_order(self) -> list[str] | None:
        """Kahn's topological order, stable in plan order; None if there is a
        cycle.  Most graphs have none, and this is far cheaper than
        networkx's condensation (``bench/rebuild.py noop wide 10000``)."""
        position = {sid: i for i, sid in enumerate(self.plan.steps)}
        pending = {sid: len(p) for sid, p in self.deps.items()}
        ready = [sid for sid in self.plan.steps if pending[sid] == 0]
        heapq.heapify(ready := [(position[s], s) for s in ready])
        order = []
        while ready:
            _, sid = heapq.heappop(ready)
            order.append(sid)
            for dep in self.dependants[sid]:
                pending[dep] -= 1
                if pending[dep] == 0:
                    heapq.heappush(ready, (position[dep], dep))
        return order if len(order) == len(self.plan.steps) else None

    def _condense_cycles(self) -> None:
        import networkx as nx   # a costly import: only for graphs with cycles

        dg = nx.DiGraph()
        dg.add_nodes_from(self.plan.steps)
        for sid, producers in self.deps.items():
            dg.add_edges_from((p, sid) for p in producers)
        condensed = nx.condensation(dg)
        position = {sid: i for i, sid in enumerate(self.plan.steps)}
        first = {n: min(position[s] for s in condensed.nodes[n]["members"]) for n in condensed}
        order = list(nx.lexicographical_topological_sort(condensed, key=first.__getitem__))
        for index, node in enumerate(order):
            members = sorted(condensed.nodes[node]["members"], key=position.__getitem__)
            cyclic = len(members) > 1 or any(m in self.deps[m] for m in members)
            self.components.append(Component(index, tuple(members), cyclic))
            for sid in members:
                self.component_of[sid] = index

    def component_deps(self, comp: Component) -> set[int]:
        """The components this one reads from (outside itself)."""
        inside = set(comp.steps)
        return {self.component_of[p] for s in comp.steps for p in self.deps[s] if p not in inside}
