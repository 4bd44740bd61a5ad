"""Why a step ran, or would run: `cpod explain TARGET` and `build --explain`.

For each step the target needs that would run (its own step last), it says
the first reason found: an input that changed with its old and new hash,
the command, an output missing or edited by hand.  With ``everything`` it
lists every step, up to date or not, with its last run as recorded: when,
how it ended, why it ran.

Steps are judged in the build's order (the graph's components, topologically)
so a step whose input another step will rebuild is not called up to date:
it runs unless that input comes out unchanged (early cutoff), as the build
would judge it.  So the steps it says would or may run are those `cpod build
-n` lists.  Nothing runs.
"""
from __future__ import annotations

import datetime
from pathlib import Path
from typing import Sequence

from computepods.planning.graph import BuildGraph
from computepods.state.hashing import StatCache
from computepods.planning.plan import load_state, resolve
from computepods.planning.staleness import input_paths, stale_on_disk

COMMAND_PREFIX = "  command: "
ELLIPSIS = "…"


def verdicts(graph: BuildGraph, records: dict, digest, root: Path) -> dict[str, str | None]:
    """Each step's "now" line: None when up to date, else why it would run."""
    plan = graph.plan
    out: dict[str, str | None] = {}
    for comp in graph.components:
        for sid in comp.steps:
            own = stale_on_disk(plan.steps[sid], records.get(sid), digest, root)
            out[sid] = None if own is None else f"would run: {own}"
        for sid in comp.steps:
            if out[sid] is not None:
                continue
            for path in input_paths(plan.steps[sid], records.get(sid)):
                producer = plan.producers.get(path)
                if producer is not None and producer != sid and out.get(producer) is not None:
                    out[sid] = (f"may run: input {path} will be rebuilt by {producer} "
                                f"(it runs unless {path} comes out unchanged)")
                    break
        # A group runs pass after pass until nothing it passes round changes:
        # once one of its steps runs, each of the others may.
        runs = [s for s in comp.steps if out[s] is not None] if comp.cyclic else []
        for sid in comp.steps:
            if runs and out[sid] is None:
                verb = out[runs[0]].split(":", 1)[0]
                out[sid] = f"may run: its cyclic group runs ({runs[0]} {verb})"
    return out


def explain(root: Path, names: Sequence[str], cwd: Path, *, everything: bool = False,
            width: int | None = None) -> list[str]:
    """The lines of `cpod explain`: the steps that would run, each with its
    first cause and command; ``everything``: every step, with its last run
    too.  ``width``: shorten each command to that many characters (one
    terminal line); None shows it whole."""
    _, plan = resolve(root, names, cwd)
    records, files = load_state(root)
    cache = StatCache(root, files)
    graph = BuildGraph.from_plan(plan, {sid: r.discovered for sid, r in records.items()
                                        if r.discovered})
    now_of = verdicts(graph, records, cache.digest, root)
    # A pack rule the project replaced or extended says so, once.
    lines = [n for n in dict.fromkeys(s.rule.customised() for s in plan.steps.values()) if n]
    for sid, step in reversed(list(plan.steps.items())):
        now = now_of[sid]
        if now is None and not everything:
            continue
        command = step.display()
        if width is not None:
            command = shorten(command, width - len(COMMAND_PREFIX))
        lines += [sid, f"  now: {'up to date' if now is None else now}",
                  COMMAND_PREFIX + command]
        if everything:
            lines += last_run(records.get(sid))
    lines.append(tally(sum(1 for now in now_of.values() if now is not None), len(now_of),
                       everything))
    return lines


def last_run(record) -> list[str]:
    if record is None:
        return ["  last run: never"]
    when = datetime.datetime.fromtimestamp(record.finished_ns / 1e9).isoformat(
        sep=" ", timespec="seconds") if record.finished_ns else "?"
    verdict = "ok" if record.status == "ok" else f"FAILED ({record.reason})"
    lines = [f"  last run: {when}, {verdict}, {record.duration_s:.2f} s"]
    if record.status == "ok" and record.reason:
        lines.append(f"  it ran because: {record.reason}")
    if record.discovered:
        lines.append(f"  discovered inputs: {', '.join(record.discovered)}")
    return lines


def tally(stale: int, total: int, everything: bool) -> str:
    if not stale:
        return f"nothing would run: {'the' if total == 1 else 'all'} {total} " \
               f"step{'' if total == 1 else 's'} up to date"
    text = f"{stale} of {total} steps would run"
    if not everything and stale < total:
        text += " (`cpod explain --all` shows every step)"
    return text


def shorten(text: str, width: int) -> str:
    """``text`` on one line of at most ``width`` characters: runs of white
    space (a script's newlines) become one space, and a cut ends in an
    ellipsis."""
    one_line = " ".join(text.split())
    width = max(width, 20)          # a very narrow terminal still shows a start
    if len(one_line) <= width:
        return one_line
    return one_line[:width - len(ELLIPSIS)] + ELLIPSIS


MAX_CHANGED = 20        # inputs listed as changed in one step's answer


def explain_step(root: Path, step_id: str, names: Sequence[str]) -> dict:
    """Why one step of the graph of ``names`` would run now (its "now" line,
    as `cpod explain` says it), every input whose hash differs from its last
    run's (how: changed, new since, or dropped; a hash None: the file was
    missing), and its last run as recorded; raises NotFound for a step the graph does not have."""
    from computepods.errors import NotFound
    from computepods.planning.staleness import input_digest
    _, plan = resolve(root, names, root)
    step = plan.steps.get(step_id)
    if step is None:
        raise NotFound(f"no step {step_id!r} in the graph of "
                       f"{' '.join(names) or 'the default targets'}")
    records, files = load_state(root)
    cache = StatCache(root, files)
    graph = BuildGraph.from_plan(plan, {sid: r.discovered for sid, r in records.items()
                                        if r.discovered})
    now = verdicts(graph, records, cache.digest, root)[step_id]
    record = records.get(step_id)
    changed = []
    if record is not None:
        for path in input_paths(step, record):
            new = input_digest(step, path, cache.digest, root)
            if path not in record.inputs:
                changed.append({"path": path, "how": "new", "old": None, "new": new})
            elif record.inputs[path] != new:
                changed.append({"path": path, "how": "changed", "old": record.inputs[path],
                                "new": new})
        changed += [{"path": p, "how": "dropped", "old": h, "new": None}
                    for p, h in record.inputs.items()
                    if p not in step.inputs and p not in record.discovered]
    last = None if record is None else {
        "status": record.status, "finished_ns": record.finished_ns,
        "duration_s": record.duration_s, "reason": record.reason,
        "lines": last_run(record)}
    return {"step": step_id, "now": "up to date" if now is None else now,
            "changed": changed[:MAX_CHANGED], "changed_total": len(changed),
            "command": step.display(), "last_run": last,
            "outputs": list(record.outputs) if record is not None else list(step.outputs)}
