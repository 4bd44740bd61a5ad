"""The Desk's judged graphs, kept while what they were judged from holds.

Judging 10,000 steps from disk (the project file, the plan, every step's
record and its inputs' stats) takes a second or more, and the page asks
many small questions of one graph (groups, a page of a group, a step, a
search).  So a :class:`GraphCache` keeps one
:class:`~computepods.api.graphindex.GraphIndex` per list of targets, with
its *basis*: the stat of the project file, the state database and every
input and output of every step, and the plan's probes and globs
(planning/plancache.py), taken before the judging began.  Asked again, it
answers from the index while the basis holds (a stat per file), and judges
again when it does not: an edited source shows stale at once.

A file whose mtime is not older than the judging's start (less the
racily-clean window of state/hashing.py) may have changed unseen within
one timestamp tick, so such a basis never holds.

While a build runs its files change all the time; the index judged at its
``plan`` event (or at the first question after) is kept as it is, and the
build's events say what changed (:class:`~computepods.api.graphindex.Overlay`).
The Desk calls :meth:`GraphCache.forget` on each ``plan`` and ``done``.
"""
from __future__ import annotations

import os
import stat as stat_mod
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from computepods.api.graphindex import GraphIndex
from computepods.paths import PROJECT_FILE, STATE_DB
from computepods.state.hashing import COARSE_RACY_WINDOW_NS, RACY_WINDOW_NS

StatKey = tuple[int, int, int] | None       # (size, mtime_ns, inode); None: no regular file
KEEP_GRAPHS = 4                             # lists of targets remembered
_SECOND_NS = 1_000_000_000


def stat_key(path: str) -> StatKey:
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat_mod.S_ISREG(st.st_mode):
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _racy(key: StatKey, started_ns: int) -> bool:
    if key is None:
        return False
    mtime = key[1]
    window = COARSE_RACY_WINDOW_NS if mtime % _SECOND_NS == 0 else RACY_WINDOW_NS
    return mtime >= started_ns - window


@dataclass
class Basis:
    """What one judged graph rests on (see the module docstring)."""
    root: Path
    stats: dict[str, StatKey]
    plan: object | None                     # the plan's plancache.Basis: probes, globs
    sure: bool                              # no stat was racily clean

    @classmethod
    def taken(cls, root: Path, graph: dict, plan_basis, started_ns: int) -> "Basis":
        prefix = os.path.join(root, "")
        paths = {PROJECT_FILE, STATE_DB, STATE_DB + "-wal"}
        for n in graph["nodes"]:
            paths.update(n["inputs"])
            paths.update(n["outputs"])
        stats = {p: stat_key(prefix + p) for p in paths}
        sure = not any(_racy(k, started_ns) for k in stats.values())
        return cls(root, stats, plan_basis, sure)

    def holds(self) -> bool:
        if not self.sure:
            return False
        prefix = os.path.join(self.root, "")
        if any(stat_key(prefix + p) != k for p, k in self.stats.items()):
            return False
        if self.plan is None:
            return True
        from computepods.planning.plancache import probes_hold
        from computepods.project.globs import globs_hold
        return (probes_hold(self.root, self.plan.probes)
                and globs_hold(self.root, self.plan.ignore, self.plan.globs))


@dataclass
class Judged:
    index: GraphIndex
    basis: Basis
    made_s: float                           # time.time() when judging began


Judge = Callable[[Path, Sequence[str]], tuple[dict, object]]


class GraphCache:
    """Judged graphs by targets; `judge` is catalog.judged_graph."""

    def __init__(self, root: Path, judge: Judge | None = None, keep: int = KEEP_GRAPHS):
        if judge is None:
            from computepods.api.catalog import judged_graph as judge
        self.root = Path(root)
        self.judge = judge
        self.keep = keep
        self._graphs: dict[tuple[str, ...], Judged] = {}
        self.judgings = 0                   # how many times it judged (tests, benches)

    def get(self, names: Sequence[str], building: bool = False) -> Judged:
        """The judged graph of `names`: the kept one while its basis holds,
        or while a build runs (`building`) and it has not been forgotten."""
        key = tuple(names)
        kept = self._graphs.get(key)
        if kept is not None and (building or kept.basis.holds()):
            return kept
        made_s, started_ns = time.time(), time.time_ns()
        graph, plan_basis = self.judge(self.root, list(names))
        self.judgings += 1
        judged = Judged(GraphIndex(graph), Basis.taken(self.root, graph, plan_basis, started_ns),
                        made_s)
        self._graphs.pop(key, None)
        self._graphs[key] = judged
        while len(self._graphs) > self.keep:
            self._graphs.pop(next(iter(self._graphs)))
        return judged

    def forget(self) -> None:
        """A build began or ended: the next question judges again."""
        self._graphs.clear()
