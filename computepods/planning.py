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
from .hashing import StatCache
from .project import STATE_DIR, Project, load_project
from .rules import Plan, RuleSet
from .schedule import Scheduler
from .state import StateDB

STATE_DB = f"{STATE_DIR}/state.db"


@dataclass
class BuildPlan:
    project: Project
    plan: Plan
    graph: BuildGraph
    scheduler: Scheduler


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
    with StateDB(root / STATE_DB, readonly=True) as db:
        records = db.steps()
        files = db.files()
    graph = BuildGraph.from_plan(plan, {sid: r.discovered for sid, r in records.items()
                                        if r.discovered})
    scheduler = Scheduler(graph, records, StatCache(root, files),
                          keep_going=keep_going, dry_run=dry_run)
    return BuildPlan(project, plan, graph, scheduler)
