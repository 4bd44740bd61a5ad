"""Steps sent ahead: held by the chef until the steps they read from land here.

A chain of dependent steps paid a round trip through its MajorDomo per
link: a step's result went to the MajorDomo, its record to disk, and only
then was the next step sent (issue 13: a layered build spent more time on
those trips than in its steps).  So a MajorDomo sends a step's dependants
with it (:mod:`computepods.coordinator.ahead`), each with its terms
(:class:`~computepods.bus.chefwire.RunStep`): ``after``, the steps of its
build it waits for on this chef; ``was``, the hashes it last read of what
they make; and ``always``, set when it is stale whatever they make.

:class:`Ahead` holds such a step until every step it waits for has
landed here, then judges it as the MajorDomo would: it runs if ``always``,
or if one of those files changed.  Otherwise, or if one of them failed or
was not run here, it is *unrun* (and so is everything held after it); the
MajorDomo, which stays the judge, sends it as any step if it must run.

A held step starts only once the steps it reads from have committed, each
with its write-ahead record (:mod:`computepods.chef.slot`), so a crash
leaves the records of what it read before its own.  Thread-safe: steps
land in the worker threads, run messages come in the chart's.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

from computepods.bus.chefwire import StepResult, Unrun
from computepods.chef.step import StepJob

Key = tuple[str, str, int]          # StepJob.key: (build, step id, attempt)
MAX_HELD = 4096                     # steps held at once; more are unrun at once
MAX_LANDED = 4096                   # landings remembered for steps sent after them

# Why a held step was not run here (in its "unrun" note).
UNCHANGED = "what it reads from {after} did not change"
NOT_HERE = "{after} is not on this chef"
DID_NOT_RUN = "{after} did not succeed here"
TOO_MANY = "this chef holds too many steps ahead"


@dataclass
class _Held:
    job: StepJob
    waiting: set[Key]
    read: dict[str, str] = field(default_factory=dict)   # was-path -> hash it landed with


@dataclass
class Decided:
    """What a landing (or a run message) settled: steps to run now, and
    steps not run here, with the note that says so."""
    run: list[StepJob] = field(default_factory=list)
    unrun: list[tuple[StepJob, Unrun]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.run or self.unrun)


class Ahead:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[Key, _Held] = {}
        self._after: dict[Key, list[Key]] = {}       # a step -> the held steps waiting on it
        # The latest landings: a step sent ahead of one that landed before
        # its run message came (the chart may not have taken that one yet).
        self._recent: OrderedDict[Key, StepResult] = OrderedDict()

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, jobs: list[StepJob], pending: Callable[[Key], bool]) -> Decided:
        """Hold these jobs (each with ``job.ahead``).  A step they wait for
        that already landed here counts at once; one neither landed nor
        ``pending`` (queued, running or held) here unruns the job."""
        out = Decided()
        with self._lock:
            for job in jobs:
                if job.key in self._held:
                    continue
                after = {(job.key[0], sid, attempt) for sid, attempt in job.ahead.after}
                if len(self._held) >= MAX_HELD:
                    self._unrun(job, TOO_MANY, out)
                    continue
                self._held[job.key] = _Held(job, after)
                for key in after:
                    self._after.setdefault(key, []).append(job.key)
            for job in jobs:
                for key in sorted(self._held[job.key].waiting if job.key in self._held else ()):
                    result = self._recent.get(key)
                    if result is not None:
                        self._landed(key, result, out)
                    elif not pending(key):
                        self._gone(key, NOT_HERE.format(after=key[1]), out)
        return out

    def landed(self, key: Key, result: StepResult) -> Decided:
        """A step ended here: the held steps it releases or unruns."""
        out = Decided()
        with self._lock:
            self._recent[key] = result
            if len(self._recent) > MAX_LANDED:
                self._recent.popitem(last=False)
            if key in self._after:
                self._landed(key, result, out)
        return out

    def drop_build(self, build: str) -> list[StepJob]:
        """A cancelled build's held steps, let go of (they never start)."""
        with self._lock:
            jobs = [h.job for k, h in self._held.items() if k[0] == build]
            for job in jobs:
                del self._held[job.key]
            for k in [k for k in self._after if k[0] == build]:
                del self._after[k]
        return jobs

    # -- inside (the lock held) ------------------------------------------------------
    def _landed(self, key: Key, result: StepResult, out: Decided) -> None:
        if not result.ok:
            self._gone(key, DID_NOT_RUN.format(after=key[1]), out)
            return
        for waiter in self._after.pop(key, ()):
            held = self._held.get(waiter)
            if held is None or key not in held.waiting:
                continue
            held.waiting.discard(key)
            for path in held.job.ahead.was:
                if path in result.outputs:
                    held.read[path] = result.outputs[path].sha256
            if not held.waiting:
                self._judge(held, out)

    def _judge(self, held: _Held, out: Decided) -> None:
        job, terms = held.job, held.job.ahead
        del self._held[job.key]
        if set(held.read) != set(terms.was):          # what it reads was not all made here
            self._unrun(job, NOT_HERE.format(after=", ".join(sorted(set(terms.was) - set(
                held.read)))), out)
        elif terms.always or any(held.read[p] != terms.was[p] for p in terms.was):
            job.inputs.update(held.read)
            out.run.append(job)
        else:
            self._unrun(job, UNCHANGED.format(after=", ".join(sid for sid, _ in terms.after)),
                        out)

    def _gone(self, key: Key, why: str, out: Decided) -> None:
        """``key`` will not land with outputs: what waits on it is unrun, and so on down."""
        for waiter in self._after.pop(key, ()):
            held = self._held.pop(waiter, None)
            if held is not None:
                self._unrun(held.job, why, out)

    def _unrun(self, job: StepJob, why: str, out: Decided) -> None:
        self._held.pop(job.key, None)
        out.unrun.append((job, Unrun(job.step.id, job.attempt, why)))
        self._gone(job.key, why, out)
