"""The REST routes (docs/architecture.md §7): each turns a request into bus questions.

Resources hold no state but the :class:`~computepods.api.podbus.PodBus`; what
they answer comes from the pod (its Desk chart, its MajorDomo).  Errors are
raised as :mod:`computepods.errors` classes and become HTTP statuses in one
place, :mod:`computepods.api.app`.

Path fields that may hold a ``/`` (a step id, an artefact path, a target)
come percent-encoded or, where the route allows, as they are; see
:class:`EncodedSlashes`.
"""
from __future__ import annotations

import hmac
import json
from pathlib import Path
from typing import Iterable
from urllib.parse import unquote, urlsplit

import falcon

from computepods.errors import BuildFinished, UsageError
from computepods.api.params import flag, page as _paged
from computepods.api.podbus import HEALTH_TIMEOUT_S, PodBus
from computepods.api.sse import EventStream, StreamSlots

MAX_BODY_BYTES = 64 * 1024      # a build request is a few hundred bytes
MAX_NAME_CHARS = 4096           # a target, path or step id
FINISHED = ("done", "failed", "cancelled")
SLASH = "%2F"                   # how an encoded slash survives routing in a path field
MUTATING = frozenset({"POST", "DELETE", "PUT", "PATCH"})
WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")   # what a Host header may name by default
GRAPH_FORMATS = ("groups", "json", "dot")
STEPS_PAGE = 50                 # steps in a page of GET /v1/steps unless asked
MAX_PAGE = 1000                 # the most steps, groups or neighbours one answer holds


# -- request helpers ---------------------------------------------------------------

def name(value, what: str, allow_empty: bool = False) -> str:
    """A target, path or step id as the pod can take it; else a 400."""
    if not isinstance(value, str):
        raise UsageError(f"{what} must be a string, not {type(value).__name__}")
    if not value and not allow_empty:
        raise UsageError(f"{what} must not be empty")
    if len(value) > MAX_NAME_CHARS or "\0" in value:
        raise UsageError(f"{what} is not a usable name (too long, or holds a NUL)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{what} is not valid Unicode text") from None
    return value


def path_field(value: str, what: str) -> str:
    return name(value.replace(SLASH, "/"), what)


def read_json(req: falcon.Request) -> dict:
    """The body as a JSON object ({} when there is none); 413 over the limit.

    A body of unknown length (``Transfer-Encoding: chunked``) is read from
    the server's stream when the server ends it (``wsgi.input_terminated``,
    as gunicorn does); ``bounded_stream`` would read nothing of it."""
    if req.content_length is not None and req.content_length > MAX_BODY_BYTES:
        raise falcon.HTTPContentTooLarge(
            title="Body too large",
            description=f"the body is {req.content_length} bytes; the limit is {MAX_BODY_BYTES}")
    try:
        data = _read_body(req, MAX_BODY_BYTES + 1)
    except OSError as exc:            # the client stalled or went away mid-body
        raise falcon.HTTPRequestTimeout(
            title="Body not received", description=f"reading the body failed: {exc}") from None
    except Exception as exc:          # the server's own error for broken chunked framing
        raise falcon.HTTPBadRequest(
            title="Bad body framing",
            description=f"the body could not be read: {type(exc).__name__}: {exc}") from None
    if len(data) > MAX_BODY_BYTES:
        raise falcon.HTTPContentTooLarge(
            title="Body too large", description=f"the body is over {MAX_BODY_BYTES} bytes")
    if not data.strip():
        return {}
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise UsageError(f"the body must be a JSON object, not {type(body).__name__}")
    return body


def _read_body(req: falcon.Request, limit: int) -> bytes:
    """At most `limit` bytes of the body, whatever its framing."""
    if req.content_length is not None or not req.get_header("Transfer-Encoding"):
        return req.bounded_stream.read(limit)
    if not req.env.get("wsgi.input_terminated"):
        raise falcon.HTTPLengthRequired(
            title="Length required",
            description="this server cannot read a body of unknown length; send Content-Length")
    parts, size = [], 0
    while size < limit:
        part = req.stream.read(limit - size)
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


# -- middleware ----------------------------------------------------------------------

class EncodedSlashes:
    """Keep an encoded slash (``%2F``) inside its path segment.

    A WSGI server decodes the path before the app sees it, so
    ``/v1/steps/compile:build%2Fa.o/log`` would route as four segments.
    From the raw URI (gunicorn's RAW_URI) each segment is decoded on its own
    and a slash inside it stays ``%2F``, which :func:`path_field` turns back.
    """

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        raw = req.env.get("RAW_URI") or req.env.get("REQUEST_URI") or ""
        path = raw.split("?", 1)[0]
        if "%2f" in path.lower() and path.startswith("/"):
            req.path = "/".join(unquote(seg).replace("/", SLASH) for seg in path.split("/"))


