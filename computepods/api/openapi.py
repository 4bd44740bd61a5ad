"""The OpenAPI 3.1 document of the REST API, served at ``/v1/openapi.json``.

Written out by hand, route by route; a unit test compares its paths and
methods with Falcon's own route table (``falcon.inspect``), so a route added
to the app without a line here (or the other way round) fails the suite, and
schemathesis (``tests/integration/test_rest_schema.py``, every check) finds
no request on which it and the server disagree.  Names (targets, step ids,
paths, prefixes) are what :func:`computepods.api.resources.name` takes: 1 to
4096 characters, no NUL.  Bearer security is declared only for a server
with a token (``document(bearer=True)``): without one no request needs it.
"""
from __future__ import annotations

from functools import lru_cache

from computepods.version import __version__
from computepods.api import graphdoc


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict:
    return _json(_ref("Error"), description)


NAME = graphdoc.NAME              # a name in a request: 1 to 4096 characters, no NUL
# A path inside the project, as api/catalog.py: check_path takes it: not
# absolute, no ".." component, not the project itself (".", "./").
PROJECT_PATH = {**NAME, "pattern": "^(?!/)(?!(.*/)?\\.\\.(/|$))(?!(\\./?)+$)[^\\u0000]*$"}


def _path_param(name: str, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": NAME}


NOT_FOUND = {"404": _error("no such build, step, artefact or target")}
BAD = {"400": _error("bad input")}
DOWN = {"503": _error("the pod does not answer on the bus")}
AUTH = {"401": _error("a token is configured and the request lacks it")}
STRING_LIST = {"type": "array", "items": {"type": "string"}}
NAME_LIST = {"type": "array", "items": NAME}
COUNT = {"type": "integer", "minimum": 0}
NULLABLE_STR = {"type": ["string", "null"]}
NULLABLE_INT = {"type": ["integer", "null"]}

SCHEMAS = {
    "Error": {"type": "object", "required": ["title"],
              "properties": {"title": {"type": "string"}, "description": {"type": "string"}}},
    "BuildRequest": {
        "type": "object", "additionalProperties": False,
        "properties": {"targets": {**NAME_LIST, "description": "none: project.default"},
                       "keep_going": {"type": "boolean", "default": False}}},
    "BuildAccepted": {"type": "object", "required": ["id", "joined", "url"],
                      "properties": {"id": {"type": "string"}, "joined": {"type": "boolean"},
                                     "url": {"type": "string"}}},
    "Build": {
        "type": "object",
        "required": ["id", "targets", "started_by", "state", "ok", "code", "steps_total",
                     "steps_done", "running", "failed", "counts", "started", "finished",
                     "duration_s", "error"],
        "properties": {
            "id": {"type": "string"}, "targets": STRING_LIST,
            "started_by": {"enum": ["cli", "rest", "watcher", "cron", "bus"]},
            "state": {"enum": ["queued", "running", "done", "failed", "cancelled",
                               "interrupted"],
                      "description": "interrupted: its pod stopped while it ran"},
            "ok": {"type": ["boolean", "null"]}, "code": NULLABLE_INT,
            "steps_total": {"type": "integer"}, "steps_done": {"type": "integer"},
            "running": STRING_LIST,
            "failed": {**STRING_LIST, "description": "the steps that failed (100 at most)"},
            "counts": {"type": "object", "required": ["ran", "up_to_date", "failed", "not_run",
                                                      "cancelled"],
                       "description": "not_run: blocked by a failure or left by a stop; "
                                      "cancelled: stopped by a cancel as they ran",
                       "properties": {k: COUNT for k in ("ran", "up_to_date", "failed",
                                                         "not_run", "cancelled")}},
            "started": {"type": "string", "format": "date-time"},
            "finished": {"type": ["string", "null"], "format": "date-time"},
            "duration_s": {"type": ["number", "null"]}, "error": NULLABLE_STR}},
    "Builds": {"type": "object", "required": ["builds", "next"], "properties": {
        "builds": {"type": "array", "items": _ref("Build")},
        "next": {**NULLABLE_STR, "description": "give it as ?before= for the next page; "
                                                "null: this is the last"}}},
    "Trace": {"type": "object", "required": ["traceEvents"],
              "description": "Chrome trace-event JSON: a process per chef, a thread per "
                             "slot, a complete event (ph X) per run of a step, pass marks",
              "properties": {"traceEvents": {"type": "array", "items": {
                  "type": "object", "required": ["ph", "name", "pid", "tid"]}},
                  "displayTimeUnit": {"type": "string"}, "otherData": {"type": "object"}}},
    "Timeline": {
        "type": "object",
        "required": ["build", "duration_s", "lanes", "columns", "runs", "marks", "critical_path"],
        "properties": {
            "build": _ref("Build"), "duration_s": {"type": "number"},
            "lanes": {"type": "array", "description": "a chef's slot each, by chef and slot",
                      "items": {"type": "object", "required": ["chef", "slot"],
                                "properties": {"chef": {"type": "string"},
                                               "slot": {"type": "integer"}}}},
            "columns": {**STRING_LIST, "description": "what each item of a run holds: "
                        "step, chef, slot, start_s, end_s, outcome, cycle, pass"},
            "runs": {"type": "array", "description": "one run of a step each, seconds from "
                     "the build's start; cycle and pass: a cyclic group's run, else null",
                     "items": {"type": "array", "minItems": 8, "maxItems": 8}},
            "marks": {"type": "array", "items": {
                "type": "object", "required": ["at_s", "kind", "text"],
                "properties": {"at_s": {"type": "number"},
                               "kind": {"enum": ["pass", "fixpoint", "cycle_failed", "cancel",
                                                 "mark"]},
                               "text": {"type": "string"}}}},
            "critical_path": {
                "type": "object", "required": ["runs", "steps", "duration_s"],
                "description": "the longest chain of dependent runs by duration",
                "properties": {"runs": {"type": "array", "items": {"type": "integer"},
                                        "description": "indexes into runs, first first"},
                               "steps": STRING_LIST, "duration_s": {"type": "number"}}}}},
    "BuildEvent": {"type": "object", "required": ["t"],
                   "description": "one build event (docs/architecture.md §5): t is its kind",
                   "properties": {"t": {"type": "string"},
                                  "progress": {"type": "array", "items": {"type": "integer"}}}},
    "Cancel": {"type": "object", "required": ["id", "state"],
               "properties": {"id": {"type": "string"},
                              "state": {"enum": ["cancelling", "cancelled"]}}},
    "Artefact": {"type": "object", "required": ["path", "sha256", "size", "mtime_ns", "step"],
                 "properties": {"path": {"type": "string"}, "sha256": {"type": "string"},
                                "size": {"type": "integer"}, "mtime_ns": {"type": "integer"},
                                "step": NULLABLE_STR}},
    "StepWhy": {
        "type": "object",
        "required": ["step", "now", "changed", "changed_total", "command", "last_run",
                     "artefacts"],
        "properties": {
            "step": {"type": "string"},
            "now": {"type": "string", "description": "up to date, or why it would or may run "
                                                     "(cpod explain's first cause)"},
            "changed": {"type": "array", "description": "inputs whose hash differs from its "
                        "last run's (20 at most); a null hash: missing", "items": {
                "type": "object", "required": ["path", "how", "old", "new"],
                "properties": {"path": {"type": "string"},
                               "how": {"enum": ["changed", "new", "dropped"]},
                               "old": NULLABLE_STR, "new": NULLABLE_STR}}},
            "changed_total": {"type": "integer"}, "command": {"type": "string"},
            "last_run": {"type": ["object", "null"], "description": "null: it never ran",
                         "required": ["status", "finished_ns", "duration_s", "reason", "lines"],
                         "properties": {"status": {"type": "string"},
                                        "finished_ns": {"type": "integer"},
                                        "duration_s": {"type": "number"},
                                        "reason": {"type": "string",
                                                   "description": "why it ran then"},
                                        "lines": STRING_LIST}},
            "artefacts": {"type": "array", "description": "its outputs as recorded (the "
                          "last fields null: no record of the file)", "items": {
                "type": "object", "required": ["path", "sha256", "size", "mtime_ns", "step"],
                "properties": {"path": {"type": "string"}, "sha256": NULLABLE_STR,
                               "size": NULLABLE_INT, "mtime_ns": NULLABLE_INT,
                               "step": NULLABLE_STR}}}}},
    "StepLog": {"type": "object",
                "required": ["step", "status", "exit_code", "reason", "command", "stdout", "stderr"],
                "properties": {"step": {"type": "string"}, "status": {"type": "string"},
                               "exit_code": NULLABLE_INT, "reason": {"type": "string"},
                               "command": {"type": "string"}, "stdout": {"type": "string"},
                               "stderr": {"type": "string"}}},
    "Pods": {"type": "object", "required": ["federated", "pods"], "properties": {
        "federated": {"type": "boolean", "description": "false: this pod alone"},
        "pods": {"type": "array", "description": "ours first, then the pods heard, then "
                                                 "silent pods that hold our files", "items": {
            "type": "object",
            "required": ["pod", "role", "host", "ours", "chefs", "chef_names", "slots", "load",
                         "tools", "moved", "held", "trusted", "pid", "nats", "root", "http"],
            "properties": {
                "pod": {"type": "string"},
                "role": {"enum": ["majordomo", "chef", "gone"]},
                "host": {"type": "string"}, "ours": {"type": "boolean"},
                "chefs": {"type": "array", "description": "those our MajorDomo knows",
                          "items": {
                    "type": "object",
                    "required": ["chef", "pod", "slots", "running", "queued", "outstanding"],
                    "properties": {"chef": {"type": "string"}, "pod": {"type": "string"},
                                   "slots": {"type": "integer"}, "running": {"type": "integer"},
                                   "queued": {"type": "integer"},
                                   "outstanding": {"type": "integer",
                                                   "description": "steps of ours it holds"}}}},
                "chef_names": STRING_LIST, "slots": {"type": "integer"},
                "load": {"type": "object", "required": ["running", "queued"],
                         "properties": {"running": {"type": "integer"},
                                        "queued": {"type": "integer"}}},
                "tools": STRING_LIST,
                "moved": {"type": "object", "required": ["in", "out"],
                          "description": "bytes its puller pulled and its store served",
                          "properties": {"in": {"type": "integer"}, "out": {"type": "integer"}}},
                "held": {"type": "object", "required": ["files", "bytes"],
                         "description": "what our ownership map says its store holds",
                         "properties": {"files": {"type": "integer"},
                                        "bytes": {"type": "integer"}}},
                "trusted": {"type": "boolean",
                            "description": "false: one of its hellos was refused; no steps"},
                "pid": NULLABLE_INT, "nats": NULLABLE_STR, "root": NULLABLE_STR,
                "http": NULLABLE_STR}}}}},
    "Explain": {"type": "object", "required": ["target", "lines"],
                "properties": {"target": {"type": "string"}, "lines": STRING_LIST}},
    "Health": {"type": "object", "required": ["ok", "pod", "nats"],
               "properties": {"ok": {"type": "boolean"}, "pod": {"type": "string"},
                              "nats": {"type": "string"}}},
}

ID = _path_param("id", "a build id")
PATHS = {
    "/": {"get": {"summary": "The MajorDomoUI page", "operationId": "page",
                  "responses": {"200": {"description": "the page",
                                        "content": {"text/html": {"schema": {"type": "string"}}}}}}},
    "/healthz": {"get": {"summary": "Whether the pod answers", "operationId": "health",
                         "responses": {"200": _json(_ref("Health"), "the pod answers"), **DOWN}}},
    "/v1/openapi.json": {"get": {"summary": "This document", "operationId": "openapi",
                                 "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")}}},
    "/v1/builds": {
        "get": {"summary": "Builds, newest first, a page at a time", "operationId": "listBuilds",
                "parameters": [{"name": "limit", "in": "query", "required": False,
                                "schema": {"type": "integer", "minimum": 1, "maximum": 1000,
                                           "default": 100}},
                               {"name": "before", "in": "query", "required": False,
                                "description": "a build id: the page of builds older than it",
                                "schema": NAME}],
                "responses": {"200": _json(_ref("Builds"), "the page; the first also has "
                                                           "builds queued or running"),
                              **BAD, **NOT_FOUND, **DOWN}},
        "post": {"summary": "Start a build, or join the running build of the same targets",
                 "operationId": "startBuild", "mutating": True,
                 "requestBody": {"required": False, "content": {
                     "application/json": {"schema": _ref("BuildRequest")}}},
                 "responses": {"202": _json(_ref("BuildAccepted"), "queued, started or joined"),
                               **BAD, "409": _error("the project cannot build it: a target "
                                                    "it has not, or a broken project file"),
                               "413": _error("the body is over 64 KiB"),
                               "415": _error("the body is not application/json"), **DOWN}}},
    "/v1/builds/{id}": {
        "parameters": [ID],
        "get": {"summary": "One build", "operationId": "getBuild",
                "responses": {"200": _json(_ref("Build"), "the build"), **NOT_FOUND, **DOWN}},
        "delete": {"summary": "Cancel a build: it starts no more steps",
                   "operationId": "cancelBuild", "mutating": True,
                   "responses": {"202": _json(_ref("Cancel"), "cancelling"),
                                 **NOT_FOUND, "409": _error("it has already finished"),
                                 **DOWN}}},
    "/v1/builds/{id}/events": {
        "parameters": [ID],
        "get": {"summary": "The build's events as server-sent events: the replay, then live, "
                           "to done", "operationId": "buildEvents",
                "parameters": [{"name": "Last-Event-ID", "in": "header", "required": False,
                                "schema": {"type": "string"}},
                               {"name": "batch", "in": "query", "required": False,
                                "schema": {"type": "boolean"},
                                "description": "events that come together in one frame: "
                                               "event: batch, data: a JSON array"}],
                "responses": {"200": {"description": "id: <seq>, event: <t>, data: the event "
                                                     "as JSON (a BuildEvent), to its done; with "
                                                     "batch=1, event: batch, data: an array",
                                      "content": {"text/event-stream": {
                                          "schema": {"type": "string",
                                                     "contentMediaType": "text/event-stream"},
                                          "x-itemSchema": _ref("BuildEvent")}}},
                              "204": {"description": "a reconnect after the build's end"},
                              **NOT_FOUND, **DOWN}}},
    "/v1/builds/{id}/profile": {
        "parameters": [ID],
        "get": {"summary": "Where a finished build's time went, as Chrome trace-event JSON "
                           "(Perfetto opens it)", "operationId": "buildProfile",
                "responses": {"200": _json(_ref("Trace"), "the trace"), **NOT_FOUND,
                              "409": _error("it has not finished yet"), **DOWN}}},
    "/v1/builds/{id}/timeline": {
        "parameters": [ID],
        "get": {"summary": "A finished build's runs, one lane per chef slot, its pass marks "
                           "and its critical path", "operationId": "buildTimeline",
                "responses": {"200": _json(_ref("Timeline"), "the timeline"), **NOT_FOUND,
                              "409": _error("it has not finished yet"), **DOWN}}},
    "/v1/artefacts": {
        "get": {"summary": "Files the pod has records of", "operationId": "listArtefacts",
                "parameters": [{"name": "prefix", "in": "query", "required": False,
                                "schema": {**PROJECT_PATH, "minLength": 0}}],
                "responses": {"200": _json({"type": "object", "required": ["artefacts"],
                                            "properties": {"artefacts": {
                                                "type": "array", "items": _ref("Artefact")}}},
                                           "artefacts by path"), **BAD, **DOWN}}},
    "/v1/artefacts/{path}": {
        "parameters": [{**_path_param("path", "a project path (slashes as they are or %2F)"),
                        "schema": PROJECT_PATH}],
        "get": {"summary": "One artefact", "operationId": "getArtefact",
                "responses": {"200": _json(_ref("Artefact"), "its record"), **BAD,
                              **NOT_FOUND, **DOWN}}},
    "/v1/steps/{id}/log": {
        "parameters": [_path_param("id", "a step id, slashes as %2F")],
        "get": {"summary": "What a step printed the last time it ran", "operationId": "stepLog",
                "responses": {"200": _json(_ref("StepLog"), "its log tails"), **BAD,
                              **NOT_FOUND, **DOWN}}},
    "/v1/steps/{id}/why": {
        "parameters": [_path_param("id", "a step id, slashes as %2F")],
        "get": {"summary": "Why a step would run now (its inputs that changed, old and new "
                           "hash), its last run, and the artefacts it made",
                "operationId": "stepWhy", "parameters": [graphdoc.TARGET],
                "responses": {"200": _json(_ref("StepWhy"), "its explain"), **BAD,
                              **NOT_FOUND, "409": _error("the project file is broken"),
                              **DOWN}}},
    "/v1/pods": {"get": {"summary": "The pods of the federation, their chefs and bytes", "operationId": "pods",
                         "responses": {"200": _json(_ref("Pods"), "pods"), **DOWN}}},
    "/v1/explain/{target}": {
        "parameters": [_path_param("target", "a target path (slashes as they are or %2F)")],
        "get": {"summary": "Why a target's steps are up to date or would run",
                "operationId": "explain",
                "responses": {"200": _json(_ref("Explain"), "one line a fact"), **BAD,
                              **NOT_FOUND, "409": _error("the project file is broken"),
                              **DOWN}}},
}


