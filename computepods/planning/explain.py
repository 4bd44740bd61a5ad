"""Why a step ran, or would run: `cpod explain TARGET` and `build --explain`.

For each step the target needs (its own step last), it says whether the step
is up to date as the files are now, and if not, the first reason found (an
input that changed with its old and new hash, the command, an output
missing or edited by hand); and why it ran the last time, as recorded.

Steps are judged in the build's order (the graph's components, topologically)
so a step whose input another step will rebuild is not called up to date:
it runs unless that input comes out unchanged (early cutoff), as the build
would judge it.  Nothing runs.
"""
from __future__ import annotations

import datetime
from pathlib import Path
from typing import Sequence

from computepods.planning.graph import BuildGraph
from computepods.state.hashing import StatCache
from computepods.planning.plan import load_state, resolve
from computepods.planning.staleness import input_paths, stale_on_disk


def verdicts(graph: BuildGraph, records: dict, digest, root: Path) -> dict[str, str | None]:
    """Each step's "now" line: None when up to date, else why it would run."""
    plan = graph.plan
    out: dict[str, str | None] = {}
    for comp in graph.components:
        for sid in comp.steps:
            step = plan.steps[sid]
            own = stale_on_disk(step, records.get(sid), digest, root)
            out[sid] = None if own is None else f"would run: {own}"
        runs = [s for s in comp.steps if out[s] is not None]
        for sid in comp.steps:
            if out[sid] is not None:
                continue
            step = plan.steps[sid]
            for path in input_paths(step, records.get(sid)):
                producer = plan.producers.get(path)
                if producer is not None and producer != sid and out.get(producer) is not None:
                    out[sid] = (f"may run: input {path} will be rebuilt by {producer} "
                                f"(it runs unless {path} comes out unchanged)")
                    break
            if out[sid] is None and comp.cyclic and runs:
                out[sid] = f"may run: its cyclic group runs ({runs[0]} would run)"
    return out


def explain(root: Path, names: Sequence[str], cwd: Path) -> list[str]:
    _, plan = resolve(root, names, cwd)
    records, files = load_state(root)
    cache = StatCache(root, files)
    graph = BuildGraph.from_plan(plan, {sid: r.discovered for sid, r in records.items()
                                        if r.discovered})
    now_of = verdicts(graph, records, cache.digest, root)
    # A pack rule the project replaced or extended says so, once.
    lines = [n for n in dict.fromkeys(s.rule.customised() for s in plan.steps.values()) if n]
    for sid, step in reversed(list(plan.steps.items())):
        record = records.get(sid)
        now = now_of[sid]
        command = step.display()
        lines.append(f"{sid}")
        lines.append(f"  now: {'up to date' if now is None else now}")
        lines.append(f"  command: {command}")
        if record is None:
            lines.append("  last run: never")
        else:
            when = datetime.datetime.fromtimestamp(record.finished_ns / 1e9).isoformat(
                sep=" ", timespec="seconds") if record.finished_ns else "?"
            verdict = "ok" if record.status == "ok" else f"FAILED ({record.reason})"
            lines.append(f"  last run: {when}, {verdict}, {record.duration_s:.2f} s")
            if record.status == "ok" and record.reason:
                lines.append(f"  it ran because: {record.reason}")
            if record.discovered:
                lines.append(f"  discovered inputs: {', '.join(record.discovered)}")
    return lines
