"""A watching pod's plans, records and files, kept in memory: O(changes).

A pod whose FSWatcher hears every change in its tree need not look at the
tree to know what is stale.  :class:`HotPlans` keeps, across builds:

- the **plans** of the requests it has seen (project, plan and graph), until
  the project file changes or a file appears or disappears where their
  resolution looked (the plan's probes) or where one of their globs
  matches (a file a glob would find is created, or one it found deleted);
- the **records** (steps and files), read from the state database once and
  then kept equal to what the MajorDomo sends its Store;
- the **verified** files: the hash of each file it has judged since the
  watcher started, trusted until the watcher reports a change to it (or the
  build request names it as still changing, :meth:`dirty`);
- the **clean** steps: judged up to date (or built) with nothing they read
  or write changed since.

A build then judges only the steps that are not clean, and everything
downstream of them (which an early cutoff may still leave up to date): the
other steps are up to date by induction, counted as such and not looked at.
A no-op looks at no file, and an edit costs the steps it reaches.

What the watcher cannot see is never trusted: a path outside the tree,
under an ignored name or pattern, or reached through a symbolic link is
stat-checked on every build, as a cold build does.  The proof that all
this equals a cold judgement is ``tests/integration/test_incremental_property.py``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from computepods.paths import PROJECT_FILE
from computepods.planning.graph import BuildGraph
from computepods.planning.job import State
from computepods.planning.plan import (BuildPlan, load_state, needs_for, remove_orphans, resolve,
                                       with_needed_steps)
from computepods.planning.resolve import Plan, Step
from computepods.planning.scheduler import Scheduler
from computepods.planning.staleness import input_paths
from computepods.project.globs import glob_news
from computepods.state.db import STATUS_OK, StepRecord
from computepods.state.hashing import FileRecord, StatCache, is_racy
from computepods.watch.debounce import ANYTHING

Watched = Callable[[str], bool]        # project-relative path -> the watcher sees it change
Tidy = Callable[[list, list], None]    # (step ids, paths): records to drop
RESCAN = ANYTHING                      # in a request's `dirty`: anything may have changed
MAX_PLANS = 16                         # request plans kept (a pod serves a few targets)
_MISS = object()


@dataclass
class _Entry:
    """A request's plan, and its whole graph (for what is downstream)."""
    project: object
    plan: Plan
    graph: BuildGraph | None = None
    used: bool = False               # a build of it told Freshness every path it uses


