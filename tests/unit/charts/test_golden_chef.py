"""The Chef's main scenarios, pinned as golden spy() traces kept in
golden/chef.json (tests/golden.py: ``CP_GOLDEN=write`` remakes them from
the chart, to be reviewed as a diff).

The Chef is stepped on the test's thread with a SimClock; its worker pool
is real and runs real commands in a real tree.  What a worker posts
(STEP_DONE) is waited for until every step the chef holds has finished, and
only then stepped, so it lands at the same place on every run.  A results
listener answers as a MajorDomo does.  Beside each trace, the test checks
what a MajorDomo would see: the run's answer and the results messages.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from computepods.bus import chefwire, messages as m
from computepods.bus.chefwire import RunStep
from computepods.bus.loopback import LoopbackBus
from computepods.charts.chef import Chef
from computepods.chef.step import rule_to_dict
from computepods.clock import SimClock
from computepods.project.model import Rule
from helpers import wait_for
from stepped import NO_TRACE, settle, start_own, state_of, workers_done

UP = Rule("up", ("src/%.txt",), ("build/%.up",), "tr a-z A-Z < {in} > {out}")
FAIL = Rule("fail", ("src/%.txt",), ("bad/%.txt",), "false")
# Waits for the test's go-file (a gate on disk), so the step is surely still running.
GATED = Rule("gated", ("src/%.txt",), ("gated/%.txt",),
             "while [ ! -e go ]; do sleep 0.01; done; cp {in} {out}")
RULES = {r.name: rule_to_dict(r) for r in (UP, FAIL, GATED)}


class Answers:
    def __init__(self):
        self.got: dict[object, m.Reply] = {}

    def post(self, signal: str, reply: m.Reply) -> None:
        self.got[reply.token] = reply


class Cooking:
    """A Chef with one slot on a loopback bus, stepped, and what it told its MajorDomo."""

    def __init__(self, root: Path):
        self.root = root
        (root / "src").mkdir()
        for stem in "abc":
            (root / "src" / f"{stem}.txt").write_text(f"{stem}\n")
        self.bus, self.clock = LoopbackBus(), SimClock()
        self.results: list[list[dict]] = []
        self.statuses: list[dict] = []
        self.bus.listen(m.STEP_RESULTS, self)
        self.bus.listen(m.CHEF_STATUS, type("S", (), {"put": lambda _, msg:
                                                      self.statuses.append(msg.data)})())
        self.answers = Answers()
        self.chef = Chef("c", self.bus, root, 1, clock=self.clock,
                         fingerprints=lambda tools: {}, **NO_TRACE)
        self.started = start_own(self.chef)

    def put(self, msg: m.Message) -> None:          # a results message, answered
        self.results.append(msg.data["results"])
        self.bus.respond(msg, {"ok": True})

    def run(self, token, *steps: tuple[str, str], build: str = "b0") -> list[str]:
        """Send a run of (rule, stem) steps; the chart's lines as it takes it."""
        out = {"up": "build/{}.up", "fail": "bad/{}.txt", "gated": "gated/{}.txt"}
        items = [RunStep(f"{rule}:{out[rule].format(stem)}", 1, rule, stem,
                         {f"src/{stem}.txt": "0" * 64}).to_dict() for rule, stem in steps]
        self.bus.request(m.CHEF_RUN, {"build": build, "chef": "c", "steps": items,
                                      "rules": RULES}, chart=self.answers, token=token, chef="c")
        return settle(self.chef)

    def answer(self, token) -> dict:
        reply = self.answers.got.pop(token)
        return {"error": reply.error} if reply.error else reply.data

    def worked(self) -> list[str]:
        """Once every step it holds has finished: the lines of taking them."""
        c = self.chef
        wait_for(lambda: workers_done(c) and c.events_waiting(),
                 what="the chef's workers to finish what it holds")
        return settle(c)

    def finished(self) -> list[tuple[str, bool]]:
        return [(r["id"], r["ok"]) for batch in self.results for r in batch
                if r["event"] == "finished"]


