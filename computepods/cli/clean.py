"""`cpod clean`: remove what cpod made, never a source."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from computepods.paths import STATE_DIR


def cmd_clean(root: Path) -> int:
    """Remove recorded outputs (never a source) and the state directory."""
    from computepods.state.lock import ProjectLock
    from computepods.paths import STATE_DB
    from computepods.planning.plan import file_exists
    from computepods.project.load import load_project
    from computepods.planning.resolve import RuleSet
    from computepods.state.db import StateDB

    project = load_project(root)
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
