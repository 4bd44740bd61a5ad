"""`cpod clean`: remove what cpod made, never a source."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Callable

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
    """Remove every recorded output (never a source) and the state directory."""
    from computepods.state.lock import ProjectLock
    from computepods.paths import STATE_DB
    from computepods.planning.plan import file_exists
    from computepods.project.load import load_project
    from computepods.planning.resolve import RuleSet
    from computepods.state.db import StateDB

    project = load_project(root)
    stop_background_pod(root)
    had_state = (root / STATE_DIR).is_dir()       # the lock below makes one
    rules = RuleSet(project)
    exists = file_exists(root)
    with ProjectLock(root):
        with StateDB(root / STATE_DB, readonly=True) as db:
            records = db.steps()
        removed, kept = remove_outputs(
            root, records, lambda path: rules.match(path, exists) is not None)
    shutil.rmtree(root / STATE_DIR, ignore_errors=True)
    for why in kept:
        print(f"cpod: keeping {why}", file=sys.stderr)
    if not had_state and not removed:
        print(f"cpod: nothing to clean: no {STATE_DIR}/ here", file=sys.stderr)
        return 0
    outputs = f"{len(removed)} output{'' if len(removed) == 1 else 's'}"
    print(f"cpod: removed {outputs}" + (f" and {STATE_DIR}/" if had_state else ""),
          file=sys.stderr)
    return 0


def remove_outputs(root: Path, records: dict, made_by_a_rule: Callable[[str], bool],
                   ) -> tuple[list[str], list[str]]:
    """Remove what each step record says its step wrote: its declared outputs
    and those found after it ran (a .toc or .log, through the .fls), all
    tracked alike.  A step no rule makes any more (its rule left the project
    file) keeps an output edited since (it may be a source now), as a build's
    orphan rule does.  Returns (removed, kept with the reason)."""
    from computepods.state.hashing import sha256_file
    removed, kept = [], []
    dirs: set[Path] = set()
    for record in records.values():
        current = any(made_by_a_rule(p) for p in record.outputs)
        for path, built in sorted(record.outputs.items()):
            full = root / path
            if not (full.is_file() or full.is_symlink()):
                continue
            if not current and not full.is_symlink() and sha256_file(full) != built:
                kept.append(f"{path}: changed since it was built, and no rule makes it now")
                continue
            full.unlink()
            removed.append(path)
            dirs.add(full.parent)
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        while d != root and d.is_dir() and not any(d.iterdir()):
            d.rmdir()
            d = d.parent
    return removed, kept
