"""Why a step ran, or would run: `cpod explain TARGET` and `build --explain`.

For each step the target needs (its own step last), it says whether the step
is up to date as the files are now, and if not, the first reason found (an
input that changed with its old and new hash, the command, an output
missing or edited by hand); and why it ran the last time, as recorded.
"""
from __future__ import annotations

import datetime
from pathlib import Path
from typing import Sequence

from computepods.state.hashing import StatCache
from computepods.planning.plan import load_state, resolve
from computepods.planning.staleness import stale_on_disk


def explain(root: Path, names: Sequence[str], cwd: Path) -> list[str]:
    _, plan = resolve(root, names, cwd)
    records, files = load_state(root)
    cache = StatCache(root, files)
    lines = []
    for sid, step in reversed(list(plan.steps.items())):
        record = records.get(sid)
        now = stale_on_disk(step, record, cache.digest, root)
        command = step.display()
        lines.append(f"{sid}")
        lines.append(f"  now: {'up to date' if now is None else 'would run: ' + now}")
        lines.append(f"  command: {command}")
        if record is None:
            lines.append("  last run: never")
        else:
            when = datetime.datetime.fromtimestamp(record.finished_ns / 1e9).isoformat(
                sep=" ", timespec="seconds") if record.finished_ns else "?"
            verdict = "ok" if record.status == "ok" else f"FAILED ({record.reason})"
            lines.append(f"  last run: {when}, {verdict}, {record.duration_s:.2f} s")
            if record.status == "ok" and record.reason:
                lines.append(f"  it ran because: {record.reason}")
            if record.discovered:
                lines.append(f"  discovered inputs: {', '.join(record.discovered)}")
    return lines
