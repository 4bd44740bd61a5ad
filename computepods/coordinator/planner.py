"""How the MajorDomo gets a judged plan for each build request.

A pod that does not watch its tree plans every request from the project
file and the state database (:func:`~computepods.planning.request.plan_request`),
or takes the plan its own ``cpod build`` handed it.  A watching pod (``cpod
up``, a background pod) also deletes the outputs no rule makes any more, and
tells its Freshness that their echoes are its own.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from computepods.planning.plan import BuildPlan
from computepods.planning.request import HandedPlans, plan_request
from computepods.watch.freshness import Freshness

Forget = Callable[[list, list], None]     # (step ids, paths): records to drop


class Planner:
    def __init__(self, root: Path, *, handed: HandedPlans | None, freshness: Freshness | None,
                 forget: Forget):
        self.root = Path(root)
        self.handed = handed
        self.freshness = freshness
        self.forget = forget

    def plan(self, data: dict) -> BuildPlan:
        """The plan of a build.request; raises ComputePodsError (exit 2)."""
        watching = self.freshness is not None
        bp, removed = plan_request(self.root, data, tidy=self.forget if watching else None,
                                   handed=self.handed)
        if removed:
            self.freshness.recorded_outputs(dict.fromkeys(removed))   # their echoes
        return bp
