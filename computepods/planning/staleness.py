"""Whether a step must run: the judgement, without the bookkeeping.

A step is stale (docs/architecture.md §4) when it has no record, its last run failed,
its rule or expanded command changed, an output is missing or was edited by
hand, or an input's hash differs from the one recorded when it last ran.
These plain functions serve the :class:`~computepods.planning.scheduler.Scheduler`,
the cold no-op check and explain alike.
"""
from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import fields
from typing import TYPE_CHECKING, Callable

from computepods.planning.resolve import Step
from computepods.state.db import StepRecord

if TYPE_CHECKING:
    from computepods.planning.graph import Component

UNKNOWN = "?"     # the hash of an output a dry run assumes would change


_fingerprints: dict[int, tuple[object, str]] = {}   # id(rule) -> (rule, fingerprint)
_MAX_FINGERPRINTS = 4096


def rule_fingerprint(step: Step) -> str:
    """Identifies the rule's definition, so editing a rule reruns its steps.

    Looked up by the rule object's identity first: 10,000 steps share a few
    rules, and hashing a frozen Rule hashes every field (a rule of 10,000
    inputs) on each call."""
    rule = step.rule
    hit = _fingerprints.get(id(rule))
    if hit is not None and hit[0] is rule:
        return hit[1]
    if len(_fingerprints) >= _MAX_FINGERPRINTS:
        _fingerprints.clear()
    fp = _fingerprints[id(rule)] = (rule, _fingerprint(rule))
    return fp[1]


# Not the rule's definition: where it stands, what the project did to a
# pack's rule (its fields say what that changed), the inputs as written, and
# how the rule joins a build.
_NOT_FINGERPRINTED = frozenset({"index", "overrides", "added", "written", "on_demand"})


@functools.lru_cache(maxsize=4096)
def _fingerprint(rule) -> str:
    # A shallow dict gives the same JSON as asdict(), which deep-copies a
    # rule's every input pattern first.
    d = {f.name: getattr(rule, f.name) for f in fields(rule) if f.name not in _NOT_FINGERPRINTED}
    if rule.written:
        # Globs found in the tree: the rule is what was written, and a file a
        # glob finds or loses is a new or dropped input, said as such.
        d["inputs"] = rule.written
    blob = json.dumps(d, sort_keys=True, default=list).encode()
    return f"{rule.name}#{hashlib.sha256(blob).hexdigest()[:12]}"


def short(h: str | None) -> str:
    return "missing" if h is None else ("unknown" if h == UNKNOWN else h[:12])


def why_stale(step: Step, command: str | Callable[[], str], rule_fp: str,
              record: StepRecord | None, inputs: dict[str, str | None],
              outputs: dict[str, str | None]) -> str | None:
    """The reason `step` must run, or None when it is up to date.

    `command` may be a callable, which is then not called: rendering every
    command was a large part of a cold no-op (``bench/rebuild.py noop``), and an unchanged rule fingerprint
    (which covers the command template) already implies an unchanged command
    for the same step.
    """
    if record is None:
        return "never built"
    if record.status != "ok":
        return f"its last run failed ({record.reason})" if record.reason else "its last run failed"
    if record.rule != rule_fp:
        return f"rule {step.rule.name!r} changed"
    # With the rule unchanged, the same step (same id, so the same stem) has
    # the same command; a caller that passes a callable skips rendering it.
    if not callable(command) and record.command != command:
        return "its command changed"
    for path in step.outputs:
        now = outputs.get(path)
        if now is None:
            return f"output {path} is missing"
        if now != record.outputs.get(path):
            return f"output {path} was changed outside the build"
    for path, now in inputs.items():
        if path not in record.inputs:
            return f"input {path} is new"
        if record.inputs[path] != now:
            return f"input {path} changed ({short(record.inputs[path])} -> {short(now)})"
    for path in record.inputs:
        if path not in inputs:
            return f"input {path} is no longer an input"
    return None


def input_paths(step: Step, record: StepRecord | None) -> list[str]:
    """Declared inputs, then those earlier runs discovered (depfile, .fls)."""
    paths = list(step.inputs)
    if record:
        paths += [p for p in record.discovered if p not in paths]
    return paths


def input_digest(step: Step, path: str, digest, root) -> str | None:
    """The hash a step is judged by: of the part it reads, if its rule says
    so (bibtex reads only the citation lines of an .aux)."""
    part = part_of(step, path)
    if part is None:
        return digest(path)
    from computepods.planning.parts import part_digest
    return part_digest(root / path, part)


def stale_on_disk(step: Step, record: StepRecord | None, digest, root) -> str | None:
    """:func:`why_stale` with the files as they are on disk standing in for
    what producers would report (the cold no-op check, explain).  The
    command is not rendered: the rule fingerprint already vouches for it."""
    inputs = {p: input_digest(step, p, digest, root) for p in input_paths(step, record)}
    outputs = {p: digest(p) for p in step.outputs}
    return why_stale(step, step.display, rule_fingerprint(step), record, inputs, outputs)


def record_inputs(judged: dict[str, str | None], copied: dict[str, str],
                  discovered, produced, digest) -> dict[str, str | None]:
    """A run's input hashes: those it was judged by, plus what it was found
    to read — its own output as it was given to it before the run (absent on
    a first pass), anything else as it is now."""
    inputs = dict(judged)
    for path in discovered:
        if path not in inputs:
            inputs[path] = copied.get(path) if path in produced else digest(path)
    return inputs


def group_record_id(comp: Component) -> str:
    return f"cycle:{sorted(comp.steps)[0]}"


def part_of(step: Step, path: str) -> str | None:
    parts = step.rule.parts
    if not parts:
        return None
    from computepods.planning.parts import part_for
    return part_for(parts, step.rule.inputs, step.inputs, path)
