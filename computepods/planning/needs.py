"""Steps a build takes on because a step found it needs their outputs.

A TeX run tells what else it needs only as it runs: ``\\printindex`` reads
``paper.ind``, which makeindex makes from the ``paper.idx`` the run wrote
(the recorder file and the log say so: :mod:`computepods.chef.discover`).
Such a file is a discovered input of the run, and make's rule for the
prerequisites a depfile names applies to it: if a rule makes it, that
rule's step is part of the build.  No declared input says so, so
goal-directed resolution (:mod:`computepods.planning.resolve`) does not
find the step; it is added here:

- when a build is planned, from the records of earlier runs
  (:func:`with_needs`), so judging, the no-op verdict, the orphan check
  and ``cpod explain`` see the step;
- while a build runs, from the record of a run just done (a document's
  first build: :meth:`Needs.take`, called by the Scheduler), into the
  running cyclic group, so the index is made in the same pass.

Only steps that discover what they read (``discover = "fls"`` or
``"blg"``) pull steps in; the headers a compiler's depfile names are
sources.  What those steps were seen to write (``paper.idx``, a ``.toc``)
counts as theirs in ``plan.producers``, so the graph knows that makeindex
reads what the TeX run writes.  A file such a step looked for that is
still missing when its group settles is one no rule made: :func:`unmet`
names it, and the group fails, since a PDF without its index is no success.
"""
from __future__ import annotations

from collections import ChainMap
from dataclasses import replace
from typing import Callable, Iterable, Mapping

from computepods.planning.resolve import Exists, Plan, RuleSet
from computepods.state.db import STATUS_FAILED, StepRecord

# Files LaTeX reads only if they are there and writes itself: the .aux of a
# chapter left out by \includeonly is missing, and nothing is lost.
SELF_WRITTEN = (".aux",)


class Needs:
    """Adds to a plan the steps that make what its steps were found to need."""

    def __init__(self, rules: RuleSet, exists: Exists):
        self._rules = rules
        self._exists = exists

    def take(self, plan: Plan, records: Mapping[str, StepRecord],
             sids: Iterable[str]) -> list[str]:
        """Add to ``plan`` the steps that make the files the steps ``sids``
        were found to need (their records' discovered inputs), and what those
        need in turn; returns the ids added.  Raises ProjectError when two
        rules could make one such file.

        ``plan``'s dicts are replaced by copies before the first change, as
        a plan may share them (a watching pod's plan of the steps to judge
        shares its whole plan's producers)."""
        added: list[str] = []
        todo = list(sids)
        while todo:
            written: dict[str, str] = {}
            wanted: list[str] = []
            for sid in todo:
                record = records.get(sid)
                if record is not None and _discovers(plan, sid):
                    written.update((p, sid) for p in record.outputs
                                   if p not in plan.producers and p not in written)
            for sid in todo:
                record = records.get(sid)
                if record is not None and _discovers(plan, sid):
                    wanted += [p for p in record.discovered if p not in plan.producers
                               and p not in written and p not in wanted]
            # what this run wrote decides (the .bcf that chooses biber), not the tree
            rules = self._rules.reading(ChainMap(written, plan.producers))
            makeable = [p for p in wanted if rules.makes(p, self._exists)]
            if not written and not makeable:
                break
            _own_dicts(plan)
            plan.producers.update(written)
            todo = rules.add(plan, makeable, self._exists) if makeable else []
            added += todo
        return added


def with_needs(rules: RuleSet, plan: Plan, records: Mapping[str, StepRecord],
               exists: Exists) -> Plan:
    """``plan`` with the steps its steps' records say they need
    (:meth:`Needs.take`), as a new plan; ``plan`` itself when there are none."""
    if not any(step.rule.discover for step in plan.steps.values()):
        return plan                   # most plans: nothing discovers what it reads
    grown = Plan(plan.steps, plan.producers, plan.sources, plan.targets, plan.basis)
    before = (len(plan.steps), len(plan.producers))
    Needs(rules, exists).take(grown, records, list(plan.steps))
    return plan if (len(grown.steps), len(grown.producers)) == before else grown


def unmet(plan: Plan, records: Mapping[str, StepRecord], sids: Iterable[str],
          digest: Callable[[str], str | None]) -> StepRecord | None:
    """Why a settled cyclic group is no success: the first of its steps that
    looked for files still missing (no rule made them), as its record marked
    failed, so the next build runs it again rather than trusting its
    output; None when nothing is missing."""
    for sid in sids:
        record = records.get(sid)
        if record is None or not _discovers(plan, sid):
            continue
        paths = [p for p in record.discovered
                 if not p.endswith(SELF_WRITTEN) and digest(p) is None]
        if paths:
            them = "it" if len(paths) == 1 else "them"
            why = (f"{sid} looked for {', '.join(paths)}, which no rule made, so "
                   f"{plan.steps[sid].outputs[0]} would come out without {them}: "
                   f"add a rule that makes {them} (or the tool for {them})")
            return replace(record, status=STATUS_FAILED, exit_code=None, reason=why)
    return None


def _discovers(plan: Plan, sid: str) -> bool:
    step = plan.steps.get(sid)
    return step is not None and bool(step.rule.discover)


def _own_dicts(plan: Plan) -> None:
    """Give ``plan`` dicts of its own before they change (see Needs.take)."""
    plan.steps = dict(plan.steps)
    plan.producers = dict(plan.producers)
    plan.sources = set(plan.sources)