@pytest.fixture
def cooking(tmp_path):
    c = Cooking(tmp_path)
    yield c
    (tmp_path / "go").touch()                      # a gated step still running ends
    c.chef.stop()
    c.bus.stop()


def test_a_run_of_one_step_is_accepted_built_reported_and_acknowledged(cooking, golden):
    c = cooking
    golden.step("start", c.started)
    assert golden.step("run", c.run(1, ("up", "a")))[-1] == "<- Queued:(0) Deferred:(0)"
    assert c.answer(1) == {"accepted": ["up:build/a.up"], "rejected": [], "v": 1}
    assert state_of(c.chef) == "chef_busy"
    golden.step("done", c.worked())
    assert c.finished() == [("up:build/a.up", True)] and state_of(c.chef) == "chef_idle"
    assert (c.root / "build/a.up").read_text() == "A\n"
    assert c.chef.unacked == {}                    # the MajorDomo's answer was taken
    golden.check()


def test_a_failing_step_is_reported_failed_and_the_chef_goes_idle(cooking, golden):
    c = cooking
    golden.step("run", c.run(1, ("fail", "a")))
    golden.step("done", c.worked())
    assert c.finished() == [("fail:bad/a.txt", False)] and state_of(c.chef) == "chef_idle"
    golden.check()


def test_a_repeated_run_is_only_acknowledged_and_after_its_end_answered_again(cooking, golden):
    c = cooking
    golden.step("run", c.run(1, ("gated", "a")))
    wait_for(lambda: c.chef.began, what="the gated step to start")
    golden.step("again, running", c.run(2, ("gated", "a")))
    assert c.answer(2)["accepted"] == ["gated:gated/a.txt"]
    assert c.chef.pool.queued == 0 and len(c.chef.in_flight) == 1   # not queued twice
    (c.root / "go").touch()
    golden.step("done", c.worked())
    golden.step("again, finished", c.run(3, ("gated", "a")))
    assert c.finished() == [("gated:gated/a.txt", True)] * 2        # its result, again
    assert state_of(c.chef) == "chef_idle"
    golden.check()


def test_a_cancel_of_a_build_fails_its_steps_queued_behind_another_builds(cooking, golden):
    # (A cancel that kills a running step is not pinned here: the kill ends
    # on the worker's thread while the chart may still be in the cancel's
    # step.  tests/integration covers it.)
    c = cooking
    golden.step("run b0", c.run(1, ("gated", "a")))
    wait_for(lambda: c.chef.began, what="the gated step to start")
    golden.step("run b1", c.run(2, ("up", "b"), build="b1"))
    assert c.chef.pool.queued == 1
    c.bus.publish(m.CHEFS_CANCEL, chefwire.ChefsCancel("b1").to_dict())
    golden.step("cancel b1", settle(c.chef))
    (c.root / "go").touch()
    golden.step("done", c.worked())
    assert sorted(c.finished()) == [("gated:gated/a.txt", True), ("up:build/b.up", False)]
    assert not (c.root / "build/b.up").exists() and state_of(c.chef) == "chef_idle"
    golden.check()


def test_a_run_with_rules_it_cannot_read_is_answered_with_an_error(cooking, golden):
    c = cooking
    c.bus.request(m.CHEF_RUN, {"build": "b0", "chef": "c", "steps": [], "rules": {
        "r": {"name": "r", "outputs": "a", "command": "true"}}}, chart=c.answers, token=1,
        chef="c")
    golden.step("run", settle(c.chef))
    assert "bad rules" in c.answer(1)["error"] and state_of(c.chef) == "chef_idle"
    golden.check()


def test_a_chefs_query_and_each_heartbeat_say_its_status(cooking, golden):
    c = cooking
    before = len(c.statuses)
    c.bus.publish(m.CHEFS_QUERY, {})
    golden.step("query", settle(c.chef))
    c.clock.advance(c.chef.heartbeat_s)
    golden.step("heartbeat", settle(c.chef))
    assert [s["chef"] for s in c.statuses[before:]] == ["c", "c"]
    golden.check()