ALL_PATHS = {**PATHS, **graphdoc.paths(_json, _error, _path_param, BAD, NOT_FOUND, DOWN)}
METHODS = ("get", "post", "put", "patch", "delete")
FORBIDDEN = {"403": _error("the Host header does not name this server, or the Origin is "
                           "another site (api/resources.py: SameOrigin)")}


def _operation(op: dict, bearer: bool) -> dict:
    """Every operation may be refused to another host name or origin, or
    for a request line longer than gunicorn takes (414); with a token, a
    mutating one needs it."""
    op = {**op, "responses": {**op["responses"], **FORBIDDEN,
                              "414": {"description": "the request line is too long"}}}
    if op.pop("mutating", False) and bearer:
        op["security"] = [{"bearer": []}]
        op["responses"] = {**op["responses"], **AUTH}
    return op


@lru_cache(maxsize=2)
def document(bearer: bool = False) -> dict:
    """The document of a server with a token (``bearer``) or without."""
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "computepods cpCtrl", "version": __version__,
                 "description": "The REST API of a computepods pod (docs/architecture.md §7). Errors are "
                                "JSON {title, description}. Only this server's own page "
                                "and clients that send no Origin may use it."},
        "paths": {path: {method: _operation(op, bearer) if method in METHODS else op
                         for method, op in item.items()} for path, item in ALL_PATHS.items()},
        "components": {"schemas": {**SCHEMAS, **graphdoc.SCHEMAS}},
    }
    if bearer:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return doc
