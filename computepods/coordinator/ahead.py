"""Steps sent ahead: a chain's next steps go with the step they wait for.

Without this, each link of a chain of dependent steps cost a round trip:
the chef's result to the MajorDomo, its record to disk, the dependant's
run message back (issue 13: a layered build of 10 layers spent more on
those trips than in its steps).  So with each run message to one of its
own chefs, the MajorDomo also sends the steps that wait only on steps of
that chef (:meth:`AheadBook.offer`), each with the terms the chef judges
it by (:mod:`computepods.chef.ahead`).  The chef runs such a step as soon
as what it reads has landed and changed, and reports it as any step.

The MajorDomo stays the judge.  When the Scheduler releases a step that
went ahead, judged stale as always, and its chef said it holds it, the
chef's run of it counts (:meth:`AheadBook.delegate`): it is not sent
again, and a result heard before the release is taken then
(:meth:`AheadBook.due`), after the records of the steps it read from.
A step the chef did not run ("unrun": what it reads did not change, a
step it followed failed) is sent as usual if it must run, and one the
MajorDomo finds up to date while its chef ran it anyway has its result
ignored (its outputs are judged again at the next build).  A result is
taken only if the chef read the very hashes the Scheduler judged by.
Only a build without federation sends steps ahead, and never a cyclic
group's step, one that follows one, or one that reads part of a file.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from computepods.bus.chefwire import RunStep
from computepods.chef.step import step_to_message
from computepods.planning.job import Job, State
from computepods.planning.staleness import input_paths, part_of, rule_fingerprint, why_stale

BuildRun = Any      # coordinator/buildrun.py's, which holds an AheadBook (no import cycle)

MAX_AHEAD = 64            # steps sent ahead with one run message
FIRST_ATTEMPT = 1         # a step not released yet has not run in this build
FINAL = (State.DONE, State.SKIPPED)


@dataclass
class Note:
    """A step sent ahead to ``chef``."""
    chef: str
    attempt: int
    confirmed: bool = False      # the chef's answer says it holds it
    delegated: bool = False      # released: the chef's run of it is the build's
    stash: list[dict] = field(default_factory=list)    # its notes heard before that


class AheadBook:
    def __init__(self) -> None:
        self.notes: dict[str, Note] = {}
        self._assign: list[tuple[str, str]] = []          # (chef, step) delegated, to assign

    # -- out -----------------------------------------------------------------------
    def offer(self, b: BuildRun, chef: str, jobs: list[Job], outstanding) -> list[RunStep]:
        """The steps to send ahead with ``jobs`` to ``chef``, which also
        holds ``outstanding``: those waiting only on steps of that chef or
        on steps already done, breadth first, at most ``MAX_AHEAD``."""
        s, graph = b.scheduler, b.bp.graph
        here = {j.step.id: j.attempt for j in jobs}
        for sid in outstanding:
            if (job := b.job(sid)) is not None and s.is_running(sid):
                here[sid] = job.attempt
        here.update((sid, n.attempt) for sid, n in self.notes.items() if n.chef == chef)
        frontier, seen, out = deque(j.step.id for j in jobs), set(here), []
        while frontier and len(out) < MAX_AHEAD:
            for sid in sorted(graph.dependants.get(frontier.popleft(), ())):
                if sid in seen or len(out) >= MAX_AHEAD:
                    continue
                seen.add(sid)
                step = self._terms(b, sid, here)
                if step is not None:
                    out.append(step)
                    here[sid] = step.attempt
                    frontier.append(sid)
                    self.notes[sid] = Note(chef, step.attempt)
        return out

    @staticmethod
    def _terms(b: BuildRun, sid: str, here: dict[str, int]) -> RunStep | None:
        """``sid`` on the wire with its terms, or None if it cannot go ahead."""
        s, graph = b.scheduler, b.bp.graph
        if s.state_of(sid) is not State.WAITING or graph.components[graph.component_of[sid]].cyclic:
            return None
        after = {}
        for producer in graph.deps[sid]:
            if graph.components[graph.component_of[producer]].cyclic:
                return None                # its outputs change from pass to pass
            if producer in here:
                after[producer] = here[producer]
            elif s.state_of(producer) not in FINAL:
                return None
        step, record = graph.plan.steps[sid], s.records.get(sid)
        paths = input_paths(step, record)
        if not after or any(part_of(step, p) is not None for p in paths):
            return None
        made = {out for p in after for out in graph.plan.steps[p].outputs}
        inputs = {p: s.input_digest(step, p) for p in paths if p not in made}
        was = {p: record.inputs.get(p) if record else None for p in paths if p in made}
        fp = rule_fingerprint(step)
        always = why_stale(step, step.display, fp, record, {**inputs, **was},
                           {p: s.digest(p) for p in step.outputs}) is not None
        return replace(step_to_message(step, FIRST_ATTEMPT, inputs, record, None, fp),
                       after=tuple(sorted(after.items())), was=was, always=always)

    def confirm(self, chef: str | None, held: list) -> None:
        """The chef's answer: the steps it holds, of those sent ahead."""
        for sid in held:
            note = self.notes.get(sid) if isinstance(sid, str) else None
            if note is not None and note.chef == chef:
                note.confirmed = True

    # -- released ----------------------------------------------------------------------
    def delegate(self, jobs: list[Job]) -> list[Job]:
        """Of the jobs the Scheduler released, those to send: a step its chef
        holds (same attempt) is the chef's to run."""
        send = []
        for job in jobs:
            note = self.notes.get(job.step.id)
            if note is not None and note.confirmed and not note.delegated \
                    and note.attempt == job.attempt:
                note.delegated = True
                self._assign.append((note.chef, job.step.id))
            else:
                self.notes.pop(job.step.id, None)
                send.append(job)
        return send

    def assigned(self) -> list[tuple[str, str]]:
        """(chef, step) of the steps delegated since the last call."""
        out, self._assign = self._assign, []
        return out

    def due(self) -> list[tuple[str, list[dict]]]:
        """(chef, notes) heard of delegated steps before they were released."""
        out = []
        for note in self.notes.values():
            if note.delegated and note.stash:
                out.append((note.chef, note.stash))
                note.stash = []
        return out

    # -- heard ---------------------------------------------------------------------------
    def heard(self, chef: str, item: dict) -> None:
        """A chef's note of a step that is not running in the build: kept
        until its release if it went ahead to that chef; an unrun one is
        forgotten (sent as usual if it must run)."""
        note = self.notes.get(item.get("id"))
        if note is None or note.chef != chef or note.delegated \
                or item.get("attempt") != note.attempt:
            return
        if item.get("event") == "unrun":
            del self.notes[item["id"]]
        else:
            note.stash.append(item)

    @staticmethod
    def read_as_judged(job: Job, item: dict) -> bool:
        """The chef's run read the hashes the Scheduler judged the step by."""
        read = item.get("read")
        return not isinstance(read, dict) or all(job.inputs.get(p, 0) == h
                                                 for p, h in read.items())

    def forget_chef(self, chef: str) -> None:
        for sid in [sid for sid, n in self.notes.items() if n.chef == chef]:
            del self.notes[sid]
