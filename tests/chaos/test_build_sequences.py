"""Battery rows: seeded random event sequences for the Chef and for the
build flow (MajorDomo, Store and a real Chef stepped together), with their
invariants (tests/sequences.py): never out of a chart's tree, a step run
at most once however often it is asked for, and every build accepted ends
(done, failed or cancelled) once its events are drained.
"""
from __future__ import annotations

import logging
import random
from collections import Counter

import pytest

from computepods.bus import chefwire, messages as m
from computepods.bus.chefwire import RunStep
from computepods.bus.loopback import LoopbackBus
from computepods.charts.base import Fabric
from computepods.charts.chef import HEARTBEAT_S, RESULTS_EVERY_S, STARTED_HOLD_S, Chef
from computepods.charts.majordomo import CHEF_WAIT_S, MajorDomo
from computepods.charts.store import Store
from computepods.chef.step import rule_to_dict
from computepods.clock import SimClock
from computepods.paths import prepare_state_dir
from computepods.planning.plan import STATE_DB
from computepods.project.model import Rule
from computepods.state.db import StateDB
from loopbackpod import write_project
from sequences import FULL, SHORT, in_its_tree, play
from stepped import NO_TRACE, settle_all, start_own, state_of, workers_done

SHORT_BUILDS = SHORT // 2      # a build flow costs more: processes, a database
LEASE_S = 3 * HEARTBEAT_S


@pytest.fixture(autouse=True)
def quiet_logs(caplog):
    with caplog.at_level(logging.CRITICAL, "computepods"):
        yield


def counting_submits(chef: Chef) -> Counter:
    """Count each job the chef hands its worker pool: a step committed at most once."""
    submitted: Counter = Counter()
    submit = chef.pool.submit

    def counted(job) -> None:
        submitted[job.key] += 1
        submit(job)
    chef.pool.submit = counted
    return submitted


# -- the Chef ------------------------------------------------------------------------
UP = Rule("up", ("src/%.txt",), ("build/%.up",), "tr a-z A-Z < {in} > {out}")
FAIL = Rule("fail", ("src/%.txt",), ("bad/%.txt",), "false")
OUT = {"up": "build/{}.up", "fail": "bad/{}.txt"}


class ChefWorld:
    """Runs (good, repeated, malformed, for two builds), cancels, queries,
    time, a MajorDomo that acknowledges results or not: each step is handed
    to the workers once, the chef is idle exactly when it holds nothing, and
    every step it accepted is reported finished."""

    def __init__(self, root, rng: random.Random):
        (root / "src").mkdir()
        for stem in "abc":
            (root / "src" / f"{stem}.txt").write_text(f"{stem}\n")
        self.bus, self.clock = LoopbackBus(), SimClock()
        self.results: list[dict] = []
        self.acks = "ok"                      # ok: answered; error: refused; none: never
        self.bus.listen(m.STEP_RESULTS, self)
        self.answers: list[m.Reply] = []
        self.chef = Chef("c", self.bus, root, rng.choice([1, 2]), clock=self.clock,
                         fingerprints=lambda tools: {}, **NO_TRACE)
        self.submitted = counting_submits(self.chef)
        start_own(self.chef)
        self.accepted: set[tuple[str, str, int]] = set()

    def put(self, msg: m.Message) -> None:           # a results message
        self.results += msg.data["results"]
        if self.acks != "none":
            self.bus.respond(msg, {"ok": True} if self.acks == "ok" else {"error": "busy"})

    def settle(self) -> None:
        settle_all(self.chef, idle=lambda: workers_done(self.chef))

    def check(self) -> None:
        in_its_tree(self.chef)
        twice = {k: n for k, n in self.submitted.items() if n > 1}
        assert not twice, f"steps handed to the workers more than once: {twice}"
        assert (state_of(self.chef) == "chef_idle") == (not self.chef.in_flight), (
            f"in {state_of(self.chef)} holding {sorted(self.chef.in_flight)}")

    def drain(self) -> None:
        self.acks = "ok"
        self.clock.advance(RESULTS_EVERY_S + STARTED_HOLD_S)
        self.settle()

    def check_end(self) -> None:
        finished = {(r.get("build"), r["id"], r["attempt"]) for r in self.results
                    if r.get("event") == "finished"}
        missing = self.accepted - finished
        assert not missing, f"accepted, never reported finished: {sorted(missing)}"

    def stop(self) -> None:
        self.chef.stop()
        self.bus.stop()


