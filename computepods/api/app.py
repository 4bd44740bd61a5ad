"""The Falcon app of the cpCtrl endpoint: routes, auth, and the one place
where computepods errors become HTTP errors.

Every error goes out as JSON ``{"title", "description"}``, whatever the
client accepts: 400 bad input, 401 (with ``WWW-Authenticate``) a missing or
wrong token, 403 a request for another host name or from another origin,
404 an unknown id or target, 409 a request the project's state refuses (a
build of what it cannot build, the profile of a build still running), 413 a body
over the limit, 415 a body that is not JSON, 503 a pod that does not
answer on the bus, or a server holding as many event streams as it may.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterable

import falcon

import computepods.errors as errors
from computepods.api.podbus import PodBus
from computepods.api import params, resources as r, timelines
from computepods.api.openapi import document
from computepods.api.sse import StreamSlots

log = logging.getLogger("computepods.api")

UI_DIR = Path(__file__).resolve().parent / "ui"
DEFAULT_MAX_STREAMS = 100       # open event streams per process (see StreamSlots)

# (class, status, title): the first that the error is an instance of wins.
STATUSES = [
    (errors.NotFound, falcon.HTTP_404, "Not found"),
    (errors.UnknownTarget, falcon.HTTP_404, "Unknown target"),
    (errors.BuildFinished, falcon.HTTP_409, "Conflict"),
    (errors.BuildRunning, falcon.HTTP_409, "Build running"),
    (errors.ProjectError, falcon.HTTP_409, "Project file error"),
    (errors.ProjectNotFound, falcon.HTTP_409, "No project"),
    (errors.BusError, falcon.HTTP_503, "Pod unavailable"),
    (errors.ComputePodsError, falcon.HTTP_400, "Bad request"),
]


def routes(bus: PodBus, max_streams: int = DEFAULT_MAX_STREAMS, bearer: bool = False
           ) -> list[tuple[str, object]]:
    return [
        ("/", r.Index(UI_DIR)),
        ("/healthz", r.Health(bus)),
        ("/v1/openapi.json", r.OpenApi(document(bearer))),
        ("/v1/builds", r.Builds(bus)),
        ("/v1/builds/{id}", r.Build(bus)),
        ("/v1/builds/{id}/events", r.BuildEvents(bus, StreamSlots(max_streams))),
        ("/v1/builds/{id}/profile", timelines.BuildProfile(bus)),
        ("/v1/builds/{id}/timeline", timelines.BuildTimeline(bus)),
        ("/v1/artefacts", r.Artefacts(bus)),
        ("/v1/artefacts/{path:path}", r.Artefact(bus)),
        ("/v1/graph", r.Graph(bus)),
        ("/v1/steps", r.Steps(bus)),
        ("/v1/steps/{id}", r.Step(bus)),
        ("/v1/steps/{id}/log", r.StepLog(bus)),
        ("/v1/steps/{id}/why", r.StepWhy(bus)),
        ("/v1/pods", r.Pods(bus)),
        ("/v1/explain/{target:path}", r.Explain(bus)),
    ]


def status_of(exc: errors.ComputePodsError, method: str) -> tuple[str, str]:
    """The HTTP status and title of a computepods error.  A well-formed build
    request the project cannot build (a target it has not, a broken project
    file) is refused by the project's state: 409."""
    if method == "POST" and not isinstance(exc, (errors.BusError, errors.UsageError)):
        return falcon.HTTP_409, "Cannot build"
    for cls, status, title in STATUSES:
        if isinstance(exc, cls):
            return status, title
    return falcon.HTTP_400, "Bad request"


def _pod_error(req, resp, exc: errors.ComputePodsError, params) -> None:
    status, title = status_of(exc, req.method)
    raise falcon.HTTPError(status, title=title, description=str(exc))


def _internal_error(req, resp, exc: Exception, params) -> None:
    log.exception("%s %s failed", req.method, req.path)
    raise falcon.HTTPInternalServerError(title="Internal error",
                                         description=f"{type(exc).__name__}: {exc}")


def _json_errors(req, resp, exc: falcon.HTTPError) -> None:
    """Every error as JSON with a description, Falcon's own (405, no route) too."""
    body = exc.to_dict()
    body.setdefault("description", describe(req, exc))
    resp.content_type = falcon.MEDIA_JSON
    resp.data = json.dumps(body).encode()


def describe(req, exc: falcon.HTTPError) -> str:
    """What a user can do about an error Falcon raised without saying."""
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return f"{req.method} is not allowed on {req.path}; it takes {allowed or 'nothing'}"
    if exc.status_code == 404 and req.path.startswith("/v1/steps/"):
        return (f"no route {req.path}: a step id's '/' must be sent as %2F, as in "
                "/v1/steps/compile:build%2Fa.o/log")
    if exc.status_code == 404:
        return f"no route {req.path}; the routes are in /v1/openapi.json"
    return str(exc.title)


def create_app(bus: PodBus, *, token: str | None = None, ui_dir: Path | None = None,
               hosts: Iterable[str] = r.LOCAL_HOSTS,
               max_streams: int = DEFAULT_MAX_STREAMS) -> falcon.App:
    """The app; `bus` is a :class:`PodBus` (or anything with its methods),
    `token` the bearer token mutating routes need (None: no auth), `hosts`
    the names a request's Host header may give (see :class:`SameOrigin`),
    `max_streams` the event streams it holds open at once."""
    app = falcon.App(middleware=[r.SameOrigin(hosts), r.EncodedSlashes(), r.TokenAuth(token),
                                 params.OneValueEach()])
    app.req_options.keep_blank_qs_values = True   # `?target=` is an empty target: a 400
    app.set_error_serializer(_json_errors)
    app.add_error_handler(Exception, _internal_error)
    app.add_error_handler(errors.ComputePodsError, _pod_error)
    for template, resource in routes(bus, max_streams, bearer=bool(token)):
        if ui_dir is not None and isinstance(resource, r.Index):
            resource = r.Index(ui_dir)
        app.add_route(template, resource)
    static = ui_dir or UI_DIR
    if static.is_dir():
        app.add_static_route("/", str(static))
    return app
