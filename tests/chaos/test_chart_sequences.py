"""Battery rows: seeded random event sequences for the Store, the CacheFile,
the Cron, the Desk, the Herald and the Scout, with their invariants
(tests/sequences.py).  The Chef and the build flow are in
test_build_sequences.py; the FSWatcher in test_watch_sequences.py.
"""
from __future__ import annotations

import logging
import random
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from miros import Event, signals

from computepods.bus import messages as m
from computepods.bus.chefwire import ChefStatus
from computepods.bus.loopback import LoopbackBus
from computepods.charts.base import Fabric
from computepods.charts.cachefile import CacheFileChart, ReadCache, WriteCache
from computepods.charts.cron import Cron
from computepods.charts.desk import Desk
from computepods.charts.herald import Herald
from computepods.charts.scout import Scout
from computepods.charts.store import RETRY_MAX_S, Record, Store
from computepods.clock import SimClock
from computepods.federation.cachefile import CacheFile, CacheLock
from computepods.federation.search import Probed, Search, Want
from computepods.project.model import Schedule
from computepods.state.db import StateDB, StepRecord
from helpers import wait_for
from loopbackpod import DiskFull
from podhellos import hello_of
from sequences import FULL, SHORT, in_its_tree, play
from stepped import NO_TRACE, settle, start_own, state_of


@pytest.fixture(autouse=True)
def quiet_logs(caplog):
    """Sequences make charts log every refusal they can: keep the output short."""
    with caplog.at_level(logging.CRITICAL, "computepods"):
        yield


class Into:
    """A bus listener that keeps what it hears (and may answer it)."""

    def __init__(self, answer=None):
        self.got: list[m.Message] = []
        self.answer = answer

    def put(self, msg: m.Message) -> None:
        self.got.append(msg)
        if self.answer:
            self.answer(msg)


class Sink:
    """Where a loopback request's answer is posted."""

    def __init__(self):
        self.got: list[m.Reply] = []

    def post(self, signal: str, reply: m.Reply) -> None:
        self.got.append(reply)


# -- the Store ------------------------------------------------------------------
class StoreWorld:
    """Records, spurious flushes, a disk that fills and empties; each token is
    committed at most once, and every one is once the disk has room."""

    def __init__(self, root):
        self.clock, self.db, fabric = SimClock(), DiskFull(root / "state.db"), Fabric()
        self.db.full = False
        self.heard: list = []
        for sig in (m.RECORDED, m.RECORD_FAILED):
            fabric.subscribe(self.heard, Event(signal=getattr(signals, sig)))
        self.store = Store(root / "state.db", clock=self.clock, db=self.db, fabric=fabric,
                           **NO_TRACE)
        start_own(self.store)
        self.path, self.posted, self.steps = root / "state.db", [], set()

    def recorded(self) -> list:
        return [t for e in self.heard if e.signal_name == m.RECORDED for t in e.payload]

    def settle(self) -> None:
        settle(self.store)

    def check(self) -> None:
        in_its_tree(self.store)
        tokens = self.recorded()
        assert len(tokens) == len(set(tokens)), f"a record committed twice: {tokens}"
        assert set(tokens) <= set(self.posted), f"recorded what was never asked: {tokens}"

    def drain(self) -> None:
        self.db.full = False
        for _ in range(10):
            if set(self.recorded()) == set(self.posted):
                break
            self.clock.advance(RETRY_MAX_S)
            settle(self.store)

    def check_end(self) -> None:
        assert sorted(self.recorded()) == sorted(self.posted), "records never written"
        with StateDB(self.path, readonly=True) as db:
            assert set(db.steps()) == self.steps

    def stop(self) -> None:
        self.store.stop()


def store_record(w: StoreWorld, rng: random.Random) -> str:
    token = f"t{len(w.posted)}"
    ids = rng.sample(["a", "b", "c", "d"], rng.randint(1, 3))
    steps = [StepRecord(f"cc:{i}.o", "cc", f"cc -c {i}.c", inputs={f"{i}.c": "a" * 64},
                        outputs={f"{i}.o": "b" * 64}) for i in ids]
    w.posted.append(token)
    w.steps.update(s.step_id for s in steps)
    w.store.post(m.RECORD, Record(token=token, steps=steps))
    return f"record {token} {''.join(ids)}"


