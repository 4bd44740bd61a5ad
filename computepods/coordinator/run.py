"""From a build.request to a plan, for the MajorDomo."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from computepods.planning.plan import BuildPlan, make_plan, remove_orphans

log = logging.getLogger("computepods.majordomo")


def plan_request(root: Path, data: dict, *, tidy: Callable[[list, list], None] | None = None,
                 ) -> tuple[BuildPlan, list[str]]:
    """Plan a build.request; with `tidy` (how to forget records), first
    delete the outputs no rule makes any more and plan again without them.
    Returns the plan and the outputs removed."""
    def plan() -> BuildPlan:
        return make_plan(root, data["targets"], Path(data.get("cwd") or root),
                         keep_going=bool(data.get("keep_going")), dry_run=bool(data.get("dry_run")))
    bp = plan()
    if tidy is None or data.get("dry_run"):
        return bp, []
    removed, kept = remove_orphans(root, bp.project, bp.plan, bp.scheduler.records, write=tidy)
    for why in [f"removed {p}; no rule makes it any more" for p in removed] + \
            [f"keeping {why}; no rule makes it any more" for why in kept]:
        log.warning("%s", why)
    return (plan() if removed else bp), removed
