"""Signals, subjects and payload schemas: the one place that names them.

A bus message is a JSON object with a schema version ``v``.  The NatsBridge
looks a subject up in :data:`ROUTES` to find the signal it becomes, and
validates the payload against that signal's :class:`Schema` before any chart
sees it, so a chart only ever handles well-formed payloads.

Subjects live under a namespace (default ``cp``) so that several federations
can share one NATS.  Templates use ``{ns}`` and, for per-entity subjects,
one more field (``{chef}``, ``{build}``).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Mapping, TypeVar

from miros import signals

from computepods.errors import MalformedMessage

SCHEMA_VERSION = 1
DEFAULT_NAMESPACE = "cp"
MAX_PAYLOAD_BYTES = 64 * 1024 * 1024   # the embedded server's max_payload (nats' own limit)

# --- signals ------------------------------------------------------------------
# Bus signals (each has a subject in ROUTES) ...
FS_CHANGED = "FS_CHANGED"
BUILD_REQUEST = "BUILD_REQUEST"
BUILD_EVENTS = "BUILD_EVENTS"
BUILD_CANCEL = "BUILD_CANCEL"
API_QUERY = "API_QUERY"              # the REST app asks its pod (charts/desk.py)
RULES_ANNOUNCE = "RULES_ANNOUNCE"
RULES_HOWTO = "RULES_HOWTO"
CHEF_STATUS = "CHEF_STATUS"
CHEFS_QUERY = "CHEFS_QUERY"
CHEF_RUN = "CHEF_RUN"
CHEFS_CANCEL = "CHEFS_CANCEL"        # MajorDomo -> every chef: drop and kill a build's steps
STEP_RESULTS = "STEP_RESULTS"
BUS_ERROR = "BUS_ERROR"
CRON_EVENTS = "CRON_EVENTS"

# ... and the bridge's own replies to a chart's request.
REPLY = "REPLY"                      # payload: Reply
REQUEST_FAILED = "REQUEST_FAILED"    # payload: Reply with error set

# In-process signals (miros fabric or self-posts; never on the bus).
STEP_STARTED = "STEP_STARTED"
STEP_DONE = "STEP_DONE"
FLUSH = "FLUSH"
RECORD = "RECORD"
RECORDED = "RECORDED"
RECORD_FAILED = "RECORD_FAILED"      # Store: a write failed; its records are kept and retried
TICK = "TICK"
BUILD_START = "BUILD_START"
ADVANCE = "ADVANCE"
FS_EVENTS = "FS_EVENTS"              # FSWatcher: a batch of raw inotify events from its reader
RESCAN = "RESCAN"                    # FSWatcher: walk the tree again (events were lost)
HALT = "HALT"                        # FSWatcher: stop watching, close the descriptor

ALL_SIGNALS = (FS_CHANGED, BUILD_REQUEST, BUILD_EVENTS, RULES_ANNOUNCE, RULES_HOWTO,
               CHEF_STATUS, CHEFS_QUERY, CHEF_RUN, STEP_RESULTS, BUS_ERROR, REPLY,
               REQUEST_FAILED, STEP_STARTED, STEP_DONE, FLUSH, RECORD, RECORDED, TICK,
               BUILD_START, ADVANCE, BUILD_CANCEL, API_QUERY, FS_EVENTS, RESCAN, HALT)
ALL_SIGNALS += (CRON_EVENTS, CHEFS_CANCEL, RECORD_FAILED)
for _name in ALL_SIGNALS:
    signals.append(_name)     # miros' process-wide signal registry


# --- schemas ------------------------------------------------------------------

@dataclass(frozen=True)
class Field:
    types: tuple[type, ...]
    required: bool = True


def req(*types: type) -> Field:
    return Field(types, True)


def opt(*types: type) -> Field:
    return Field(types, False)


@dataclass(frozen=True)
class Schema:
    """The top-level fields a payload must have; nested items are checked by
    the chart's plain logic (which reports what is wrong and where)."""
    name: str
    fields: Mapping[str, Field] = field(default_factory=dict)

    def check(self, subject: str, payload: Any) -> dict:
        if not isinstance(payload, dict):
            raise MalformedMessage(subject, f"payload must be a JSON object, got {type(payload).__name__}")
        v = payload.get("v")
        if not isinstance(v, int) or isinstance(v, bool):
            raise MalformedMessage(subject, "missing schema version 'v'")
        if v > SCHEMA_VERSION:
            raise MalformedMessage(subject, f"schema version {v} is newer than this pod's {SCHEMA_VERSION}")
        for key, spec in self.fields.items():
            if key not in payload:
                if spec.required:
                    raise MalformedMessage(subject, f"{self.name}: missing field {key!r}")
                continue
            value = payload[key]
            if not isinstance(value, spec.types) or (isinstance(value, bool) and bool not in spec.types):
                names = "/".join(t.__name__ for t in spec.types)
                raise MalformedMessage(subject, f"{self.name}: field {key!r} must be {names}, "
                                                f"got {type(value).__name__}")
        return payload


