"""A chef's own view of its lease, and the pool that asks it before committing."""
from __future__ import annotations

from computepods.chef.lease import Lease
from computepods.chef.pool import WorkerPool
from computepods.chef.step import StepJob
from computepods.clock import SimClock
from computepods.planning.resolve import bind
from computepods.project.model import Rule
from tests.helpers import wait_for

WAIT = Rule(name="wait", inputs=(), outputs=("out/%.o",),
            command=("/bin/sh", "-c", 'while [ ! -e go ]; do sleep 0.01; done; echo x > "$0"',
                     "{out}"))


def test_a_step_taken_before_a_silence_past_the_lease_is_not_the_chefs():
    clock = SimClock()
    lease = Lease(15.0, clock)
    before = lease.now()
    clock.advance(10)
    lease.renew()                                # a heartbeat: all is well
    assert lease.holds(before)
    clock.advance(16)                            # frozen past the lease ...
    assert not lease.holds(before)               # ... seen before the next status,
    lease.renew()
    assert not lease.holds(before)               # ... and after it
    after = lease.now()
    clock.advance(1)
    assert lease.holds(after)                    # steps taken since are its own


def test_a_chef_frozen_past_its_lease_commits_nothing_it_had(tmp_path):
    # SIGSTOP/SIGCONT, on a simulated clock: the step's command ends while
    # the chef is "stopped"; its MajorDomo gave the step up, so the output
    # must not reach the tree, and a step queued then must not start.
    clock = SimClock()
    lease = Lease(15.0, clock)
    results: dict[str, object] = {}
    started: list[str] = []
    pool = WorkerPool(tmp_path, 1, on_started=lambda job: started.append(job.step.id),
                      on_done=lambda job, item: results.setdefault(job.step.id, item),
                      name="t", lease=lease)
    try:
        running, queued = bind(WAIT, "a"), bind(WAIT, "b")
        pool.submit(StepJob("b1", running, 1, {}))
        wait_for(lambda: pool.runs("b1"), what="the step to run")
        pool.submit(StepJob("b1", queued, 1, {}))
        clock.advance(20)                        # frozen for 20 s
        lease.renew()                            # SIGCONT: the next status goes out
        (tmp_path / "go").touch()
        wait_for(lambda: len(results) == 2, what="both results")
    finally:
        pool.stop()
    for step in (running, queued):
        item = results[step.id]
        assert not item.ok and "silent for longer than its lease" in item.reason, item
    assert started == [running.id]
    assert not (tmp_path / "out").exists()
