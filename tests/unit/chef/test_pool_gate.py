"""Slots shared by the pools of a chef pod's namespaces: at most the gate's
tokens run at once, across pools; a step waiting for one can be cancelled,
and a pool stops without waiting for another pool's steps."""
from __future__ import annotations

import threading
from pathlib import Path

from computepods.bus.chefwire import StepResult
from computepods.chef.pool import WorkerPool
from computepods.chef.step import StepJob
from computepods.planning.resolve import bind
from computepods.project.model import Rule
from tests.helpers import wait_for

UP = Rule(name="up", inputs=("src/%.txt",), outputs=("out/%.txt",), command=("true",))
HOLD_S = 10.0              # seconds a held step waits to be let go (a bound, never reached)


class HeldSteps:
    """Stands in for RemoteSteps: each step runs until released, and the
    most running at once is counted."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = self.most = 0
        self.release = threading.Event()

    def run(self, job: StepJob, slot_for, on_started=None, lapsed=lambda: None) -> StepResult:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            self.release.wait(HOLD_S)
        finally:
            with self.lock:
                self.running -= 1
        return StepResult(job.step.id, job.attempt, True, "", None, "", 0.0)

    def prefetch(self, jobs) -> int:
        return 0

    def close(self) -> None:
        pass


class Pool:
    def __init__(self, name: str, slots: int, gate: threading.Semaphore, steps: HeldSteps):
        self.done: dict[str, StepResult] = {}
        self.lock = threading.Lock()
        self.pool = WorkerPool(None, slots, on_started=lambda job: None, on_done=self._done,
                               name=name, remote=steps, gate=gate)

    def _done(self, job: StepJob, item: StepResult) -> None:
        with self.lock:
            self.done[job.step.id] = item

    def submit(self, stem: str, build: str = "b1") -> str:
        step = bind(UP, stem)
        self.pool.submit(StepJob(build, step, 1, {}, origin="far", files={}))
        return step.id


def test_two_pools_sharing_a_gate_of_two_run_at_most_two_steps_at_once(tmp_path: Path):
    steps, gate = HeldSteps(), threading.BoundedSemaphore(2)
    a, b = Pool("a", 2, gate, steps), Pool("b", 2, gate, steps)
    try:
        ids = [a.submit("x"), a.submit("y"), b.submit("x"), b.submit("y")]
        wait_for(lambda: steps.running == 2, what="two steps to run")
        assert steps.most == 2                       # four slots, two tokens
        steps.release.set()
        wait_for(lambda: len(a.done) + len(b.done) == 4, what="all four steps done")
        assert all(p.done[i].ok for p, i in zip((a, a, b, b), ids))
        assert steps.most == 2
    finally:
        steps.release.set()
        a.pool.stop()
        b.pool.stop()


def test_one_pool_may_use_every_token_while_the_other_is_idle(tmp_path: Path):
    steps, gate = HeldSteps(), threading.BoundedSemaphore(2)
    a, b = Pool("a", 2, gate, steps), Pool("b", 2, gate, steps)
    try:
        a.submit("x"), a.submit("y")
        wait_for(lambda: steps.running == 2, what="pool a to use both tokens")
    finally:
        steps.release.set()
        a.pool.stop()
        b.pool.stop()


def test_a_step_waiting_for_the_gate_fails_as_cancelled_when_its_build_is(tmp_path: Path):
    steps, gate = HeldSteps(), threading.BoundedSemaphore(1)
    a, b = Pool("a", 1, gate, steps), Pool("b", 1, gate, steps)
    try:
        a.submit("x", build="ba")
        wait_for(lambda: steps.running == 1, what="pool a's step to hold the token")
        waiting = b.submit("x", build="bb")
        b.pool.cancel_build("bb")
        wait_for(lambda: waiting in b.done, what="the waiting step to fail")
        assert not b.done[waiting].ok and b.done[waiting].reason == "cancelled"
        assert steps.most == 1
    finally:
        steps.release.set()
        a.pool.stop()
        b.pool.stop()


def test_a_pool_stops_while_its_step_waits_for_another_pools_token(tmp_path: Path):
    steps, gate = HeldSteps(), threading.BoundedSemaphore(1)
    a, b = Pool("a", 1, gate, steps), Pool("b", 1, gate, steps)
    try:
        a.submit("x")
        wait_for(lambda: steps.running == 1, what="pool a's step to hold the token")
        waiting = b.submit("x")
        wait_for(lambda: b.pool.queued == 0, what="pool b to take its step")
        b.pool.stop(timeout=HOLD_S / 2)
        assert not any(t.is_alive() for t in b.pool._threads)
        assert waiting in b.done and b.done[waiting].reason == "cancelled"
        assert steps.running == 1                    # a's step ran on, untouched
    finally:
        steps.release.set()
        a.pool.stop()
        b.pool.stop()
