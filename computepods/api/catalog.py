"""The answers to the REST app's questions about a project, read from disk.

Plain functions over the project file, the state database (read-only) and
the kept step logs; the Desk chart calls them and the REST app shows what
they return.  Every path a caller gives is checked to stay in the project;
a name the project does not know raises :class:`~computepods.errors.NotFound`
or, for targets, the planner's own errors.
"""
from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Iterable, Sequence

from computepods.errors import NotFound, PathEscapesWorkspace
from computepods.paths import STATE_DB
from computepods.planning.plan import load_state, resolve
from computepods.state.db import StateDB

UP_TO_DATE, STALE, BUILDING, FAILED = "up_to_date", "stale", "building", "failed"
DOT_COLOURS = {UP_TO_DATE: "#b7e1b0", STALE: "#f6d98b", BUILDING: "#9cc7f0", FAILED: "#f0a0a0",
               "cancelled": "#e0c0a0", "not_run": "#e4e4e4"}     # the last two: a build's overlay


def check_path(path: str, what: str = "path") -> str:
    """A project path in normal form; raises PathEscapesWorkspace (a 400)
    for an absolute path, one with a ``..`` component, the project itself
    (``.``) or an empty one: what the document's PROJECT_PATH pattern says
    (api/openapi.py)."""
    if not isinstance(path, str) or not path or "\0" in path:
        raise PathEscapesWorkspace(f"{what} {path!r} is not a path inside the project")
    normal = posixpath.normpath(path)
    if path.startswith("/") or ".." in path.split("/") or normal == ".":
        raise PathEscapesWorkspace(f"{what} {path!r} is not a path inside the project")
    return normal


def check_targets(root: Path, names: Sequence[str]) -> list[str]:
    """The project paths a build of `names` would make; raises what a build
    would fail with before it starts (UnknownTarget, ProjectError, ...)."""
    _, plan = resolve(root, list(names), root)
    return plan.targets


# -- artefacts -----------------------------------------------------------------

def _artefact(record, producers: dict[str, str]) -> dict:
    return {"path": record.path, "sha256": record.sha256, "size": record.size,
            "mtime_ns": record.mtime_ns, "step": producers.get(record.path)}


def _producers(steps) -> dict[str, str]:
    return {path: sid for sid, r in steps.items() if r.status == "ok" and not sid.startswith("cycle:")
            for path in r.outputs}


def artefacts(root: Path, prefix: str = "") -> list[dict]:
    """Every file the state database knows (sources and outputs), by path;
    `prefix` keeps those whose path starts with it."""
    if prefix:
        check_path(prefix.rstrip("/") or prefix, "prefix")
    steps, files = load_state(root)
    producers = _producers(steps)
    return [_artefact(files[p], producers) for p in sorted(files) if p.startswith(prefix)]


def artefact(root: Path, path: str) -> dict:
    path = check_path(path)
    steps, files = load_state(root)
    if path not in files:
        raise NotFound(f"no artefact {path!r}: the pod has no record of it")
    return _artefact(files[path], _producers(steps))


# -- the graph -----------------------------------------------------------------

def graph(root: Path, names: Sequence[str], building: Iterable[str] = ()) -> dict:
    """The dependency graph of `names` (none: the project's default) with
    each step's state as the files are now: building (a running build runs
    it), failed (its last run failed), stale (it would run, or a step it
    reads from would), up to date."""
    return judged_graph(root, names, building)[0]