def chef_run(w: ChefWorld, rng: random.Random) -> str:
    build = rng.choice(["b0", "b1"])
    items, asked = [], []
    for _ in range(rng.randint(1, 3)):
        rule, stem, attempt = rng.choice(["up", "up", "fail"]), rng.choice("abc"), rng.choice([1, 1, 2])
        item = RunStep(f"{rule}:{OUT[rule].format(stem)}", attempt, rule, stem,
                       {f"src/{stem}.txt": "0" * 64}).to_dict()
        bad = rng.choice([None] * 6 + ["id", "rule", "inputs", "attempt"])
        if bad:
            item[bad] = rng.choice([None, 5, "nope", ["x"]])
        else:
            asked.append((item["id"], attempt))
        items.append(item)
    rules = {r.name: rule_to_dict(r) for r in (UP, FAIL)}
    if rng.random() < 0.1:
        rules["up"] = {"name": "up", "outputs": "a", "command": "true"}      # unreadable
        asked = []
    reply_to = _Answer(w, build, asked)
    w.bus.request(m.CHEF_RUN, {"build": build, "chef": "c", "steps": items, "rules": rules},
                  chart=reply_to, token=build, chef="c")
    return f"run {build} {[(i.get('id'), i.get('attempt')) for i in items]}"


class _Answer:
    """Where one run's answer goes: the steps the chef said it accepted."""

    def __init__(self, world: ChefWorld, build: str, asked: list):
        self.world, self.build, self.asked = world, build, dict(asked)

    def post(self, signal: str, reply: m.Reply) -> None:
        self.world.answers.append(reply)
        if reply.data and not reply.error:
            for sid in reply.data.get("accepted", []):
                if sid in self.asked:
                    self.world.accepted.add((self.build, sid, self.asked[sid]))


def chef_cancel(w: ChefWorld, rng: random.Random) -> str:
    build = rng.choice(["b0", "b1", "nope"])
    w.bus.publish(m.CHEFS_CANCEL, chefwire.ChefsCancel(build).to_dict())
    return f"cancel {build}"


def chef_query(w: ChefWorld, rng: random.Random) -> str:
    w.bus.publish(m.CHEFS_QUERY, {})
    return "query"


def chef_acks(w: ChefWorld, rng: random.Random) -> str:
    w.acks = rng.choice(["ok", "error", "none"])
    return f"acks {w.acks}"


def chef_time(w: ChefWorld, rng: random.Random) -> str:
    dt = rng.choice([STARTED_HOLD_S, RESULTS_EVERY_S, 1.0, HEARTBEAT_S])
    w.clock.advance(dt)
    return f"+{dt:g} s"


def test_chef_sequences(chaos, tmp_path_factory):
    for rnd in chaos.rounds("Chef: random runs, repeats, cancels, acks and time", full=FULL,
                            short=SHORT, must_hold="each step run once; each accepted one reported"):
        with rnd:
            play(rnd, lambda rng: ChefWorld(tmp_path_factory.mktemp("chef"), rng),
                 [chef_run, chef_run, chef_cancel, chef_query, chef_acks, chef_time], 15)


