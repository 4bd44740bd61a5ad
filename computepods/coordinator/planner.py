"""How the MajorDomo gets a judged plan for each build request.

A pod that does not watch its tree plans every request from the project
file and the state database (:func:`~computepods.planning.request.plan_request`),
or takes the plan its own ``cpod build`` handed it.  A watching pod (``cpod
up``, a background pod) also deletes the outputs no rule makes any more, and
tells its Freshness that their echoes are its own.

Once its pod's watcher is live (:meth:`Planner.trust`), a watching pod keeps
its plans, records and files in memory (:mod:`computepods.planning.hot`): a
build judges only what changed and what is downstream of it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable

from computepods.charts.store import Record
from computepods.planning.hot import RESCAN, HotPlans, Watched
from computepods.planning.plan import BuildPlan
from computepods.planning.request import HandedPlans, plan_request
from computepods.planning.resolve import Step
from computepods.planning.scheduler import Scheduler
from computepods.watch.freshness import Freshness



def stat_report(root: Path, path: str) -> dict:
    """What the watcher would report of `path` if it settled now."""
    try:
        st = os.stat(os.path.join(root, path))
    except OSError:
        return {"root": str(root), "path": path, "kind": "deleted"}
    return {"root": str(root), "path": path, "kind": "modified", "size": st.st_size,
            "mtime_ns": st.st_mtime_ns}


class Planner:
    def __init__(self, root: Path, *, handed: HandedPlans | None, freshness: Freshness | None,
                 store: Callable[[Record], None], check: Callable[[BuildPlan], None],
                 heard_change: Callable[[dict], None] = lambda data: None):
        """`store(record)`: how records reach the Store (orphans' are dropped);
        `check(bp)` raises when no chef can build the plan (a tool missing);
        `heard_change(data)` hears every cp.fs.changed of this tree (a burst)."""
        self.root = Path(root)
        self.heard_change = heard_change
        self.store = store
        self.check = check
        self.handed = handed
        self.freshness = freshness
        self.hot: HotPlans | None = None

    def forget(self, steps: list[str], files: list[str]) -> None:   # orphans' records
        self.store(Record(token=None, drop_steps=steps, drop_files=files))

    def trust(self, watched: Watched) -> None:
        """The pod's watcher reports every change of the paths `watched`
        accepts, from now on: keep plans hot.  Call before the first request."""
        if self.freshness is not None:
            self.hot = HotPlans(self.root, watched)

    def plan(self, data: dict) -> BuildPlan:
        """The plan of a build.request; raises ComputePodsError (exit 2)."""
        if self.hot is not None:
            try:
                bp = self.hot.plan(data, self.forget)
                self.check(bp)
                return bp
            except BaseException:
                self.hot.finished(None)
                raise
        watching = self.freshness is not None
        bp, removed = plan_request(self.root, data, tidy=self.forget if watching else None,
                                   handed=self.handed)
        if removed:
            self.freshness.recorded_outputs(dict.fromkeys(removed))   # their echoes
        self.check(bp)
        return bp

    def uses(self, bp: BuildPlan) -> Iterable[Step]:
        """The steps of the build planned last whose paths Freshness hears of."""
        return self.hot.uses() if self.hot is not None else bp.plan.steps.values()

    def finished(self, scheduler: Scheduler | None, crashed: bool = False) -> None:
        """The build planned last is over (None: it never started).  After a
        crash of the MajorDomo, nothing it knew is trusted."""
        if self.hot is not None:
            if crashed:
                self.hot.everything_changed()
            self.hot.finished(None if crashed else scheduler)

    # -- what a watching pod hears -----------------------------------------------------
    def heard(self, data: dict) -> None:
        """A settled change (cp.fs.changed) reaches Freshness, unless a hot
        pod knows it is no news (its own commit's echo, a change it built)."""
        if self.freshness is None or data.get("root") != str(self.root):
            return
        self.heard_change(data)
        if self.hot is None or self.hot.heard(data):
            self.freshness.heard_report(data)

    def dirty(self, data: dict) -> list[str]:
        """A build request names files still changing (the watcher's queue,
        drained at the request): each is heard now, with its stat now, so a
        chef's commit whose echo is still settling is no news, while an edit
        is.  (A hot pod's plan judges them anew all the same.)  The files
        it found gone: the watcher need not report them again."""
        paths = data.get("dirty") or []
        if self.freshness is None or not isinstance(paths, list):
            return []
        paths = [p for p in paths if isinstance(p, str)]
        if RESCAN in paths:
            self.freshness.fresh.clear()         # anything may have changed (the plan: hot.dirty)
        gone = []
        for path in paths:
            if path != RESCAN:
                self.heard(report := stat_report(self.root, path))
                if report["kind"] == "deleted":
                    gone.append(path)
        return gone

    def recorded(self, record: Record) -> None:
        """What the MajorDomo sends its Store: the hot records follow."""
        if self.hot is not None:
            self.hot.recorded(record.steps, record.files, record.drop_steps, record.drop_files)
