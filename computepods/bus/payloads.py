"""Typed payloads of the bus: builds, file changes, queries, errors, cron.

Each is what one signal carries (:mod:`computepods.bus.messages` names the
signals, subjects and schemas); the MajorDomo<->chef payloads are in
:mod:`computepods.bus.chefwire`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Mapping, TypeVar

from computepods.bus.messages import (
    API_QUERY, BUILD_CANCEL, BUILD_EVENTS, BUILD_REQUEST, BUS_ERROR, CHEFS_QUERY,
    CRON_EVENTS, FS_CHANGED, REPLY, SCHEMAS, SCHEMA_VERSION, Schema, opt, req)

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
    plan: str | None = None      # a plan handed in-process (planning/request.py)
    dirty: list | None = None    # files still changing, not yet reported (a watching pod's)


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
    settling: int | None = None      # files of the tree still in their quiet period


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