@dataclass
class HotPlans:
    root: Path
    watched: Watched
    records: dict[str, StepRecord] | None = None
    files: dict[str, FileRecord] = field(default_factory=dict)
    verified: dict[str, str | None] = field(default_factory=dict)   # path -> sha256 / missing
    clean: set[str] = field(default_factory=set)
    users: dict[str, set[str]] = field(default_factory=dict)        # path -> clean steps using it
    plans: dict[tuple, _Entry] = field(default_factory=dict)
    changed_in_build: set[str] = field(default_factory=set)
    building: bool = False
    orphans_due: bool = True         # a deletion or a new project file: look for orphans
    _judging: tuple[_Entry, Plan] | None = None      # the build planned last, while it runs

    # -- what the watcher says -----------------------------------------------------
    def heard(self, data: dict) -> bool:
        """A cp.fs.changed report; False when it is no news: the file has the
        stat it was judged or committed with (a build's own commit, or a
        change a build already saw through :meth:`dirty`)."""
        path = data["path"]
        news = False
        if data.get("moved_from"):
            news = self.changed(data["moved_from"], exists=False)
        if data.get("kind") == "deleted":
            return self.changed(path, exists=False) or news
        rec = self.files.get(path)
        if (path in self.verified and rec is not None and self.verified[path] == rec.sha256
                and (rec.size, rec.mtime_ns) == (data.get("size"), data.get("mtime_ns"))
                and not is_racy(rec)):
            return news
        return self.changed(path, exists=True) or news

    def dirty(self, paths: Iterable[str]) -> None:
        """Files a build request found still changing (the watcher's queue,
        drained at the request): judged afresh; RESCAN: everything is."""
        paths = list(paths)
        if RESCAN in paths:
            self.everything_changed()
        for path in paths:
            self.changed(path)

    def changed(self, path: str, exists: bool | None = None) -> bool:
        """Forget what was known of `path`; `exists`: whether it is there
        now (None: look), for the plans whose resolution asked."""
        if path == PROJECT_FILE:
            self.plans.clear()
            self.clean.clear()
            self.users.clear()
            self.orphans_due = True
        if exists is None:
            exists = os.path.isfile(os.path.join(self.root, path))
        if not exists:
            self.orphans_due = True
        if self.building:
            self.changed_in_build.add(path)
        self.verified.pop(path, None)
        for sid in self.users.pop(path, ()):
            self.clean.discard(sid)
        for key, entry in list(self.plans.items()):
            basis = entry.plan.basis
            if basis is not None and (basis.probes.get(path, exists) != exists
                                      or glob_news(basis.globs, path, exists)):
                del self.plans[key]          # it may resolve differently now
        return True

    def everything_changed(self) -> None:
        self.verified.clear()
        self.clean.clear()
        self.users.clear()
        self.plans.clear()
        self.orphans_due = True

    # -- what the MajorDomo sends its Store ---------------------------------------------
    def recorded(self, steps: Iterable[StepRecord] = (), files: Iterable[FileRecord] = (),
                 drop_steps: Iterable[str] = (), drop_files: Iterable[str] = ()) -> None:
        if self.records is None:
            return                           # not read yet: the first plan reads the database
        for rec in steps:
            old = self.records.get(rec.step_id)
            if old is None or old.discovered != rec.discovered:
                for entry in self.plans.values():
                    entry.graph = None       # new edges: the graph is drawn again
            self.records[rec.step_id] = rec
            self.clean.discard(rec.step_id)
        for sid in drop_steps:
            self.records.pop(sid, None)
            self.clean.discard(sid)
        for f in files:
            # Hashed during the build: trusted unless it changed since (the
            # records of the build's end were hashed long before they are sent).
            self.files[f.path] = f
            if not is_racy(f) and self.watched(f.path) and f.path not in self.changed_in_build:
                self.verified[f.path] = f.sha256
            else:
                self.verified.pop(f.path, None)
        for path in drop_files:
            self.files.pop(path, None)
            self.verified.pop(path, None)

    # -- a build ---------------------------------------------------------------------
    def plan(self, data: dict, tidy: Tidy | None) -> BuildPlan:
        """The judged plan of a request: the request's whole plan, and a
        Scheduler of only what may be stale.  Raises ComputePodsError."""
        if self.records is None:
            self.records, self.files = load_state(self.root)
        self.dirty(data.get("dirty") or ())
        cwd = Path(data.get("cwd") or self.root)
        key = (str(cwd), tuple(str(t) for t in data["targets"]))
        entry = self._entry(key, cwd)
        if tidy is not None and self.orphans_due and not data.get("dry_run"):
            self.orphans_due = False
            removed, _ = remove_orphans(self.root, entry.project, entry.plan, self.records,
                                        write=tidy)
            if removed:
                self.plans.pop(key, None)
                entry = self._entry(key, cwd)
        if entry.graph is None:
            entry.plan = with_needed_steps(self.root, entry.project, entry.plan, self.records)
            entry.graph = BuildGraph.from_plan(entry.plan, self._discovered())
        affected = self._affected(entry)
        sub = Plan({sid: step for sid, step in entry.plan.steps.items() if sid in affected},
                   entry.plan.producers, entry.plan.sources, entry.plan.targets,
                   entry.plan.basis)
        graph = BuildGraph.from_plan(sub, self._discovered(affected))
        scheduler = Scheduler(graph, dict(self.records), HotCache(self),
                              keep_going=bool(data.get("keep_going")),
                              dry_run=bool(data.get("dry_run")),
                              settled=len(entry.plan.steps) - len(sub.steps),
                              needs=needs_for(self.root, entry.project, sub))
        self.building = True
        self.changed_in_build.clear()
        self._judging = (entry, sub)
        return BuildPlan(entry.project, entry.plan, graph, scheduler)

    def uses(self) -> Iterable[Step]:
        """The steps of the build just planned whose paths Freshness must
        hear of: all the first time a plan builds, then only those judged."""
        entry, sub = self._judging
        if entry.used:
            return sub.steps.values()
        entry.used = True
        return entry.plan.steps.values()

    def finished(self, scheduler: Scheduler | None) -> None:
        """A build ended (None: it never started): the steps it judged up to
        date or built, and that nothing changed under while it ran, are clean."""
        self.building = False
        judged, self._judging = self._judging, None
        if scheduler is None or judged is None or scheduler.dry_run:
            return
        direct = seen_directly(self.root)
        for sid, step in judged[1].steps.items():
            rec = self.records.get(sid)
            if (scheduler.state_of(sid) not in (State.DONE, State.SKIPPED) or rec is None
                    or rec.status != STATUS_OK):
                self.clean.discard(sid)
                continue
            paths = {*rec.inputs, *step.outputs, *rec.outputs}
            if (paths & self.changed_in_build or not all(map(self.watched, paths))
                    or not all(map(direct, paths))):
                self.clean.discard(sid)      # what the watcher cannot see is looked at
                continue
            self.clean.add(sid)
            for path in paths:
                self.users.setdefault(path, set()).add(sid)
        self.changed_in_build.clear()

    # -- inside ------------------------------------------------------------------
    def _entry(self, key: tuple, cwd: Path) -> _Entry:
        entry = self.plans.get(key)
        if entry is None:
            project, plan = resolve(self.root, list(key[1]), cwd)
            if len(self.plans) >= MAX_PLANS:
                self.plans.pop(next(iter(self.plans)))
            entry = self.plans[key] = _Entry(project, plan)
            for sid, step in plan.steps.items():   # a step whose inputs a glob changed
                rec = self.records.get(sid)
                if rec is not None and set(input_paths(step, rec)) != rec.inputs.keys():
                    self.clean.discard(sid)
        return entry

    def _affected(self, entry: _Entry) -> set[str]:
        """The steps that are not clean, and all downstream of them."""
        graph = entry.graph
        todo = [sid for sid in entry.plan.steps if sid not in self.clean]
        seen = set(todo)
        while todo:
            for dep in graph.dependants.get(todo.pop(), ()):
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return seen

    def _discovered(self, only: set[str] | None = None) -> dict[str, list[str]]:
        """The inputs earlier runs found, of every step or of those `only`."""
        records = self.records
        chosen = records if only is None else (s for s in only if s in records)
        return {sid: records[sid].discovered for sid in chosen if records[sid].discovered}


