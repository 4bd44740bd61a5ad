"""The worker threads of a chef: a queue of steps, one slot per thread.

:class:`WorkerPool` holds one long-lived thread per slot, each with its own
:class:`~computepods.chef.slot.Slot` (a thread per step, or asyncio
subprocesses, cost measurably more).  A slot starts its next simple step as
soon as the last one's command has ended, and commits that one's output
while the new command runs, so the processor is not idle while the thread
keeps the books.  The pool decides what runs when; running one step in a
slot is :mod:`computepods.chef.step`'s job, and it never calls back here.
"""
from __future__ import annotations

import dataclasses
import os
import queue
import shutil
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from computepods.chef import groups
from computepods.chef import scratch
from computepods.chef.lease import Lease
from computepods.chef.slot import LogDir, Slot
from computepods.clock import prompt_switching
from computepods.chef.step import (Launched, StepJob, execute, failed_item, is_simple, land,
                                   launch)
from computepods.errors import ComputePodsError

if TYPE_CHECKING:
    from computepods.federation.remotesteps import RemoteSteps

_STOP = object()          # what WorkerPool._take gives for the stop sentinel
GATE_WAIT_S = 0.2         # seconds between looks at stop/cancel while a step waits for the gate


class WorkerPool:
    """`slots` threads, each running one step at a time from a shared queue."""

    def __init__(self, root: Path | None, slots: int, on_started: Callable[[StepJob], None],
                 on_done: Callable[[StepJob, dict], None], name: str = "chef",
                 lease: Lease | None = None, remote: "RemoteSteps | None" = None,
                 gate: "threading.Semaphore | None" = None):
        """``lease``: the chef's (:mod:`computepods.chef.lease`); a step taken
        before the chef lost it neither starts nor commits.  ``remote``: how
        steps from other pods run (in their origin's tree); ``root`` None: a
        chef pod with no tree of its own.  ``gate``: slots shared with other
        pools (a chef pod's chefs, one per namespace it serves): a step runs
        only once it holds one of the gate's tokens."""
        prompt_switching()          # a slot whose command ended starts the next at once
        self.root = root
        self._name = name
        self._remote = remote
        self.slots = slots
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._on_started = on_started
        self._on_done = on_done
        self._running: dict[int, tuple[int, str]] = {}   # slot index -> (pgid, build)
        self._ran_on: dict = {}          # job key -> (slot index, wall ns at its start)
        self._cancelled: deque[str] = deque(maxlen=64)   # builds whose steps are dropped
        self._lock = threading.Lock()
        self.queued = 0
        self._stopping = False          # queued steps are dropped, none starts
        self._lease = lease
        self._gate = gate
        self._taken_at: dict[tuple, float] = {}          # job key -> when submitted
        # Slots per tree, made as a tree is first used (the own tree's now).
        self._trees: dict[str, LogDir] = {}
        self._slots: list[dict[str, Slot]] = [{} for _ in range(slots)]
        if root is not None:
            for i in range(slots):
                self._slot(i, root)
        self._threads = [threading.Thread(target=self._work, args=(i,), name=f"slot-{i}",
                                          daemon=True) for i in range(slots)]
        for t in self._threads:
            t.start()

    def _slot(self, index: int, root: Path) -> Slot:
        """Thread ``index``'s slot in the tree ``root`` (only that thread asks)."""
        key = os.path.abspath(root)
        slot = self._slots[index].get(key)
        if slot is None:
            with self._lock:
                logs = self._trees.setdefault(key, LogDir(Path(key)))
            slot = Slot(Path(key), f"{scratch.scratch_name(self._name)}-{os.getpid()}-{index}",
                        logs)
            self._slots[index][key] = slot
        return slot

    def submit(self, job: StepJob) -> None:
        with self._lock:
            self.queued += 1
            if self._lease is not None:
                self._taken_at[job.key] = self._lease.now()
        self._jobs.put(job)
        if job.origin and self._remote is not None:
            self._remote.prefetch([job])    # its files come while it waits for a slot

    def _started(self, index: int, job: StepJob) -> None:
        """A slot starts ``job``: which one and when go in its result (the timeline)."""
        self._ran_on[job.key] = (index, time.time_ns())
        self._on_started(job)

    def _done(self, job: StepJob, item) -> None:
        with self._lock:
            self._taken_at.pop(job.key, None)
        ran_on = self._ran_on.pop(job.key, None)
        if ran_on is not None and item.command:
            item = dataclasses.replace(item, slot=ran_on[0], started_ns=ran_on[1])
        self._on_done(job, item)

    def _lapsed(self, job: StepJob) -> Callable[[], str | None]:
        """Why ``job`` is no longer this chef's (its lease lapsed since it was
        taken), or None: asked before it starts and before it commits."""
        def lapsed() -> str | None:
            taken = self._taken_at.get(job.key)
            if self._lease is None or taken is None or self._lease.holds(taken):
                return None
            return self._lease.lapse()
        return lapsed

    def _work(self, index: int) -> None:
        """Take steps one by one.  When a simple step's command has ended and
        another step is queued, the next command starts before the ended
        step's output is hashed and committed: the processor runs it while
        this thread does the bookkeeping."""
        slot = self._slots[index].get(os.path.abspath(self.root)) if self.root else None
        landing: Launched | None = None          # ended; its output still to commit
        while True:
            job = self._take(block=landing is None)
            if job is _STOP:
                if landing is not None:
                    self._land(slot, landing)
                return
            launched = None
            if job is not None:
                if job.build in self._cancelled:
                    self._done(job, failed_item(job.step.id, job.attempt, "cancelled"))
                elif (why := self._lapsed(job)()) is not None:
                    self._done(job, failed_item(job.step.id, job.attempt, why))
                elif is_simple(job.step) and not job.origin and slot is not None:
                    launched = self._launch(index, slot, job)
                else:
                    if landing is not None:
                        self._land(slot, landing)
                        landing = None
                    self._gated_run(index, slot, job)
            if landing is not None:
                self._land(slot, landing)
                landing = None
            if launched is not None:
                try:
                    launched.proc.wait(tails=None)
                finally:
                    self._running.pop(index, None)
                landing = launched

    def _take(self, block: bool):
        """The next job; None if none is queued (block=False); _STOP to stop."""
        try:
            job = self._jobs.get() if block else self._jobs.get_nowait()
        except queue.Empty:
            return None
        if job is None:
            return _STOP
        with self._lock:
            self.queued -= 1
        if self._stopping:
            return _STOP                # (its sentinel stays queued: harmless)
        return job

    def _running_as(self, index: int, job: StepJob) -> Callable[[int], None]:
        """Note the step's process group as it starts; a cancel of its build
        that came once the step was taken, before its group was known, kills
        it now (else it would run on, and commit)."""
        def started(pgid: int) -> None:
            with self._lock:
                self._running[index] = (pgid, job.build)
                cancelled = job.build in self._cancelled or self._stopping
            if cancelled:
                groups.kill_group(pgid, grace_s=0.5)
        return started

    def _launch(self, index: int, slot: Slot, job: StepJob) -> Launched | None:
        self._started(index, job)
        try:
            return launch(self.root, job, slot, on_started=self._running_as(index, job))
        except (OSError, ComputePodsError) as exc:
            self._running.pop(index, None)
            self._done(job, failed_item(job.step.id, job.attempt,
                                           f"the chef could not run it: {exc}"))
            return None

    def _land(self, slot: Slot, launched: Launched) -> None:
        try:
            item = land(self.root, launched, slot, self._lapsed(launched.job))
        except (OSError, ComputePodsError) as exc:
            item = failed_item(launched.job.step.id, launched.job.attempt,
                               f"the chef could not run it: {exc}")
        self._done(launched.job, item)

    def _gated_run(self, index: int, slot: Slot | None, job: StepJob) -> None:
        """_run once the gate lets it (at once with no gate); a step whose
        build is cancelled, or whose pool stops, while it waits fails."""
        if self._gate is None:
            self._run(index, slot, job)
            return
        while not self._gate.acquire(timeout=GATE_WAIT_S):
            why = "cancelled" if self._stopping or job.build in self._cancelled else \
                self._lapsed(job)()
            if why is not None:
                self._done(job, failed_item(job.step.id, job.attempt, why))
                return
        try:
            self._run(index, slot, job)
        finally:
            self._gate.release()

    def _run(self, index: int, slot: Slot | None, job: StepJob) -> None:
        self._started(index, job)
        try:
            if job.origin:
                if self._remote is None:         # the chef refuses these; never here
                    raise ComputePodsError("this chef serves only its own tree")
                item = self._remote.run(job, lambda tree: self._slot(index, tree),
                                        on_started=self._running_as(index, job),
                                        lapsed=self._lapsed(job))
            else:
                if slot is None:
                    raise ComputePodsError("no project tree here")
                item = execute(self.root, job, slot, on_started=self._running_as(index, job),
                               lapsed=self._lapsed(job))
        except (OSError, ComputePodsError) as exc:
            item = failed_item(job.step.id, job.attempt, f"the chef could not run it: {exc}")
        finally:
            self._running.pop(index, None)
        self._done(job, item)

    def runs(self, build: str) -> bool:
        """Whether a step of ``build`` runs in a slot now (its group known)."""
        return any(of == build for _, of in list(self._running.values()))

    def cancel_running(self) -> None:
        """Kill every running step's process group (their scratch is discarded)."""
        for pgid, _ in list(self._running.values()):
            groups.kill_group(pgid, grace_s=0.5)

    def cancel_build(self, build: str) -> None:
        """Steps of `build` still queued fail as cancelled; running ones are killed."""
        with self._lock:
            self._cancelled.append(build)
            running = list(self._running.values())
        for pgid, of in running:
            if of == build:
                groups.kill_group(pgid, grace_s=0.5)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the threads: the steps still queued never start, the running
        ones are killed, and an ended one's output is still committed."""
        with self._lock:
            self._stopping = True
        self.cancel_running()
        for _ in self._threads:
            self._jobs.put(None)
        for t in self._threads:
            t.join(timeout)
        if self._remote is not None:
            self._remote.close()
        for slot in (s for per_tree in self._slots for s in per_tree.values()):
            logged = slot.commits.end > 0
            slot.close()
            # A commit log that holds records is left, as a kill leaves it:
            # those the MajorDomo had not stored yet (a stop mid-build) are
            # stored from it by the pod (recovery.settle_commit_logs), or by
            # the next one to start here.
            if not logged:
                shutil.rmtree(slot.dir, ignore_errors=True)
            else:
                shutil.rmtree(slot.out, ignore_errors=True)
