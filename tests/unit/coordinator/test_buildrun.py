"""A running build's books: results in, records out, on a simulated clock."""
from __future__ import annotations

import textwrap
from pathlib import Path

from computepods.clock import SimClock
from computepods.coordinator.buildrun import BuildRun
from computepods.planning.graph import BuildGraph
from computepods.planning.plan import BuildPlan
from computepods.planning.resolve import RuleSet
from computepods.planning.scheduler import Scheduler
from computepods.project.load import load_project
from computepods.state.hashing import StatCache, sha256_file

CHAIN = """
    [[rule]]
    name = "up"
    inputs = ["%.src"]
    outputs = ["%.mid"]
    command = "up {in} {out}"

    [[rule]]
    name = "last"
    inputs = ["%.mid"]
    outputs = ["%.out"]
    command = "last {in} {out}"
"""


def build_run(root: Path, clock: SimClock, *, keep_going: bool = False) -> tuple[BuildRun, list]:
    (root / "computepods.toml").write_text(textwrap.dedent(CHAIN))
    (root / "a.src").write_text("a\n")
    (root / "b.src").write_text("b\n")
    project = load_project(root)
    plan = RuleSet(project).resolve(["a.out", "b.out"], lambda p: (root / p).is_file())
    graph = BuildGraph.from_plan(plan, {})
    bp = BuildPlan(project, plan, graph, Scheduler(graph, {}, StatCache(root, {}),
                                                   keep_going=keep_going))
    events: list = []
    return BuildRun("b1", ["a.out", "b.out"], bp, lambda build, ev: events.append(ev),
                    cwd=str(root), clock=clock), events


def ok(root: Path, sid: str, attempt: int = 1) -> dict:
    out = sid.split(":")[1]
    (root / out).write_text(sid)
    digest = sha256_file(root / out)
    return {"event": "finished", "id": sid, "attempt": attempt, "ok": True, "duration_s": 0.1,
            "outputs": {out: {"sha256": digest, "size": len(sid)}}}


def test_a_result_becomes_a_record_and_the_step_is_done_once_it_is_on_disk(tmp_path):
    run, events = build_run(tmp_path, SimClock())
    run.release()
    assert run.waiting == 2
    jobs = run.next_batch(5)
    assert sorted(j.step.id for j in jobs) == ["up:a.mid", "up:b.mid"]
    taken = run.take("chef", [{"event": "started", "id": "up:a.mid", "attempt": 1},
                              ok(tmp_path, "up:a.mid")])
    [record] = taken.records
    assert record.step_id == "up:a.mid" and record.status == "ok"
    assert record.inputs == {"a.src": sha256_file(tmp_path / "a.src")}
    assert taken.settled == ["up:a.mid"] and "a.mid" in taken.outputs
    assert [e["t"] for e in events] == ["ran"]              # start and end in one message
    assert run.record_token(taken.records) == ["up:a.mid"]
    run.release()
    assert run.waiting == 0                                 # not done before its record is
    run.recorded([["up:a.mid"]])
    run.release()
    assert run.waiting == 1 and run.next_batch(1)[0].step.id == "last:a.out"


def test_a_step_is_judged_as_its_result_comes_but_sent_only_once_its_input_is_recorded(tmp_path):
    """Persist before proceed, per job: the Scheduler learns up:a.mid's
    output at once (its dependant is judged, and counted running), yet the
    dependant is not sent until the record it builds on is written."""
    run, events = build_run(tmp_path, SimClock())
    run.release()
    run.next_batch(2)
    run.take("chef", [ok(tmp_path, "up:a.mid")])
    run.release()
    assert run.scheduler.is_running("last:a.out") and run.waiting == 0
    run.recorded([["up:b.mid"]])                             # another record: not its
    assert run.waiting == 0
    run.recorded([["up:a.mid"]])
    assert [j.step.id for j in run.next_batch(5)] == ["last:a.out"]