# -- the build flow ---------------------------------------------------------------------
FLOW = {"computepods.toml": """
    [project]
    default = ["out/a.up"]

    [[rule]]
    name = "copy"
    inputs = ["src/%.txt"]
    outputs = ["mid/%.txt"]
    command = "cp {in} {out}"

    [[rule]]
    name = "up"
    inputs = ["mid/%.txt"]
    outputs = ["out/%.up"]
    command = "tr a-z A-Z < {in} > {out}"

    [[rule]]
    name = "fail"
    inputs = ["src/%.txt"]
    outputs = ["bad/%.txt"]
    command = "false"

    [[rule]]
    name = "wait"
    inputs = ["src/%.txt"]
    outputs = ["slow/%.txt"]
    command = "while [ ! -e go ]; do sleep 0.01; done; cp {in} {out}"
""", "src/a.txt": "a\n", "src/b.txt": "b\n"}
TARGETS = [[], ["out/a.up"], ["out/b.up"], ["bad/a.txt"], ["nope/x"], ["out/a.up", "bad/b.txt"],
           ["src/a.txt"], ["slow/a.txt"], ["slow/b.txt", "out/b.up"]]
BUILDING = {"md_dispatching", "md_draining", "md_finishing"}


class FlowWorld:
    """A pod's MajorDomo, Store and one real Chef, stepped together, under
    random requests, cancels, edits, a ghost chef that takes steps and never
    runs them, goodbyes, time, and a gate (the go-file) that holds the
    steps of the rule ``wait`` running, so builds stay under way between
    moves: every build the MajorDomo accepted ends
    with one done event (ok, failed or cancelled) once the events are
    drained, no step of a build is reported built twice, and no chart
    leaves its tree."""

    def __init__(self, root, rng: random.Random):
        write_project(root, FLOW)
        prepare_state_dir(root)
        self.root, self.clock, self.bus, fabric = root, SimClock(), LoopbackBus(name="t"), Fabric()
        self.events: dict[str, list[dict]] = {}
        self.bus.listen(m.BUILD_EVENTS, self)
        self.replies: list[m.Reply] = []
        self.store = Store(root / STATE_DB, clock=self.clock, db=StateDB(root / STATE_DB),
                           fabric=fabric, **NO_TRACE)
        self.md = MajorDomo(self.bus, root, clock=self.clock, fabric=fabric, **NO_TRACE)
        self.chef = Chef("a", self.bus, root, rng.choice([1, 2]), clock=self.clock, fabric=fabric,
                         fingerprints=lambda tools: {}, **NO_TRACE)
        self.submitted = counting_submits(self.chef)
        for c in (self.md, self.store, self.chef):
            start_own(c)

    def put(self, msg: m.Message) -> None:                 # cp.build.<id>.events
        self.events.setdefault(msg.data["build"], []).extend(msg.data["events"])

    def post(self, signal: str, reply: m.Reply) -> None:   # answers to requests, cancels
        self.replies.append(reply)

    def builds(self) -> list[str]:
        """The builds the MajorDomo said it started or queued (not joined)."""
        return [r.data["build"] for r in self.replies if r.token == "build" and r.data
                and not r.error and not r.data.get("joined")]

    def idle(self) -> bool:
        """The chef's worker holds nothing that will end by itself: all is
        done (stepped.workers_done), or, with the gate shut, what is left
        is gated steps running, steps sent ahead held behind them and, only
        when the gated fill every slot, steps queued behind them."""
        c = self.chef
        if workers_done(c):
            return True
        if (self.root / "go").exists() or (c.done_posted and not c.events_waiting()):
            return False
        gated = sum(1 for key in list(c.began) if key[1].startswith("wait:"))
        queued = c.pool.queued
        return (len(c.in_flight) - len(c.done) == gated + queued + len(c.ahead)
                and (queued == 0 or gated == c.slots))

    def settle(self) -> None:
        settle_all(self.md, self.store, self.chef, idle=self.idle)

    def check(self) -> None:
        in_its_tree(self.md, self.store, self.chef)
        state = state_of(self.md)
        assert (state in BUILDING) == (self.md.build is not None), (
            f"MajorDomo in {state} with build {getattr(self.md.build, 'id', None)}")
        for build, events in self.events.items():
            built = Counter(e.get("step") for e in events if e.get("t") in ("ok", "ran"))
            twice = {s: n for s, n in built.items() if n > 1}
            assert not twice, f"build {build}: steps built twice: {twice}"
            assert sum(1 for e in events if e.get("t") == "done") <= 1, f"build {build}: two ends"

    def drain(self) -> None:
        (self.root / "go").touch()
        for _ in range(60):
            if state_of(self.md) == "md_idle" and not len(self.md.requests):
                break
            self.clock.advance(2.0)
            self.settle()

    def check_end(self) -> None:
        assert state_of(self.md) == "md_idle", f"still {state_of(self.md)} after the drain"
        unended = [b for b in self.builds()
                   if not any(e.get("t") == "done" for e in self.events.get(b, []))]
        assert not unended, f"builds that never ended: {unended}"

    def stop(self) -> None:
        for c in (self.chef, self.md, self.store):
            c.stop()
        self.bus.stop()


