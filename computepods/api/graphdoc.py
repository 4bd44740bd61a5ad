"""The graph's part of the OpenAPI document: ``/v1/graph``, ``/v1/steps``,
``/v1/steps/{id}`` (docs/architecture.md §7 "The graph").

:mod:`computepods.api.openapi` merges these into its paths and schemas.
"""
from __future__ import annotations

from computepods.api.graphindex import MAX_PAGE, STATES

STRING_LIST = {"type": "array", "items": {"type": "string"}}
# What the server takes as a name in a request: a target, a group, a step id.
NAME = {"type": "string", "minLength": 1, "maxLength": 4096, "pattern": "^[^\\u0000]*$"}
NAMES = {"type": "array", "items": NAME}
NULLABLE_INT = {"type": ["integer", "null"]}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _query(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


TARGET = {**_query("target", NAMES, "the graph of these targets (none: the default)"),
          "style": "form", "explode": True}
OFFSET = _query("offset", {"type": "integer", "minimum": 0}, "skip this many")
LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
               "at most this many")
COUNTS = {"type": "object", "additionalProperties": {"type": "integer"},
          "propertyNames": {"enum": list(STATES)}, "description": "steps by state (none: 0)"}
STATE = {"enum": list(STATES)}

ROW_FIELDS = {"id": {"type": "string"}, "rule": {"type": "string"},
              "group": {"type": "string"}, "outputs": STRING_LIST, "state": STATE,
              "ran": {"type": "boolean", "description": "it ran in the latest build"},
              "cycle": NULLABLE_INT}

SCHEMAS = {
    "Graph": {
        "type": "object", "required": ["targets", "nodes", "edges", "cycles"],
        "description": "format=json: the whole graph",
        "properties": {
            "targets": STRING_LIST,
            "nodes": {"type": "array", "items": {
                "type": "object",
                "required": ["id", "rule", "inputs", "outputs", "state", "cycle", "ran"],
                "properties": {"id": {"type": "string"}, "rule": {"type": "string"},
                               "inputs": STRING_LIST, "outputs": STRING_LIST, "state": STATE,
                               "cycle": NULLABLE_INT, "ran": {"type": "boolean"}}}},
            "edges": {"type": "array", "items": {**STRING_LIST, "minItems": 2, "maxItems": 2}},
            "cycles": {"type": "array", "items": STRING_LIST}}},
    "GraphGroups": {
        "type": "object", "description": "the default format: the steps folded into groups",
        "required": ["targets", "steps", "counts", "ran", "cycles", "groups_total", "offset",
                     "groups", "running", "running_total", "build"],
        "properties": {
            "targets": STRING_LIST, "steps": {"type": "integer"}, "counts": COUNTS,
            "ran": {"type": "integer"}, "cycles": {"type": "integer"},
            "groups_total": {"type": "integer"}, "offset": {"type": "integer"},
            "groups": {"type": "array", "items": {
                "type": "object", "required": ["name", "kind", "steps", "counts", "ran", "cycle"],
                "properties": {"name": {"type": "string"}, "kind": {"enum": ["rule", "dir"]},
                               "steps": {"type": "integer"}, "counts": COUNTS,
                               "ran": {"type": "integer"}, "cycle": {"type": "boolean"}}}},
            "running": {"type": "array", "items": _ref("StepRow")},
            "running_total": {"type": "integer"},
            "build": {"type": ["object", "null"], "required": ["id", "state"],
                      "properties": {"id": {"type": "string"}, "state": {"type": "string"}}}}},
    "StepRow": {"type": "object", "required": list(ROW_FIELDS), "properties": ROW_FIELDS},
    "StepPage": {
        "type": "object", "required": ["total", "offset", "limit", "steps"],
        "properties": {"total": {"type": "integer"}, "offset": {"type": "integer"},
                       "limit": {"type": "integer"},
                       "steps": {"type": "array", "items": _ref("StepRow")}}},
    "StepNode": {
        "type": "object",
        "required": [*ROW_FIELDS, "kind", "inputs", "inputs_total", "dependants",
                     "dependants_total", "cycle_steps"],
        "properties": {
            **ROW_FIELDS, "kind": {"enum": ["rule", "dir"]},
            "inputs": {"type": "array", "items": {
                "type": "object", "required": ["path", "step", "state"],
                "properties": {"path": {"type": "string"},
                               "step": {"type": ["string", "null"],
                                        "description": "the step that makes it; null: a source"},
                               "state": {"oneOf": [STATE, {"type": "null"}]}}}},
            "inputs_total": {"type": "integer"},
            "dependants": {"type": "array", "items": {
                "type": "object", "required": ["id", "state"],
                "properties": {"id": {"type": "string"}, "state": STATE}}},
            "dependants_total": {"type": "integer"},
            "cycle_steps": STRING_LIST}},
}


def paths(json, error, path_param, bad: dict, not_found: dict, down: dict) -> dict:
    """The three routes, built with openapi.py's helpers."""
    broken = {"409": error("the project file is broken")}
    return {
        "/v1/graph": {
            "get": {"summary": "The graph's steps in groups with counts by state "
                               "(format=json: every node and edge; format=dot: Graphviz)",
                    "operationId": "graph",
                    "parameters": [TARGET, _query("format", {"enum": ["groups", "json", "dot"]},
                                                  "groups (default), json or dot"),
                                   OFFSET, LIMIT],
                    "responses": {"200": {"description": "the graph", "content": {
                        "application/json": {"schema": {"oneOf": [_ref("GraphGroups"),
                                                                  _ref("Graph")]}},
                        "text/vnd.graphviz": {"schema": {"type": "string"}}}},
                        **bad, **not_found, **broken, **down}}},
        "/v1/steps": {
            "get": {"summary": "A page of steps: of a group, in a state, that ran in the "
                               "latest build, or found by a search of ids and paths",
                    "operationId": "listSteps",
                    "parameters": [TARGET, _query("group", NAME, "a group's name"),
                                   _query("state", STATE, "only steps in this state"),
                                   _query("ran", {"type": "boolean"},
                                          "only steps that ran in the latest build"),
                                   _query("q", {**NAME, "minLength": 0},
                                          "a step id or path, or part of one"),
                                   OFFSET, LIMIT],
                    "responses": {"200": json(_ref("StepPage"), "steps by id (q: best first)"),
                                  **bad, **not_found, **broken, **down}}},
        "/v1/steps/{id}": {
            "parameters": [path_param("id", "a step id, slashes as %2F")],
            "get": {"summary": "One step: its inputs and the steps that make them, its "
                               "outputs, the steps that read them",
                    "operationId": "getStep", "parameters": [TARGET, LIMIT],
                    "responses": {"200": json(_ref("StepNode"), "the step"), **bad,
                                  **not_found, **broken, **down}}},
    }