SCHEMAS: dict[str, Schema] = {
    FS_CHANGED: Schema("fs.changed", {"pod": req(str), "root": req(str), "path": req(str),
                                      "kind": req(str), "moved_from": opt(str, type(None)),
                                      "size": opt(int, type(None)), "mtime_ns": opt(int, type(None)),
                                      "range": opt(list, type(None))}),
    BUILD_REQUEST: Schema("build.request", {"targets": req(list), "keep_going": opt(bool),
                                            "dry_run": opt(bool), "client": opt(str)}),
    # seq: the index of the first of these events among all of the build's events
    BUILD_EVENTS: Schema("build.events", {"build": req(str), "events": req(list),
                                          "seq": opt(int)}),
    BUILD_CANCEL: Schema("build.cancel", {"build": req(str)}),
    # what: health, builds, build, events, check, artefacts, artefact, graph, log, explain, pods
    API_QUERY: Schema("api.query", {"what": req(str), "args": opt(dict)}),
    RULES_ANNOUNCE: Schema("rules.announce", {"chef": req(str), "packs": req(list)}),
    RULES_HOWTO: Schema("rules.howto", {"targets": req(list)}),
    CHEF_STATUS: Schema("chefs.status", {"chef": req(str), "pod": req(str), "slots": req(int),
                                         "running": req(int), "queued": req(int),
                                         "tools": opt(list), "lease_s": opt(int, float),
                                         # a goodbye: why the chef is gone (it takes no
                                         # more work; its unfinished steps go elsewhere)
                                         "gone": opt(str)}),
    CHEFS_QUERY: Schema("chefs.query", {}),
    CHEFS_CANCEL: Schema("chefs.cancel", {"build": req(str)}),
    CHEF_RUN: Schema("chef.run", {"build": req(str), "chef": req(str), "rules": req(dict),
                                  "steps": req(list)}),
    STEP_RESULTS: Schema("steps.results", {"chef": req(str), "results": req(list)}),
    BUS_ERROR: Schema("errors", {"subject": req(str), "problem": req(str), "sender": opt(str)}),
    # t: fired (build), failed (error) or missed (count, more, first, last)
    CRON_EVENTS: Schema("cron.events", {"t": req(str), "cron": req(str), "targets": req(list)}),
    REPLY: Schema("reply", {}),
}


# --- subjects -----------------------------------------------------------------

@dataclass(frozen=True)
class Route:
    signal: str
    template: str          # e.g. "{ns}.chef.{chef}.run"

    def subject(self, ns: str, **params: str) -> str:
        return self.template.format(ns=ns, **params)

    def wildcard(self, ns: str) -> str:
        """The subscription subject: every per-entity field becomes '*'."""
        return re.sub(r"\{(?!ns\})[a-z_]+\}", "*", self.template).format(ns=ns)


ROUTES: dict[str, Route] = {r.signal: r for r in [
    Route(FS_CHANGED, "{ns}.fs.changed"),
    Route(BUILD_REQUEST, "{ns}.build.request"),
    Route(BUILD_EVENTS, "{ns}.build.{build}.events"),
    Route(BUILD_CANCEL, "{ns}.build.cancel"),
    Route(API_QUERY, "{ns}.api.query"),
    Route(RULES_ANNOUNCE, "{ns}.rules.announce"),
    Route(RULES_HOWTO, "{ns}.rules.howto"),
    Route(CHEF_STATUS, "{ns}.chefs.status"),
    Route(CHEFS_QUERY, "{ns}.chefs.query"),
    Route(CHEFS_CANCEL, "{ns}.chefs.cancel"),
    Route(CHEF_RUN, "{ns}.chef.{chef}.run"),
    Route(STEP_RESULTS, "{ns}.steps.results"),
    Route(BUS_ERROR, "{ns}.errors"),
    Route(CRON_EVENTS, "{ns}.cron.events"),
]}


