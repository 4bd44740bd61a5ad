"""What a watching pod knows without looking: which builds are still fresh.

A pod that runs an FSWatcher hears of every settled change in its tree.  So
when a build of some targets succeeded and no change has been heard since it
started, the same request is a no-op, answered with no scan of the tree.
:class:`Freshness` keeps that knowledge for the MajorDomo:

- a *generation* counts the changes heard; a build remembers the generation
  it started at, and on success marks its request fresh at that generation;
- the chefs' own commits are not changes: an ``fs.changed`` whose stat
  matches an output the MajorDomo just recorded is dropped, and one that
  names an output of the running build before its result arrived is held
  until the result says whether it was the commit;
- a change heard while a build runs makes one follow-up build of the pod's
  watch targets (:meth:`want_follow_up`), however many changes there were;
- only files a build here has used count: its inputs (declared and
  discovered), its outputs, and the project file, and a file one of its
  globs would find (``src/*.c``: a new C file is news).  A log or an
  editor's swap file elsewhere in the tree rebuilds nothing.  (Matching is
  goal-directed, so a file no plan names cannot change what a plan does.)

Plain logic, no threads: the MajorDomo calls it from its own thread.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from computepods.paths import PROJECT_FILE
from computepods.project.globs import matches

StatKey = tuple[int, int]           # (size, mtime_ns); None for a deleted file

RequestKey = tuple[str, tuple[str, ...]]   # (cwd, targets as asked)

_NOT_HELD = object()


def request_key(cwd: str, targets: Iterable[str]) -> RequestKey:
    return (cwd, tuple(targets))


@dataclass
class Freshness:
    generation: int = 0
    fresh: dict[RequestKey, tuple[int, int]] = field(default_factory=dict)  # (generation, steps)
    committed: dict[str, StatKey | None] = field(default_factory=dict)
    held: dict[str, StatKey | None] = field(default_factory=dict)
    building_outputs: frozenset[str] = frozenset()
    follow_up: bool = False          # a change arrived that no build has seen yet
    relevant: set[str] = field(default_factory=lambda: {PROJECT_FILE})
    last_changes: list[str] = field(default_factory=list)
    planless: bool = False           # the last plan failed: any change may mend it
    globs: set[str] = field(default_factory=set)    # the globs of the builds' inputs

    # -- what the watcher says ---------------------------------------------------
    def heard(self, path: str, stat: StatKey | None) -> bool:
        """One settled change; True when it is a real change (not our commit).
        After a failed plan every change counts: the missing source, or a file
        where a pattern could match, may have appeared (no plan says which)."""
        if (path not in self.relevant and not self.planless
                and not any(matches(g, path) for g in self.globs)):
            return False
        if path in self.committed:
            if self.committed[path] == stat:
                return False
            del self.committed[path]        # changed again after our commit
        if path in self.building_outputs:
            self.held[path] = stat          # judged when its step's result arrives
            return False
        self._changed(path)
        return True

    def heard_report(self, data: dict) -> None:
        """A cp.fs.changed payload (a move is a deletion and a change)."""
        stat = None if data["kind"] == "deleted" else (data.get("size"), data.get("mtime_ns"))
        self.heard(data["path"], stat)
        if data.get("moved_from"):
            self.heard(data["moved_from"], None)

    def _changed(self, path: str) -> None:
        self.generation += 1
        self.follow_up = True
        self.last_changes = (self.last_changes + [path])[-20:]

    # -- what the MajorDomo does -------------------------------------------------
    def fresh_steps(self, key: RequestKey) -> int | None:
        """The step count of a build that is still fresh, or None."""
        generation, steps = self.fresh.get(key, (-1, 0))
        return steps if generation == self.generation else None

    def build_started(self, outputs: Iterable[str], uses: Iterable[str] = (),
                      globs: Iterable[str] = ()) -> int:
        """A build starts: the generation it sees, which outputs it may
        commit, every path it uses (inputs and outputs), and the globs its
        inputs were found by."""
        self.planless = False
        self.globs.update(globs)
        self.building_outputs = frozenset(outputs)
        self.relevant.update(self.building_outputs)
        self.relevant.update(uses)
        self.follow_up = False
        return self.generation

    def recorded_outputs(self, outputs: dict[str, StatKey], discovered: Iterable[str] = ()) -> None:
        """A step's committed outputs (their watcher echoes are not changes)
        and the inputs it was found to read."""
        self.relevant.update(discovered)
        for path, stat in outputs.items():
            held = self.held.pop(path, _NOT_HELD)
            if held is _NOT_HELD:
                self.committed[path] = stat
            elif held != stat:
                self._changed(path)

    def build_finished(self, key: RequestKey | None, started_at: int, ok: bool,
                       steps: int = 0) -> None:
        """Held reports no result explained are real changes; a success is fresh."""
        self.building_outputs = frozenset()
        for path in list(self.held):
            del self.held[path]
            self._changed(path)
        if ok and key is not None:
            self.fresh[key] = (started_at, steps)

    def plan_failed(self) -> None:
        """A request could not be planned (a missing source, a broken
        project file): until a plan succeeds, every change may mend it."""
        self.planless = True

    def want_follow_up(self) -> bool:
        """True once per batch of changes: the caller queues one build."""
        wanted, self.follow_up = self.follow_up, False
        return wanted
