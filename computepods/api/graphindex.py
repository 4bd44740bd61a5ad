"""The build graph as the page and ``cpctrl graph`` read it: in groups and pages.

A :class:`GraphIndex` is made once from :func:`computepods.api.catalog.graph`
(each step's state as judged from disk) and answers, cheaply and many
times, what ``GET /v1/graph``, ``GET /v1/steps`` and ``GET /v1/steps/{id}``
ask (docs/architecture.md §7 "The graph"):

- **groups**: the steps of one rule fold into one group, counted by state.
  A project with more than ``MAX_RULE_GROUPS`` rules (a generated one, with
  a rule per file) folds its one-step rules by their first output's
  directory instead (``build/l1/``), so the first screen stays short;
- **pages of steps**, filtered by group, state, "ran in this build", or a
  search of step ids and paths;
- **one step** with its inputs (and the steps that make them), its outputs
  and the steps that read them: navigation one node at a time, as
  ``ninja -t browse`` does.

What a running build changes comes as an :class:`Overlay` of the build's
events (running steps, :mod:`computepods.api.outcomes`), so the index need
not be made again for each event.  Pure: no I/O.
"""
from __future__ import annotations

import posixpath
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from computepods.api.outcomes import CANCELLED as O_CANCELLED, FAILED as O_FAILED
from computepods.api.outcomes import NOT_RUN as O_NOT_RUN, RAN as O_RAN, StepOutcomes
from computepods.errors import NotFound

UP_TO_DATE, STALE, BUILDING, FAILED = "up_to_date", "stale", "building", "failed"
CANCELLED, NOT_RUN = "cancelled", "not_run"
STATES = (UP_TO_DATE, STALE, BUILDING, FAILED, CANCELLED, NOT_RUN)
ATTENTION = {s: i for i, s in enumerate((BUILDING, FAILED, CANCELLED, NOT_RUN, STALE, UP_TO_DATE))}
RULE, DIR = "rule", "dir"              # what a group folds: one rule, or one directory's rules

MAX_RULE_GROUPS = 40          # more rules than this: one-step rules fold by directory
PAGE = 50                     # steps in a page unless asked
MAX_PAGE = 1000               # the most steps, groups or neighbours in one answer
RUNNING_LISTED = 50           # running steps named in the groups answer
_OUTCOME_STATE = {O_FAILED: FAILED, O_CANCELLED: CANCELLED, O_NOT_RUN: NOT_RUN}


@dataclass(frozen=True)
class Overlay:
    """What the latest build says beyond the disk.

    ``live``: the index was judged before this build ended, so a step the
    build ran since is up to date now; once the index is judged again from
    disk, "ran" is only the ``ran`` flag.  ``cancelled``: the build ended
    cancelled and was of the graph's targets, so the steps still stale are
    those it did not run."""
    running: frozenset[str] = frozenset()
    outcomes: StepOutcomes = field(default_factory=StepOutcomes)
    live: bool = False
    cancelled: bool = False
    build: dict | None = None            # {id, state} of that build

    def state(self, sid: str, base: str) -> str:
        if sid in self.running:
            return BUILDING
        outcome = self.outcomes.of(sid)
        if outcome == O_RAN:
            return UP_TO_DATE if self.live else base
        if outcome is not None:
            return _OUTCOME_STATE[outcome]
        if self.cancelled and base == STALE:
            return NOT_RUN
        return base

    def ran(self, sid: str) -> bool:
        return self.outcomes.ran(sid)


NO_OVERLAY = Overlay()


def page_bounds(offset: int, limit: int) -> tuple[int, int]:
    return max(0, offset), max(1, min(limit, MAX_PAGE))


