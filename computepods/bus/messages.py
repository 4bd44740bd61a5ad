"""Signals, subjects and payload schemas: the one place that names them.

A bus message is a JSON object with a schema version ``v``.  The NatsBridge
looks a subject up in :data:`ROUTES` to find the signal it becomes, and
validates the payload against that signal's :class:`Schema` before any chart
sees it, so a chart only ever handles well-formed payloads.

Subjects live under a namespace (default ``cp``) so that several federations
can share one NATS.  Templates use ``{ns}`` and, for per-entity subjects,
one more field (``{chef}``, ``{build}``).

The typed payloads built on these schemas live beside this module:
:mod:`computepods.bus.payloads` (builds, file changes, queries, errors, cron)
and :mod:`computepods.bus.chefwire` (the MajorDomo <-> chef wire).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from miros import signals

from computepods.errors import MalformedMessage

SCHEMA_VERSION = 1
DEFAULT_NAMESPACE = "cp"
MAX_PAYLOAD_BYTES = 64 * 1024 * 1024   # the embedded server's max_payload (nats' own limit)
MAX_DEPTH = 64                 # JSON arrays and objects nested in a message (ours: under 10)
MAX_LEASE_S = 3600.0           # seconds: the longest lease a chef may ask for (one hour)
MAX_SLOTS = 4096               # slots one chef may say it has

# --- signals ------------------------------------------------------------------
# Bus signals (each has a subject in ROUTES) ...
FS_CHANGED = "FS_CHANGED"
BUILD_REQUEST = "BUILD_REQUEST"
BUILD_EVENTS = "BUILD_EVENTS"
BUILD_CANCEL = "BUILD_CANCEL"
API_QUERY = "API_QUERY"              # the REST app asks its pod (charts/desk.py)
RULES_ANNOUNCE = "RULES_ANNOUNCE"    # chef -> anyone: its packs; received from issue 12 on
CHEF_STATUS = "CHEF_STATUS"
CHEFS_QUERY = "CHEFS_QUERY"
CHEF_RUN = "CHEF_RUN"
CHEFS_CANCEL = "CHEFS_CANCEL"        # MajorDomo -> every chef: drop and kill a build's steps
STEP_RESULTS = "STEP_RESULTS"
BUS_ERROR = "BUS_ERROR"
CRON_EVENTS = "CRON_EVENTS"
PODS_HELLO = "PODS_HELLO"            # a pod says who it is, every few seconds (federation)
PODS_DISCOVER = "PODS_DISCOVER"      # a Scout asks every pod to answer with its hello

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
FS_PENDING = "FS_PENDING"            # FSWatcher: which files are still in their quiet period?
COMMITTED = "COMMITTED"              # MajorDomo -> its pod's FSWatcher: outputs it just recorded
COMMITTING = "COMMITTING"            # MajorDomo -> its pod's FSWatcher: outputs sent to be built
BURST_OVER = "BURST_OVER"            # MajorDomo to itself: a burst of changes may be over

ALL_SIGNALS = (FS_CHANGED, BUILD_REQUEST, BUILD_EVENTS, RULES_ANNOUNCE,
               CHEF_STATUS, CHEFS_QUERY, CHEF_RUN, STEP_RESULTS, BUS_ERROR, REPLY,
               REQUEST_FAILED, STEP_STARTED, STEP_DONE, FLUSH, RECORD, RECORDED, TICK,
               BUILD_START, ADVANCE, BUILD_CANCEL, API_QUERY, FS_EVENTS, RESCAN, HALT)
ALL_SIGNALS += (CRON_EVENTS, CHEFS_CANCEL, RECORD_FAILED, PODS_HELLO, PODS_DISCOVER, FS_PENDING,
                COMMITTED, BURST_OVER, COMMITTING)
# --- scout (federation) ---
GATHERED = "GATHERED"                # the bus: every answer to one gather(), as a Gathered
SEARCH = "SEARCH"                    # to a Scout (or the Herald holding it): look for pods
SCOUT_FOUND = "SCOUT_FOUND"          # a Scout to its parent: ScoutFound (the pods that fit)
SCOUT_NOT_FOUND = "SCOUT_NOT_FOUND"  # a Scout to its parent: ScoutNotFound (why none did)
SCOUT_STOP = "SCOUT_STOP"            # to the Herald: stop the scout of one search
PROBED = "PROBED"                    # a Scout's probe worker: what each SFTP endpoint said
ALL_SIGNALS += (GATHERED, SEARCH, SCOUT_FOUND, SCOUT_NOT_FOUND, SCOUT_STOP, PROBED)
# --- end scout ---
# --- cachefile (federation) ---
# In-process, for the CacheFile chart (charts/cachefile.py); never on the bus.
CACHE_FILE_READ = "CACHE_FILE_READ"    # to it: read the cache (payload ReadCache)
CACHE_FILE_WRITE = "CACHE_FILE_WRITE"  # to it: merge entries in (payload WriteCache)
CACHE_READ = "CACHE_READ"              # from it, to the asker: the entries (CacheAnswer)
CACHE_WRITTEN = "CACHE_WRITTEN"        # from it, to the asker: merged and renamed (CacheAnswer)
CACHE_ACCESS = "CACHE_ACCESS"          # to itself: try the next access (now, or after a wait)
CACHE_DONE = "CACHE_DONE"              # to itself: this access is over, let the file go
ALL_SIGNALS += (CACHE_FILE_READ, CACHE_FILE_WRITE, CACHE_READ, CACHE_WRITTEN, CACHE_ACCESS,
                CACHE_DONE)
# --- end cachefile ---
# --- md (federation) ---
LANDED = "LANDED"                    # MajorDomo: a remote step's outputs are fetched and committed
LANDING_FAILED = "LANDING_FAILED"    # MajorDomo: they could not be (the pod is named)
ALL_SIGNALS += (LANDED, LANDING_FAILED)
# --- end md ---
for _name in ALL_SIGNALS:
    signals.append(_name)     # miros' process-wide signal registry


# --- schemas ------------------------------------------------------------------

@dataclass(frozen=True)
class Field:
    """A top-level field: its types; for a list, its items' types (for an
    object, its values'); for a number, the range it must lie in."""
    types: tuple[type, ...]
    required: bool = True
    items: tuple[type, ...] = ()
    range: tuple[float, float] | None = None     # (lo, hi]: lo excluded, hi included