def encode(payload: Mapping[str, Any]) -> bytes:
    """JSON with the schema version stamped in."""
    body = dict(payload)
    body.setdefault("v", SCHEMA_VERSION)
    return json.dumps(body, separators=(",", ":")).encode()


def decode(subject: str, data: bytes, signal: str | None) -> dict:
    """Parse and validate; raises MalformedMessage naming what is wrong."""
    if len(data) > MAX_PAYLOAD_BYTES:
        raise MalformedMessage(subject, f"payload of {len(data)} bytes is over {MAX_PAYLOAD_BYTES}")
    try:
        payload = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedMessage(subject, f"not JSON: {exc}") from None
    schema = SCHEMAS.get(signal) if signal else None
    if schema is None:
        schema = Schema("message")
    return schema.check(subject, payload)


@dataclass(frozen=True)
class Message:
    """What a chart receives as an event payload for a bus message."""
    subject: str
    data: dict
    reply: str = ""        # reply subject of a request, "" for a plain publish


@dataclass(frozen=True)
class Reply:
    """The answer to a chart's request (signal REPLY) or its failure (REQUEST_FAILED)."""
    token: Any             # what the chart passed to request(), to match the answer
    data: dict | None
    error: str = ""


# --- typed payloads: builds, files, queries, errors, cron -----------------------
# Each is what one signal carries: ``to_dict()`` to send it, ``from_dict()``
# to read it back, validated by the signal's Schema as on the way in (the
# bridge has already checked a received message; from_dict checks again, so
# a payload made in-process is held to the same rule).  A field left None
# is not sent, unless the class keeps its Nones (fs.changed sends null).

P = TypeVar("P", bound="Payload")


class Payload:
    signal: ClassVar[str]
    schema: ClassVar[Schema | None] = None      # None: SCHEMAS[signal]
    keep_none: ClassVar[bool] = False

    def to_dict(self) -> dict:
        body = {f.name: getattr(self, f.name) for f in fields(self)}
        return body if self.keep_none else {k: v for k, v in body.items() if v is not None}

    @classmethod
    def from_dict(cls: type[P], data: Mapping[str, Any], subject: str = "") -> P:
        schema = cls.schema or SCHEMAS[cls.signal]
        checked = schema.check(subject or schema.name, {"v": SCHEMA_VERSION, **data})
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in checked.items() if k in names})


@dataclass(frozen=True)
class BuildRequest(Payload):
    """Build `targets` of the project at `cwd`; answered with BuildAccepted."""
    signal: ClassVar[str] = BUILD_REQUEST
    targets: list
    cwd: str | None = None
    keep_going: bool | None = None
    dry_run: bool | None = None
    client: str | None = None


@dataclass(frozen=True)
class BuildAccepted(Payload):
    """The answer to a BuildRequest: the build's id, and whether it joined a
    running build of the same targets or waits behind another."""
    signal: ClassVar[str] = REPLY
    schema: ClassVar[Schema] = Schema("build.request answer", {
        "build": req(str), "joined": opt(bool), "queued": opt(bool)})
    build: str
    joined: bool | None = None
    queued: bool | None = None


@dataclass(frozen=True)
class BuildEvents(Payload):
    """A batch of one build's events; `seq` is the index of the first."""
    signal: ClassVar[str] = BUILD_EVENTS
    build: str
    events: list
    seq: int | None = None

    def dicts(self) -> list[dict]:
        """The events that are objects (anything else is skipped, as before)."""
        return [ev for ev in self.events if isinstance(ev, dict)]


@dataclass(frozen=True)
class BuildCancel(Payload):
    signal: ClassVar[str] = BUILD_CANCEL
    build: str


@dataclass(frozen=True)
class FsChanged(Payload):
    """A file of `root` on `pod` that settled: its kind and its stat then."""
    signal: ClassVar[str] = FS_CHANGED
    keep_none: ClassVar[bool] = True
    pod: str
    root: str
    path: str
    kind: str
    moved_from: str | None = None
    size: int | None = None
    mtime_ns: int | None = None
    range: list | None = None


@dataclass(frozen=True)
class ApiQuery(Payload):
    """The REST app asks its pod's Desk `what` (health, builds, graph, ...)."""
    signal: ClassVar[str] = API_QUERY
    what: str
    args: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ChefsQuery(Payload):
    """Every chef answers with its status."""
    signal: ClassVar[str] = CHEFS_QUERY


