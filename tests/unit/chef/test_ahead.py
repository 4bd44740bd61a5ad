"""A chef's steps sent ahead: held until what they follow lands, then run
only if what they read changed (chef/ahead.py)."""
from __future__ import annotations

from computepods.bus.chefwire import Output, RunStep, StepResult
from computepods.chef.ahead import Ahead
from computepods.chef.step import StepJob
from computepods.project.model import Rule
from computepods.planning.resolve import bind

OLD, NEW = "0" * 64, "1" * 64


def job(sid_out: str, reads: str | None = None, *, after=(), was=None, always=False) -> StepJob:
    rule = Rule(name=f"r{sid_out}", inputs=(reads,) if reads else (), outputs=(sid_out,),
                command="cat {in} > {out}")
    step = bind(rule, None)
    terms = RunStep(step.id, 1, rule.name, None, {}, after=tuple(after), was=was or {},
                    always=always) if after else None
    return StepJob("b1", step, 1, {}, ahead=terms)


def ok(j: StepJob, sha: str) -> StepResult:
    return StepResult(j.step.id, 1, True, "cat", 0, outputs={j.step.outputs[0]: Output(sha, 2)})


def test_a_held_step_runs_once_what_it_reads_lands_changed_with_the_new_hash():
    s = job("mid")
    d = job("out", "mid", after=[(s.step.id, 1)], was={"mid": OLD})
    ahead = Ahead()
    assert not ahead.hold([d], pending=lambda key: key == s.key)
    got = ahead.landed(s.key, ok(s, NEW))
    assert got.run == [d] and not got.unrun and d.inputs == {"mid": NEW} and len(ahead) == 0


def test_unchanged_input_unruns_the_step_and_what_follows_it():
    s = job("mid")
    d = job("out", "mid", after=[(s.step.id, 1)], was={"mid": OLD})
    e = job("last", "out", after=[(d.step.id, 1)], was={"out": OLD})
    ahead = Ahead()
    ahead.hold([d, e], pending=lambda key: key in (s.key, d.key))
    got = ahead.landed(s.key, ok(s, OLD))
    assert got.run == [] and [(j.step.id, n.id) for j, n in got.unrun] == [
        (d.step.id, d.step.id), (e.step.id, e.step.id)]
    assert "did not change" in got.unrun[0][1].reason and len(ahead) == 0


def test_always_runs_it_whatever_lands_and_a_failure_unruns_it():
    s = job("mid")
    d = job("out", "mid", after=[(s.step.id, 1)], was={"mid": OLD}, always=True)
    ahead = Ahead()
    ahead.hold([d], pending=lambda key: True)
    assert ahead.landed(s.key, ok(s, OLD)).run == [d]
    d2 = job("out", "mid", after=[(s.step.id, 1)], was={"mid": OLD}, always=True)
    d2.build = "b2"
    s2 = job("mid")
    s2.build = "b2"
    ahead.hold([d2], pending=lambda key: True)
    failed = StepResult(s2.step.id, 1, False, "cat", 1, "exit 1")
    got = ahead.landed(s2.key, failed)
    assert got.run == [] and "did not succeed" in got.unrun[0][1].reason


def test_a_step_it_follows_that_landed_first_counts_and_one_never_here_unruns_it():
    s = job("mid")
    ahead = Ahead()
    ahead.landed(s.key, ok(s, NEW))                 # before the run message came
    d = job("out", "mid", after=[(s.step.id, 1)], was={"mid": OLD})
    assert ahead.hold([d], pending=lambda key: False).run == [d]
    lost = job("other", "gone", after=[("r:gone", 1)], was={"gone": OLD})
    got = ahead.hold([lost], pending=lambda key: False)
    assert got.run == [] and "not on this chef" in got.unrun[0][1].reason


def test_a_cancelled_builds_held_steps_are_let_go():
    s = job("mid")
    d = job("out", "mid", after=[(s.step.id, 1)], was={"mid": OLD})
    ahead = Ahead()
    ahead.hold([d], pending=lambda key: True)
    assert ahead.drop_build("b1") == [d] and len(ahead) == 0
    assert not ahead.landed(s.key, ok(s, NEW))      # nothing waits on it any more