def req(*types: type, items: tuple[type, ...] = (),
        range: tuple[float, float] | None = None) -> Field:
    return Field(types, True, items, range)


def opt(*types: type, items: tuple[type, ...] = (),
        range: tuple[float, float] | None = None) -> Field:
    return Field(types, False, items, range)


def _is(value: Any, types: tuple[type, ...]) -> bool:
    """isinstance, except that a bool is not an int unless bool is named."""
    return isinstance(value, types) and (bool in types or not isinstance(value, bool))


def _names(types: tuple[type, ...]) -> str:
    return "/".join(t.__name__ for t in types)


@dataclass(frozen=True)
class Schema:
    """The top-level fields a payload must have, their items' types and
    their ranges; deeper items are checked by the plain logic that reads
    them (which reports what is wrong and where)."""
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
            self._check_field(subject, key, spec, payload[key])
        return payload

    def _check_field(self, subject: str, key: str, spec: Field, value: Any) -> None:
        def bad(what: str) -> MalformedMessage:
            return MalformedMessage(subject, f"{self.name}: field {key!r}{what}")
        if not _is(value, spec.types):
            raise bad(f" must be {_names(spec.types)}, got {type(value).__name__}")
        if spec.items and isinstance(value, (list, dict)):
            pairs = value.items() if isinstance(value, dict) else enumerate(value)
            for where, item in pairs:
                if not _is(item, spec.items):
                    raise bad(f"[{where!r}] must be {_names(spec.items)}, "
                              f"got {type(item).__name__}")
        if spec.range and isinstance(value, (int, float)) and not isinstance(value, bool):
            lo, hi = spec.range
            if not lo < value <= hi:      # NaN is in no range
                raise bad(f" must be over {lo:g} and at most {hi:g}, got {value!r}")