def test_a_failure_without_keep_going_drops_what_waits_to_be_sent(tmp_path):
    """Jobs released but not sent when a step fails (no -k) are not run:
    the build drains instead of waiting for them forever (it hung, with more
    steps than the chefs' windows held)."""
    run, events = build_run(tmp_path, SimClock())
    run.release()
    [sent] = run.next_batch(1)                              # up:b.mid waits to be sent
    run.take("chef", [{"event": "finished", "id": sent.step.id, "attempt": 1, "ok": False,
                       "exit_code": 1, "reason": "exit 1", "stdout_tail": "",
                       "stderr_tail": ""}])
    assert run.stopping and run.waiting == 0 and run.drained
    done = run.summary()
    assert (done["code"], done["ran"], done["failed"], done["not_run"] + done["blocked"]) == \
        (1, 0, 1, 3)


def test_a_failure_drops_a_job_waiting_for_a_record_and_the_build_ends_after_the_records(tmp_path):
    """The job is not run; the build drains at once, and its final records
    (written after up:a.mid's, in order) end it."""
    run, events = build_run(tmp_path, SimClock())
    run.release()
    run.next_batch(2)
    run.take("chef", [ok(tmp_path, "up:a.mid")])
    run.release()                                           # last:a.out waits for the record
    run.take("chef", [{"event": "finished", "id": "up:b.mid", "attempt": 1, "ok": False,
                       "exit_code": 1, "reason": "exit 1", "stdout_tail": "",
                       "stderr_tail": ""}])
    assert run.stopping and run.waiting == 0 and run.drained
    run.recorded([["up:a.mid"]])
    assert run.waiting == 0
    done = run.summary()
    assert (done["code"], done["ran"], done["failed"], done["not_run"]) == (1, 1, 1, 1)


def test_a_result_whose_start_note_never_came_is_shown_as_ran(tmp_path):
    """The client prints a step's run line on its start or ran event: a
    result taken with no start note before it (held ahead, stashed, sent
    again) still shows it ran."""
    run, events = build_run(tmp_path, SimClock())
    run.release()
    run.next_batch(2)
    run.take("chef", [{"event": "started", "id": "up:b.mid", "attempt": 1}])
    run.take("chef", [ok(tmp_path, "up:a.mid")])
    run.take("chef", [ok(tmp_path, "up:b.mid")])
    assert [(e["t"], e["step"]) for e in events] == [
        ("start", "up:b.mid"), ("ran", "up:a.mid"), ("ok", "up:b.mid")]


def test_late_duplicate_and_older_attempts_are_ignored(tmp_path):
    run, events = build_run(tmp_path, SimClock())
    run.release()
    run.next_batch(2)
    run.resend("up:a.mid")                                  # its chef was lost
    assert run.next_batch(1)[0].attempt == 2
    assert run.take("old chef", [ok(tmp_path, "up:a.mid", attempt=1)]).records == []
    assert len(run.take("new chef", [ok(tmp_path, "up:a.mid", attempt=2)]).records) == 1
    assert run.take("new chef", [ok(tmp_path, "up:a.mid", attempt=2)]).records == []


def test_a_failure_stops_the_build_and_it_drains(tmp_path):
    run, events = build_run(tmp_path, SimClock())
    run.release()
    run.next_batch(2)
    taken = run.take("chef", [{"event": "finished", "id": "up:a.mid", "attempt": 1,
                               "ok": False, "exit_code": 2, "reason": "exit 2",
                               "stdout_tail": "", "stderr_tail": "boom"}])
    assert [r.status for r in taken.records] == ["failed"]
    assert run.stopping and not run.drained                  # up:b.mid still runs
    assert events[-1]["t"] == "fail" and events[-1]["stderr_tail"] == "boom"
    run.take("chef", [ok(tmp_path, "up:b.mid")])
    run.recorded([["up:b.mid"]])
    assert run.drained
    assert run.summary()["code"] == 1 and run.summary()["failed"] == 1


def test_a_cancel_leaves_what_was_not_sent_not_run_and_ends_with_130(tmp_path):
    clock = SimClock()
    run, events = build_run(tmp_path, clock)
    run.release()
    clock.advance(2.5)
    assert run.cancel() is True and run.cancel() is False
    assert events[-1]["t"] == "cancel" and events[-1]["dropped"] == 2
    assert run.drained
    done = run.summary()
    assert done["code"] == 130 and done["cancelled"] and done["duration_s"] == 2.5
    assert (done["failed"], done["not_run"] + done["blocked"], done["cancelled_steps"]) == (0, 4, 0)


