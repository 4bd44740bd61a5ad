"""How soon a chef's results and status tell its MajorDomo what it holds:
placement of a build's last steps goes by each chef's queue, which the
MajorDomo learns from them.  The chart is driven as its worker threads
drive it (step_started / step_done), with a SimClock; a results listener
answers as a MajorDomo would."""
from __future__ import annotations

import queue

import pytest

from computepods.bus import messages as m
from computepods.bus.chefwire import RunStep, StepResult
from computepods.bus.loopback import LoopbackBus
from computepods.charts.chef import RESULTS_EVERY_S, STARTED_HOLD_S, Chef
from computepods.chef.step import job_from_message, rule_to_dict
from computepods.clock import SimClock
from computepods.project.model import Rule
from helpers import wait_for

UP = Rule("up", ("src/%.txt",), ("build/%.up",), "tr a-z A-Z < {in} > {out}")
NAP = Rule("nap", ("src/%.txt",), ("out/%.txt",), "sleep 30; cp {in} {out}")  # killed at stop
DEEP = 10                 # steps queued at the chef: nothing need be reported early


def listening_chef(tmp_path):
    bus, clock = LoopbackBus(), SimClock()
    messages: "queue.Queue[dict]" = queue.Queue()

    class Results:
        def put(self, msg: m.Message) -> None:
            messages.put(msg.data)
            bus.respond(msg, {"ok": True})
    bus.listen(m.STEP_RESULTS, Results())
    statuses: "queue.Queue[dict]" = queue.Queue()

    class Statuses:
        def put(self, msg: m.Message) -> None:
            statuses.put(msg.data)
    bus.listen(m.CHEF_STATUS, Statuses())
    c = Chef("c", bus, tmp_path, 2, clock=clock, fingerprints=lambda tools: {}).start()
    c.clock_, c.messages, c.statuses = clock, messages, statuses
    return bus, c


@pytest.fixture
def idle_chef(tmp_path):
    """A chef with one step running and nothing queued: every note matters."""
    bus, c = listening_chef(tmp_path)
    (tmp_path / "src").mkdir()
    (tmp_path / "src/n.txt").write_text("n\n")
    nap = RunStep("nap:out/n.txt", 1, "nap", "n", {"src/n.txt": "0" * 64}).to_dict()
    answer = bus.request_sync(m.CHEF_RUN, {"build": "b0", "chef": "c", "steps": [nap],
                                           "rules": {"nap": rule_to_dict(NAP)}}, chef="c")
    assert len(answer["accepted"]) == 1
    wait_for(lambda: c.began, what="its nap to start")
    c.clock_.advance(STARTED_HOLD_S)
    wait_for(lambda: not c.messages.empty(), what="the nap's start note")
    drain(c.messages)
    yield c
    c.stop()
    bus.stop()


@pytest.fixture
def chef(tmp_path):
    bus, c = listening_chef(tmp_path)
    clock = c.clock_
    (tmp_path / "src").mkdir()
    naps = []
    for i in range(DEEP + 2):                # 2 in its slots, DEEP queued
        (tmp_path / "src" / f"n{i}.txt").write_text(f"{i}\n")
        naps.append(RunStep(f"nap:out/n{i}.txt", 1, "nap", f"n{i}",
                            {f"src/n{i}.txt": "0" * 64}).to_dict())
    answer = bus.request_sync(m.CHEF_RUN, {"build": "b0", "chef": "c", "steps": naps,
                                           "rules": {"nap": rule_to_dict(NAP)}}, chef="c")
    assert len(answer["accepted"]) == DEEP + 2
    wait_for(lambda: c.pool.queued == DEEP and c.pool.runs("b0"), what="a deep queue")
    clock.advance(RESULTS_EVERY_S)          # past any message its naps' starts sent
    yield c
    c.stop()
    bus.stop()


def job(i: int):
    step = RunStep(f"up:build/s{i}.up", 1, "up", f"s{i}", {f"src/s{i}.txt": "0" * 64})
    return job_from_message("b1", {"up": UP}, step.to_dict())


def finished_ids(msg: dict) -> list[str]:
    return [r["id"] for r in msg["results"] if r["event"] == "finished"]


def results_with(chef: Chef, sid: str) -> dict:
    def found():
        while not chef.messages.empty():
            if sid in finished_ids(msg := chef.messages.get()):
                return msg
        return None
    return wait_for(found, what=f"a results message with {sid}")


