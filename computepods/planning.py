"""From a build request to a judged plan: the plain part of the MajorDomo.

Load the project file, turn the requested names into project paths, resolve
them into steps (goal-directed, as make does), build the graph, and open a
:class:`~computepods.schedule.Scheduler` over the recorded state.  Every
error here is one the user fixes before anything runs (exit code 2).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .graph import BuildGraph
from .hashing import FileRecord, StatCache
from .project import STATE_DIR, Project, load_project
from .rules import Plan, RuleSet
from .schedule import Scheduler, stale_on_disk
from .state import StateDB

STATE_DB = f"{STATE_DIR}/state.db"


@dataclass
class BuildPlan:
    project: Project
    plan: Plan
    graph: BuildGraph
    scheduler: Scheduler


def prepare_state_dir(root: Path) -> Path:
    """`.computepods/` with a .gitignore of `*`, as design.md §2 says."""
    state = root / STATE_DIR
    state.mkdir(exist_ok=True)
    ignore = state / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    return state


def file_exists(root: Path):
    prefix = str(root) + os.sep

    def exists(path: str) -> bool:
        return os.path.isfile(prefix + path)
    return exists


def resolve(root: Path, names: Sequence[str], cwd: Path | None = None) -> tuple[Project, Plan]:
    """The project file and the steps the names need; no graph, no state.
    Raises ComputePodsError (exit 2) for anything the user must fix."""
    project = load_project(root)
    targets = project.target_paths(list(names), cwd or root)
    return project, RuleSet(project).resolve(targets, file_exists(root))


def make_plan(root: Path, names: Sequence[str], cwd: Path | None = None, *,
              keep_going: bool = False, dry_run: bool = False) -> BuildPlan:
    """Everything a build needs to start; raises ComputePodsError (exit 2)."""
    project, plan = resolve(root, names, cwd)
    records, files = load_state(root)
    graph = BuildGraph.from_plan(plan, {sid: r.discovered for sid, r in records.items()
                                        if r.discovered})
    scheduler = Scheduler(graph, records, StatCache(root, files),
                          keep_going=keep_going, dry_run=dry_run)
    return BuildPlan(project, plan, graph, scheduler)


def load_state(root: Path) -> tuple[dict, dict]:
    """(step records, file records) from the state database, read once."""
    with StateDB(root / STATE_DB, readonly=True) as db:
        return db.steps(), db.files()


def up_to_date(root: Path, plan: Plan, state: tuple[dict, dict] | None = None,
               ) -> list[FileRecord] | None:
    """The cold no-op check: when every step is up to date as the files are
    now, the stat records refreshed on the way (to persist); else None.

    It uses the scheduler's judgement (:func:`stale_on_disk`) and needs
    neither NATS nor networkx: a no-op costs one stat per file.
    """
    records, files = state or load_state(root)
    if not records:
        return None
    cache = StatCache(root, files)
    seen: dict[str, str | None] = {}

    def digest(path: str) -> str | None:
        # An output is also its dependants' input: stat each file once.
        if path not in seen:
            seen[path] = cache.digest(path)
        return seen[path]

    for sid, step in plan.steps.items():
        record = records.get(sid)
        if record is None or stale_on_disk(step, record, digest, root) is not None:
            return None
    return cache.updated()


def save_file_records(root: Path, files: list[FileRecord]) -> None:
    """Persist refreshed stat records (only ever under the project lock)."""
    if files:
        with StateDB(root / STATE_DB) as db:
            db.write(files=files)


def remove_orphans(root: Path, project: Project, plan: Plan | None = None,
                   records: dict | None = None, write=None) -> tuple[list[str], list[str]]:
    """tup's rule: an output no rule produces any more (its rule left the
    project file, or its source is gone) is deleted, so undoing a change
    returns the tree to its earlier state.  Only tracked outputs that still
    hash as they were built are deleted — never a source, never a hand edit.
    Returns (removed, kept-with-a-reason).  Call under the project lock.
    `write(drop_steps, drop_files)` forgets them (default: straight to the
    state database; a running pod passes its Store's way).
    """
    from .hashing import sha256_file
    rules = RuleSet(project)
    exists = file_exists(root)
    removed, kept, drop = [], [], []
    if records is None:
        records = load_state(root)[0]
    planned = plan.steps if plan is not None else {}
    for sid, record in records.items():
        if sid in planned or sid.startswith("cycle:") or not record.outputs:
            continue                      # a step of this build is produced, by definition
        if any(rules.match(p, exists) is not None for p in record.outputs):
            continue
        for path, built in record.outputs.items():
            full = root / path
            if not full.is_file():
                continue
            if sha256_file(full) == built:
                full.unlink()
                removed.append(path)
            else:
                kept.append(f"{path} (changed since it was built)")
        drop.append(sid)
    if drop:
        if write is None:
            with StateDB(root / STATE_DB) as db:
                db.write(drop_steps=drop, drop_files=removed)
        else:
            write(drop, removed)
    return removed, kept


def check_tools(project: Project, plan: Plan) -> None:
    """Fail before anything runs when this machine's chef lacks a tool a
    pack rule of the plan needs (the embedded pod's chefs are local)."""
    from .errors import NoChefCanBuild
    packs = sorted({step.rule.pack for step in plan.steps.values() if step.rule.pack})
    if not packs:
        return
    from .packs import missing_tools
    for pack in packs:
        missing = missing_tools(pack, project.packs.get(pack))
        if missing:
            needing = [t for t in plan.targets
                       if any(s.rule.pack == pack for s in plan.steps.values())]
            raise NoChefCanBuild(
                f"no chef can build {', '.join(needing)}: the {pack} pack needs "
                f"{', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not "
                f"on PATH here (install it, or set a tool in [pack.{pack}])")