class SameOrigin:
    """Only this server's own page, and clients that are not browsers, may
    talk to it (docs/architecture.md §7); without it any web page the user
    opens could start builds and, through DNS rebinding, read the answers.

    - ``Host`` must name this server (``hosts``: the bound address,
      localhost, those given with ``--http-host``): a rebinding page reaches
      us under its own name.
    - ``Origin``, when a browser sends it, must be this very server, on
      every route, reads included.
    - A body must be ``application/json``: a form or a ``text/plain`` fetch
      is a request a browser sends cross-origin without asking first.
    """

    def __init__(self, hosts: Iterable[str]):
        self.hosts = frozenset(_bare_host(h) for h in hosts)

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        host = req.get_header("Host")
        if host is not None and _bare_host(req.host) not in self.hosts:
            raise falcon.HTTPForbidden(
                title="Unknown host",
                description=(f"this server does not answer to the name {req.host!r}; it answers"
                             f" to {', '.join(sorted(self.hosts))} (add names with"
                             " `cpod up --http-host NAME`)"))
        origin = req.get_header("Origin")
        if origin is not None and not _same_origin(origin, host):
            raise falcon.HTTPForbidden(
                title="Cross-origin request",
                description=f"requests from pages of {origin!r} are refused; open this "
                            "server's own page instead")
        if req.method in WITH_BODY and (req.content_type or req.content_length
                                        or req.get_header("Transfer-Encoding")):
            media = (req.content_type or "").split(";", 1)[0].strip().lower()
            if media != falcon.MEDIA_JSON:
                raise falcon.HTTPUnsupportedMediaType(
                    title="JSON required",
                    description=f"a request body must be {falcon.MEDIA_JSON}, not "
                                f"{req.content_type or 'untyped'}")


def _bare_host(host: str) -> str:
    return host.strip().strip("[]").lower()


def _same_origin(origin: str, host: str | None) -> bool:
    """True if ``origin`` is the server that ``host`` (a Host header) names."""
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return False
    return (host is not None and parts.scheme in ("http", "https")
            and parts.netloc.lower() == host.strip().lower())


class TokenAuth:
    """With a token configured, a mutating request needs ``Authorization: Bearer <token>``."""

    def __init__(self, token: str | None):
        self.token = token or None

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self.token is None or req.method not in MUTATING:
            return
        given = req.get_header("Authorization") or ""
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                value.strip().encode(), self.token.encode()):
            raise falcon.HTTPUnauthorized(
                title="Token required",
                description=("this server needs 'Authorization: Bearer <token>' (CP_API_TOKEN)"
                             " for changes" if not given else "the token was refused"),
                challenges=['Bearer realm="computepods"'])


# -- resources -----------------------------------------------------------------------

class Resource:
    def __init__(self, bus: PodBus):
        self.bus = bus


class Health(Resource):
    def on_get(self, req, resp):
        pod = self.bus.query("health", timeout=HEALTH_TIMEOUT_S, attempts=1)
        resp.media = {"ok": True, "pod": pod.get("pod"), "nats": self.bus.url}


class Builds(Resource):
    def on_get(self, req, resp):
        limit = req.get_param_as_int("limit", min_value=1, max_value=1000, default=100)
        before = req.get_param("before")
        args = {"limit": limit, **({"before": name(before, "before")} if before is not None
                                   else {})}
        resp.media = self.bus.query("builds", **args)

    def on_post(self, req, resp):
        body = read_json(req)
        unknown = sorted(set(body) - {"targets", "keep_going"})
        if unknown:
            raise UsageError(f"unknown field(s) in the build request: {', '.join(unknown)}")
        targets = body.get("targets", [])
        if not isinstance(targets, list):
            raise UsageError("'targets' must be a list of targets")
        targets = [name(t, "a target") for t in targets]
        keep_going = body.get("keep_going", False)
        if not isinstance(keep_going, bool):
            raise UsageError("'keep_going' must be true or false")
        self.bus.query("check", targets=targets)     # an unknown target is a 400 now
        reply = self.bus.request_build(targets, keep_going)
        build_id = reply["build"]
        resp.status = falcon.HTTP_202
        resp.location = f"/v1/builds/{build_id}"
        resp.media = {"id": build_id, "joined": bool(reply.get("joined")),
                      "url": f"/v1/builds/{build_id}"}


class Build(Resource):
    def on_get(self, req, resp, id):
        resp.media = self.bus.query("build", id=name(id, "build id"))

    def on_delete(self, req, resp, id):
        summary = self.bus.query("build", id=name(id, "build id"))
        if summary["state"] in FINISHED:
            raise BuildFinished(f"build {id} has already finished ({summary['state']})")
        state = self.bus.cancel(id).get("state")
        if state == "finishing":
            raise BuildFinished(f"build {id} is writing its last records: too late to cancel")
        if state not in ("cancelling", "cancelled"):
            raise BuildFinished(f"build {id} is no longer running")
        resp.status = falcon.HTTP_202
        resp.media = {"id": id, "state": state}


