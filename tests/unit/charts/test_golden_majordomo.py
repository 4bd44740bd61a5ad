"""The MajorDomo's main scenarios, pinned as golden spy() traces kept in
golden/majordomo.json (tests/golden.py: ``CP_GOLDEN=write`` remakes them
from the charts, to be reviewed as a diff; its dispatch is changing).

A whole pod's charts are stepped on the test's thread, one event of each
in turn (stepped.settle_all): the MajorDomo, the Store and a real Chef with
one slot, on one Fabric, one loopback bus and one SimClock.  The chef's
worker runs real commands in a real tree; each round waits until what it
holds has finished, so its STEP_DONE lands in the same round on every run.
Each step of a scenario keeps the lines of every chart; beside them the
test checks what ``cpod build`` would show: the build's events.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from computepods.bus import messages as m
from computepods.bus.loopback import LoopbackBus
from computepods.charts.base import Fabric
from computepods.charts.chef import Chef
from computepods.charts.majordomo import CHEF_WAIT_S, TICK_S, MajorDomo
from computepods.charts.store import Store
from computepods.clock import SimClock
from computepods.paths import prepare_state_dir
from computepods.planning.plan import STATE_DB
from computepods.state.db import StateDB
from loopbackpod import write_project
from stepped import NO_TRACE, settle_all, start_own, state_of, taken, workers_done


def project(*rules: tuple[str, str, str, str], default: str) -> dict[str, str]:
    text = f'[project]\ndefault = ["{default}"]\n'
    for name, inputs, outputs, command in rules:
        text += (f'\n[[rule]]\nname = "{name}"\ninputs = ["{inputs}"]\n'
                 f'outputs = ["{outputs}"]\ncommand = "{command}"\n')
    return {"computepods.toml": text, "src/a.txt": "a\n"}


COPY = ("copy", "src/%.txt", "mid/%.txt", "cp {in} {out}")
CHAIN = project(COPY, ("up", "mid/%.txt", "out/%.up", "tr a-z A-Z < {in} > {out}"),
                default="out/a.up")
FAILING = project(COPY, ("up", "mid/%.txt", "out/%.up", "false"), default="out/a.up")
# The step waits for the test's go-file, so a cancel surely finds it running.
GATED = project(("wait", "src/%.txt", "out/%.txt",
                 "while [ ! -e go ]; do sleep 0.01; done; cp {in} {out}"), default="out/a.txt")


class Sink:
    def __init__(self):
        self.got: dict[object, m.Reply] = {}

    def post(self, signal: str, reply: m.Reply) -> None:
        self.got[reply.token] = reply


class SteppedPod:
    """MajorDomo, Store and (optionally) a Chef of one pod, stepped together."""

    def __init__(self, root: Path, files: dict[str, str], *, chef: bool = True):
        write_project(root, files)
        prepare_state_dir(root)
        self.root, self.clock, self.bus, fabric = root, SimClock(), LoopbackBus(name="t"), Fabric()
        self.events: list[dict] = []
        self.bus.listen(m.BUILD_EVENTS, self)
        self.answers = Sink()
        self.store = Store(root / STATE_DB, clock=self.clock, db=StateDB(root / STATE_DB),
                           fabric=fabric, **NO_TRACE)
        self.md = MajorDomo(self.bus, root, clock=self.clock, fabric=fabric, **NO_TRACE)
        self.chef = Chef("a", self.bus, root, 1, clock=self.clock, fabric=fabric,
                         fingerprints=lambda tools: {}, **NO_TRACE) if chef else None
        self.charts = [c for c in (self.md, self.store, self.chef) if c is not None]
        self.gated = files is GATED
        for c in self.charts:
            start_own(c)

    def put(self, msg: m.Message) -> None:          # cp.build.<id>.events
        self.events.extend(msg.data["events"])

    def idle(self) -> bool:
        """The chef's worker holds nothing that will end by itself: each step
        it took has finished and its STEP_DONE is queued, or the one running
        is a gated step whose gate is shut (``gated``: until the test opens
        it, or kills the step)."""
        c = self.chef
        if c is None:
            return True
        if self.gated and not (self.root / "go").exists() and c.began:
            return True
        return workers_done(c)

    def settle(self, golden, label: str, *, charts=None) -> None:
        settle_all(*self.charts, idle=self.idle)
        for c in self.charts:
            lines = taken(c)
            if charts is None or c in charts:
                golden.step(f"{label}: {c.name}", lines)

    def request(self, token, targets=()) -> None:
        self.bus.request(m.BUILD_REQUEST, {"targets": list(targets), "cwd": str(self.root)},
                         chart=self.answers, token=token)

    def build_id(self, token) -> str:
        return self.answers.got[token].data["build"]

    def kinds(self) -> list[str]:
        return [e["t"] for e in self.events]

    def done(self) -> dict:
        [done] = [e for e in self.events if e["t"] == "done"]
        return done

    def stop(self) -> None:
        (self.root / "go").touch()
        for c in self.charts:
            c.stop()
        self.bus.stop()


@pytest.fixture
def pod(tmp_path):
    made = []

    def make(files, **kw) -> SteppedPod:
        made.append(SteppedPod(tmp_path, files, **kw))
        return made[-1]
    yield make
    for p in made:
        p.stop()


def test_a_chain_builds_each_step_once_its_input_is_recorded(pod, golden):
    p = pod(CHAIN)
    p.settle(golden, "chef heard")
    p.request(1)
    p.settle(golden, "build")
    assert p.kinds() == ["queued", "plan", "ran", "ran", "done"] and p.done()["ok"] is True
    assert (p.root / "out/a.up").read_text() == "A\n" and state_of(p.md) == "md_idle"
    with StateDB(p.root / STATE_DB, readonly=True) as db:
        assert sorted(db.steps()) == ["copy:mid/a.txt", "up:out/a.up"]
    golden.check()


def test_a_rebuild_with_nothing_changed_runs_no_step(pod, golden):
    p = pod(CHAIN)
    p.request(1)
    p.settle(golden, "first build")
    p.events.clear()
    p.request(2)
    p.settle(golden, "rebuild")
    assert "ran" not in p.kinds() and p.done()["ok"] is True
    golden.check()


def test_a_failing_step_ends_the_build_failed_and_its_dependants_never_run(pod, golden, caplog):
    p = pod(FAILING)
    with caplog.at_level(logging.CRITICAL):
        p.request(1)
        p.settle(golden, "build")
    assert p.done()["ok"] is False and state_of(p.md) == "md_idle"
    assert not (p.root / "out/a.up").exists()
    golden.check()


def test_a_request_while_building_is_queued_and_built_after(pod, golden):
    p = pod(GATED)
    p.request(1)
    p.settle(golden, "first")
    p.request(2, ["src/a.txt"])               # another request: it waits its turn
    p.settle(golden, "second asked")
    assert p.answers.got[2].data["queued"] is True and state_of(p.md) == "md_dispatching"
    (p.root / "go").touch()
    p.settle(golden, "both")
    assert [e["ok"] for e in p.events if e["t"] == "done"] == [True, True]
    golden.check()


def test_a_cancel_of_the_running_build_drains_it_and_ends_it_cancelled(pod, golden, caplog):
    p = pod(GATED)
    p.request(1)
    p.settle(golden, "build")
    assert state_of(p.md) == "md_dispatching"
    p.bus.request(m.BUILD_CANCEL, {"build": p.build_id(1)}, chart=p.answers, token="cancel")
    p.md.next_rtc()                           # the cancel: CHEFS_CANCEL to the chef
    p.chef.next_rtc()                         # which kills its step: it will end now
    p.gated = False
    with caplog.at_level(logging.CRITICAL):
        # The chef's lines are left out: its kill ends on a worker's thread,
        # which may post while the chef is still in the cancel's step.
        p.settle(golden, "cancel", charts=[p.md, p.store])
    assert p.answers.got["cancel"].data["state"] == "cancelling"
    done = p.done()
    assert (done["ok"], done.get("cancelled"), done["code"]) == (False, True, 130)
    assert state_of(p.md) == "md_idle"
    golden.check()


def test_with_no_chef_the_build_fails_once_its_wait_for_one_is_over(pod, golden, caplog):
    p = pod(CHAIN, chef=False)
    p.request(1)
    p.settle(golden, "build")
    with caplog.at_level(logging.CRITICAL):
        for _ in range(int(CHEF_WAIT_S / TICK_S) + 1):
            p.clock.advance(TICK_S)
            p.settle(golden, f"tick at {p.clock.monotonic():g}")
    done = p.done()
    assert done["ok"] is False and state_of(p.md) == "md_idle"
    assert any("no chef answered" in e.get("reason", "") for e in p.events if e["t"] == "fail")
    golden.check()
