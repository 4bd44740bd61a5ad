"""A run message read by a chef: its rules, and the steps it takes or refuses.

The Chef chart (:mod:`computepods.charts.chef`) decides what to do with a
run; this reads one, checking every rule and step
(:func:`~computepods.chef.step.job_from_message`), so that a bad step is
refused alone, naming why.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from computepods.bus.chefwire import RunMessage, check_rule
from computepods.chef.step import StepJob, job_from_message, rule_from_dict
from computepods.chef.tools import ChefTools
from computepods.errors import ComputePodsError, MalformedMessage

log = logging.getLogger("computepods.chef")

NO_PROGRAM = ("no program {program!r} on its PATH: the step needs a chef that has it "
              "(`cpod chef --tool {program}` with it on PATH announces it)")


@dataclass
class Intake:
    jobs: list[StepJob] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)   # {"id", "reason"} of a run's answer
    error: str = ""                                      # the whole run is refused


def read_run(run: RunMessage, origin: str, tools: ChefTools, chef: str) -> Intake:
    """The steps of ``run`` (``origin``: another pod's, "" for our own tree).
    ``tools`` learns the rules' programs; another pod's step whose program
    this PATH lacks is refused (the MajorDomo sent it before any chef
    listed the program)."""
    try:
        rules = {name: rule_from_dict(check_rule(name, d)) for name, d in run.rules.items()}
    except (MalformedMessage, AttributeError, TypeError) as exc:
        return Intake(error=f"bad rules: {exc}")
    tools.learn(rules.values())
    lacking = tools.lacking(rules.values()) if origin else {}
    out = Intake()
    for item in run.steps:
        try:
            job = job_from_message(run.build, rules, item, origin)
        except ComputePodsError as exc:
            sid = item.get("id") if isinstance(item, dict) else None
            out.rejected.append({"id": sid, "reason": str(exc)})
            log.warning("chef %s: rejected step %s: %s", chef, sid, exc)
            continue
        if program := lacking.get(job.step.rule.name):
            out.rejected.append({"id": job.step.id, "reason": NO_PROGRAM.format(program=program)})
            continue
        out.jobs.append(job)
    return out
