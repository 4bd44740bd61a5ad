"""From a build request to a judged plan: the plain part of the MajorDomo.

Load the project file, turn the requested names into project paths, resolve
them into steps (goal-directed, as make does), build the graph, and open a
:class:`~computepods.planning.scheduler.Scheduler` over the recorded state.  Every
error here is one the user fixes before anything runs (exit code 2).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from computepods.planning import plancache
from computepods.planning.graph import BuildGraph
from computepods.planning.needs import Needs, with_needs
from computepods.state.hashing import FileRecord, StatCache, StatKey, is_racy, stat_key
from computepods.planning.plancache import Stamp
from computepods.paths import PROJECT_FILE, STATE_DB
from computepods.project.globs import Globber
from computepods.project.load import load_project
from computepods.project.model import Project
from computepods.project.targets import target_paths
from computepods.planning.resolve import Plan, RuleSet
from computepods.planning.scheduler import Scheduler
from computepods.planning.staleness import input_paths, part_of, stale_on_disk
from computepods.state.db import StateDB



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
    """The project file and the steps the names need; no graph.
    Raises ComputePodsError (exit 2) for anything the user must fix.

    The plan of an earlier run is reused while what it rests on holds
    (:mod:`computepods.planning.plancache`).  A plan with steps that
    discover what they read also has the steps their records say they need
    (:func:`with_needed_steps`), so every view of it (`cpod explain`, the
    REST API) shows the bibtex a document asked for."""
    project, plan = _resolve(root, names, cwd)
    if any(step.rule.discover for step in plan.steps.values()) and (root / STATE_DB).is_file():
        plan = with_needed_steps(root, project, plan, load_state(root)[0])
    return project, plan


def _resolve(root: Path, names: Sequence[str], cwd: Path | None) -> tuple[Project, Plan]:
    cwd = cwd or root
    request = plancache.request_key(root, names, cwd)
    read = plancache.read_project(root)
    source, stamp = read if read is not None else (None, None)
    key = None if source is None else plancache.content_key(request, source)
    if key is not None:
        cached = plancache.load_plan(root, request, key)
        if cached is not None:
            cached[1].basis.project = stamp     # the same bytes, read now
            return cached
    project = load_project(root, source)
    targets = target_paths(project, list(names), cwd)
    probes = plancache.Probes(root)
    glob = Globber(root, project.ignore)
    plan = RuleSet(project, glob).resolve(targets, probes)
    plan.basis = plancache.Basis(request, stamp, probes.seen, plan_packs(project, plan), key,
                                 glob.seen, project.ignore)
    plancache.store_plan(root, project, plan)
    return project, plan


def plan_packs(project: Project, plan: Plan) -> dict[str, dict[str, str]]:
    """The settings of each pack some step of the plan comes from."""
    used = {step.rule.pack for step in plan.steps.values() if step.rule.pack}
    return {pack: dict(project.packs.get(pack) or {}) for pack in sorted(used)}


def make_plan(root: Path, names: Sequence[str], cwd: Path | None = None, *,
              keep_going: bool = False, dry_run: bool = False) -> BuildPlan:
    """Everything a build needs to start; raises ComputePodsError (exit 2)."""
    project, plan = resolve(root, names, cwd)
    return judge(root, project, plan, load_state(root), keep_going=keep_going, dry_run=dry_run)


def judge(root: Path, project: Project, plan: Plan, state: tuple[dict, dict], *,
          keep_going: bool = False, dry_run: bool = False) -> BuildPlan:
    """A resolved plan's graph and Scheduler over ``state`` (step records,
    file records), as :func:`load_state` reads it; the plan with the steps
    its records say it needs (:func:`with_needed_steps`)."""
    records, files = state
    plan = with_needed_steps(root, project, plan, records)
    graph = BuildGraph.from_plan(plan, {sid: r.discovered for sid, r in records.items()
                                        if r.discovered})
    scheduler = Scheduler(graph, records, StatCache(root, files),
                          keep_going=keep_going, dry_run=dry_run,
                          needs=needs_for(root, project, plan))
    return BuildPlan(project, plan, graph, scheduler)


def with_needed_steps(root: Path, project: Project, plan: Plan, records: dict) -> Plan:
    """``plan`` with the steps that make what its steps were found to need
    (planning/needs.py: the index a TeX run looked for), from the records of
    earlier runs.  A plan that grew is kept as the request's plan, so `cpod
    explain` shows those steps too."""
    if not any(step.rule.discover for step in plan.steps.values()):
        return plan
    # The answers join the plan's probes: the plan and a verdict rest on them.
    exists = plancache.Probes(root, plan.basis.probes if plan.basis else None)
    grown = with_needs(RuleSet(project), plan, records, exists)
    if grown is not plan and grown.basis is not None:
        plancache.store_plan(root, project, grown)
    return grown


def needs_for(root: Path, project: Project, plan: Plan) -> Needs | None:
    """What adds, while a build runs, the steps a run finds it needs; None
    when no step of the plan discovers what it reads."""
    if not any(step.rule.discover for step in plan.steps.values()):
        return None
    return Needs(RuleSet(project), file_exists(root))


def load_state(root: Path) -> tuple[dict, dict]:
    """(step records, file records) from the state database, read once."""
    with StateDB(root / STATE_DB, readonly=True) as db:
        return db.steps(), db.files()


@dataclass
class Refreshed:
    """What a cold no-op found: stat records to persist, and the verdict
    (key, blob) that lets the next no-op skip the judging."""
    files: list[FileRecord]
    verdict: tuple[str, bytes] | None = None


def up_to_date(root: Path, plan: Plan, state: tuple[dict, dict] | None = None,
               ) -> Refreshed | None:
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
    parted: dict[str, Stamp] = {}         # read by part, not hashed whole

    def digest(path: str) -> str | None:
        # An output is also its dependants' input: stat each file once.
        if path not in seen:
            seen[path] = cache.digest(path)
        return seen[path]

    for sid, step in plan.steps.items():
        record = records.get(sid)
        if record is None:
            return None
        if step.rule.parts:
            # Stat before the part is read: a later write then shows.
            for path in input_paths(step, record):
                if path not in parted and part_of(step, path) is not None:
                    checked_ns = time.time_ns()
                    parted[path] = (stat_key(os.path.join(root, path)), checked_ns)
        if stale_on_disk(step, record, digest, root) is not None:
            return None
    return Refreshed(cache.updated(), _verdict(plan, cache, seen, parted))


def _verdict(plan: Plan, cache: StatCache, seen: dict[str, str | None],
             stamped: dict[str, Stamp]) -> tuple[str, bytes] | None:
    """The verdict "all up to date while these stats hold" (plancache.py),
    or None when some stat cannot vouch for its content (racily clean)."""
    basis = plan.basis
    if basis is None or basis.project is None:
        return None
    # Sources first: an edit is most likely there, and ends the check soonest.
    order = sorted(seen, key=lambda p: p not in plan.sources)
    stats: dict[str, StatKey | None] = cache.vouching_keys(
        [path for path in order if seen[path] is not None])
    if stats is None:
        return None
    stats.update((path, None) for path, digest in seen.items() if digest is None)
    for path, (key, checked_ns) in [(PROJECT_FILE, basis.project), *stamped.items()]:
        if key is not None and is_racy(FileRecord(path, *key, "", checked_ns)):
            return None
        if stats.setdefault(path, key) != key:
            return None            # changed while it was judged
    probes = {}
    for path, existed in basis.probes.items():
        if path not in stats:
            probes[path] = existed
        elif (stats[path] is not None) != existed:
            return None
    blob = plancache.encode_verdict(len(plan.steps), basis.packs, plan.targets, stats,
                                    probes, basis.globs, basis.ignore)
    return basis.request, blob


def save_file_records(root: Path, refreshed: Refreshed, remember: bool = True) -> None:
    """Persist refreshed stat records, and (``remember``) the verdict, only
    ever under the project lock."""
    verdict = refreshed.verdict if remember else None
    if refreshed.files or verdict:
        with StateDB(root / STATE_DB) as db:
            db.write(files=refreshed.files, verdict=verdict)


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
    from computepods.state.hashing import sha256_file
    basis = plan.basis if plan is not None else None
    # The answers join the plan's probes and globs: a verdict rests on them too.
    rules = RuleSet(project, Globber(root, project.ignore, basis.globs if basis else None))
    exists = plancache.Probes(root, basis.probes if basis else None)
    removed, kept, drop = [], [], []
    if records is None:
        records = load_state(root)[0]
    planned = plan.steps if plan is not None else {}
    proof: RuleSet | None = None          # the tree as it is now, for the last word
    for sid, record in records.items():
        if sid in planned or sid.startswith("cycle:") or not record.outputs:
            continue                      # a step of this build is produced, by definition
        if any(rules.match(p, exists) is not None for p in record.outputs):
            continue
        # Proof at the moment of deletion: the answers above may date from
        # when a source was missing (a burst of deletes and re-creates, a
        # git checkout), so each output is matched again on a fresh look.
        proof = proof or RuleSet(project, Globber(root, project.ignore))
        fresh = plancache.Probes(root)
        if any(proof.match(p, fresh) is not None for p in record.outputs):
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


def check_tools(project: Project, plan: Plan,
                offered: Mapping[str, set[str]] | None = None) -> None:
    """Fail before anything runs when no chef has a tool a pack rule of the
    plan needs: without a federation (`offered` None) the chefs are this
    machine's; with one, a tool missing here is fine when some pod offers
    it (`offered`: tool -> fingerprints, from the Roster), and the error
    says no pod of the federation has it."""
    packs = plan_packs(project, plan)
    if offered is None or not packs:
        plancache.check_packs(packs, plan.targets)
        return
    from computepods.errors import NoChefCanBuild
    from computepods.project.packs import missing_tools
    for pack in sorted(packs):
        lacking = [t for t in missing_tools(pack, packs[pack]) if not offered.get(t)]
        if lacking:
            raise NoChefCanBuild(
                f"no chef can build {', '.join(plan.targets)}: the {pack} pack needs "
                f"{', '.join(lacking)}, which neither this machine nor any pod of the "
                f"federation has (start a chef pod with it, or set a tool in [pack.{pack}])")