def test_a_step_killed_by_a_cancel_is_cancelled_and_one_dropped_unstarted_not_run(tmp_path):
    """The chef kills what runs (exit by signal) and drops what it queued (no
    command): neither is a failure, and neither leaves a failed record."""
    run, events = build_run(tmp_path, SimClock())
    run.release()
    run.next_batch(2)
    run.take("chef", [{"event": "started", "id": "up:a.mid", "attempt": 1}])
    run.cancel()
    taken = run.take("chef", [
        {"event": "finished", "id": "up:a.mid", "attempt": 1, "ok": False,
         "command": "up a.src a.mid", "exit_code": None, "reason": "killed by SIGTERM",
         "duration_s": 0.4},
        {"event": "finished", "id": "up:b.mid", "attempt": 1, "ok": False, "command": "",
         "reason": "cancelled"}])
    assert taken.records == []
    assert [e["t"] for e in events] == ["start", "cancel", "cancelled"]
    assert events[-1] == {"t": "cancelled", "step": "up:a.mid", "duration_s": 0.4,
                          "progress": [2, 4, 1]}      # it, and last:a.out after it; b runs
    assert run.drained
    done = run.summary()
    assert (done["ran"], done["failed"], done["cancelled_steps"], done["not_run"] +
            done["blocked"], done["runs"]) == (0, 0, 1, 3, 1)


def test_a_lost_chef_with_no_other_fails_its_steps_naming_it(tmp_path):
    run, events = build_run(tmp_path, SimClock())
    run.release()
    run.next_batch(2)
    steps = run.unfinished({"up:a.mid", "up:b.mid", "not a step"})
    run.chef_lost("c1", steps, "chef c1 is gone (stopped)", rescheduled=False)
    fails = [e for e in events if e["t"] == "fail"]
    assert [e["reason"] for e in fails] == ["chef c1 is gone (stopped); no other chef to run it"] * 2
    assert events[0]["t"] == "chef_lost" and events[0]["steps"] == ["up:a.mid", "up:b.mid"]
    assert run.stopping


GROUP = """
    [[rule]]
    name = "latex"
    inputs = ["doc.tex", "doc.bbl"]
    outputs = ["doc.pdf", "doc.aux"]
    command = "latex {in[0]}"

    [[rule]]
    name = "bib"
    inputs = ["doc.aux"]
    outputs = ["doc.bbl"]
    command = "bib {in}"
"""


def test_a_cyclic_group_that_gives_up_counts_what_ran_and_every_tool_run(tmp_path):
    """Three passes of latex and bib that flip between two states: the group
    fails on its first step, and the summary still says bib ran, and that
    six runs happened."""
    (tmp_path / "computepods.toml").write_text(textwrap.dedent(GROUP))
    (tmp_path / "doc.tex").write_text("tex\n")
    project = load_project(tmp_path)
    plan = RuleSet(project).resolve(["doc.pdf"], lambda p: (tmp_path / p).is_file())
    graph = BuildGraph.from_plan(plan, {})
    run = BuildRun("b1", ["doc.pdf"], BuildPlan(project, plan, graph, Scheduler(
        graph, {}, StatCache(tmp_path, {}))), lambda build, ev: None, cwd=str(tmp_path),
        clock=SimClock())
    passes = 0
    run.release()
    while not run.drained:
        jobs = run.next_batch(5)
        assert jobs, "the group neither ran nor ended"
        for job in jobs:
            if job.step.rule.name == "latex":
                passes += 1
            state = "AB"[passes % 2]
            outputs = {}
            for out in job.step.outputs:
                (tmp_path / out).write_text(f"{out} {state}\n")
                outputs[out] = {"sha256": sha256_file(tmp_path / out), "size": 1}
            taken = run.take("chef", [{"event": "finished", "id": job.step.id,
                                       "attempt": job.attempt, "ok": True,
                                       "duration_s": 0.1, "outputs": outputs}])
            run.recorded([run.record_token(taken.records)])
        run.release()
    done = run.summary()
    assert passes == 3 and done["code"] == 1
    assert (done["ran"], done["failed"], done["blocked"], done["runs"]) == (1, 1, 0, 6)