@dataclass(frozen=True)
class ErrorReport(Payload):
    """On ``<ns>.errors``: a message that was dropped, and why."""
    signal: ClassVar[str] = BUS_ERROR
    subject: str
    problem: str
    sender: str | None = None


@dataclass(frozen=True)
class CronEvent(Payload):
    """t: fired (build), failed (error) or missed (count, more, first, last)."""
    signal: ClassVar[str] = CRON_EVENTS
    t: str
    cron: str
    targets: list
    at: str | None = None
    build: str | None = None
    error: str | None = None
    count: int | None = None
    more: bool | None = None
    first: str | None = None
    last: str | None = None
# --- the chef wire: MajorDomo <-> chef ----------------------------------------
# A result gives each output's content apart from the chef's own stat of it:
# the pod records its own stat, never a chef's (coordinator/files.py).

def _checked(signal: str, data: dict) -> dict:
    """The top-level check the bridge makes (a payload built here has no "v")."""
    return SCHEMAS[signal].check(SCHEMAS[signal].name, {"v": SCHEMA_VERSION, **data})


def _want(subject: str, what: str, value: Any, *types: type) -> Any:
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        names = "/".join(t.__name__ for t in types)
        raise MalformedMessage(subject, f"{what} must be {names}, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class ChefStatus:
    """chefs.status: a chef's heartbeat; with ``gone``, its goodbye."""
    chef: str
    pod: str
    slots: int
    running: int = 0
    queued: int = 0
    tools: list[str] = field(default_factory=list)
    lease_s: float | None = None
    gone: str | None = None

    def to_dict(self) -> dict:
        msg = {"chef": self.chef, "pod": self.pod, "slots": self.slots,
               "running": self.running, "queued": self.queued, "tools": list(self.tools)}
        if self.lease_s is not None:
            msg["lease_s"] = self.lease_s
        if self.gone:
            msg["gone"] = self.gone
        return msg

    @classmethod
    def from_dict(cls, data: dict) -> "ChefStatus":
        d = _checked(CHEF_STATUS, data)
        return cls(d["chef"], d["pod"], d["slots"], d["running"], d["queued"],
                   list(d.get("tools") or []), d.get("lease_s"), d.get("gone"))


def chef_status(chef: str, pod: str, slots: int, running: int = 0, queued: int = 0,
                tools: list[str] | None = None, lease_s: float | None = None,
                gone: str | None = None) -> dict:
    """A chefs.status message; with ``gone``, the goodbye of a chef that
    stopped (or, sent by its pod, of one that died: its lease is then not
    known, nor needed)."""
    return ChefStatus(chef, pod, slots, running, queued, tools or [], lease_s, gone).to_dict()


@dataclass(frozen=True)
class ChefsCancel:
    """chefs.cancel: every chef drops and kills the steps it holds of a build."""
    build: str

    def to_dict(self) -> dict:
        return {"build": self.build}

    @classmethod
    def from_dict(cls, data: dict) -> "ChefsCancel":
        return cls(_checked(CHEFS_CANCEL, data)["build"])


@dataclass(frozen=True)
class RunStep:
    """A step of a run message, rebuilt by the chef from its rule and stem;
    see :func:`computepods.chef.step.step_to_message`."""
    id: str
    attempt: int
    rule: str
    stem: str | None
    inputs: dict[str, str | None]
    known_outputs: tuple[str, ...] = ()
    copy_in: dict[str, str] = field(default_factory=dict)
    rule_fp: str = ""

    def to_dict(self) -> dict:
        msg = {"id": self.id, "attempt": self.attempt, "rule": self.rule, "stem": self.stem,
               "inputs": self.inputs}
        if self.known_outputs:
            msg["known_outputs"] = list(self.known_outputs)
        if self.copy_in:
            msg["copy_in"] = self.copy_in
        if self.rule_fp:
            msg["rule_fp"] = self.rule_fp
        return msg

    @classmethod
    def from_dict(cls, item: Any) -> "RunStep":
        """MalformedMessage naming the step and the field when it is off."""
        if not isinstance(item, dict):
            raise MalformedMessage("chef.run", f"step must be an object, got {type(item).__name__}")
        for key, types in (("id", str), ("attempt", int), ("rule", str), ("inputs", dict)):
            if not isinstance(item.get(key), types):
                raise MalformedMessage("chef.run", f"step {item.get('id')!r}: field {key!r} "
                                                   f"missing or not {types.__name__}")
        copy_in = item.get("copy_in") or {}
        if not isinstance(copy_in, dict):
            raise MalformedMessage("chef.run", f"step {item['id']!r}: copy_in must be an object")
        known = _want("chef.run", f"step {item['id']!r}: known_outputs",
                      item.get("known_outputs") or (), list, tuple)
        return cls(item["id"], item["attempt"], item["rule"], item.get("stem"),
                   dict(item["inputs"]), tuple(known), dict(copy_in),
                   str(item.get("rule_fp") or ""))


@dataclass(frozen=True)
class RunMessage:
    """cp.chef.<id>.run: steps for one chef (raw: a bad one is refused alone)."""
    build: str
    chef: str
    rules: dict[str, dict]
    steps: list

    def to_dict(self) -> dict:
        return {"build": self.build, "chef": self.chef, "rules": self.rules,
                "steps": [s.to_dict() if isinstance(s, RunStep) else s for s in self.steps]}

    @classmethod
    def from_dict(cls, data: dict) -> "RunMessage":
        d = _checked(CHEF_RUN, data)
        return cls(d["build"], d["chef"], d["rules"], d["steps"])


@dataclass(frozen=True)
class LocalStat:
    """A chef's own stat of a file it wrote, in its own tree."""
    mtime_ns: int
    ino: int
    checked_ns: int          # the chef's time.time_ns() just before it hashed the file


@dataclass(frozen=True)
class Output:
    """A committed output: its content, and apart from it the chef's stat."""
    sha256: str
    size: int
    local: LocalStat | None = None

    def to_dict(self) -> dict:
        d: dict = {"sha256": self.sha256, "size": self.size}
        if self.local:      # (asdict() deep-copies: this goes once per output)
            d["local"] = {"mtime_ns": self.local.mtime_ns, "ino": self.local.ino,
                          "checked_ns": self.local.checked_ns}
        return d

    @classmethod
    def from_dict(cls, path: str, d: Any) -> "Output":
        what = f"output {path!r}"
        _want("steps.results", what, d, dict)
        local = d.get("local")
        if local is not None:
            _want("steps.results", f"{what}: local", local, dict)
            local = LocalStat(*(_want("steps.results", f"{what}: local.{k}", local.get(k), int)
                                for k in ("mtime_ns", "ino", "checked_ns")))
        return cls(_want("steps.results", f"{what}: sha256", d.get("sha256"), str),
                   _want("steps.results", f"{what}: size", d.get("size"), int), local)


@dataclass(frozen=True)
class StepResult:
    """A finished step, in a steps.results message."""
    id: str
    attempt: int
    ok: bool
    command: str = ""
    exit_code: int | None = None
    reason: str = ""
    duration_s: float = 0.0
    outputs: dict[str, Output] = field(default_factory=dict)
    discovered: list[str] = field(default_factory=list)
    stdout_tail: str = ""
    stderr_tail: str = ""

    def to_dict(self) -> dict:
        d = {"id": self.id, "attempt": self.attempt, "command": self.command,
             "exit_code": self.exit_code, "ok": self.ok, "reason": self.reason,
             "duration_s": self.duration_s}
        if self.ok:
            d["outputs"] = {p: o.to_dict() for p, o in self.outputs.items()}
            d["discovered"] = list(self.discovered)
        else:
            d["stdout_tail"], d["stderr_tail"] = self.stdout_tail, self.stderr_tail
        return d

    @classmethod
    def from_dict(cls, item: dict) -> "StepResult":
        """Missing fields take their defaults; a bad output is MalformedMessage."""
        sid = item.get("id")
        outputs = _want("steps.results", f"step {sid!r}: outputs", item.get("outputs") or {},
                        dict)
        return cls(sid, item.get("attempt"), bool(item.get("ok")),
                   str(item.get("command") or ""), item.get("exit_code"),
                   str(item.get("reason") or ("" if item.get("ok") else "failed")),
                   float(item.get("duration_s") or 0.0),
                   {p: Output.from_dict(p, o) for p, o in outputs.items()},
                   list(item.get("discovered") or []),
                   str(item.get("stdout_tail") or ""), str(item.get("stderr_tail") or ""))
