"""From a build.request to a judged plan: the one path, planned once.

A request from elsewhere (``cpod up``'s watcher, a handed-off ``cpod
build``, the REST API) is planned here, from the project file and the state
database.  ``cpod build`` with its own embedded pod has planned already,
under the project lock, to answer the cold no-op before anything started:
it hands that plan to its pod (:class:`HandedPlans`), the build.request
names it by a token, and it is taken instead of planning again.
"""
from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Callable

from computepods.planning.plan import BuildPlan, make_plan, remove_orphans

log = logging.getLogger("computepods.majordomo")

PLAN_FIELD = "plan"        # the build.request field naming a handed plan


class HandedPlans:
    """Plans made in this process for a build.request still to come, by token.
    A pod keeps one; each plan is taken once."""

    def __init__(self) -> None:
        self._plans: dict[str, BuildPlan] = {}

    def hand(self, bp: BuildPlan) -> str:
        """Keep ``bp`` for the request that carries the returned token."""
        token = secrets.token_hex(8)
        self._plans[token] = bp
        return token

    def take(self, token: object) -> BuildPlan | None:
        """The plan handed under ``token`` (then forgotten), or None."""
        return self._plans.pop(token, None) if isinstance(token, str) else None

    def __len__(self) -> int:
        return len(self._plans)


def plan_request(root: Path, data: dict, *, tidy: Callable[[list, list], None] | None = None,
                 handed: HandedPlans | None = None) -> tuple[BuildPlan, list[str]]:
    """Plan a build.request, or take the plan handed for it (``handed``).
    With `tidy` (how to forget records), first delete the outputs no rule
    makes any more and plan again without them.  Returns the plan and the
    outputs removed."""
    if handed is not None:
        bp = handed.take(data.get(PLAN_FIELD))
        if bp is not None:          # its maker removed the orphans, under the lock
            return bp, []

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