class HotCache(StatCache):
    """A :class:`StatCache` that answers from what the pod verified, and
    verifies (stat, hash if needed) what it has not, sharing the pod's records."""

    def __init__(self, hot: HotPlans):
        super().__init__(hot.root, {})
        self._records = hot.files            # shared: what it hashes, the pod knows
        self._hot = hot
        self._seen_directly = seen_directly(hot.root)     # for this build

    def digest(self, path: str) -> str | None:
        hit = self._hot.verified.get(path, _MISS)
        if hit is not _MISS:
            return hit
        sha = super().digest(path)
        if self._hot.watched(path) and self._seen_directly(path):
            self._hot.verified[path] = sha
        return sha


def seen_directly(root: Path) -> Callable[[str], bool]:
    """Whether a project path's changes reach the watcher, which does not
    follow symbolic links: no link on the way, nor the file itself.  Each
    directory's answer is kept by the function returned, so make one per
    build (a wide build has a thousand files in one directory)."""
    prefix = os.path.join(os.fspath(root), "")
    real = os.path.join(os.path.realpath(prefix), "")
    direct_dirs: dict[str, bool] = {"": True}

    def seen(path: str) -> bool:
        parent = path.rpartition("/")[0]
        direct = direct_dirs.get(parent)
        if direct is None:
            direct = direct_dirs[parent] = os.path.realpath(prefix + parent) == real + parent
        return direct and not os.path.islink(prefix + path)
    return seen


def watched_by(ignored: Callable[[str, bool], bool]) -> Watched:
    """The paths a watcher with this ``ignored(rel, is_dir)`` reports changes of:
    inside the tree, and neither they nor a directory above them ignored."""
    known: dict[str, bool] = {}

    def watched(path: str) -> bool:
        hit = known.get(path)
        if hit is None:
            parts = path.split("/")
            hit = not (path[:1] == "/" or ".." in parts or "" in parts
                       or any(ignored("/".join(parts[:i]), True) for i in range(1, len(parts)))
                       or ignored(path, False))
            if len(known) > 100_000:
                known.clear()
            known[path] = hit
        return hit
    return watched
