"""The MajorDomo <-> chef wire: run messages, step results, chef status, cancel.

A result gives each output's content apart from the chef's own stat of it:
the pod records its own stat, never a chef's (:mod:`computepods.coordinator.files`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from computepods.errors import MalformedMessage
from computepods.bus.messages import (
    CHEFS_CANCEL, CHEF_RUN, CHEF_STATUS, SCHEMAS, SCHEMA_VERSION)

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
    typical_s: float | None = None       # the mean seconds of its recent steps
    fingerprints: dict[str, str] = field(default_factory=dict)   # tool -> sha256 of its file

    def to_dict(self) -> dict:
        msg = {"chef": self.chef, "pod": self.pod, "slots": self.slots,
               "running": self.running, "queued": self.queued, "tools": list(self.tools)}
        if self.lease_s is not None:
            msg["lease_s"] = self.lease_s
        if self.gone:
            msg["gone"] = self.gone
        if self.typical_s is not None:
            msg["typical_s"] = self.typical_s
        if self.fingerprints:
            msg["fingerprints"] = dict(self.fingerprints)
        return msg

    @classmethod
    def from_dict(cls, data: dict) -> "ChefStatus":
        d = _checked(CHEF_STATUS, data)
        return cls(d["chef"], d["pod"], d["slots"], d["running"], d["queued"],
                   list(d.get("tools") or []), d.get("lease_s"), d.get("gone"),
                   d.get("typical_s"), dict(d.get("fingerprints") or {}))


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
    # For a chef on another pod: path -> sha256 of every file the step reads
    # (declared and discovered inputs, copy_in), to materialise by hash.
    files: dict[str, str] = field(default_factory=dict)
    # Sent ahead (chef/ahead.py): the steps (id, attempt) it waits for on
    # this chef, the hashes it last read of what they make, and whether it
    # runs whatever they make.
    after: tuple[tuple[str, int], ...] = ()
    was: dict[str, str | None] = field(default_factory=dict)
    always: bool = False

    def to_dict(self) -> dict:
        msg = {"id": self.id, "attempt": self.attempt, "rule": self.rule, "stem": self.stem,
               "inputs": self.inputs}
        if self.after:
            msg["after"] = [list(a) for a in self.after]
            msg["was"], msg["always"] = self.was, self.always
        if self.known_outputs:
            msg["known_outputs"] = list(self.known_outputs)
        if self.copy_in:
            msg["copy_in"] = self.copy_in
        if self.rule_fp:
            msg["rule_fp"] = self.rule_fp
        if self.files:
            msg["files"] = self.files
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
        files = _want("chef.run", f"step {item['id']!r}: files", item.get("files") or {}, dict)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
            raise MalformedMessage("chef.run", f"step {item['id']!r}: files must map paths "
                                               "to sha256 strings")
        return cls(item["id"], item["attempt"], item["rule"], item.get("stem"),
                   dict(item["inputs"]), tuple(known), dict(copy_in),
                   str(item.get("rule_fp") or ""), dict(files), *_ahead_terms(item))


def _ahead_terms(item: dict) -> tuple[tuple[tuple[str, int], ...], dict, bool]:
    """The `after`, `was` and `always` of a step sent ahead (empty when not)."""
    where = f"step {item['id']!r}"
    after = _want("chef.run", f"{where}: after", item.get("after") or (), list, tuple)
    if not all(isinstance(a, (list, tuple)) and len(a) == 2 and isinstance(a[0], str)
               and isinstance(a[1], int) and not isinstance(a[1], bool) for a in after):
        raise MalformedMessage("chef.run", f"{where}: after must list [step id, attempt] pairs")
    was = _want("chef.run", f"{where}: was", item.get("was") or {}, dict)
    if not all(isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in was.items()):
        raise MalformedMessage("chef.run", f"{where}: was must map paths to sha256 or null")
    always = _want("chef.run", f"{where}: always", item.get("always", False), bool)
    return tuple((a[0], a[1]) for a in after), dict(was), always


def check_rule(name: str, d: Any) -> dict:
    """A rule of a run message, as the chef rebuilds it (chef/step.py:
    rule_from_dict): an object with at least one output, its paths strings
    and its command a string or a list of them; MalformedMessage naming
    the rule and the key otherwise."""
    where = f"rule {name!r}"
    _want("chef.run", where, d, dict)
    for key, least in (("inputs", 0), ("outputs", 1)):
        paths = _want("chef.run", f"{where}: {key}", d.get(key) or [], list, tuple)
        if len(paths) < least or not all(isinstance(p, str) for p in paths):
            raise MalformedMessage("chef.run", f"{where}: {key} must be a list of paths"
                                               + (", at least one" if least else ""))
    command = d.get("command")
    if not (isinstance(command, str) or (isinstance(command, (list, tuple)) and command
                                         and all(isinstance(c, str) for c in command))):
        raise MalformedMessage("chef.run", f"{where}: command must be a string or a "
                                           "list of strings")
    return d


@dataclass(frozen=True)
class RunMessage:
    """cp.chef.<id>.run: steps for one chef (raw: a bad one is refused alone)."""
    build: str
    chef: str
    rules: dict[str, dict]
    steps: list
    origin: str = ""       # the pod whose store serves the steps' `files` ("": the chef's own tree)

    def to_dict(self) -> dict:
        d = {"build": self.build, "chef": self.chef, "rules": self.rules,
             "steps": [s.to_dict() if isinstance(s, RunStep) else s for s in self.steps]}
        if self.origin:
            d["origin"] = self.origin
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "RunMessage":
        d = _checked(CHEF_RUN, data)
        return cls(d["build"], d["chef"], d["rules"], d["steps"], d.get("origin") or "")


@dataclass(frozen=True)
class Unrun:
    """A step sent ahead that its chef did not run (chef/ahead.py): the
    MajorDomo sends it again, as any step, if it must run."""
    id: str
    attempt: int
    reason: str

    def to_dict(self) -> dict:
        return {"event": "unrun", "id": self.id, "attempt": self.attempt, "reason": self.reason}


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
    # Its mode had an execute bit: a pod landing it from another's store
    # (whose files carry no mode) makes it executable too.
    executable: bool = False

    def to_dict(self) -> dict:
        d: dict = {"sha256": self.sha256, "size": self.size}
        if self.executable:
            d["x"] = True
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
                   _want("steps.results", f"{what}: size", d.get("size"), int), local,
                   d.get("x") is True)


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
    slot: int | None = None          # which of the chef's slots ran it
    started_ns: int | None = None    # when it started, on the chef's wall clock
    read: dict[str, str] = field(default_factory=dict)   # sent ahead: what it read of `after`

    def to_dict(self) -> dict:
        d = {"id": self.id, "attempt": self.attempt, "command": self.command,
             "exit_code": self.exit_code, "ok": self.ok, "reason": self.reason,
             "duration_s": self.duration_s}
        if self.slot is not None:
            d["slot"], d["started_ns"] = self.slot, self.started_ns
        if self.read:
            d["read"] = self.read
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
                   str(item.get("stdout_tail") or ""), str(item.get("stderr_tail") or ""),
                   _count_or_none(item.get("slot")), _count_or_none(item.get("started_ns")),
                   _want("steps.results", f"step {sid!r}: read", item.get("read") or {}, dict))


def _count_or_none(value) -> int | None:
    """A whole number >= 0 as sent, else None (it is only for the timeline)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 \
        else None


def without_redundant_starts(batch: list[dict]) -> list[dict]:
    """A step's start note says nothing its success in the same message does
    not (the MajorDomo shows the two as one "ran"): in a full build half of
    the items of every results message were such notes."""
    done = {(i.get("id"), i.get("attempt")) for i in batch
            if i.get("event") == "finished" and i.get("ok")}
    if not done:
        return batch
    return [i for i in batch
            if i.get("event") != "started" or (i.get("id"), i.get("attempt")) not in done]