def flow_request(w: FlowWorld, rng: random.Random) -> str:
    targets = rng.choice(TARGETS)
    data = {"targets": targets, "cwd": str(w.root)}
    if rng.random() < 0.3:
        data["keep_going"] = True
    if rng.random() < 0.1:
        data["dry_run"] = True
    w.bus.request(m.BUILD_REQUEST, data, chart=w, token="build")
    return f"build {targets}{' -k' if data.get('keep_going') else ''}" \
           f"{' -n' if data.get('dry_run') else ''}"


def flow_cancel(w: FlowWorld, rng: random.Random) -> str:
    open_ = [b for b in w.builds() if not any(e.get("t") == "done" for e in w.events.get(b, []))]
    build = rng.choice(open_ or w.builds() + ["nope"])
    w.bus.request(m.BUILD_CANCEL, {"build": build}, chart=w, token="cancel")
    return f"cancel {build}"


def flow_edit(w: FlowWorld, rng: random.Random) -> str:
    stem = rng.choice("ab")
    (w.root / "src" / f"{stem}.txt").write_text(f"{stem} {rng.random()}\n")
    return f"edit src/{stem}.txt"


def flow_ghost(w: FlowWorld, rng: random.Random) -> str:
    """A chef of no process: it is given steps, and its runs find no one."""
    status = chefwire.ChefStatus("ghost", "local", 1, lease_s=LEASE_S).to_dict()
    gone = rng.random() < 0.3
    if gone:
        status["gone"] = "stopped"
    w.bus.publish(m.CHEF_STATUS, status)
    return "ghost says goodbye" if gone else "ghost chef status"


def flow_stray(w: FlowWorld, rng: random.Random) -> str:
    note = rng.choice([{"event": "started", "id": "copy:mid/a.txt", "attempt": 1},
                       {"event": "started", "id": "nope", "attempt": 7}, {"event": "what"}])
    w.bus.request(m.STEP_RESULTS, {"chef": rng.choice(["a", "ghost"]), "results": [note]},
                  chart=w, token="results")
    return f"stray result {note}"


def flow_gate(w: FlowWorld, rng: random.Random) -> str:
    gate = w.root / "go"
    if gate.exists():
        gate.unlink()
        return "gate shut"
    gate.touch()
    return "gate open"


def flow_goodbye(w: FlowWorld, rng: random.Random) -> str:
    w.chef.publish_status(gone="stopped")      # it takes no more work; its builds fail
    return "chef a says goodbye"


def flow_time(w: FlowWorld, rng: random.Random) -> str:
    dt = rng.choice([0.5, 1.0, 5.0, CHEF_WAIT_S, LEASE_S + 1])
    w.clock.advance(dt)
    return f"+{dt:g} s"


def test_build_flow_sequences(chaos, tmp_path_factory):
    for rnd in chaos.rounds("Build flow: random requests, cancels, edits, ghost chefs and time",
                            full=FULL, short=SHORT_BUILDS,
                            must_hold="every build ends: done, failed or cancelled"):
        with rnd:
            play(rnd, lambda rng: FlowWorld(tmp_path_factory.mktemp("flow"), rng),
                 [flow_request, flow_request, flow_cancel, flow_cancel, flow_edit, flow_ghost,
                  flow_stray, flow_gate, flow_time, flow_time]
                 + [flow_goodbye] * (rnd.rng.random() < 0.2), 15)
