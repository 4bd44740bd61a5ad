"""The Desk chart: a pod's answers to its REST app.

::

    desk_open        api.query: answered from the build registry or the
                     project on disk; build events: into the registry;
                     chefs.status: the chefs it lists

The REST app is stateless (its gunicorn workers may be many, or elsewhere):
everything it shows comes from here, over the bus.  The Desk only routes;
:class:`computepods.api.registry.BuildRegistry` keeps the recent builds,
:mod:`computepods.api.catalog` reads the project and
:mod:`computepods.api.graphanswers` keeps its judged graph.  A query that
fails is answered with ``{"failure": {"error": <class>, "message": ...}}`` (the REST
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
from computepods.errors import ComputePodsError, UsageError
from computepods.api.graphanswers import GraphAnswers
from computepods.api.queryargs import arg as _arg, names as _names
from computepods.api.registry import REPLAY_PAGE, BuildRegistry
from computepods.charts.base import Chart
from computepods.coordinator.chefs import ChefDirectory
from computepods.federation import podview

log = logging.getLogger("computepods.desk")

CHEF_FORGET_S = 15.0       # seconds of silence after which a chef is not listed


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
            "artefact": self.artefact, "graph": self.graphs.graph,
            "steps": self.graphs.steps, "step": self.graphs.step, "log": self.log,
            "explain": self.explain, "pods": self.pods,
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
        return {"builds": self.registry.summaries()}

    def build(self, args: dict) -> dict:
        return self.registry.get(_arg(args, "id", str, "")).summary()

    def events(self, args: dict) -> dict:
        return self.registry.replay(_arg(args, "id", str, ""), _arg(args, "after", int, 0),
                                    _arg(args, "limit", int, REPLAY_PAGE))

    def check(self, args: dict) -> dict:
        return {"targets": catalog.check_targets(self.root, _names(args))}

    def artefacts(self, args: dict) -> dict:
        return {"artefacts": catalog.artefacts(self.root, _arg(args, "prefix", str, ""))}

    def artefact(self, args: dict) -> dict:
        return catalog.artefact(self.root, _arg(args, "path", str, ""))

    def log(self, args: dict) -> dict:
        step = _arg(args, "step", str, "")
        return catalog.step_log(self.root, step, self.registry.last_failure(step))

    def explain(self, args: dict) -> dict:
        return catalog.explain_target(self.root, _arg(args, "target", str, ""))

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