def finished(chef: Chef, j, duration_s: float = 0.2, ok: bool = True) -> None:
    """What a worker does as a step of a deep queue ends."""
    chef.step_done(j, StepResult(j.step.id, j.attempt, ok, "tr", 0 if ok else 1,
                                 duration_s=duration_s))


def drain(q: "queue.Queue[dict]") -> list[dict]:
    got = []
    while not q.empty():
        got.append(q.get())
    return got


def held_results(chef: Chef) -> int:
    with chef.done_lock:
        return len(chef.done)


def test_with_a_deep_queue_results_still_go_every_RESULTS_EVERY_S(chef):
    jobs = [job(i) for i in range(3)]
    chef.in_flight.update(j.key for j in jobs)
    finished(chef, jobs[0])                 # the first result goes at once
    assert finished_ids(results_with(chef, jobs[0].step.id)) == [jobs[0].step.id]
    finished(chef, jobs[1])                 # at once after it: it waits for company
    assert held_results(chef) == 1
    chef.clock_.advance(RESULTS_EVERY_S)
    finished(chef, jobs[2])                 # it has waited long enough: both go
    assert finished_ids(results_with(chef, jobs[2].step.id)) == \
        [jobs[1].step.id, jobs[2].step.id]


def test_its_status_counts_as_running_only_steps_still_in_a_slot(chef):
    jobs = [job(i) for i in range(2)]
    chef.in_flight.update(j.key for j in jobs)
    finished(chef, jobs[0])
    results_with(chef, jobs[0].step.id)
    wait_for(lambda: held_results(chef) == 0, what="the chart to take the first result")
    finished(chef, jobs[1])                 # ended, not yet reported: not running
    assert held_results(chef) == 1
    drain(chef.statuses)
    chef.publish_status()
    status = wait_for(lambda: None if chef.statuses.empty() else chef.statuses.get(),
                      what="its status")
    assert (status["running"], status["queued"]) == (2, DEEP)      # its two naps


def test_typical_s_is_how_long_a_step_holds_its_slot_setup_included(chef):
    j = job(0)
    chef.in_flight.add(j.key)
    chef.step_started(j)                    # its slot took it: setup starts
    chef.clock_.advance(0.5)                # fetching, a sparse view, keeping its output
    finished(chef, j, duration_s=0.2)       # of which its command took 0.2 s
    results_with(chef, j.step.id)
    assert chef.typical_s == pytest.approx(0.5)


def notes(msg: dict) -> list[tuple[str, str]]:
    return [(r["event"], r["id"]) for r in msg["results"]]


def test_a_quick_steps_start_goes_with_its_result_which_says_it(idle_chef):
    j = job(0)
    idle_chef.in_flight.add(j.key)
    idle_chef.step_started(j)
    finished(idle_chef, j)                  # within STARTED_HOLD_S: one message, one note
    assert notes(results_with(idle_chef, j.step.id)) == [("finished", j.step.id)]
    idle_chef.clock_.advance(STARTED_HOLD_S)
    wait_for(lambda: not idle_chef.starts_held, what="the hold to pass")
    assert drain(idle_chef.messages) == [], "its start is not sent twice"


def test_a_step_still_running_after_the_hold_shows_as_running(idle_chef):
    j = job(0)
    idle_chef.in_flight.add(j.key)
    idle_chef.step_started(j)
    assert idle_chef.messages.empty()
    idle_chef.clock_.advance(STARTED_HOLD_S)
    started = wait_for(lambda: None if idle_chef.messages.empty() else idle_chef.messages.get(),
                       what="its start note")
    assert notes(started) == [("started", j.step.id)]
    finished(idle_chef, j)
    assert notes(results_with(idle_chef, j.step.id)) == [("finished", j.step.id)]


def test_a_failed_steps_start_still_goes_with_its_failure(idle_chef):
    """Only a success makes the start note redundant (the MajorDomo shows
    "ran"); a failure's event stream keeps its start."""
    j = job(0)
    idle_chef.in_flight.add(j.key)
    idle_chef.step_started(j)
    finished(idle_chef, j, ok=False)
    assert notes(results_with(idle_chef, j.step.id)) == \
        [("started", j.step.id), ("finished", j.step.id)]