class GraphIndex:
    """See the module docstring; `graph` is catalog.graph's answer."""

    def __init__(self, graph: dict):
        self.targets: list[str] = list(graph["targets"])
        self.nodes: dict[str, dict] = {n["id"]: n for n in graph["nodes"]}
        self.cycles: list[list[str]] = [list(c) for c in graph.get("cycles", [])]
        self.deps: dict[str, list[str]] = {sid: [] for sid in self.nodes}
        self.dependants: dict[str, list[str]] = {sid: [] for sid in self.nodes}
        for a, b in graph["edges"]:
            if a in self.nodes and b in self.nodes:
                self.deps[b].append(a)
                self.dependants[a].append(b)
        self.producer = {path: sid for sid, n in self.nodes.items() for path in n["outputs"]}
        self.group_of, self.kinds = _fold(self.nodes.values())
        self.members: dict[str, list[str]] = {g: [] for g in self.kinds}
        for sid in sorted(self.nodes):
            self.members[self.group_of[sid]].append(sid)

    def __len__(self) -> int:
        return len(self.nodes)

    # -- one step, as a list shows it ---------------------------------------------
    def row(self, sid: str, overlay: Overlay) -> dict:
        n = self.nodes[sid]
        return {"id": sid, "rule": n["rule"], "group": self.group_of[sid],
                "outputs": list(n["outputs"]), "state": overlay.state(sid, n["state"]),
                "ran": overlay.ran(sid), "cycle": n.get("cycle")}

    def state(self, sid: str, overlay: Overlay) -> str:
        return overlay.state(sid, self.nodes[sid]["state"])

    # -- GET /v1/graph ------------------------------------------------------------------
    def groups(self, overlay: Overlay = NO_OVERLAY, offset: int = 0,
               limit: int = MAX_PAGE) -> dict:
        """Every group with its counts by state (a page of them), the
        totals, and the steps running now."""
        offset, limit = page_bounds(offset, limit)
        total: Counter = Counter()
        ran = 0
        rows = []
        for name, members in self.members.items():
            counts = Counter(self.state(sid, overlay) for sid in members)
            group_ran = sum(1 for sid in members if overlay.ran(sid))
            total.update(counts)
            ran += group_ran
            rows.append({"name": name, "kind": self.kinds[name], "steps": len(members),
                         "counts": dict(counts), "ran": group_ran,
                         "cycle": any(self.nodes[s].get("cycle") is not None for s in members)})
        running = sorted(s for s in overlay.running if s in self.nodes)
        return {"targets": list(self.targets), "steps": len(self.nodes), "counts": dict(total),
                "ran": ran, "cycles": len(self.cycles), "groups_total": len(rows),
                "offset": offset, "groups": rows[offset:offset + limit],
                "running": [self.row(s, overlay) for s in running[:RUNNING_LISTED]],
                "running_total": len(running), "build": overlay.build}

    # -- GET /v1/steps --------------------------------------------------------------------
    def steps(self, overlay: Overlay = NO_OVERLAY, *, group: str | None = None,
              state: str | None = None, ran: bool = False, q: str = "",
              offset: int = 0, limit: int = PAGE) -> dict:
        """A page of steps: those of `group`, in `state`, that ran in the
        latest build, or that `q` finds (best matches first); else those
        running first, then failed, cancelled, not run, stale, up to date,
        each by id."""
        offset, limit = page_bounds(offset, limit)
        q = q.strip()
        if group is not None and group not in self.members:
            raise NotFound(f"no group {group!r} in the graph (of {len(self.members)} groups)")
        ids: Iterable[str] = self.search(q) if q else (
            self.members[group] if group is not None else sorted(self.nodes))
        if q and group is not None:
            ids = (s for s in ids if self.group_of[s] == group)
        if state is not None:
            ids = (s for s in ids if self.state(s, overlay) == state)
        if ran:
            ids = (s for s in ids if overlay.ran(s))
        found = list(ids)
        if not q:           # what needs a look first: running, failed, ... up to date
            found.sort(key=lambda s: ATTENTION[self.state(s, overlay)])
        return {"total": len(found), "offset": offset, "limit": limit,
                "steps": [self.row(s, overlay) for s in found[offset:offset + limit]]}

    def search(self, q: str) -> list[str]:
        """Steps whose id or a path they make or read holds `q` (any case):
        an exact id or output first, then an exact input, then the rest."""
        needle = q.strip().lower()
        exact, reading, partial, partial_inputs = [], [], [], []
        for sid in sorted(self.nodes):
            n = self.nodes[sid]
            made = [sid.lower(), *(p.lower() for p in n["outputs"])]
            if needle in made:
                exact.append(sid)
            elif any(needle == p.lower() for p in n["inputs"]):
                reading.append(sid)
            elif any(needle in p for p in made):
                partial.append(sid)
            elif any(needle in p.lower() for p in n["inputs"]):
                partial_inputs.append(sid)
        return exact + reading + partial + partial_inputs

    # -- GET /v1/steps/{id} -------------------------------------------------------------
    def step(self, sid: str, overlay: Overlay = NO_OVERLAY, limit: int = MAX_PAGE) -> dict:
        """One step and its neighbours: inputs with the steps that make
        them, outputs, the steps that read them (each list at most `limit`)."""
        if sid not in self.nodes:
            raise NotFound(f"no step {sid!r} in the graph of "
                           f"{', '.join(self.targets) or 'the default targets'}")
        _, limit = page_bounds(0, limit)
        n = self.nodes[sid]
        inputs = [{"path": p, "step": self.producer.get(p),
                   "state": self.state(self.producer[p], overlay) if p in self.producer else None}
                  for p in n["inputs"][:limit]]
        after = sorted(set(self.dependants[sid]) - {sid})
        cycle = n.get("cycle")
        return {**self.row(sid, overlay), "kind": self.kinds[self.group_of[sid]],
                "inputs": inputs, "inputs_total": len(n["inputs"]),
                "dependants": [{"id": d, "state": self.state(d, overlay)} for d in after[:limit]],
                "dependants_total": len(after),
                "cycle_steps": [] if cycle is None else self.cycles[cycle][:limit]}


def _fold(nodes: Iterable[dict]) -> tuple[dict[str, str], dict[str, str]]:
    """Each step's group, and each group's kind, groups in the order their
    first step comes (the plan's: producers first)."""
    nodes = list(nodes)
    per_rule = Counter(n["rule"] for n in nodes)
    by_dir = len(per_rule) > MAX_RULE_GROUPS
    group_of: dict[str, str] = {}
    kinds: dict[str, str] = {}
    for n in nodes:
        if by_dir and per_rule[n["rule"]] == 1:
            first = n["outputs"][0] if n["outputs"] else n["id"]
            name, kind = (posixpath.dirname(first) or ".") + "/", DIR
        else:
            name, kind = n["rule"], RULE
        group_of[n["id"]] = name
        kinds.setdefault(name, kind)
    return group_of, kinds
