"""The Desk chart: a pod's answers to its REST app.

::

    desk_open        api.query: answered from the build registry or the
                     project on disk; build events: into the registry;
                     chefs.status: the chefs it lists

The REST app is stateless (its gunicorn workers may be many, or elsewhere):
everything it shows comes from here, over the bus.  The Desk only routes;
:class:`computepods.api.registry.BuildRegistry` keeps the recent builds as
they run, the Store's history (:mod:`computepods.state.history`, read-only
here) every build since the history began, :mod:`computepods.api.catalog`
reads the project and :mod:`computepods.api.graphanswers` keeps its judged
graph.  A query that fails is
answered with ``{"failure": {"error": <class>, "message": ...}}`` (the REST
app maps the class to an HTTP status), never with a crash; an answer comes
as ``{"answer": ...}``.
"""
from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Callable

from miros import return_status, spy_on

from computepods.api import catalog
from computepods.bus import messages as m
from computepods.bus import chefwire
from computepods.errors import (BuildRunning, ComputePodsError, NotFound, PathEscapesWorkspace,
                                UnknownTarget, UsageError)
from computepods.api.graphanswers import GraphAnswers
from computepods.api.queryargs import arg as _arg, names as _names
from computepods.api.registry import FINISHED, REPLAY_PAGE, BuildRegistry, entry_summary
from computepods.charts.base import Chart
from computepods.coordinator.chefs import ChefDirectory
from computepods.coordinator.timeline import timeline_answer
from computepods.federation import podview
from computepods.paths import STATE_DB
from computepods.state.db import StateDB
from computepods.state.history import MAX_PROFILES, BuildEntry

log = logging.getLogger("computepods.desk")

CHEF_FORGET_S = 15.0       # seconds of silence after which a chef is not listed
BUILDS_PAGE = 100          # builds in one answer unless asked for another number


@spy_on
def desk_open(desk: "Desk", e):
    sig = e.signal_name
    if sig == m.API_QUERY:
        desk.answer(e.payload)
        return return_status.HANDLED
    if sig == m.BUILD_EVENTS:
        desk.heard_events(e.payload.data)
        return return_status.HANDLED
    if sig == m.CHEF_STATUS:
        desk.heard_chef(e.payload.data)
        return return_status.HANDLED
    desk.temp.fun = desk.top
    return return_status.SUPER


def _as_target(fn: Callable[[], dict]) -> dict:
    """A name the project cannot have as a target (outside it, its root, too
    long for a file name) is no target of it: UnknownTarget (a 404)."""
    try:
        return fn()
    except (UsageError, PathEscapesWorkspace) as exc:
        raise UnknownTarget(str(exc)) from None


