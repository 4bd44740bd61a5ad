"""`cpod clean`: remove what cpod made, never a source."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from computepods.paths import STATE_DIR

STOP_WAIT_S = 30.0         # seconds a background pod has to stop before a clean


def stop_background_pod(root: Path) -> None:
    """A pod `cpod build` left up holds the project: it goes first (it would
    hold the lock for its idle time).  A `cpod up` pod is the user's: say so."""
    from computepods.errors import UsageError
    from computepods.pod import handoff
    info = handoff.running_pod(root)
    if info is None:
        return
    if not info.get("background"):
        raise UsageError(f"a pod is up for {root} (pid {info['pid']}, cpod up); "
                         "`cpod down` first, then cpod clean")
    try:
        gone = handoff.stop_pod(info, STOP_WAIT_S)
    except handoff.PodUnreachable as exc:
        raise UsageError(f"{exc}; stop it (cpod down, or kill that pid), then cpod clean") \
            from None
    if not gone:
        raise UsageError(f"the background pod (pid {info['pid']}) did not stop within "
                         f"{STOP_WAIT_S:.0f} s; kill it, then cpod clean")
    print(f"cpod: stopped the background pod (pid {info['pid']})", file=sys.stderr)


def cmd_clean(root: Path) -> int:
    """Remove recorded outputs (never a source) and the state directory."""
    from computepods.state.lock import ProjectLock
    from computepods.paths import STATE_DB
    from computepods.planning.plan import file_exists
    from computepods.project.load import load_project
    from computepods.planning.resolve import RuleSet
    from computepods.state.db import StateDB

    project = load_project(root)
    stop_background_pod(root)
    rules = RuleSet(project)
    exists = file_exists(root)
    removed = 0
    with ProjectLock(root):
        with StateDB(root / STATE_DB, readonly=True) as db:
            outputs = sorted({p for r in db.steps().values() for p in r.outputs})
        dirs = set()
        for path in outputs:
            if rules.match(path, exists) is None:
                print(f"cpod: keeping {path}: no rule makes it now (a source?)", file=sys.stderr)
                continue
            full = root / path
            if full.is_file() or full.is_symlink():
                full.unlink()
                removed += 1
                dirs.add(full.parent)
        for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
            while d != root and d.is_dir() and not any(d.iterdir()):
                d.rmdir()
                d = d.parent
    shutil.rmtree(root / STATE_DIR, ignore_errors=True)
    print(f"cpod: removed {removed} outputs and {STATE_DIR}/", file=sys.stderr)
    return 0