class BuildEvents(Resource):
    def __init__(self, bus: PodBus, slots: StreamSlots):
        super().__init__(bus)
        self.slots = slots

    def on_get(self, req, resp, id):
        id = name(id, "build id")
        last = req.get_header("Last-Event-ID") or ""
        after = int(last) + 1 if last.isdigit() and len(last) < 12 else 0
        if not self.slots.take():
            raise falcon.HTTPServiceUnavailable(
                title="Too many event streams",
                description=f"this server process already holds {self.slots.limit} open event "
                            "streams; close one, or poll GET /v1/builds/{id} instead",
                retry_after=5)
        try:
            follower = self.bus.follow(id)
            try:
                page = self.bus.query("events", id=id, after=after)
            except BaseException:
                follower.close()
                raise
        except BaseException:
            self.slots.give_back()
            raise
        if after and page["complete"] and not page["events"] and page["state"] in FINISHED:
            follower.close()            # a reconnect after the end: tell the browser to stop
            self.slots.give_back()
            resp.status = falcon.HTTP_204
            return
        resp.content_type = "text/event-stream"
        resp.set_header("Cache-Control", "no-cache")
        resp.set_header("X-Accel-Buffering", "no")
        resp.stream = EventStream(self.bus, follower, page, slots=self.slots,
                                  batch=flag(req, "batch"))


class Artefacts(Resource):
    def on_get(self, req, resp):
        prefix = name(req.get_param("prefix") or "", "prefix", allow_empty=True)
        resp.media = self.bus.query("artefacts", prefix=prefix)


class Artefact(Resource):
    def on_get(self, req, resp, path):
        resp.media = self.bus.query("artefact", path=path_field(path, "artefact path"))


def _targets(req: falcon.Request) -> list[str]:
    return [name(t, "target") for t in req.get_param_as_list("target") or []]


class Graph(Resource):
    """The groups with their counts (default), the whole graph (json), or Graphviz (dot)."""
    def on_get(self, req, resp):
        fmt = req.get_param("format", default="groups")      # "format=" is refused
        if fmt not in GRAPH_FORMATS:
            raise UsageError(f"format {fmt!r}: use {', '.join(GRAPH_FORMATS)}")
        page = _paged(req, MAX_PAGE, MAX_PAGE)          # checked whatever the format
        extra = page if fmt == "groups" else {}
        reply = self.bus.query("graph", targets=_targets(req), format=fmt, **extra)
        if fmt == "dot":
            resp.content_type, resp.text = "text/vnd.graphviz", reply["dot"]
        else:
            resp.media = reply


class Steps(Resource):
    """A page of the graph's steps: of a group, in a state, ran, or searched."""

    def on_get(self, req, resp):
        args = {"targets": _targets(req), **_paged(req, STEPS_PAGE, MAX_PAGE),
                "ran": flag(req, "ran")}
        for key in ("group", "state", "q"):
            if (value := req.get_param(key)) is not None:
                args[key] = name(value, key, allow_empty=key == "q")
        resp.media = self.bus.query("steps", **args)


class Step(Resource):
    """One step and its neighbours, for navigation."""

    def on_get(self, req, resp, id):
        resp.media = self.bus.query("step", id=path_field(id, "step id"), targets=_targets(req),
                                    limit=_paged(req, MAX_PAGE, MAX_PAGE)["limit"])


class StepWhy(Resource):
    """Why a step would run (its explain), and the artefacts it made."""

    def on_get(self, req, resp, id):
        resp.media = self.bus.query("why", id=path_field(id, "step id"), targets=_targets(req))


class StepLog(Resource):
    def on_get(self, req, resp, id):
        resp.media = self.bus.query("log", step=path_field(id, "step id"))


class Pods(Resource):
    def on_get(self, req, resp):
        reply = self.bus.query("pods")
        for pod in reply["pods"]:
            if pod.get("ours", True):        # the others' REST apps are not ours to name
                pod["http"] = pod.get("http") or req.prefix
        resp.media = reply


class Explain(Resource):
    def on_get(self, req, resp, target):
        resp.media = self.bus.query("explain", target=path_field(target, "target"))


class OpenApi:
    def __init__(self, document: dict):
        self.body = json.dumps(document, indent=1).encode()

    def on_get(self, req, resp):
        resp.content_type, resp.data = falcon.MEDIA_JSON, self.body


class Index:
    """The MajorDomoUI page (its other files are a static route)."""

    def __init__(self, ui_dir: Path):
        self.page = ui_dir / "index.html"

    def on_get(self, req, resp):
        if not self.page.is_file():
            raise falcon.HTTPNotFound(title="No page", description=f"{self.page} is missing")
        resp.content_type = falcon.MEDIA_HTML
        resp.data = self.page.read_bytes()
