"""Persist before proceed, per job: a step is sent only once the records of
the steps whose outputs it reads are on disk.

A step's result is taken as soon as it comes: the Scheduler learns its
output hashes at once, so the steps that follow it are judged, and those a
chef already ran ahead (coordinator/ahead.py) are counted, in the same
pass, with no round trip through the Store between the links of a chain.
What the pod has not yet written must still never be built upon: a job
released from a step whose record is not written waits here, and goes to
be sent when the last of those records is written (:meth:`RecordGate.written`).
A job's own step counts too: the next pass of a cyclic group waits for the
record of the pass before it.

Plain bookkeeping, no I/O: :class:`~computepods.coordinator.buildrun.BuildRun`
owns one.
"""
from __future__ import annotations

from computepods.planning.job import Job


class RecordGate:
    def __init__(self) -> None:
        self._unwritten: dict[str, tuple[str, ...]] = {}   # step -> its outputs, record not on disk
        self._producer: dict[str, str] = {}                # output path -> that step
        self._held: dict[str, tuple[Job, int]] = {}        # step -> (job, records it waits for)
        self._waiters: dict[str, list[str]] = {}           # unwritten step -> held steps

    def __len__(self) -> int:
        """Jobs held for a record."""
        return len(self._held)

    def unwritten(self, sid: str) -> bool:
        """Is this step's record still to be written?"""
        return sid in self._unwritten

    def taken(self, sid: str, outputs) -> None:
        """``sid`` succeeded with these outputs; its record goes to the Store now."""
        self._unwritten[sid] = tuple(outputs)
        for path in outputs:
            self._producer[path] = sid

    def hold(self, jobs) -> list[Job]:
        """Of these released jobs, those that may be sent now; the others are
        held until the records they build on are written."""
        free = []
        for job in jobs:
            sid = job.step.id
            blockers = {self._producer[p] for p in job.inputs if p in self._producer}
            if sid in self._unwritten:
                blockers.add(sid)
            if not blockers:
                free.append(job)
                continue
            self._held[sid] = (job, len(blockers))
            for blocker in blockers:
                self._waiters.setdefault(blocker, []).append(sid)
        return free

    def written(self, sid: str) -> list[Job]:
        """The Store wrote ``sid``'s record: the jobs that now may be sent."""
        outputs = self._unwritten.pop(sid, None)
        if outputs is None:
            return []
        for path in outputs:
            if self._producer.get(path) == sid:
                del self._producer[path]
        free = []
        for waiter in self._waiters.pop(sid, ()):
            entry = self._held.get(waiter)
            if entry is None:
                continue
            job, left = entry
            if left > 1:
                self._held[waiter] = (job, left - 1)
            else:
                del self._held[waiter]
                free.append(job)
        return free

    def drop(self) -> list[Job]:
        """Every held job, let go of (the build starts nothing more)."""
        jobs = [job for job, _ in self._held.values()]
        self._held.clear()
        self._waiters.clear()
        return jobs