def store_flush(w: StoreWorld, rng: random.Random) -> str:
    w.store.post(m.FLUSH)
    return "flush"


def store_disk(w: StoreWorld, rng: random.Random) -> str:
    w.db.full = not w.db.full
    return "disk full" if w.db.full else "disk has room"


def store_time(w: StoreWorld, rng: random.Random) -> str:
    dt = rng.choice([0.01, 0.5, 1.0, 4.0, RETRY_MAX_S])
    w.clock.advance(dt)
    return f"+{dt:g} s"


def test_store_sequences(chaos, tmp_path_factory):
    for rnd in chaos.rounds("Store: random records, flushes and full disks", full=FULL,
                            short=SHORT, must_hold="each record committed once; none lost"):
        with rnd:
            play(rnd, lambda rng: StoreWorld(tmp_path_factory.mktemp("store")),
                 [store_record, store_record, store_flush, store_disk, store_time])


# -- the CacheFile ----------------------------------------------------------------
class CacheWorld:
    """Reads and writes while "another process" takes and lets go of the
    file's lock: each request is answered once, in the order asked."""

    WAIT_S = 3.0

    def __init__(self, root, rng: random.Random):
        self.clock, self.path = SimClock(), root / "pods.json"
        self.chart = CacheFileChart(self.path, clock=self.clock, rng=random.Random(rng.random()),
                                    wait_s=self.WAIT_S, **NO_TRACE)
        start_own(self.chart)
        self.asked: list[int] = []
        self.answered: list[int] = []
        self.holder: CacheLock | None = None

    def heard(self, signal: str, answer) -> None:
        self.answered.append(answer.token)

    def settle(self) -> None:
        settle(self.chart)

    def check(self) -> None:
        in_its_tree(self.chart)
        assert self.answered == self.asked[:len(self.answered)], (
            f"answers out of order or twice: asked {self.asked}, answered {self.answered}")

    def drain(self) -> None:
        if self.holder is not None:
            self.holder.release()
        for _ in range(20):
            if len(self.answered) == len(self.asked):
                break
            self.clock.advance(5.0)
            settle(self.chart)

    def check_end(self) -> None:
        assert self.answered == self.asked, f"unanswered: {self.asked[len(self.answered):]}"
        assert state_of(self.chart) == "file_access_waiting"

    def stop(self) -> None:
        if self.holder is not None:
            self.holder.release()
        self.chart.stop()


def cache_read(w: CacheWorld, rng: random.Random) -> str:
    w.asked.append(len(w.asked))
    w.chart.post(m.CACHE_FILE_READ, ReadCache(w.heard, token=w.asked[-1]))
    return f"read {w.asked[-1]}"


def cache_write(w: CacheWorld, rng: random.Random) -> str:
    w.asked.append(len(w.asked))
    entries = {rng.choice("abc"): rng.choice([None, 1, {"pod": "x"}]) for _ in range(2)}
    w.chart.post(m.CACHE_FILE_WRITE, WriteCache(entries, w.heard, token=w.asked[-1],
                                                expiry_s=rng.choice([1.0, 30.0])))
    return f"write {w.asked[-1]} {entries}"


def cache_lock(w: CacheWorld, rng: random.Random) -> str:
    if w.holder is None:
        got = CacheFile(w.path).try_acquire()
        if isinstance(got, CacheLock):
            w.holder = got
            return "another takes the lock"
        return "another tries the lock (held by the chart)"
    w.holder.release()
    w.holder = None
    return "another lets go"


def cache_time(w: CacheWorld, rng: random.Random) -> str:
    dt = rng.choice([0.01, 0.1, 1.0, 5.0])
    w.clock.advance(dt)
    return f"+{dt:g} s"


def test_cachefile_sequences(chaos, tmp_path_factory):
    for rnd in chaos.rounds("CacheFile: random reads and writes, a lock taken elsewhere",
                            full=FULL, short=SHORT,
                            must_hold="each request answered once, in order"):
        with rnd:
            play(rnd, lambda rng: CacheWorld(tmp_path_factory.mktemp("cache"), rng),
                 [cache_read, cache_write, cache_lock, cache_time])


# -- the Cron ---------------------------------------------------------------------
UTC = ZoneInfo("UTC")
CRONS = ["0 * * * *", "*/5 * * * *", "30 2 * * *", "0 0 1 1 *"]