class Desk(Chart):
    initial_state = desk_open

    def __init__(self, bridge, root: Path, *, pod: str | None = None, http: str = "",
                 clock=None, census: Callable[[], dict] | None = None, **kw):
        """`census`: the pods of the federation (``cpod up`` gives its own,
        :mod:`computepods.federation.podview`); without one, this pod alone
        with the chefs the Desk hears."""
        super().__init__("desk", **kw)
        self.bridge = bridge
        self.root = Path(root)
        self.pod = pod or f"{socket.gethostname()}:{os.getpid()}"
        self.http = http                   # the REST app's URL, once it serves
        self.census = census
        self.registry = BuildRegistry()
        self.graphs = GraphAnswers(self.root, self.registry)
        self.chefs = ChefDirectory(clock, min_lease_s=CHEF_FORGET_S)
        self.answers = {
            "health": self.health, "builds": self.builds, "build": self.build,
            "events": self.events, "check": self.check, "artefacts": self.artefacts,
            "artefact": self.artefact, "graph": self.graph,
            "steps": self.graphs.steps, "step": self.graphs.step, "log": self.log,
            "explain": self.explain, "pods": self.pods, "profile": self.profile,
            "timeline": self.timeline, "why": self.why,
        }

    def start(self) -> "Desk":
        super().start()
        self.bridge.route(m.BUILD_EVENTS, self)
        self.bridge.route(m.CHEF_STATUS, self)
        self.bridge.route(m.API_QUERY, self)
        self.bridge.publish(m.CHEFS_QUERY, {})     # the chefs say who they are
        return self

    # -- what it hears -----------------------------------------------------------
    def heard_events(self, data: dict) -> None:
        seq = data.get("seq")
        self.registry.take(data["build"], seq if isinstance(seq, int) else None, data["events"])
        self.graphs.heard(data["events"])

    def heard_chef(self, data: dict) -> None:
        self.chefs.heard(chefwire.ChefStatus.from_dict(data))

    # -- what it is asked ----------------------------------------------------------
    def answer(self, msg: m.Message) -> None:
        what, args = msg.data["what"], msg.data.get("args") or {}
        try:
            fn = self.answers.get(what)
            if fn is None:
                raise UsageError(f"unknown query {what!r}; known: {', '.join(self.answers)}")
            reply = {"answer": fn(args)}     # never "error" at the top: the bridge's own
        except ComputePodsError as exc:
            reply = {"failure": {"error": type(exc).__name__, "message": str(exc)}}
        except Exception as exc:      # a bug must not stop the Desk: say it, go on
            log.exception("api.query %r failed", what)
            reply = {"failure": {"error": "InternalError",
                                 "message": f"{what}: {type(exc).__name__}: {exc}"}}
        self.bridge.respond(msg, reply)

    def health(self, args: dict) -> dict:
        return {"ok": True, "pod": self.pod, "root": str(self.root), "pid": os.getpid()}

    def builds(self, args: dict) -> dict:
        """A page of builds, newest first, from the history; a build this pod
        knows shows as it is now, and the first page starts with those queued
        or running that the history does not have yet.  ``next``: the id to
        ask ``before`` for the page after."""
        limit, before = _arg(args, "limit", int, BUILDS_PAGE), _arg(args, "before", str, "")
        if not 1 <= limit <= 1000:
            raise UsageError(f"limit {limit}: give 1 to 1000 builds a page")
        with StateDB(self.root / STATE_DB, readonly=True) as db:
            if before and db.build(before) is None:
                raise NotFound(f"no build {before!r} in this project's history")
            entries, after = db.builds(limit, before or None)
        known = {e.id for e in entries}
        live = [] if before else [v.summary() for v in reversed(self.registry.builds.values())
                                  if v.id not in known and v.state not in FINISHED]
        shown = [self.registry.builds[e.id].summary() if e.id in self.registry.builds
                 else entry_summary(e) for e in entries]
        return {"builds": live + shown, "next": after}

    def build(self, args: dict) -> dict:
        build_id = _arg(args, "id", str, "")
        if build_id in self.registry.builds:
            return self.registry.get(build_id).summary()
        with StateDB(self.root / STATE_DB, readonly=True) as db:
            entry = db.build(build_id)
        if entry is None:
            self.registry.get(build_id)          # its NotFound
        return entry_summary(entry)

    def profile(self, args: dict) -> dict:
        """A finished build's entry and its timeline (the REST app makes the
        trace-event JSON of them)."""
        build_id = _arg(args, "id", str, "")
        view = self.registry.builds.get(build_id)
        with StateDB(self.root / STATE_DB, readonly=True) as db:
            entry = db.build(build_id, with_profile=True)
        if (view is not None and view.state not in FINISHED) or (
                entry is not None and not entry.finished):
            raise BuildRunning(f"build {build_id} is {view.state if view else entry.state}: "
                               "its profile is kept when it ends")
        if entry is None:
            raise NotFound(f"no build {build_id!r} in this project's history")
        if entry.profile is None:
            raise NotFound(f"build {build_id} ({entry.state}) has no timeline kept: the "
                           f"history keeps those of its last {MAX_PROFILES} builds")
        return {"build": entry.to_dict(), "profile": entry.profile}

    def timeline(self, args: dict) -> dict:
        """A finished build's timeline, its lanes and its critical path
        through the graph of its targets as it is judged now (a step that
        left the graph since reads nothing)."""
        kept = self.profile(args)
        build = kept["build"]
        try:
            deps = self.graphs.deps_of(build["targets"])
        except ComputePodsError:            # the project file broke since: no edges
            deps = {}
        return {"build": entry_summary(BuildEntry.from_dict(build)),
                **timeline_answer(kept["profile"], deps)}

    def events(self, args: dict) -> dict:
        return self.registry.replay(_arg(args, "id", str, ""), _arg(args, "after", int, 0),
                                    _arg(args, "limit", int, REPLAY_PAGE))

    def check(self, args: dict) -> dict:
        names = _names(args)
        return _as_target(lambda: {"targets": catalog.check_targets(self.root, names)})

    def artefacts(self, args: dict) -> dict:
        return {"artefacts": catalog.artefacts(self.root, _arg(args, "prefix", str, ""))}

    def artefact(self, args: dict) -> dict:
        return catalog.artefact(self.root, _arg(args, "path", str, ""))

    def graph(self, args: dict) -> dict:
        """A name the project cannot have as a target is a 404 (:func:`_as_target`)."""
        return _as_target(lambda: self.graphs.graph(args))

    def log(self, args: dict) -> dict:
        step = _arg(args, "step", str, "")
        return catalog.step_log(self.root, step, self.registry.last_failure(step))

    def explain(self, args: dict) -> dict:
        target = _arg(args, "target", str, "")
        return _as_target(lambda: catalog.explain_target(self.root, target))

    def why(self, args: dict) -> dict:
        step = _arg(args, "id", str, "")
        return _as_target(lambda: catalog.step_why(self.root, step, _names(args)))

    def pods(self, args: dict) -> dict:
        """Every pod of the federation (ours first, with its process, bus and
        REST app); the others' own fields null."""
        view = self.census() if self.census is not None else {
            "federated": False,
            "pods": [podview.own_row(self.pod, socket.gethostname(), self.chefs.live()).to_dict()]}
        ours = {"pid": os.getpid(), "nats": self.bridge.url, "root": str(self.root),
                "http": self.http or None}
        pods = [{**pod, **(ours if pod.get("ours") else dict.fromkeys(ours))}
                for pod in view["pods"]]
        return {"federated": bool(view.get("federated")), "pods": pods}
