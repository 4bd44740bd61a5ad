"""The words of a missing input: which file, which step and rule wanted it,
and the steps that want that step's outputs, on the way to a target."""
from __future__ import annotations

from typing import Any

# A Step and a Plan of planning/resolve.py (which imports this module).
Step = Plan = Any

MAX_WANTERS_SHOWN = 3      # steps named on the way from a missing input to a target


def missing_input(path: str, needed_by: Step | None, plan: Plan, file: str) -> str:
    """Which file is missing, and who wanted it: the step and its rule, then
    the steps that want that step's outputs, towards a target."""
    missing = f"{path!r} does not exist and no rule in {file} builds it"
    if needed_by is None:
        return missing
    text = f"{missing}; {_rule_of(needed_by)} needs it"
    rule = needed_by.rule
    if len(rule.inputs) == len(needed_by.inputs) and path in needed_by.inputs:
        pattern = rule.inputs[needed_by.inputs.index(path)]
        if pattern != path:
            text += f" (input {pattern!r})"
    text += f" for step {needed_by.id!r}"
    for step in _wanters(needed_by, plan):
        text += f", which {_rule_of(step)} needs for step {step.id!r}"
    return text


def _rule_of(step: Step) -> str:
    pack = f" of the {step.rule.pack} pack" if step.rule.pack else ""
    return f"rule {step.rule.name!r}{pack}"


def _wanters(step: Step, plan: Plan) -> list[Step]:
    """The steps that want ``step``'s outputs, one after another towards a
    target (the first found each time; a cycle ends it)."""
    chain: list[Step] = []
    seen = {step.id}
    while len(chain) < MAX_WANTERS_SHOWN:
        outputs = set(step.outputs)
        step = next((s for s in plan.steps.values() if s.id not in seen
                     and not outputs.isdisjoint(s.inputs)), None)
        if step is None:
            break
        seen.add(step.id)
        chain.append(step)
    return chain