class CronWorld:
    """Time moving (by minutes or by days), answers good, bad or missing: the
    Cron is firing exactly while it waits for answers, and each request it
    sent is reported once, fired or failed."""

    def __init__(self, root, rng: random.Random):
        self.bus = LoopbackBus()
        self.clock = SimClock(wall=datetime(2026, 1, 1, rng.randint(0, 23), rng.randint(0, 59),
                                            tzinfo=UTC).timestamp())
        self.requests, self.events = Into(), Into()
        self.bus.listen(m.BUILD_REQUEST, self.requests)
        self.bus.listen(m.CRON_EVENTS, self.events)
        schedules = [Schedule(c, ("all",)) for c in rng.sample(CRONS, rng.randint(1, 3))]
        self.cron = Cron(self.bus, root, schedules, clock=self.clock, tz=UTC, **NO_TRACE)
        start_own(self.cron)
        self.open: list[m.Message] = []

    def settle(self) -> None:
        settle(self.cron)
        self.open += [r for r in self.requests.got]
        self.requests.got.clear()

    def check(self) -> None:
        in_its_tree(self.cron)
        assert (state_of(self.cron) == "cron_firing") == bool(self.cron.outstanding), (
            f"in {state_of(self.cron)} with {len(self.cron.outstanding)} requests outstanding")

    def reported(self) -> int:
        return sum(1 for e in self.events.got if e.data["t"] in ("fired", "failed"))

    def drain(self) -> None:
        while self.open:
            self.bus.respond(self.open.pop(0), {"build": "late"})
            self.settle()

    def check_end(self) -> None:
        sent = sum(1 for _, data in self.bus.log if data.get("client") == "cron")
        assert self.reported() == sent, f"{sent} builds asked for, {self.reported()} reported"
        assert state_of(self.cron) == "cron_waiting"

    def stop(self) -> None:
        self.cron.stop()
        self.bus.stop()


def cron_time(w: CronWorld, rng: random.Random) -> str:
    dt = rng.choice([1.0, 59.0, 300.0, 3600.0, 86_400.0])
    w.clock.advance(dt)
    return f"+{dt:g} s"


def cron_answer(w: CronWorld, rng: random.Random) -> str:
    if not w.open:
        return "no request to answer"
    answer = rng.choice([{"build": "b1"}, {"nobuild": 1}, {"build": 5}, {"error": "refused"}])
    w.bus.respond(w.open.pop(rng.randrange(len(w.open))), answer)
    return f"answer {answer}"


def cron_stray(w: CronWorld, rng: random.Random) -> str:
    w.cron.post(rng.choice([m.REPLY, m.REQUEST_FAILED]), m.Reply(999, {"build": "x"}, "lost"))
    return "a stray answer"


def test_cron_sequences(chaos, tmp_path_factory):
    for rnd in chaos.rounds("Cron: random time, answers good, bad and stray", full=FULL,
                            short=SHORT, must_hold="each build asked for is reported once"):
        with rnd:
            play(rnd, lambda rng: CronWorld(tmp_path_factory.mktemp("cron"), rng),
                 [cron_time, cron_time, cron_answer, cron_stray])


# -- the Desk -------------------------------------------------------------------------
QUERIES = ["health", "builds", "build", "events", "check", "artefacts", "artefact", "graph",
           "steps", "step", "log", "explain", "pods", "profile", "bogus"]
ARGS = [{}, {"id": "b0"}, {"id": 5}, {"limit": -1}, {"limit": "x"}, {"after": 2, "id": "b1"},
        {"prefix": "../"}, {"path": "/etc/passwd"}, {"target": "out/a.txt"}, {"step": None},
        {"names": ["a", 3]}, {"before": "nope"}]
KINDS = ["queued", "plan", "start", "ran", "ok", "fail", "done", "store_retry", "weird"]