SCHEMAS: dict[str, Schema] = {
    FS_CHANGED: Schema("fs.changed", {"pod": req(str), "root": req(str), "path": req(str),
                                      "kind": req(str), "moved_from": opt(str, type(None)),
                                      "size": opt(int, type(None)), "mtime_ns": opt(int, type(None)),
                                      "range": opt(list, type(None), items=(int,)),
                                      "settling": opt(int, type(None))}),
    BUILD_REQUEST: Schema("build.request", {"targets": req(list, items=(str,)), "cwd": opt(str),
                                            "keep_going": opt(bool), "dry_run": opt(bool),
                                            "client": opt(str), "plan": opt(str)}),
    # seq: the index of the first of these events among all of the build's events
    BUILD_EVENTS: Schema("build.events", {"build": req(str), "events": req(list, items=(dict,)),
                                          "seq": opt(int)}),
    BUILD_CANCEL: Schema("build.cancel", {"build": req(str)}),
    # what: health, builds, build, events, check, artefacts, artefact, graph, steps, step, log,
    # explain, pods
    API_QUERY: Schema("api.query", {"what": req(str), "args": opt(dict)}),
    RULES_ANNOUNCE: Schema("rules.announce", {"chef": req(str), "packs": req(list, items=(str,))}),
    # lease_s: over 0 and at most MAX_LEASE_S; a status outside is refused
    CHEF_STATUS: Schema("chefs.status", {"chef": req(str), "pod": req(str),
                                         "slots": req(int, range=(-1, MAX_SLOTS)),
                                         "running": req(int), "queued": req(int),
                                         "tools": opt(list, items=(str,)),
                                         "lease_s": opt(int, float, range=(0, MAX_LEASE_S)),
                                         # a goodbye: why the chef is gone (it takes no
                                         # more work; its unfinished steps go elsewhere)
                                         "gone": opt(str),
                                         # federation: the mean seconds of its last steps,
                                         # and tool name -> sha256 of the resolved file
                                         "typical_s": opt(int, float, range=(-1, 1e9)),
                                         "fingerprints": opt(dict, items=(str,))}),
    CHEFS_QUERY: Schema("chefs.query", {}),
    CHEFS_CANCEL: Schema("chefs.cancel", {"build": req(str)}),
    # origin: the pod that holds the files of a step's `files` (federation)
    CHEF_RUN: Schema("chef.run", {"build": req(str), "chef": req(str),
                                  "rules": req(dict, items=(dict,)),
                                  "steps": req(list, items=(dict,)),
                                  "origin": opt(str)}),
    STEP_RESULTS: Schema("steps.results", {"chef": req(str), "results": req(list, items=(dict,))}),
    BUS_ERROR: Schema("errors", {"subject": req(str), "problem": req(str), "sender": opt(str)}),
    # t: fired (build), failed (error) or missed (count, more, first, last)
    CRON_EVENTS: Schema("cron.events", {"t": req(str), "cron": req(str),
                                       "targets": req(list, items=(str,))}),
    # federation (docs/architecture.md §6): who a pod is and how to reach its store
    PODS_HELLO: Schema("pods.hello", {"pod": req(str), "host": req(str), "role": req(str),
                                      "chefs": req(list, items=(str,)),
                                      "slots": req(int, range=(-1, MAX_SLOTS)),
                                      "load": opt(dict, items=(int, float)),
                                      "tools": opt(dict, items=(str,)),
                                      "sftp": req(dict), "client_key": req(str),
                                      "moved": opt(dict, items=(int,)),
                                      "every_s": opt(int, float, range=(0, MAX_LEASE_S))}),
    PODS_DISCOVER: Schema("pods.discover", {"search": req(str), "want": opt(dict)}),
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
    Route(CHEF_STATUS, "{ns}.chefs.status"),
    Route(CHEFS_QUERY, "{ns}.chefs.query"),
    Route(CHEFS_CANCEL, "{ns}.chefs.cancel"),
    Route(CHEF_RUN, "{ns}.chef.{chef}.run"),
    Route(STEP_RESULTS, "{ns}.steps.results"),
    Route(BUS_ERROR, "{ns}.errors"),
    Route(CRON_EVENTS, "{ns}.cron.events"),
    Route(PODS_HELLO, "{ns}.pods.hello"),
    Route(PODS_DISCOVER, "{ns}.pods.discover"),
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
    # json's parser recurses, one level per bracket: measure the depth
    # first, so that it never meets a RecursionError (a gc callback run at
    # the recursion limit is a fatal error, not an exception).
    too_deep = MalformedMessage(subject, f"JSON nested more than {MAX_DEPTH} levels deep")
    if data.count(b"[") + data.count(b"{") > MAX_DEPTH and _deeper_than(data, MAX_DEPTH):
        raise too_deep
    try:
        payload = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedMessage(subject, f"not JSON: {exc}") from None
    except RecursionError:         # (kept: the check above should make it impossible)
        raise too_deep from None
    schema = SCHEMAS.get(signal) if signal else None
    if schema is None:
        schema = Schema("message")
    return schema.check(subject, payload)


# A JSON string, as an unrolled loop (runs of plain characters, then an
# escape): 4x faster than one alternation per character on our messages.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _deeper_than(data: bytes, limit: int) -> bool:
    """Whether the arrays and objects of this JSON text nest more than
    `limit` levels (its strings left out; no recursion)."""
    brackets = _JSON_STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    depth = 0
    for c in brackets:
        depth += 1 if c in b"[{" else -1
        if depth > limit:
            return True
    return False


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
