"""The Desk's answers about the graph: ``graph``, ``steps`` and ``step`` queries.

Each judges the graph through a :class:`~computepods.api.graphcache.GraphCache`
and lays the latest build over it (:class:`~computepods.api.graphindex.Overlay`):
the steps running now, and how each step fared in that build.  The shapes
are docs/architecture.md §7 "The graph"'s.
"""
from __future__ import annotations

from pathlib import Path

from computepods.api import catalog
from computepods.api.graphcache import GraphCache, Judged
from computepods.api.graphindex import MAX_PAGE, NO_OVERLAY, PAGE, STATES, Overlay
from computepods.api.queryargs import arg, names, optional
from computepods.api.registry import CANCELLED, RUNNING, BuildRegistry
from computepods.errors import PathEscapesWorkspace, UnknownTarget, UsageError

FORMATS = ("groups", "json", "dot")
REJUDGE_ON = ("plan", "done")          # build events after which the graph is judged again


class GraphAnswers:
    def __init__(self, root: Path, registry: BuildRegistry, cache: GraphCache | None = None):
        self.registry = registry
        self.cache = cache or GraphCache(root)

    def heard(self, events: list) -> None:
        """A build's events: a plan or an end makes the disk worth judging again."""
        if any(isinstance(ev, dict) and ev.get("t") in REJUDGE_ON for ev in events):
            self.cache.forget()

    def _judged(self, args: dict) -> tuple[Judged, Overlay]:
        latest = self.registry.latest()
        targets = names(args)
        try:
            judged = self.cache.get(targets, building=latest is not None
                                    and latest.state == RUNNING)
        except (UsageError, PathEscapesWorkspace) as exc:
            # a name the project cannot have as a target ('.', outside it) is no target of it
            raise UnknownTarget(str(exc)) from None
        return judged, self.overlay(judged)

    def overlay(self, judged: Judged) -> Overlay:
        latest = self.registry.latest()
        running = frozenset(self.registry.running_steps())
        if latest is None:
            return Overlay(running=running) if running else NO_OVERLAY
        return Overlay(
            running=running, outcomes=latest.outcomes,
            live=latest.finished is None or judged.made_s < latest.finished,
            cancelled=(latest.state == CANCELLED
                       and set(latest.targets) == set(judged.index.targets)),
            build={"id": latest.id, "state": latest.state})

    def deps_of(self, targets: list[str]) -> dict[str, list[str]]:
        """Each step's producers in the graph of ``targets`` (a build's, as
        planned: the default graph's when they are its targets)."""
        judged = self.cache.get([])
        if set(judged.index.targets) != set(targets):
            judged = self.cache.get(list(targets))
        return judged.index.deps

    # -- the queries ---------------------------------------------------------------
    def graph(self, args: dict) -> dict:
        fmt = arg(args, "format", str, "groups")
        if fmt not in FORMATS:
            raise UsageError(f"format {fmt!r}: use {', '.join(FORMATS)}")
        judged, overlay = self._judged(args)
        if fmt == "groups":
            return judged.index.groups(overlay, arg(args, "offset", int, 0),
                                       arg(args, "limit", int, MAX_PAGE))
        whole = whole_graph(judged, overlay)
        return {"dot": catalog.graph_dot(whole)} if fmt == "dot" else whole

    def steps(self, args: dict) -> dict:
        state = optional(args, "state", str)
        if state is not None and state not in STATES:
            raise UsageError(f"state {state!r}: use one of {', '.join(STATES)}")
        judged, overlay = self._judged(args)
        return judged.index.steps(
            overlay, group=optional(args, "group", str), state=state,
            ran=arg(args, "ran", bool, False), q=arg(args, "q", str, ""),
            offset=arg(args, "offset", int, 0), limit=arg(args, "limit", int, PAGE))

    def step(self, args: dict) -> dict:
        judged, overlay = self._judged(args)
        return judged.index.step(arg(args, "id", str, ""), overlay,
                                 arg(args, "limit", int, MAX_PAGE))


def whole_graph(judged: Judged, overlay: Overlay) -> dict:
    """Every node and edge (``format=json``, the shape before groups), with
    the build's states laid over the judged ones."""
    index = judged.index
    nodes = [{**n, "state": index.state(sid, overlay), "ran": overlay.ran(sid)}
             for sid, n in index.nodes.items()]
    edges = sorted([a, b] for b, deps in index.deps.items() for a in deps if a != b)
    return {"targets": list(index.targets), "nodes": nodes, "edges": edges,
            "cycles": [list(c) for c in index.cycles]}