class DeskWorld:
    """Queries of every kind with odd arguments, build events and chef status
    as the bus passes them: each query is answered once, the Desk raises
    nothing, and what it heard of a build is what it answers for it."""

    def __init__(self, root):
        (root / "computepods.toml").write_text('[[rule]]\nname = "c"\ninputs = ["a.txt"]\n'
                                               'outputs = ["out/a.txt"]\ncommand = "cp {in} {out}"\n')
        self.bus, self.sink, self.asked = LoopbackBus(), Sink(), 0
        self.desk = Desk(self.bus, root, pod="here:1", **NO_TRACE)
        start_own(self.desk)

    def settle(self) -> None:
        settle(self.desk)

    def check(self) -> None:
        in_its_tree(self.desk)
        assert len(self.sink.got) == self.asked, f"{self.asked} asked, {len(self.sink.got)} answered"
        for reply in self.sink.got:
            assert reply.error or "answer" in reply.data or "failure" in reply.data, reply
            if "failure" in (reply.data or {}):
                assert reply.data["failure"]["error"] != "InternalError", reply.data["failure"]

    def drain(self) -> None:
        pass

    def check_end(self) -> None:
        pass

    def stop(self) -> None:
        self.desk.stop()
        self.bus.stop()


def desk_query(w: DeskWorld, rng: random.Random) -> str:
    what, args = rng.choice(QUERIES), rng.choice(ARGS)
    w.asked += 1
    w.bus.request(m.API_QUERY, {"what": what, "args": args}, chart=w.sink, token=w.asked)
    return f"query {what} {args}"


def desk_events(w: DeskWorld, rng: random.Random) -> str:
    build = rng.choice(["b0", "b1"])
    events = [{"t": rng.choice(KINDS), **rng.choice(
        [{}, {"step": "c:out/a.txt"}, {"ok": True}, {"ok": "yes", "code": "x"}, {"step": 5},
         {"step": ["x"]}, {"targets": 5, "steps": None}, {"ran": "x", "progress": [1, 2, 3]}])}
              for _ in range(rng.randint(0, 3))]
    data = {"build": build, "events": events}
    if rng.random() < 0.7:
        data["seq"] = rng.choice([0, 1, 5, -3])
    w.bus.publish(m.BUILD_EVENTS, data, build=build)
    return f"events {data}"


def desk_chef(w: DeskWorld, rng: random.Random) -> str:
    status = ChefStatus(rng.choice(["c0", "c1"]), "local", rng.randint(0, 4),
                        running=rng.randint(0, 3)).to_dict()
    if rng.random() < 0.3:
        status["gone"] = "stopped"
    w.bus.publish(m.CHEF_STATUS, status)
    return f"chef {status['chef']}{' gone' if 'gone' in status else ''}"


def test_desk_sequences(chaos, tmp_path_factory):
    for rnd in chaos.rounds("Desk: random queries, build events and chef status", full=FULL,
                            short=SHORT, must_hold="each query answered once; no handler raises"):
        with rnd:
            play(rnd, lambda rng: DeskWorld(tmp_path_factory.mktemp("desk")),
                 [desk_query, desk_query, desk_events, desk_chef])


# -- the Herald -------------------------------------------------------------------------
class HeraldWorld:
    """Hellos good and bad, discovers, time: the Herald is federated exactly
    while its Roster holds a live pod, and alone once all went silent."""

    def __init__(self):
        self.clock = SimClock()
        self.bus = LoopbackBus(clock=self.clock)
        self.herald = Herald(self.bus, lambda: hello_of("a", role="majordomo"), clock=self.clock,
                             probe=lambda endpoint: None, **NO_TRACE)
        start_own(self.herald)
        self.sink = Sink()

    def settle(self) -> None:
        settle(self.herald)

    def check(self) -> None:
        in_its_tree(self.herald)
        live = self.herald.roster.live_count()
        assert (state_of(self.herald) == "herald_federated") == (live > 0), (
            f"in {state_of(self.herald)} with {live} pods live")

    def drain(self) -> None:
        for _ in range(6):
            self.clock.advance(3.0)
            settle(self.herald)

    def check_end(self) -> None:
        assert state_of(self.herald) == "herald_alone" and self.herald.roster.live_count() == 0

    def stop(self) -> None:
        self.herald.stop()
        self.bus.stop()


def herald_hello(w: HeraldWorld, rng: random.Random) -> str:
    pod = rng.choice("bcd")
    hello = hello_of(pod, role=rng.choice(["chef", "majordomo"])).to_dict()
    bad = rng.choice([None, None, ("role", "emperor"), ("slots", -5), ("sftp", {}),
                      ("pod", "a"), ("every_s", 0.5)])
    if bad:
        hello[bad[0]] = bad[1]
    w.bus.publish(m.PODS_HELLO, hello)
    return f"hello {pod}{f' {bad[0]}={bad[1]!r}' if bad else ''}"