def judged_graph(root: Path, names: Sequence[str], building: Iterable[str] = ()):
    """:func:`graph`, and the plan's basis (its probes and globs: what,
    besides the files' stats, the answer rests on; api/graphcache.py)."""
    from computepods.planning.graph import BuildGraph
    from computepods.state.hashing import StatCache
    from computepods.planning.staleness import input_paths, stale_on_disk

    _, plan = resolve(root, list(names), root)
    records, files = load_state(root)
    g = BuildGraph.from_plan(plan, {sid: r.discovered for sid, r in records.items()
                                    if r.discovered})
    cache = StatCache(root, files)
    cyclic = [c for c in g.components if c.cyclic]
    cycle_of = {sid: i for i, c in enumerate(cyclic) for sid in c.steps}
    building = set(building)
    states: dict[str, str] = {}
    for comp in g.components:                   # topological order: producers first
        for sid in comp.steps:
            step, record = plan.steps[sid], records.get(sid)
            if sid in building:
                states[sid] = BUILDING
            elif record is not None and record.status != "ok":
                states[sid] = FAILED
            elif stale_on_disk(step, record, cache.digest, root) is not None or any(
                    states.get(p) in (STALE, FAILED, BUILDING) for p in g.deps[sid] if p != sid):
                states[sid] = STALE
            else:
                states[sid] = UP_TO_DATE
    nodes = [{"id": sid, "rule": plan.steps[sid].rule.name,    # producers first
              "inputs": input_paths(plan.steps[sid], records.get(sid)),
              "outputs": list(plan.steps[sid].outputs), "state": states[sid],
              "cycle": cycle_of.get(sid)}
             for sid in states]
    edges = sorted([p, sid] for sid, deps in g.deps.items() for p in deps if p != sid)
    return ({"targets": list(plan.targets), "nodes": nodes, "edges": edges,
             "cycles": [list(c.steps) for c in cyclic]}, getattr(plan, "basis", None))


def _dot_id(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def graph_dot(g: dict) -> str:
    """The graph as Graphviz text: steps filled by state, cycles boxed."""
    lines = ["digraph computepods {", "  rankdir=LR;",
             '  node [shape=box, style="rounded,filled", fontname="sans-serif"];']
    for i, members in enumerate(g["cycles"]):
        lines.append(f'  subgraph cluster_cycle{i} {{ label="cycle {i}"; style=dashed;')
        lines += [f"    {_dot_id(sid)};" for sid in members]
        lines.append("  }")
    for node in g["nodes"]:
        lines.append(f"  {_dot_id(node['id'])} [fillcolor={_dot_id(DOT_COLOURS[node['state']])},"
                     f" tooltip={_dot_id(node['state'])}];")
    lines += [f"  {_dot_id(a)} -> {_dot_id(b)};" for a, b in g["edges"]]
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- steps ---------------------------------------------------------------------

def step_log(root: Path, step_id: str, failure: dict | None = None) -> dict:
    """What a step printed the last time it ran (the kept logs of a local
    chef, else the tails its fail event carried), with its command and
    exit code."""
    from computepods.chef.slot import log_paths
    from computepods.chef.tails import tail

    with StateDB(root / STATE_DB, readonly=True) as db:
        record = db.step(step_id)
    out, err = log_paths(root, step_id)
    kept = out.exists() or err.exists()
    if record is None and failure is None and not kept:
        raise NotFound(f"no step {step_id!r} has run in this project")
    ev = failure if failure and (record is None or record.status != "ok") else {}
    if record is not None:
        status, code, reason, command = (record.status, record.exit_code, record.reason,
                                         record.command)
    else:
        status = "failed" if failure else "unknown"
        code, reason, command = ev.get("exit_code"), ev.get("reason"), ev.get("command")
    return {"step": step_id, "status": status, "exit_code": code, "reason": reason or "",
            "command": command or "",
            "stdout": tail(out) if kept else ev.get("stdout_tail") or "",
            "stderr": tail(err) if kept else ev.get("stderr_tail") or ""}


def step_why(root: Path, step_id: str, names: Sequence[str]) -> dict:
    """One step's explain (planning/explain.py: explain_step) and the
    artefacts it made, each with its size, hash and the step the records
    say made it."""
    from computepods.planning.explain import explain_step
    why = explain_step(root, step_id, list(names))
    steps, files = load_state(root)
    producers = _producers(steps)
    outputs = why.pop("outputs")
    why["artefacts"] = [_artefact(files[p], producers) if p in files else
                        {"path": p, "sha256": None, "size": None, "mtime_ns": None, "step": None}
                        for p in outputs]
    return why


def explain_target(root: Path, target: str) -> dict:
    """Every step, commands whole (`cpod explain --all -v`): a client picks."""
    from computepods.planning.explain import explain
    return {"target": target, "lines": explain(root, [target], root, everything=True)}