def herald_discover(w: HeraldWorld, rng: random.Random) -> str:
    want = rng.choice([None, {}, {"role": "majordomo"}, {"tool": "cc"}, {"role": 5}, {"pod": "a"}])
    payload = {"search": "s"} if want is None else {"search": "s", "want": want}
    w.bus.request(m.PODS_DISCOVER, payload, chart=w.sink, token=len(w.sink.got))
    return f"discover {want}"


def herald_time(w: HeraldWorld, rng: random.Random) -> str:
    dt = rng.choice([0.1, 1.0, 3.0, 10.0])
    w.clock.advance(dt)
    return f"+{dt:g} s"


def test_herald_sequences(chaos):
    for rnd in chaos.rounds("Herald: random hellos, discovers and time", full=FULL, short=SHORT,
                            must_hold="federated exactly while a pod is live"):
        with rnd:
            play(rnd, lambda rng: HeraldWorld(),
                 [herald_hello, herald_hello, herald_discover, herald_time])


# -- the Scout ---------------------------------------------------------------------------
class ScoutWorld:
    """Searches, windows closing, probes and their deadlines, stale answers:
    the Scout answers each search at most once and is never left asking or
    probing once time has moved on."""

    def __init__(self, rng: random.Random):
        self.clock = SimClock()
        self.bus = LoopbackBus(clock=self.clock)
        for pod in rng.sample("bcd", rng.randint(0, 3)):
            hello = hello_of(pod, tools={"cc": "sha256:1"} if pod != "d" else {})
            self.bus.listen(m.PODS_DISCOVER, Into(lambda msg, h=hello: self.bus.respond(
                msg, h.to_dict())))
        refuse = rng.choice([None, "refused our key"])
        self.answers: list[tuple[str, object]] = []
        self.searches = 0
        self.scout = Scout(self.bus, self, lambda endpoint: refuse, clock=self.clock,
                           probe_timeout_s=5.0, **NO_TRACE)
        start_own(self.scout)

    def post(self, signal: str, payload=None) -> None:      # the Scout's parent
        self.answers.append((signal, payload))

    def settle(self) -> None:
        settle(self.scout)
        while state_of(self.scout) == "scout_probing":      # its probes answer at once
            wait_for(self.scout.events_waiting, what="the probes' answer")
            settle(self.scout)

    def check(self) -> None:
        in_its_tree(self.scout)
        assert len(self.answers) <= self.searches, f"{len(self.answers)} answers to " \
                                                   f"{self.searches} searches"

    def drain(self) -> None:
        self.clock.advance(5.0)
        self.settle()

    def check_end(self) -> None:
        assert state_of(self.scout) in ("scout_waiting", "scout_found", "scout_not_found")
        assert (self.searches == 0) == (not self.answers)

    def stop(self) -> None:
        self.scout.stop()
        self.bus.stop()


def scout_search(w: ScoutWorld, rng: random.Random) -> str:
    want = rng.choice([Want(), Want(tool="cc"), Want(pod="c"), Want(role="majordomo")])
    w.searches += 1
    w.scout.post(m.SEARCH, Search("s", want, window_s=rng.choice([0.5, 1.0])))
    return f"search {want}"


def scout_time(w: ScoutWorld, rng: random.Random) -> str:
    dt = rng.choice([0.5, 1.0, 5.0])
    w.clock.advance(dt)
    return f"+{dt:g} s"


def scout_stale(w: ScoutWorld, rng: random.Random) -> str:
    signal, payload = rng.choice([(m.PROBED, Probed(-1, {"b": None})), (m.TICK, -1)])
    w.scout.post(signal, payload)
    return f"a stale {signal}"


def test_scout_sequences(chaos):
    for rnd in chaos.rounds("Scout: random searches, windows, probes and stale answers",
                            full=FULL, short=SHORT,
                            must_hold="each search answered at most once; never stuck"):
        with rnd:
            play(rnd, ScoutWorld, [scout_search, scout_time, scout_time, scout_stale])
